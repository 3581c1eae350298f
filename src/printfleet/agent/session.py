"""The printer's link to the broker: one MQTT session at a time, commands in, the outbox out.

Each connection gets a fresh client with a clean session, so nothing queued in an old client or
kept by the broker can be replayed (S9). Events wait in the ``Outbox`` and leave it, in order,
only once the broker has acknowledged them; presence is retained, with "offline" as the Will.
"""

import asyncio
import contextlib
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import aiomqtt
import stamina

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import Hardware
from printfleet.agent.stats import AgentStats
from printfleet.protocol.identities import printer_client_id
from printfleet.protocol.messages import Event, Presence, Telemetry, encode
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 256
"""Events kept while the broker is unreachable; the oldest go first beyond this."""
PUBLISH_TIMEOUT_S = 10.0
"""A QoS 1 publish not acknowledged within this long ends the session: the link is not working."""
CONNECT_TIMEOUT_S = 10.0


class Outbox:
    """Events for the cloud, oldest first, waiting until the broker has acknowledged each.

    Putting never waits for the network. Bounded: while the broker is unreachable, the oldest
    event goes first beyond ``limit`` (counted in ``AgentStats.events_dropped``).
    """

    __slots__ = ("_events", "_filled", "_limit", "_stats")

    def __init__(self, stats: AgentStats, limit: int = OUTBOX_LIMIT) -> None:
        self._events: deque[Event] = deque()
        self._filled = asyncio.Event()
        self._limit = limit
        self._stats = stats

    def put(self, event: Event) -> None:
        """Queue ``event`` for publishing."""
        if len(self._events) >= self._limit:
            self._events.popleft()
            self._stats.events_dropped += 1
        self._events.append(event)
        self._filled.set()

    async def drain(self, publish: Callable[[Event], Awaitable[None]]) -> None:
        """Hand the events to ``publish`` in order, for ever; one leaves once ``publish`` returns.

        When ``publish`` raises (the link failed), the event stays first in line for the next
        session. (The broker may have it already; the cloud tolerates duplicate events.)
        """
        while True:
            while not self._events:
                self._filled.clear()
                await self._filled.wait()
            event = self._events[0]
            await publish(event)
            if self._events and self._events[0] is event:
                self._events.popleft()


class _SessionEnded(Exception):  # noqa: N818 - a signal between two loops, not an error
    """A connected session dropped; reconnect with a fresh client and a fresh backoff."""


