"""`printfleet sim` against a bare broker: printers announce themselves and report, no cloud."""

import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from printfleet.protocol.messages import decode_presence, decode_telemetry
from printfleet.testing import MosquittoBroker

PRINTFLEET = Path(sys.executable).parent / "printfleet"


def test_a_simulated_fleet_publishes_presence_and_telemetry(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    offline: set[str] = set()
    lock = threading.Lock()

    def on_message(client: Client, userdata: object, message: MQTTMessage) -> None:
        kind = message.topic.rsplit("/", 1)[-1]
        with lock:
            if kind == "telemetry":
                report = decode_telemetry(message.payload)
                seen["telemetry"].add(report.printer_id)
                assert report.status.value == "idle"
            elif kind == "presence":
                presence = decode_presence(message.payload)
                seen["presence"].add(presence.printer_id)
                if not presence.online:
                    offline.add(presence.printer_id)

    listener = Client(CallbackAPIVersion.VERSION2, client_id="fleet-listener")
    listener.on_message = on_message
    listener.connect("127.0.0.1", fresh_mosquitto.port)
    listener.subscribe("printfleet/v1/printers/+/+", qos=1)
    listener.loop_start()
    try:
        result = subprocess.run(  # noqa: S603 - our own console script
            [
                str(PRINTFLEET), "sim", "--printers", "3", "--models", "x1,p1",
                "--broker", fresh_mosquitto.url, "--duration", "4", "--telemetry-period", "0.5",
                "--data-dir", str(tmp_path), "--attendant-after", "20",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        listener.loop_stop()
        listener.disconnect()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "an attendant clears plates 20 s after each print" in result.stdout
    printers = {"sim-x1-0000", "sim-p1-0001", "sim-x1-0002"}
    assert seen["presence"] == printers
    assert seen["telemetry"] == printers
    # A clean stop says so: every printer's presence ends offline.
    assert offline == printers
    # Each printer kept its own journal.
    assert all((tmp_path / p / "journal.sqlite3").exists() for p in printers)


def test_a_bad_broker_url_is_a_clear_error() -> None:
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), "sim", "--broker", "http://nope"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "mqtt://" in result.stderr
