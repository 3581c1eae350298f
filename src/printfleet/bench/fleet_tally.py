"""What a fleet says on the broker, as the fleet benchmark watches it: which printers are online
(their retained presence), and how much telemetry they send and the broker delivers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from printfleet.bench.fleet_report import FleetBenchError, TelemetryCount
from printfleet.broker_address import BrokerAddress
from printfleet.protocol.messages import DecodeError, decode_presence
from printfleet.protocol.topics import Topics

__all__ = ["BrokerTally"]

_SUBSCRIBE_TIMEOUT_S = 10.0


class BrokerTally:
    """What the fleet says on the broker: who is online (retained presence) and telemetry counts.

    A paho client on its own network thread; readers wait on a condition, never by polling.
    """

    def __init__(self, broker_url: str, topics: Topics | None = None) -> None:
        self._address = BrokerAddress.parse(broker_url)
        self._topics = topics or Topics()
        self._telemetry_suffix = "/telemetry"
        self._changed = threading.Condition()
        self._online: set[str] = set()
        self._telemetry = 0
        # Per printer, the first and last telemetry ``seq`` seen this window: how many it sent.
        self._seq_spans: dict[str, tuple[int, int]] = {}
        self._subscribed = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"printfleet-bench-{uuid.uuid4().hex[:12]}",
            clean_session=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def __enter__(self) -> Self:
        self._client.username_pw_set(self._address.username, self._address.password)
        self._client.connect(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._subscribed, _SUBSCRIBE_TIMEOUT_S):
                self._stop()
                raise FleetBenchError(f"could not subscribe on {self._address}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.subscribe(
            [
                (self._topics.all_printers("presence"), 1),
                (self._topics.all_printers("telemetry"), 0),
            ]
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._changed:
            self._subscribed = True
            self._changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        printer = self._topics.printer_of(message.topic)
        if printer is None:
            return
        if message.topic.endswith(self._telemetry_suffix):
            seq = _telemetry_seq(message.payload)
            with self._changed:
                self._telemetry += 1
                first, _ = self._seq_spans.get(printer, (seq, seq))
                self._seq_spans[printer] = (first, seq)
            return
        try:
            online = decode_presence(message.payload).online
        except DecodeError:
            return
        with self._changed:
            if online:
                self._online.add(printer)
            else:
                self._online.discard(printer)
            self._changed.notify_all()

    def online(self) -> int:
        """How many printers' presence says online now."""
        with self._changed:
            return len(self._online)

    def wait_online(self, count: int, timeout: float, *, alive: Callable[[], bool]) -> bool:
        """Wait until exactly ``count`` printers are online; False on timeout or once not alive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._online) != count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not alive():
                    return False
                # Wake now and then to notice a fleet that died without a word.
                self._changed.wait(min(remaining, 0.5))
            return True

    def take_window(self) -> TelemetryCount:
        """Telemetry since the last call; starts a new window."""
        with self._changed:
            spans = self._seq_spans.values()
            taken = TelemetryCount(
                seen=self._telemetry,
                sent=sum(last - first + 1 for first, last in spans),
                senders=len(spans),
            )
            self._telemetry = 0
            self._seq_spans = {}
            return taken


def _telemetry_seq(payload: bytes | bytearray) -> int:
    # json, not the pydantic model: the tally must keep up with a thousand reports a second.
    with contextlib.suppress(ValueError, AttributeError):
        seq = json.loads(payload).get("seq")
        if isinstance(seq, int):
            return seq
    return 0