class BrokerSession:
    """The printer's MQTT link while ``run()`` runs; ``ready`` is set while it is connected.

    After each (re)connect it subscribes to the printer's commands, publishes presence and calls
    ``on_connected`` (which queues what the cloud should hear first) before it sets ``ready``.
    Each command's payload goes to ``on_command``, one at a time, in the order received.
    """

    __slots__ = (
        "_client",
        "_config",
        "_hardware",
        "_on_command",
        "_on_connected",
        "_outbox",
        "_stats",
        "ready",
        "topics",
    )

    def __init__(
        self,
        config: AgentConfig,
        hardware: Hardware,
        *,
        topics: Topics,
        outbox: Outbox,
        stats: AgentStats,
        ready: asyncio.Event,
        on_command: Callable[[bytes], Awaitable[None]],
        on_connected: Callable[[], None],
    ) -> None:
        self._config = config
        self._hardware = hardware
        self.topics = topics
        self._outbox = outbox
        self._stats = stats
        self.ready = ready
        self._on_command = on_command
        self._on_connected = on_connected
        self._client: aiomqtt.Client | None = None

    @property
    def connected(self) -> bool:
        """Whether a session is up now (it may still turn out to be dead)."""
        return self._client is not None

    async def publish_telemetry(self, report: Telemetry) -> bool:
        """Publish ``report`` at QoS 0 on the current session; False if none or it failed.

        Never kept for later (S9): a report that cannot go now is not sent.
        """
        client = self._client
        if client is None:
            return False
        topic = self.topics.telemetry(self._config.printer_id)
        try:
            await _publish(client, topic, encode(report), qos=0)
        except aiomqtt.MqttError:
            return False
        return True

    async def run(self) -> None:
        """Connect, serve, and reconnect after every drop with backoff, until cancelled."""
        while True:
            async for attempt in stamina.retry_context(
                on=aiomqtt.MqttError,
                attempts=None,
                timeout=None,
                wait_initial=0.5,
                wait_max=30.0,
                wait_jitter=1.0,
            ):
                with attempt:
                    try:
                        await self._session()
                    except _SessionEnded:
                        break
            # Spread reconnects so a broker restart is not met by the whole fleet at once.
            await asyncio.sleep(random.uniform(0, 1))  # noqa: S311 - jitter, not secrecy

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiomqtt.Client]:
        """A connected client, bounded in time on the way in and on the way out."""
        client = self._client_for()
        async with _link_timeout(CONNECT_TIMEOUT_S):
            await client.__aenter__()
        try:
            yield client
        finally:
            # Say goodbye if the link still carries it; a link that does not is simply dropped.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await client.__aexit__(None, None, None)

    def _client_for(self) -> aiomqtt.Client:
        config = self._config
        address = config.broker_address()
        will = aiomqtt.Will(
            self.topics.presence(config.printer_id),
            encode(Presence(printer_id=config.printer_id, online=False)),
            qos=1,
            retain=True,
        )
        # A fresh client per connection: nothing queued in an old one can be replayed (S9), and
        # a clean session means the broker keeps nothing for us while we are away.
        return aiomqtt.Client(
            address.host,
            address.port,
            username=address.username,
            password=address.password,
            # Derived, never the bare id: no printer id can take over the cloud's session (S10).
            identifier=printer_client_id(config.printer_id),
            clean_session=True,
            will=will,
            keepalive=config.keepalive_s,
            # Unbounded in aiomqtt, bounded by this module: see `_link_timeout`.
            timeout=math.inf,
            tls_params=aiomqtt.TLSParameters() if address.tls else None,
        )

    async def _session(self) -> None:
        printer_id = self._config.printer_id
        connected = False
        try:
            async with self._connection() as client:
                connected = True
                self._stats.connects += 1
                async with _link_timeout():
                    await client.subscribe(
                        self.topics.commands(printer_id), qos=1, timeout=math.inf
                    )
                await self._announce(client)
                self._client = client
                self.ready.set()
                log.info("printer %s connected", printer_id)
                try:
                    await self._serve(client)
                except asyncio.CancelledError:
                    # A clean shutdown: say so, since the broker sends the Will only on a drop.
                    await self._say_offline(client)
                    raise
        except aiomqtt.MqttError as error:
            if connected:
                log.warning("printer %s lost its broker: %s", printer_id, error)
                raise _SessionEnded from error
            raise
        finally:
            self._client = None
            self.ready.clear()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Take commands and publish events until either side of the link fails.

        Plain tasks awaited here rather than a task group: on Python 3.11 a task group whose
        child fails after its body has finished leaves its parent task marked as cancelling,
        which would poison every later timeout in the link loop.
        """
        name = self._config.printer_id
        receiver = asyncio.create_task(self._receive_commands(client), name=f"{name}:commands")
        publisher = asyncio.create_task(self._publish_events(client), name=f"{name}:events")
        try:
            done, _ = await asyncio.wait({receiver, publisher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiver.cancel()
            publisher.cancel()
            await asyncio.wait({receiver, publisher})
        for task in done:
            task.result()  # the MqttError that ended the session (or a bug)
        msg = "the session ended without an error"
        raise aiomqtt.MqttError(msg)

    async def _receive_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.retain:
                # The cloud never retains a command; one delivered as retained was left on the
                # topic and could be any age. The gate would likely refuse it, but it is not even
                # worth judging: judging would consume its id.
                self._stats.retained_dropped += 1
                log.warning(
                    "printer %s dropped a retained message on its commands topic",
                    self._config.printer_id,
                )
                continue
            await self._on_command(_payload_bytes(message.payload))

    async def _publish_events(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in order; an event leaves it only once the broker acknowledged it."""
        topic = self.topics.events(self._config.printer_id)

        async def acknowledged(event: Event) -> None:
            # Raises MqttError if the link fails, which ends the session.
            await _publish(client, topic, encode(event), qos=1)

        await self._outbox.drain(acknowledged)

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await self._publish_presence(client, online=False, within=2.0)

    async def _announce(self, client: aiomqtt.Client) -> None:
        """After every (re)connect: presence, then what the printer queues on connecting."""
        await self._publish_presence(client, online=True)
        self._on_connected()

    async def _publish_presence(
        self, client: aiomqtt.Client, *, online: bool, within: float = PUBLISH_TIMEOUT_S
    ) -> None:
        presence = Presence(
            printer_id=self._config.printer_id, online=online, model=self._hardware.model
        )
        await _publish(
            client,
            self.topics.presence(self._config.printer_id),
            encode(presence),
            qos=1,
            retain=True,
            within=within,
        )


# aiomqtt bounds its waits with `asyncio.wait_for`, which on Python 3.11 can swallow a
# cancellation that arrives just as the broker answers: the task then runs on, told to stop,
# and whoever waits for it (a shutting-down agent) waits for ever. So the client's own timeout
# is off, and every wait on the broker is bounded here by `asyncio.timeout` instead.


@contextlib.asynccontextmanager
async def _link_timeout(seconds: float = PUBLISH_TIMEOUT_S) -> AsyncIterator[None]:
    """Bound a broker round trip; running out of time is a link failure (MqttError)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        msg = f"no answer from the broker within {seconds:g} s"
        raise aiomqtt.MqttError(msg) from None


async def _publish(
    client: aiomqtt.Client,
    topic: str,
    payload: bytes,
    *,
    qos: int,
    retain: bool = False,
    within: float = PUBLISH_TIMEOUT_S,
) -> None:
    """Publish, bounded by ``within`` seconds (see `_link_timeout`)."""
    async with _link_timeout(within):
        await client.publish(topic, payload, qos=qos, retain=retain, timeout=math.inf)


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b""
