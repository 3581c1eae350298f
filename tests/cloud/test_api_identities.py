"""S10 through a real cloud that keeps a real Mosquitto's password file and ACL: no printer id or
stored broker account becomes a service identity, and the cloud's own login survives every
provisioning attempt and reload.

Each test fails on a cloud that took the printer id as the broker username: `printfleet-cloud`
was provisioned (201), written as a second `printfleet-cloud` line that Mosquitto preferred on
reload, and the real cloud was disconnected and kept out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from tests.cloud.test_api import (
    Running,
    _wait_for_login,
    api_database_url,
    bearer,
    secured_broker,
    serving,
    settings_for,
    sign_up,
    unique,
)
from tests.cloud.test_broker_auth import collect, wait_for

from printfleet.agent.config import AgentConfig
from printfleet.broker_address import BrokerAddress
from printfleet.cloud.broker_auth import CLOUD_USER, hash_password, new_secret
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.mosquitto_auth import REFUSED_ALERT
from printfleet.cloud.store import Severity, open_store
from printfleet.protocol.identities import RESERVED_NAMES
from printfleet.protocol.topics import Topics
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url", "secured_broker"]  # fixtures, used by name

pytestmark = pytest.mark.asyncio

TOPICS = Topics()
SecuredBroker = tuple[MosquittoBroker, str, Path]


@contextlib.asynccontextmanager
async def keeping_the_broker(
    database_url: str, secured: SecuredBroker, tmp_path: Path
) -> AsyncIterator[Running]:
    """A cloud that writes the broker's files and reloads it, its link verified."""
    broker, secret, auth = secured
    assert broker.pid is not None
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.pid}\n")
    settings = settings_for(
        tmp_path,
        database_url,
        f"mqtt://{CLOUD_USER}:{secret}@127.0.0.1:{broker.port}",
        mosquitto_auth_dir=auth,
        mosquitto_pid_file=pid_file,
    )
    async with serving(settings) as cloud:
        await cloud.link_verified()
        yield cloud


async def provision(cloud: Running, token: str, printer_id: str) -> httpx.Response:
    return await cloud.client.post(
        "/api/v1/printers",
        headers=bearer(token),
        json={"id": printer_id, "name": "P", "model": "p1"},
    )


async def admitted(cloud: Running, broker: MosquittoBroker, body: dict[str, Any]) -> AgentConfig:
    """The agent config a provisioning returned, once the reloaded broker accepts its login."""
    config = AgentConfig.model_validate(tomllib.loads(body["agent_config"]))
    await _wait_for_login(broker, config)
    return config


def cloud_password(cloud: Running) -> str | None:
    assert cloud.settings.broker_url is not None
    return BrokerAddress.parse(cloud.settings.broker_url).password


def user_names(auth: Path) -> list[str]:
    return [line.split(":")[0] for line in (auth / "passwords").read_text().splitlines()]


async def assert_the_cloud_kept_its_login(cloud: Running, broker: MosquittoBroker) -> None:
    """Verified on its first connection (never pushed off), and its password still opens."""
    health = await cloud.client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["link"]["verified"] is True
    assert health.json()["link"]["connects"] == 1
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=CLOUD_USER,
        password=cloud_password(cloud),
        identifier=unique("cloud"),
    ):
        pass


