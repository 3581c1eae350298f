"""S8 and S9 against a real Mosquitto: evidence from round trips, and publishes that never linger.

The last test shows the failure printfleet is built against, with the same broker and the same
kind of fault: a plain MQTT client keeps a QoS 1 publish made on a half-open link and delivers it
after it reconnects. The link supervisor, under the same fault, delivers nothing late.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.agent.peer import running_agent

from printfleet.agent.config import AgentConfig
from printfleet.broker_address import BrokerAddress
from printfleet.chaos.proxy import FaultProxy, ProxyMode
from printfleet.chaos.unsafe import CredulousLink
from printfleet.cloud.dispatch.link import LinkSupervisor, PublishOutcome
from printfleet.protocol.topics import Topics
from printfleet.sim import SimulatedPrinter
from printfleet.testing import MosquittoBroker

PROBE_S = 0.5
TOPIC = Topics().commands("p1")


class Printer:
    """A subscriber standing where a printer would, recording what reaches it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._arrived = asyncio.Condition()

    async def run(self, port: int, ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", port, clean_session=True) as client:
            await client.subscribe(TOPIC, qos=1)
            ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                async with self._arrived:
                    self.received.append(message.payload)
                    self._arrived.notify_all()

    async def wait_for(self, payload: bytes, within: float = 10) -> None:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: payload in self.received)


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, object]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


@contextlib.asynccontextmanager
async def printer_on(port: int) -> AsyncIterator[Printer]:
    printer = Printer()
    ready = asyncio.Event()
    async with running(printer.run(port, ready)):
        async with asyncio.timeout(10):
            await ready.wait()
        yield printer


def supervisor(port: int, kind: type[LinkSupervisor] = LinkSupervisor) -> LinkSupervisor:
    address = BrokerAddress(host="127.0.0.1", port=port, tls=False)
    return kind(
        address, on_message=lambda topic, payload: None, probe_interval_s=PROBE_S,
        publish_timeout_s=1.0,
    )  # fmt: skip


