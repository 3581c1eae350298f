"""Broker security against a real Mosquitto: a printer reaches only its own topics, and no printer
account can be written as, or beside, a service account (S10)."""

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from printfleet.cloud.broker_auth import (
    CLOUD_USER,
    AccountRefused,
    BrokerAccount,
    PrinterAccount,
    hash_password,
    new_secret,
    screen_accounts,
    verify_password,
    write_mosquitto_files,
)
from printfleet.protocol.identities import printer_username
from printfleet.protocol.topics import Topics
from printfleet.testing import MosquittoBroker

TOPICS = Topics()
SECRETS = {"cloud": new_secret(), "p-a": new_secret(), "p-b": new_secret(), "p-c": new_secret()}
CLOUD = BrokerAccount(CLOUD_USER, hash_password(SECRETS["cloud"]))


def account(printer_id: str, username: str | None = None) -> PrinterAccount:
    """A printer's account, with the derived username unless told another (an old row's)."""
    return PrinterAccount(
        printer_id, username or printer_username(printer_id), hash_password(SECRETS[printer_id])
    )


def write(directory: Path, *printers: PrinterAccount) -> tuple[Path, Path]:
    return write_mosquitto_files(directory, CLOUD, printers)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[MosquittoBroker]:
    passwords, acl = write(tmp_path / "auth", account("p-a"), account("p-b"))
    broker = MosquittoBroker(allow_anonymous=False, password_file=passwords, acl_file=acl)
    with broker:
        yield broker


def client(broker: MosquittoBroker, who: str, password: str | None = None) -> aiomqtt.Client:
    """Logged in as the cloud (``who`` = CLOUD_USER) or as printer ``who``'s derived user."""
    user, key = (CLOUD_USER, "cloud") if who == CLOUD_USER else (printer_username(who), who)
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


def test_an_account_that_would_break_the_files_is_refused(tmp_path: Path) -> None:
    for bad in (
        PrinterAccount("p-a", "a:b", hash_password("x")),
        PrinterAccount("p-a", "a b", hash_password("x")),
        PrinterAccount("p-a", "p-a", "$7$x\nprintfleet-cloud:$7$y"),
        PrinterAccount("#", "wildcard", hash_password("x")),
    ):
        with pytest.raises(AccountRefused):
            write(tmp_path, bad)
    assert not (tmp_path / "passwords").exists()


def test_an_account_that_collides_with_the_service_or_another_is_set_aside() -> None:
    # Rows from before usernames were derived hold whatever the id was, the service's included.
    kept, refused = screen_accounts(
        CLOUD,
        [
            account("p-a"),
            PrinterAccount("printfleet-cloud", CLOUD_USER, hash_password("stolen")),
            PrinterAccount("root", "root", hash_password("x")),
            PrinterAccount("p-b", printer_username("p-a"), hash_password("x")),
            account("p-c", username="p-c"),  # an old row's bare id: still its own
        ],
    )
    assert [(a.printer_id, a.username) for a in kept] == [("p-a", "printer.p-a"), ("p-c", "p-c")]
    assert [(r.account.printer_id, r.reason) for r in refused] == [
        ("printfleet-cloud", "broker username 'printfleet-cloud' is already taken by the cloud"),
        ("root", "broker username 'root' is reserved for the service"),
        ("p-b", "broker username 'printer.p-a' is already taken by printer 'p-a'"),
    ]


def test_the_writer_refuses_a_second_cloud_line(tmp_path: Path) -> None:
    stolen = PrinterAccount("printfleet-cloud", CLOUD_USER, hash_password("the printer's"))
    with pytest.raises(AccountRefused, match="already taken by the cloud"):
        write(tmp_path, account("p-a"), stolen)
    with pytest.raises(AccountRefused, match="invalid broker account for the cloud"):
        write_mosquitto_files(tmp_path, BrokerAccount("root", hash_password("x")))
    assert not (tmp_path / "passwords").exists()
    passwords, acl = write(tmp_path, account("p-a"))
    lines = passwords.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [CLOUD_USER, "printer.p-a"]
    # Printers are named one by one: no pattern that would apply to every login.
    assert "pattern" not in acl.read_text()


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
    write(tmp_path / "auth", account("p-a"), account("p-b"), account("p-c"))
    assert secured.pid is not None
    os.kill(secured.pid, signal.SIGHUP)
    async with asyncio.timeout(10):
        while True:
            try:
                async with client(secured, "p-c"):
                    break
            except aiomqtt.MqttCodeError:
                await asyncio.sleep(0.05)  # the broker reloads its files asynchronously


@pytest.mark.asyncio
async def test_an_old_printer_keeps_its_stored_username_and_only_its_topics(
    tmp_path: Path,
) -> None:
    # Provisioned before usernames were derived: its stored username is its bare id.
    passwords, acl = write(tmp_path / "auth", account("p-a"), account("p-c", username="p-c"))
    received: list[tuple[str, bytes]] = []
    with MosquittoBroker(allow_anonymous=False, password_file=passwords, acl_file=acl) as broker:
        old = aiomqtt.Client(
            "127.0.0.1", broker.port, username="p-c", password=SECRETS["p-c"], identifier="old"
        )
        async with client(broker, CLOUD_USER) as cloud, old:
            await cloud.subscribe(TOPICS.all_printers("events"), qos=1)
            reader = asyncio.create_task(collect(cloud, received))
            try:
                await old.publish(TOPICS.events("p-a"), b"forged event", qos=1)
                await old.publish(TOPICS.events("p-c"), b"honest event", qos=1)
                await wait_for(received, (TOPICS.events("p-c"), b"honest event"))
                assert (TOPICS.events("p-a"), b"forged event") not in received
            finally:
                reader.cancel()