async def test_no_printer_id_becomes_a_service_identity(
    api_database_url: str, secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    broker, _, auth = secured_broker
    async with keeping_the_broker(api_database_url, secured_broker, tmp_path) as cloud:
        ada = await sign_up(cloud.client, "ada@example.org")
        bob = await sign_up(cloud.client, "bob@example.org")
        for name in [CLOUD_USER, "printfleet", "printfleet-x", *sorted(RESERVED_NAMES)]:
            refused = await provision(cloud, ada, name)
            assert refused.status_code == 422, name
            assert refused.json()["error"] == "invalid_request"
            assert "reserved for the service" in refused.json()["message"]
        # '.' would reach the derived namespace, '$' the broker's own ($SYS).
        for name in ["printer.x", "$sys", "Admin", "a/b", "x" * 64]:
            refused = await provision(cloud, ada, name)
            assert refused.status_code == 422, name
            assert refused.json()["error"] == "invalid_request"

        # "cloud-..." once gave its agent the client id of a cloud instance.
        mine, theirs = unique("p1"), unique("cloud")
        created = await provision(cloud, ada, mine)
        assert created.status_code == 201, created.text
        assert created.json()["broker_username"] == f"printer.{mine}"
        other = await provision(cloud, bob, theirs)
        assert other.status_code == 201, other.text
        taken = await provision(cloud, bob, mine)
        assert taken.status_code == 409
        assert taken.json() == {
            "error": "already_exists",
            "message": f"a printer with id {mine!r} exists; choose another id",
        }

        config = await admitted(cloud, broker, created.json())
        assert config.username == f"printer.{mine}"
        await admitted(cloud, broker, other.json())
        # Both provisionings were written and reloaded: the cloud's line is still the only one.
        names = user_names(auth)
        assert names[0] == CLOUD_USER
        assert sorted(names[1:]) == sorted([f"printer.{mine}", f"printer.{theirs}"])
        await assert_the_cloud_kept_its_login(cloud, broker)
        await assert_reaches_only_its_own_topics(cloud, broker, config, theirs)


async def assert_reaches_only_its_own_topics(
    cloud: Running, broker: MosquittoBroker, config: AgentConfig, other_id: str
) -> None:
    """With the derived login: no read of another's commands, no write as another."""
    mine = config.printer_id
    spied: list[tuple[str, bytes]] = []
    heard: list[tuple[str, bytes]] = []
    printer = aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=config.username,
        password=config.password,
        identifier=unique("printer"),
    )
    spy = aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=CLOUD_USER,
        password=cloud_password(cloud),
        identifier=unique("spy"),
    )
    async with printer, spy:
        await spy.subscribe(TOPICS.all_printers("events"), qos=1)
        await spy.subscribe(TOPICS.commands(other_id), qos=1)
        await printer.subscribe(TOPICS.commands(other_id), qos=1)
        await printer.subscribe(TOPICS.commands(mine), qos=1)
        readers = [
            asyncio.create_task(collect(spy, spied)),
            asyncio.create_task(collect(printer, heard)),
        ]
        try:
            await printer.publish(TOPICS.events(other_id), b"forged event", qos=1)
            await printer.publish(TOPICS.commands(other_id), b"forged command", qos=1)
            await printer.publish(TOPICS.events(mine), b"honest event", qos=1)
            # Per-connection order: once the honest one is in, a forged one would have been.
            await wait_for(spied, (TOPICS.events(mine), b"honest event"))
            assert (TOPICS.events(other_id), b"forged event") not in spied
            assert (TOPICS.commands(other_id), b"forged command") not in spied
            await spy.publish(TOPICS.commands(other_id), b"not for you", qos=1)
            await spy.publish(TOPICS.commands(mine), b"for you", qos=1)
            await wait_for(heard, (TOPICS.commands(mine), b"for you"))
            assert (TOPICS.commands(other_id), b"not for you") not in heard
        finally:
            for reader in readers:
                reader.cancel()


async def test_a_stored_account_that_collides_is_left_out_and_alerted(
    api_database_url: str,
    secured_broker: SecuredBroker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, _, auth = secured_broker
    legacy_secret = new_secret()
    # Rows as a cloud before S10 wrote them: the broker username was the printer id.
    await upgrade(api_database_url)
    async with await open_store(api_database_url) as store:
        owner = await store.accounts.create_user(
            "old@example.org", display_name="Old", password_hash="-"
        )
        for printer_id, password in [(CLOUD_USER, "the impostor's"), ("legacy-1", legacy_secret)]:
            await store.printers.create(
                printer_id,
                owner_id=owner.id,
                name=printer_id,
                model="p1",
                broker_username=printer_id,
                broker_password_hash=hash_password(password),
            )

    with caplog.at_level(logging.ERROR, logger="printfleet.cloud.mosquitto_auth"):
        async with keeping_the_broker(api_database_url, secured_broker, tmp_path) as cloud:
            assert user_names(auth) == [CLOUD_USER, "legacy-1"]
            assert f"broker account of printer {CLOUD_USER!r} left out" in caplog.text
            [alert] = await cloud.context.store.alerts.latest(printer_ids=[CLOUD_USER])
            assert alert.kind == REFUSED_ALERT
            assert alert.severity is Severity.CRITICAL
            assert "already taken by the cloud" in alert.message
            metrics = (await cloud.client.get("/metrics")).text
            assert "printfleet_broker_accounts_refused 1.0" in metrics
            with pytest.raises(aiomqtt.MqttCodeError):
                async with aiomqtt.Client(
                    "127.0.0.1",
                    broker.port,
                    username=CLOUD_USER,
                    password="the impostor's",
                    identifier=unique("impostor"),
                ):
                    pass
            # The old printer that collides with nothing keeps logging in as it always has.
            async with aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                username="legacy-1",
                password=legacy_secret,
                identifier=unique("legacy"),
            ):
                pass

            # Another write and reload: the refusal holds, and is not alerted twice.
            token = await sign_up(cloud.client, "new@example.org")
            created = await provision(cloud, token, unique("p1"))
            assert created.status_code == 201, created.text
            await admitted(cloud, broker, created.json())
            assert user_names(auth).count(CLOUD_USER) == 1
            assert len(await cloud.context.store.alerts.latest(printer_ids=[CLOUD_USER])) == 1
            await assert_the_cloud_kept_its_login(cloud, broker)
