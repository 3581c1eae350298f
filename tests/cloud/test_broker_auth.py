"""Broker security against a real Mosquitto: a printer reaches only its own topics, no printer
account can be written as, or beside, a service account, and with client ids bound to usernames
no login can push another off the broker (S10)."""

import asyncio
import os
import re
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from tests.cloud.test_api import (
    _running,
    _wait_for_login,
    bearer,
    eventually,
    serving,
    settings_for,
    sign_up,
    unique,
)

from printfleet.agent.config import AgentConfig
from printfleet.agent.runtime import PrinterAgent
from printfleet.cloud.app import Settings
from printfleet.cloud.broker_auth import (
    CLOUD_USER,
    FILE_MODE,
    AccountRefused,
    BrokerAccount,
    PrinterAccount,
    cloud_replica,
    hash_password,
    new_secret,
    screen_accounts,
    verify_password,
    write_mosquitto_files,
)
from printfleet.protocol.identities import printer_username
from printfleet.protocol.topics import Topics
from printfleet.sim.printer import SimulatedPrinter
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


# ---------------------------------------------------------------------------------------------
# Client ids bound to usernames (issue 12): with Mosquitto's use_username_as_clientid, as the
# README configures it, no login can take another's session, and each cloud replica logs in
# with an account of its own.


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker on the cloud-written files, client ids bound to usernames; replica ``b``."""
    passwords, acl = write_mosquitto_files(
        tmp_path / "auth", CLOUD, [account("p-a"), account("p-b")], cloud_replicas=["b"]
    )
    broker = MosquittoBroker(
        allow_anonymous=False, password_file=passwords, acl_file=acl, username_as_client_id=True
    )
    with broker:
        yield broker


def login(broker: MosquittoBroker, username: str, password: str, identifier: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=username,
        password=password,
        identifier=identifier,
        clean_session=True,
    )


async def answers(client: aiomqtt.Client, topic: str) -> None:
    """The broker acknowledges a QoS 1 publish: the session is alive, not taken over."""
    await client.publish(topic, b"still here", qos=1, timeout=5)


async def pushed_off(client: aiomqtt.Client) -> None:
    """Until the broker drops ``client``'s session."""

    async def drain() -> None:
        async for _ in client.messages:
            pass

    with pytest.raises(aiomqtt.MqttError):
        await asyncio.wait_for(drain(), 10)


@pytest.mark.asyncio
async def test_no_login_can_push_another_off_when_client_ids_are_bound(
    bound: MosquittoBroker,
) -> None:
    printer_b = (printer_username("p-b"), SECRETS["p-b"])
    async with (
        login(bound, printer_username("p-a"), SECRETS["p-a"], "printer.p-a") as printer_a,
        login(bound, CLOUD_USER, SECRETS["cloud"], "printfleet-cloud.x") as cloud,
    ):
        # Printer b's credentials, asking for printer a's client id and then the cloud's.
        for taken in ("printer.p-a", "printfleet-cloud", "printfleet-cloud.x"):
            async with login(bound, *printer_b, taken) as impostor:
                await answers(impostor, TOPICS.presence("p-b"))
                await answers(printer_a, TOPICS.presence("p-a"))
                await answers(cloud, TOPICS.presence("p-a"))
    # The broker gave each login its username as client id, whatever it asked for.
    log = bound.log_path.read_text()
    assert re.search(r"New client connected from \S+ as printer\.p-b \(", log)
    assert not re.search(r"as printer\.p-a \(.*u'printer\.p-b'", log)
    assert "Client printer.p-a already connected, closing old connection" not in log


@pytest.mark.asyncio
async def test_without_bound_client_ids_a_login_pushes_another_off(
    secured: MosquittoBroker,
) -> None:
    # What the option prevents (a broker configured before issue 12): printer b's credentials
    # take printer a's session, and printer a's owner is told it went offline.
    async with (
        login(secured, printer_username("p-a"), SECRETS["p-a"], "printer.p-a") as victim,
        login(secured, printer_username("p-b"), SECRETS["p-b"], "printer.p-a"),
    ):
        await pushed_off(victim)


