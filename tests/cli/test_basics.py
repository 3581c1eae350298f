"""The console script: version, help, the protocol walk-through, and the single-printer agent."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

import printfleet
from printfleet.protocol.messages import decode_presence
from printfleet.testing import MosquittoBroker

PRINTFLEET = Path(sys.executable).parent / "printfleet"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"printfleet {printfleet.__version__}"
    help_text = run("--help").stdout
    for command in ("agent", "sim", "protocol"):
        assert command in help_text


def test_the_protocol_walk_through_shows_each_refusal() -> None:
    result = run("protocol", "demo")
    assert result.returncode == 0
    for reason in ("CLOCK_UNSYNCED", "PLATE_UNCONFIRM", "BAD_SIGNATURE", "STALE", "DUPLICATE"):
        assert reason in result.stdout
    assert "StartPrint" in result.stdout


def test_the_agent_command_runs_one_printer(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    online: list[bool] = []

    def on_message(client: Client, userdata: object, message: MQTTMessage) -> None:
        online.append(decode_presence(message.payload).online)

    listener = Client(CallbackAPIVersion.VERSION2, client_id="agent-listener")
    listener.on_message = on_message
    listener.connect("127.0.0.1", fresh_mosquitto.port)
    listener.subscribe("printfleet/v1/printers/solo-1/presence", qos=1)
    listener.loop_start()
    agent = subprocess.Popen(  # noqa: S603 - our own console script
        [
            str(PRINTFLEET), "agent", "--printer-id", "solo-1", "--model", "p1",
            "--broker", fresh_mosquitto.url, "--data-dir", str(tmp_path),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True not in online and time.monotonic() < deadline:  # paho's thread fills it
            time.sleep(0.05)
        assert True in online
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=20)
        deadline = time.monotonic() + 10
        while online[-1] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert online[-1] is False
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.communicate()
        listener.loop_stop()
        listener.disconnect()
    assert (tmp_path / "journal.sqlite3").exists()


def test_the_agent_needs_an_identity() -> None:
    result = run("agent")
    assert result.returncode == 2
    assert "--printer-id" in result.stderr
