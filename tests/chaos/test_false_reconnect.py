"""The 2023 adapter, reproduced by the proxy's ``lie`` mode against a real Mosquitto.

A client reconnecting through it is told it is connected and its publishes acknowledged, while
nothing reaches the broker; when the link returns the pile arrives in one burst. The cloud's link
supervisor, which believes only probes that come back through the broker, never calls such a
link verified (S8) and so never publishes into it (S9).
"""

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import aiomqtt
import pytest

from printfleet.broker_address import BrokerAddress
from printfleet.chaos.proxy import FaultProxy, ProxyMode
from printfleet.chaos.unsafe import CredulousLink
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.testing import MosquittoBroker

pytestmark = pytest.mark.mosquitto


async def _receive(client: aiomqtt.Client, into: list[bytes], arrived: asyncio.Condition) -> None:
    async for message in client.messages:
        async with arrived:
            into.append(bytes(message.payload) if isinstance(message.payload, bytes) else b"")
            arrived.notify_all()


async def _until(predicate: Callable[[], bool], within: float) -> None:
    """Poll state that lives inside the link supervisor and the proxy."""
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError


@pytest.mark.asyncio
async def test_a_lying_link_acknowledges_everything_then_bursts(mosquitto: MosquittoBroker) -> None:
    topic = f"chaos/{uuid.uuid4().hex}"
    received: list[bytes] = []
    arrived = asyncio.Condition()
    async with (
        FaultProxy(mosquitto.host, mosquitto.port) as proxy,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher,
    ):
        await watcher.subscribe(topic, qos=1)
        listening = asyncio.create_task(_receive(watcher, received, arrived))
        proxy.set_mode(ProxyMode.LIE)
        async with aiomqtt.Client("127.0.0.1", proxy.port, clean_session=True) as liar:
            await liar.subscribe("anything/#", qos=1)
            for number in range(3):
                # Acknowledged (the library would call this a success) ...
                await liar.publish(topic, f"start {number}".encode(), qos=1, timeout=2)
            # ... while the broker has seen none of it: a round trip through it proves so.
            await watcher.publish(topic, b"probe", qos=1)
            async with asyncio.timeout(5), arrived:
                await arrived.wait_for(lambda: b"probe" in received)
            assert received == [b"probe"]
            assert proxy.fake_sessions == 1
            proxy.set_mode(ProxyMode.FORWARD)
            async with asyncio.timeout(5), arrived:
                await arrived.wait_for(lambda: len(received) == 1 + 3)
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
    assert received == [b"probe", b"start 0", b"start 1", b"start 2"]
    assert proxy.replayed_bytes > 0


@pytest.mark.asyncio
async def test_the_link_supervisor_never_trusts_a_lying_link(mosquitto: MosquittoBroker) -> None:
    async with FaultProxy(mosquitto.host, mosquitto.port) as proxy:
        link = CredulousLink(
            BrokerAddress.parse(f"mqtt://127.0.0.1:{proxy.port}"),
            on_message=lambda topic, payload: None,
            probe_interval_s=0.5,
        )
        task = asyncio.create_task(link.run())
        try:
            async with asyncio.timeout(10):
                await link.wait_verified()
            proxy.set_mode(ProxyMode.LIE)
            await _until(lambda: proxy.fake_sessions > 0 and link.state().connected, within=10)
            # Connected, by the library's account, and every probe acknowledged ...
            acked = proxy.fake_acks
            await _until(lambda: proxy.fake_acks >= acked + 3, within=10)
            assert link.state().connected
            assert not link.verified()
            outcome = await link.publish(link.topics.commands("x1-0"), b"{}")
            assert outcome is PublishOutcome.NOT_SENT
            # ... and a cloud without S8 (the chaos harness's credulous link) takes its word.
            link.believing = True
            assert await link.publish(link.topics.commands("x1-0"), b"{}") is PublishOutcome.SENT
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
