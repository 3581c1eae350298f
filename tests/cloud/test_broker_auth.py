"""Broker security against a real Mosquitto: a printer reaches only its own topics."""

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from printfleet.cloud.broker_auth import (
    CLOUD_USER,
    BrokerAccount,
    hash_password,
    new_secret,
    verify_password,
    write_mosquitto_files,
)
from printfleet.protocol.topics import Topics
from printfleet.testing import MosquittoBroker

TOPICS = Topics()
SECRETS = {"cloud": new_secret(), "p-a": new_secret(), "p-b": new_secret(), "p-c": new_secret()}


def accounts(*printers: str) -> list[BrokerAccount]:
    return [
        BrokerAccount(CLOUD_USER, hash_password(SECRETS["cloud"])),
        *(BrokerAccount(p, hash_password(SECRETS[p])) for p in printers),
    ]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[MosquittoBroker]:
    passwords, acl = write_mosquitto_files(tmp_path / "auth", accounts("p-a", "p-b"))
    broker = MosquittoBroker(allow_anonymous=False, password_file=passwords, acl_file=acl)
    with broker:
        yield broker


def client(broker: MosquittoBroker, user: str, password: str | None = None) -> aiomqtt.Client:
    key = "cloud" if user == CLOUD_USER else user
    return aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=user,
        password=password if password is not None else SECRETS[key],
        identifier=f"test-{user}",
        clean_session=True,
    )


async def collect(client: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        into.append((message.topic.value, message.payload))


async def wait_for(received: list[tuple[str, bytes]], item: tuple[str, bytes]) -> None:
    async with asyncio.timeout(10):
        while item not in received:  # noqa: ASYNC110 - messages land in a plain list
            await asyncio.sleep(0.02)


def test_password_hashes_use_mosquittos_format() -> None:
    hashed = hash_password("secret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$")
    assert verify_password("secret", hashed)
    assert not verify_password("Secret", hashed)
    assert not verify_password("secret", "$6$x$y")


def test_a_username_that_would_break_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid broker username"):
        write_mosquitto_files(tmp_path, [BrokerAccount("a:b", hash_password("x"))])


@pytest.mark.asyncio
async def test_wrong_or_missing_credentials_are_refused(secured: MosquittoBroker) -> None:
    with pytest.raises(aiomqtt.MqttCodeError):
        async with client(secured, "p-a", password="wrong"):
            pass
    with pytest.raises(aiomqtt.MqttCodeError):
        async with aiomqtt.Client("127.0.0.1", secured.port):
            pass


@pytest.mark.asyncio
async def test_a_printer_cannot_read_another_printers_commands(secured: MosquittoBroker) -> None:
    received: list[tuple[str, bytes]] = []
    async with client(secured, "p-a") as printer_a, client(secured, CLOUD_USER) as cloud:
        await printer_a.subscribe(TOPICS.commands("p-b"), qos=1)  # someone else's
        await printer_a.subscribe(TOPICS.commands("p-a"), qos=1)  # its own
        reader = asyncio.create_task(collect(printer_a, received))
        try:
            await cloud.publish(TOPICS.commands("p-b"), b"for b only", qos=1)
            await cloud.publish(TOPICS.commands("p-a"), b"for a", qos=1)
            # Per-connection order: once "for a" is in, "for b only" would have been too.
            await wait_for(received, (TOPICS.commands("p-a"), b"for a"))
            assert (TOPICS.commands("p-b"), b"for b only") not in received
        finally:
            reader.cancel()


@pytest.mark.asyncio
async def test_a_printer_cannot_publish_as_another(secured: MosquittoBroker) -> None:
    received: list[tuple[str, bytes]] = []
    async with client(secured, CLOUD_USER) as cloud, client(secured, "p-a") as printer_a:
        await cloud.subscribe(TOPICS.all_printers("events"), qos=1)
        await cloud.subscribe(TOPICS.commands("p-b"), qos=1)
        reader = asyncio.create_task(collect(cloud, received))
        try:
            await printer_a.publish(TOPICS.events("p-b"), b"forged event", qos=1)
            await printer_a.publish(TOPICS.commands("p-b"), b"forged command", qos=1)
            await printer_a.publish(TOPICS.events("p-a"), b"honest event", qos=1)
            await wait_for(received, (TOPICS.events("p-a"), b"honest event"))
            assert (TOPICS.events("p-b"), b"forged event") not in received
            assert (TOPICS.commands("p-b"), b"forged command") not in received
        finally:
            reader.cancel()


@pytest.mark.asyncio
async def test_a_new_printer_can_log_in_after_a_reload(
    secured: MosquittoBroker, tmp_path: Path
) -> None:
    with pytest.raises(aiomqtt.MqttCodeError):
        async with client(secured, "p-c"):
            pass
    write_mosquitto_files(tmp_path / "auth", accounts("p-a", "p-b", "p-c"))
    assert secured.pid is not None
    os.kill(secured.pid, signal.SIGHUP)
    async with asyncio.timeout(10):
        while True:
            try:
                async with client(secured, "p-c"):
                    break
            except aiomqtt.MqttCodeError:
                await asyncio.sleep(0.05)  # the broker reloads its files asynchronously