@pytest.mark.asyncio
async def test_each_cloud_replica_logs_in_as_itself_and_keeps_its_session(
    bound: MosquittoBroker, tmp_path: Path
) -> None:
    users = [line.split(":")[0] for line in (tmp_path / "auth" / "passwords").read_text().split()]
    assert users == [CLOUD_USER, "printfleet-cloud.b", "printer.p-a", "printer.p-b"]
    acl = (tmp_path / "auth" / "acl").read_text()
    assert f"user printfleet-cloud.b\ntopic readwrite {TOPICS.prefix}/#" in acl
    received: list[tuple[str, bytes]] = []
    async with (
        login(bound, CLOUD_USER, SECRETS["cloud"], "printfleet-cloud.a") as first,
        login(bound, "printfleet-cloud.b", SECRETS["cloud"], "printfleet-cloud.b") as second,
        login(bound, printer_username("p-a"), SECRETS["p-a"], "printer.p-a") as printer_a,
    ):
        await second.subscribe(TOPICS.all_printers("events"), qos=1)
        reader = asyncio.create_task(collect(second, received))
        try:
            await answers(first, TOPICS.commands("p-a"))
            await printer_a.publish(TOPICS.events("p-a"), b"to every replica", qos=1)
            await wait_for(received, (TOPICS.events("p-a"), b"to every replica"))
            await answers(first, TOPICS.commands("p-a"))
        finally:
            reader.cancel()
    # A replica's name is the cloud's, never a printer's.
    _, refused = screen_accounts(CLOUD, [PrinterAccount("p-x", "printfleet-cloud.b", "$7$x")])
    assert [r.reason for r in refused] == [
        "broker username 'printfleet-cloud.b' is reserved for the service"
    ]
    with pytest.raises(AccountRefused, match="cloud replica name"):
        write_mosquitto_files(tmp_path / "other", CLOUD, cloud_replicas=["B b"])


def test_the_written_files_are_readable_by_the_brokers_group_only(tmp_path: Path) -> None:
    passwords, acl = write(tmp_path / "auth", account("p-a"))
    for path in (passwords, acl):
        assert path.stat().st_mode & 0o777 == FILE_MODE == 0o640
    assert not [p.name for p in (tmp_path / "auth").iterdir() if p.name.startswith(".")]


def test_replica_names_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRINTFLEET_MOSQUITTO_CLOUD_REPLICAS", "eu-1, eu-2,")
    settings = Settings.from_env()
    assert settings.mosquitto_cloud_replicas == ("eu-1", "eu-2")
    monkeypatch.setenv("PRINTFLEET_MOSQUITTO_CLOUD_REPLICAS", "EU 1")
    with pytest.raises(ValueError, match="cloud replica name"):
        Settings.from_env()
    assert cloud_replica("printfleet-cloud.eu-1") == "eu-1"
    assert cloud_replica(CLOUD_USER) == ""
    assert cloud_replica("printer.p-a") is None


@pytest.mark.asyncio
async def test_two_clouds_and_an_agent_stay_on_a_broker_that_binds_client_ids(
    tmp_path: Path,
) -> None:
    # The first cloud keeps the broker's files, with an account for replica "b"; the second
    # logs in as that replica. Both links, and the printer's agent, keep their first session.
    secret = new_secret()
    auth = tmp_path / "auth"
    passwords, acl = write_mosquitto_files(auth, BrokerAccount(CLOUD_USER, hash_password(secret)))
    with MosquittoBroker(
        allow_anonymous=False, password_file=passwords, acl_file=acl, username_as_client_id=True
    ) as broker:
        assert broker.pid is not None
        pid_file = tmp_path / "mosquitto.pid"
        pid_file.write_text(f"{broker.pid}\n")
        first = settings_for(
            tmp_path / "a",
            f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}",
            f"mqtt://{CLOUD_USER}:{secret}@127.0.0.1:{broker.port}",
            mosquitto_auth_dir=auth,
            mosquitto_pid_file=pid_file,
            mosquitto_cloud_replicas=("b",),
        )
        second = settings_for(
            tmp_path / "b",
            f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}",
            f"mqtt://printfleet-cloud.b:{secret}@127.0.0.1:{broker.port}",
        )
        async with serving(first) as cloud_a, serving(second) as cloud_b:
            await cloud_a.link_verified()
            await cloud_b.link_verified()
            token = await sign_up(cloud_a.client, "ada@example.org")
            printer_id = unique("p1")
            provisioned = await cloud_a.client.post(
                "/api/v1/printers",
                headers=bearer(token),
                json={"id": printer_id, "name": "P", "model": "p1"},
            )
            assert provisioned.status_code == 201, provisioned.text
            config = AgentConfig.model_validate(
                {
                    **tomllib.loads(provisioned.json()["agent_config"]),
                    "data_dir": tmp_path / "agent",
                    "telemetry_period_s": 0.2,
                }
            )
            await _wait_for_login(broker, config)
            async with (
                SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=20) as hardware,
                _running(PrinterAgent(config, hardware).run()),
            ):

                async def online() -> bool | None:
                    answer = await cloud_a.client.get(
                        f"/api/v1/printers/{printer_id}", headers=bearer(token)
                    )
                    return answer.json()["online"] or None

                await eventually(online)
                await cloud_a.link_verified()
                await cloud_b.link_verified()
            for cloud in (cloud_a, cloud_b):
                assert cloud.context.core is not None
                assert cloud.context.core.link.state().connects == 1
        log = broker.log_path.read_text()
    assert re.search(r"as printfleet-cloud \(", log)
    assert re.search(r"as printfleet-cloud\.b \(", log)
    assert re.search(rf"as printer\.{printer_id} \(", log)
    assert "already connected, closing old connection" not in log
