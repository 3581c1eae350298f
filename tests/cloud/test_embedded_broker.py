"""The embedded broker carries printfleet's traffic: QoS 1 both ways, and retained presence."""

import asyncio

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
