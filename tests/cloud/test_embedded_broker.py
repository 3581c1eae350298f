"""The embedded broker carries printfleet's traffic: QoS 1 both ways, and retained presence."""

import asyncio
import logging

import aiomqtt
import pytest

from printfleet.cloud.embedded_broker import embedded_broker
from printfleet.protocol.topics import Topics

TOPICS = Topics()


@pytest.mark.asyncio
async def test_commands_and_retained_presence_flow_through_it() -> None:
    async with embedded_broker() as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="p1") as printer:
            await printer.publish(TOPICS.presence("p1"), b"online", qos=1, retain=True)
            await printer.subscribe(TOPICS.commands("p1"), qos=1)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="cloud") as cloud:
                await cloud.subscribe(TOPICS.all_printers("presence"), qos=1)
                await cloud.publish(TOPICS.commands("p1"), b"start", qos=1)
                async with asyncio.timeout(10):
                    async for message in printer.messages:
                        assert message.payload == b"start"
                        break
                    async for message in cloud.messages:
                        assert message.payload == b"online"
                        assert message.retain
                        break


async def _subscribe_one_by_one(port: int, name: str, filters: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=name, timeout=10) as client:
        for k in range(filters):
            await client.subscribe(f"{name}/{k}", qos=1)


async def _connect_and_read_presence(port: int, name: str) -> bytes:
    async with aiomqtt.Client("127.0.0.1", port, identifier=name, timeout=10) as client:
        await client.subscribe(TOPICS.all_printers("presence"), qos=1)
        async for message in client.messages:
            return bytes(message.payload)
    raise AssertionError(name)


@pytest.mark.asyncio
async def test_a_fleet_connecting_while_others_subscribe_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every connection walks the broker's subscriptions while it sends retained messages; other
    # clients subscribing in the meantime must not break that walk (and drop the connection).
    async with (
        embedded_broker() as broker,
        aiomqtt.Client("127.0.0.1", broker.port, identifier="fleet") as fleet,
    ):
        for k in range(150):
            await fleet.publish(TOPICS.presence(f"p{k}"), b"online", qos=1, retain=True)
        await fleet.subscribe(TOPICS.all_printers("presence"), qos=1)
        subscribing = [
            asyncio.create_task(_subscribe_one_by_one(broker.port, f"s{i}", filters=40))
            for i in range(8)
        ]
        connecting: list[asyncio.Task[bytes]] = []
        for i in range(30):
            connecting.append(asyncio.create_task(_connect_and_read_presence(broker.port, f"c{i}")))
            await asyncio.sleep(0.005)  # a fleet arriving, not one burst
        async with asyncio.timeout(60):
            await asyncio.gather(*subscribing)
            assert await asyncio.gather(*connecting) == [b"online"] * 30
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