async def wait_until(predicate: Callable[[], bool], within: float) -> float:
    """Poll a cheap predicate; returns the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        # Evidence ages with time alone: no event marks the moment it expires.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest.mark.asyncio
async def test_a_round_trip_verifies_the_link_and_a_publish_is_sent(
    mosquitto: MosquittoBroker,
) -> None:
    link = supervisor(mosquitto.port)
    async with printer_on(mosquitto.port) as printer, running(link.run()):
        async with asyncio.timeout(10):
            await link.wait_verified()
        state = link.state()
        assert state.verified
        assert state.evidence_age_s is not None
        assert state.evidence_age_s <= PROBE_S
        assert await link.publish(TOPIC, b"hello") is PublishOutcome.SENT
        await printer.wait_for(b"hello")


@pytest.mark.asyncio
async def test_without_evidence_nothing_is_sent(fresh_mosquitto: MosquittoBroker) -> None:
    link = supervisor(fresh_mosquitto.port)
    assert await link.publish(TOPIC, b"too early") is PublishOutcome.NOT_SENT
    async with printer_on(fresh_mosquitto.port) as printer, running(link.run()):
        async with asyncio.timeout(10):
            await link.wait_verified()
        fresh_mosquitto.freeze()
        try:
            # The evidence ages out within one probe interval (plus scheduling slack).
            took = await wait_until(lambda: not link.verified(), within=PROBE_S * 4)
            assert took <= PROBE_S + 0.5
            assert await link.publish(TOPIC, b"while frozen") is PublishOutcome.NOT_SENT
        finally:
            fresh_mosquitto.thaw()
        async with asyncio.timeout(15):
            await link.wait_verified()
        assert await link.publish(TOPIC, b"after") is PublishOutcome.SENT
        await printer.wait_for(b"after")
        assert b"while frozen" not in printer.received


@pytest.mark.asyncio
async def test_a_killed_broker_is_noticed_and_the_link_comes_back(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    link = supervisor(fresh_mosquitto.port)
    async with running(link.run()):
        async with asyncio.timeout(10):
            await link.wait_verified()
        fresh_mosquitto.kill()
        await wait_until(lambda: not link.verified(), within=PROBE_S * 4)
        assert await link.publish(TOPIC, b"x") is PublishOutcome.NOT_SENT
        fresh_mosquitto.restart()
        async with asyncio.timeout(20):
            await link.wait_verified()
        assert link.state().connects >= 2


@pytest.mark.asyncio
async def test_a_plain_client_replays_a_late_publish_and_the_supervisor_does_not(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    async with (
        printer_on(fresh_mosquitto.port) as printer,
        FaultProxy("127.0.0.1", fresh_mosquitto.port) as naive_path,
        FaultProxy("127.0.0.1", fresh_mosquitto.port) as our_path,
    ):
        # A plain paho client, as many clouds use it: QoS 1, automatic reconnects.
        naive = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="naive-cloud")
        naive.reconnect_delay_set(min_delay=1, max_delay=1)
        naive.connect("127.0.0.1", naive_path.port, keepalive=2)
        naive.loop_start()
        # Our supervisor, in the chaos harness's credulous variant: it can be made to take the
        # client library's word that it is connected, as the 2023 cloud did.
        link = supervisor(our_path.port, CredulousLink)
        assert isinstance(link, CredulousLink)
        try:
            async with running(link.run()):
                async with asyncio.timeout(10):
                    await link.wait_verified()
                    # paho reports its connection from its own thread: poll it.
                    while not naive.is_connected():  # noqa: ASYNC110
                        await asyncio.sleep(0.05)

                # Both links go half-open: connections stay up, nothing gets through.
                naive_path.set_mode(ProxyMode.BLACKHOLE)
                our_path.set_mode(ProxyMode.BLACKHOLE)
                info = naive.publish(TOPIC, b"naive start", qos=1)
                assert not info.is_published()
                # The 2023 lie: the link claims to be up. Bytes leave; no acknowledgement comes.
                link.believing = True
                outcome = await link.publish(TOPIC, b"our lied start")
                assert outcome is PublishOutcome.UNKNOWN
                link.believing = False
                # Without the lie, the evidence ages out and nothing more leaves at all.
                await wait_until(lambda: not link.verified(), within=PROBE_S * 4)
                assert await link.publish(TOPIC, b"our start") is PublishOutcome.NOT_SENT

                await asyncio.sleep(3)  # let the plain client's keep-alive lapse while cut off
                naive_path.set_mode(ProxyMode.FORWARD)
                our_path.set_mode(ProxyMode.FORWARD)

                # The plain client reconnects and delivers its old publish, seconds late.
                await printer.wait_for(b"naive start", within=20)
                async with asyncio.timeout(15):
                    await link.wait_verified()
                assert await link.publish(TOPIC, b"marker") is PublishOutcome.SENT
                await printer.wait_for(b"marker")
                assert b"our start" not in printer.received
                assert b"our lied start" not in printer.received
        finally:
            naive.loop_stop()
            naive.disconnect()


@pytest.mark.asyncio
async def test_a_printer_cannot_take_over_the_clouds_session(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    # Before S10 the agent of printer "cloud-{instance}" connected as "printfleet-cloud-
    # {instance}", the cloud's own client id: the broker let each connection push the other off.
    instance = uuid.uuid4().hex[:12]
    link = LinkSupervisor(
        BrokerAddress.parse(mosquitto.url),
        on_message=lambda topic, payload: None,
        instance=instance,
        probe_interval_s=PROBE_S,
    )
    config = AgentConfig(
        printer_id=f"cloud-{instance}", broker=mosquitto.url, data_dir=tmp_path / "agent"
    )
    async with running(link.run()):
        async with asyncio.timeout(10):
            await link.wait_verified()
        async with (
            SimulatedPrinter("p1", storage_dir=tmp_path / "sd") as hardware,
            running_agent(config, hardware) as (agent, _),
        ):
            connected = time.monotonic()

            def probed_since_the_agent_connected() -> bool:
                age = link.evidence_age()
                return age is not None and age < time.monotonic() - connected

            await wait_until(probed_since_the_agent_connected, within=10)
            assert link.state().connects == 1
            assert agent.ready.is_set()
