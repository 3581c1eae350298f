"""``LinkSupervisor``: the cloud's broker connection, and the only honest answer to "is it up?".

A client library's idea of "connected" is not evidence (S8): a half-open socket looks connected
for a keep-alive period or more, and some libraries report reconnects that did not happen. The
supervisor publishes a probe to a topic it subscribes to and calls the link verified only while
a probe has made the whole round trip through the broker within the last probe interval.

Publishing follows S9. A command is refused before anything leaves the process unless the link
is verified at that moment (``NOT_SENT``: it can never arrive). Once bytes may have left, only a
broker acknowledgement makes it ``SENT``; anything else is ``UNKNOWN``, and the client is torn
down with a reset at once, so that nothing it queued can be retransmitted on a later reconnect.
Each connection uses a new client object for the same reason: an old client's queue dies with it.
"""

import asyncio
import contextlib
import json
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import aiomqtt
import stamina

from printfleet.broker_address import BrokerAddress
from printfleet.protocol.identities import cloud_client_id
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)


def _reraise_if_cancelled() -> None:
    # A cancellation can be lost inside a publish: aiomqtt may turn it into an MqttError, and
    # Python 3.11's wait_for drops it when the awaited result arrives at the same moment. A
    # cancelled task must still end.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class PublishOutcome(StrEnum):
    """What became of a publish."""

    SENT = "sent"
    """The broker acknowledged it."""
    NOT_SENT = "not_sent"
    """Refused before any byte left: it will never be delivered."""
    UNKNOWN = "unknown"
    """Bytes may have left but no acknowledgement came; settle from the printer's journal."""


@dataclass(frozen=True, slots=True)
class LinkState:
    """A snapshot for ``/health`` and metrics."""

    connected: bool
    verified: bool
    evidence_age_s: float | None
    last_rtt_s: float | None
    connects: int


class LinkSupervisor:
    """Owns the cloud's MQTT connection: probes, subscriptions, and publishes under S8/S9.

    ``on_message(topic, payload)`` receives every printer message; it must not block.
    """

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        on_message: Callable[[str, bytes], None],
        topics: Topics | None = None,
        instance: str | None = None,
        probe_interval_s: float = 2.0,
        publish_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.topics = topics or Topics()
        self.instance = instance or uuid.uuid4().hex[:12]
        self.probe_interval_s = probe_interval_s
        self.publish_timeout_s = publish_timeout_s
        self._on_message = on_message
        self._clock = clock
        self._client: aiomqtt.Client | None = None
        self._verified_at: float | None = None
        self._last_rtt: float | None = None
        self._probes: dict[str, float] = {}
        self._connects = 0
        self._abandon = asyncio.Event()
        self._evidence_arrived = asyncio.Event()

    # -- evidence ---------------------------------------------------------------------------------

    def verified(self) -> bool:
        """Whether a probe made the round trip within the last probe interval (S8)."""
        age = self.evidence_age()
        return age is not None and age <= self.probe_interval_s

    def evidence_age(self) -> float | None:
        """Seconds since the newest completed probe round trip, if any."""
        if self._verified_at is None:
            return None
        return self._clock() - self._verified_at

    def state(self) -> LinkState:
        """A snapshot of the link for health checks and metrics."""
        return LinkState(
            connected=self._client is not None,
            verified=self.verified(),
            evidence_age_s=self.evidence_age(),
            last_rtt_s=self._last_rtt,
            connects=self._connects,
        )

    async def wait_verified(self) -> None:
        """Wait until the link is verified (wrap in ``asyncio.timeout``)."""
        while not self.verified():
            await self._evidence_arrived.wait()

    # -- publishing -----------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> PublishOutcome:
        """Publish now or not at all (S9). Never retains, never queues for later."""
        client = self._client
        if client is None or not self.verified():
            return PublishOutcome.NOT_SENT
        try:
            await client.publish(topic, payload, qos=qos, timeout=self.publish_timeout_s)
        except aiomqtt.MqttError as error:
            _reraise_if_cancelled()
            log.warning("publish to %s failed: %s; dropping the connection", topic, error)
            self._tear_down(client)
            return PublishOutcome.UNKNOWN
        _reraise_if_cancelled()
        return PublishOutcome.SENT

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe, probe and receive until cancelled; reconnect with backoff."""
        while True:
            async for attempt in stamina.retry_context(
                on=aiomqtt.MqttError,
                attempts=None,
                timeout=None,
                wait_initial=0.2,
                wait_max=10.0,
                wait_jitter=0.5,
            ):
                with attempt:
                    await self._session()

    async def _session(self) -> None:
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=cloud_client_id(self.instance),
            clean_session=True,
            keepalive=max(2, int(self.probe_interval_s * 2)),
            timeout=self.publish_timeout_s,
            tls_params=aiomqtt.TLSParameters() if self.broker.tls else None,
        )
        self._abandon = asyncio.Event()
        try:
            async with client:
                self._client = client
                self._connects += 1
                for kind in ("events", "telemetry", "presence"):
                    await client.subscribe(self.topics.all_printers(kind), qos=1)
                await client.subscribe(self.topics.probe(self.instance), qos=1)
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._probe_loop(client), name="link probe")
                    group.create_task(self._receive(client), name="link receive")
                    group.create_task(self._until_abandoned(), name="link watch")
        except* aiomqtt.MqttError as errors:
            raise errors.exceptions[0] from None
        finally:
            self._client = None
            self._probes.clear()

    async def _probe_loop(self, client: aiomqtt.Client) -> None:
        topic = self.topics.probe(self.instance)
        while True:
            nonce = uuid.uuid4().hex
            now = self._clock()
            self._probes[nonce] = now
            # Forget probes that can no longer count as evidence.
            for old, sent in list(self._probes.items()):
                if now - sent > self.probe_interval_s:
                    del self._probes[old]
            payload = json.dumps({"nonce": nonce}).encode()
            try:
                await client.publish(topic, payload, qos=1, timeout=self.probe_interval_s)
            except aiomqtt.MqttError:
                _reraise_if_cancelled()
                self._tear_down(client)
                return
            _reraise_if_cancelled()
            await asyncio.sleep(self.probe_interval_s / 2)

    async def _until_abandoned(self) -> None:
        await self._abandon.wait()
        msg = "connection abandoned after an unacknowledged publish"
        raise aiomqtt.MqttError(msg)

    async def _receive(self, client: aiomqtt.Client) -> None:
        probe_topic = self.topics.probe(self.instance)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if message.topic.value == probe_topic:
                self._probe_returned(payload)
            else:
                self._on_message(message.topic.value, payload)

    def _probe_returned(self, payload: bytes) -> None:
        try:
            nonce = json.loads(payload)["nonce"]
        except (ValueError, KeyError, TypeError):
            return
        sent = self._probes.pop(nonce, None)
        if sent is not None:
            now = self._clock()
            self._verified_at = now
            self._last_rtt = now - sent
            self._evidence_arrived.set()
            self._evidence_arrived = asyncio.Event()

    def _tear_down(self, client: aiomqtt.Client) -> None:
        """End this connection now; whatever the client still holds must never be sent.

        No more publishes go through it, the evidence is void, and its socket will close with
        a reset (linger zero), so the kernel discards what is still unsent rather than
        delivering it; the session then ends and a new client connects.
        """
        self._verified_at = None
        if self._client is client:
            self._client = None
        # aiomqtt wraps paho; the socket is only reachable through the wrapped client.
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._abandon.set()
