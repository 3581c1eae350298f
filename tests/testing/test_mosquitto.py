"""MosquittoBroker: a real broker that carries MQTT traffic, and the faults it injects."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from printfleet.testing import (
    MosquittoBroker,
    ServiceError,
    ServiceStartError,
    probe_mqtt_connect,
    sweep_abandoned,
)

pytestmark = pytest.mark.mosquitto

WAIT = 5.0  # upper bound of every wait for a condition; a passing test waits far less


@contextlib.contextmanager
def connected_client(
    broker: MosquittoBroker, client_id: str, *, username: str | None = None, password: str = ""
) -> Iterator[tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]]:
    """A paho client connected to `broker`, with the messages it receives in a queue."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
    if username is not None:
        client.username_pw_set(username, password)
    connected = threading.Event()
    outcome: list[ReasonCode] = []
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()

    def on_connect(
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        outcome.append(reason_code)
        connected.set()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        messages.put(message)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(WAIT), "no CONNACK"
        assert not outcome[0].is_failure, f"connection refused: {outcome[0]}"
        yield client, messages
    finally:
        client.disconnect()
        client.loop_stop()


def assert_round_trip(broker: MosquittoBroker, topic: str, **credentials: str) -> None:
    """One client publishes at QoS 1 through `broker`; another, subscribed, receives it."""
    with (
        connected_client(broker, "subscriber", **credentials) as (subscriber, messages),
        connected_client(broker, "publisher", **credentials) as (publisher, _),
    ):
        subscribed = threading.Event()
        subscriber.on_subscribe = lambda *_: subscribed.set()
        subscriber.subscribe(topic, qos=1)
        assert subscribed.wait(WAIT), "no SUBACK"
        publication = publisher.publish(topic, b"hello", qos=1)
        publication.wait_for_publish(WAIT)
        assert publication.is_published()
        message = messages.get(timeout=WAIT)
        assert (message.topic, message.payload) == (topic, b"hello")


def test_broker_carries_messages_on_its_own_port(mosquitto: MosquittoBroker) -> None:
    assert mosquitto.port != 1883
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert_round_trip(mosquitto, "printfleet/test/roundtrip")


def test_kill_then_restart_serves_again_on_the_same_port(fresh_mosquitto: MosquittoBroker) -> None:
    broker = fresh_mosquitto
    port = broker.port
    assert_round_trip(broker, "before/kill")

    broker.kill()
    assert not broker.running
    with pytest.raises(ConnectionRefusedError):
        probe_mqtt_connect(broker.host, port, timeout=WAIT)

    broker.restart()
    assert broker.port == port
    assert_round_trip(broker, "after/restart")


def test_freeze_makes_connect_time_out_and_thaw_recovers(fresh_mosquitto: MosquittoBroker) -> None:
    broker = fresh_mosquitto
    broker.freeze()
    with pytest.raises(TimeoutError):
        probe_mqtt_connect(broker.host, broker.port, timeout=0.5)

    broker.thaw()
    assert not broker.frozen
    assert probe_mqtt_connect(broker.host, broker.port, timeout=WAIT) == 0
    assert_round_trip(broker, "after/thaw")


def test_a_connected_client_sees_the_broker_die(fresh_mosquitto: MosquittoBroker) -> None:
    with connected_client(fresh_mosquitto, "watcher") as (client, _):
        gone = threading.Event()
        client.on_disconnect = lambda *_: gone.set()
        fresh_mosquitto.kill()
        assert gone.wait(WAIT)


def test_kill_of_a_frozen_broker_reaps_it(fresh_mosquitto: MosquittoBroker) -> None:
    pid = fresh_mosquitto.pid
    assert pid is not None
    fresh_mosquitto.freeze()
    fresh_mosquitto.kill()
    assert not fresh_mosquitto.running
    assert not psutil.pid_exists(pid)  # neither running nor left as a zombie


def test_stop_of_a_frozen_broker_shuts_it_down(fresh_mosquitto: MosquittoBroker) -> None:
    fresh_mosquitto.freeze()
    fresh_mosquitto.stop()
    assert not fresh_mosquitto.running
    assert "terminating" in fresh_mosquitto.log_tail()  # its orderly-shutdown line


def test_password_file_and_no_anonymous_access(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    assert tool is not None, "mosquitto_passwd comes with mosquitto: run scripts/test"
    password_file = tmp_path / "passwords"
    subprocess.run(  # noqa: S603 -- fixed tool and arguments
        [tool, "-c", "-b", password_file, "printer", "s3cret"], check=True, capture_output=True
    )
    with MosquittoBroker(allow_anonymous=False, password_file=password_file) as broker:
        assert probe_mqtt_connect(broker.host, broker.port, timeout=WAIT) == 5  # not authorised
        assert_round_trip(broker, "with/password", username="printer", password="s3cret")


def test_start_failure_reports_the_log_tail() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = MosquittoBroker(port=squatter.getsockname()[1])
        try:
            with pytest.raises(ServiceStartError, match="Address already in use"):
                broker.start()
        finally:
            broker.close()


def test_close_reaps_the_process_and_removes_the_temp_dir() -> None:
    with MosquittoBroker() as broker:
        pid, directory = broker.pid, broker.directory
        assert pid is not None
        assert directory.is_dir()
    assert not psutil.pid_exists(pid)
    assert not directory.exists()
    with pytest.raises(ServiceError, match="closed"):
        broker.start()


OWNER_OF_A_BROKER = """
import time
from printfleet.testing import MosquittoBroker
broker = MosquittoBroker().start()
print(broker.pid, broker.directory, flush=True)
time.sleep(60)
"""


def test_sweep_removes_a_broker_whose_owner_was_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(  # noqa: S603 -- this interpreter, a fixed script
        [sys.executable, "-c", OWNER_OF_A_BROKER],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its temp dir lands where this test looks
    )
    assert owner.stdout is not None
    with owner.stdout:
        pid_text, directory_text = owner.stdout.readline().split()
    owner.kill()  # no clean-up can run: the broker is left behind
    owner.wait()
    broker = psutil.Process(int(pid_text))
    assert broker.is_running()

    assert sweep_abandoned(tmp_path) == [Path(directory_text)]
    with contextlib.suppress(psutil.NoSuchProcess):
        broker.wait(WAIT)  # returns once it died, even if init leaves it a zombie
    assert not Path(directory_text).exists()
