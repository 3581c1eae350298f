"""Secrets at rest, expiring tokens and capability tokens in logs, on real parts (issue 12).

- The data directory is 0700 and its files 0600 after a real start and a write, the SQLite WAL
  and shared-memory files included; an install with looser modes is narrowed.
- Notification channels' targets and secrets are sealed in the database (the raw SQLite file,
  PostgreSQL's column values), bound to their row, and opened only with the data directory's
  key; the migration seals the rows of an existing database and dates its tokens.
- API tokens expire: 30 days by default, a chosen lifetime up to 365 days, and an expired one is
  refused with 401 saying so.
- A printer's file link never reaches a log with its token: not the cloud's access log, not the
  agent's HTTP client log, not the agent's warning when a fetch fails.

Each test fails on the code before this module: 0644 files, plain-text columns, tokens without
an expiry, whole URLs in the logs.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import tomllib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tests.cloud.conftest import T0, FakeClock
from tests.cloud.test_api import (
    GCODE,
    PASSWORD,
    Running,
    _running,
    api_database_url,
    bearer,
    cloud,
    eventually,
    serving,
    settings_for,
    sign_up,
    unique,
    upload,
)

from printfleet.agent.config import AgentConfig
from printfleet.agent.runtime import PrinterAgent
from printfleet.cloud.app import KEY_FILE, Settings
from printfleet.cloud.migrations import current_revision, downgrade, head_revision, upgrade
from printfleet.cloud.service import (
    MAX_TOKEN_LIFETIME_S,
    CloudService,
    InvalidRequest,
    TokenExpired,
)
from printfleet.cloud.store import ChannelKind, Store, new_id, open_store
from printfleet.cloud.store.engine import create_engine
from printfleet.cloud.store.sealing import (
    SEALED_PREFIX,
    SECRETS_KEY_FILE,
    SecretBox,
    SecretUnreadable,
    load_or_create_secret_box,
)
from printfleet.log_redaction import REDACTED_LOGGERS, TokenRedaction
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.signing import CommandSigner
from printfleet.sim.printer import SimulatedPrinter
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url", "cloud"]  # fixtures, used by name

DAY_MS = 24 * 3_600_000
HOOK_SECRET = "whsec-0123456789-not-for-your-eyes"
HOOK_URL = "https://hooks.example.org/printfleet?token=hook-query-token-4242"
APPRISE_URL = "mailtos://ada:hunter2-mail-password@mail.example.org"
PLAIN = (HOOK_SECRET, "hook-query-token-4242", "hunter2-mail-password")
"""What must never be found in the database as it is stored."""
UNREDACTED = re.compile(r"token=(?!<redacted>)")


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def sqlite_file(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def raw_sqlite_bytes(url: str) -> bytes:
    """The database's bytes as they are on disk, its WAL included."""
    path = sqlite_file(url)
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def raw_channels(url: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text("SELECT id, target, secret FROM notification_channels ORDER BY id")
            )
            return [(row[0], row[1], row[2]) for row in rows]
    finally:
        await engine.dispose()


async def execute(url: str, statement: str, **parameters: object) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text(statement), parameters)
    finally:
        await engine.dispose()


async def add_channels(store: Store, user_id: str) -> tuple[str, str]:
    hook = await store.channels.create(
        user_id, kind=ChannelKind.WEBHOOK, target=HOOK_URL, secret=HOOK_SECRET
    )
    mail = await store.channels.create(user_id, kind=ChannelKind.APPRISE, target=APPRISE_URL)
    assert (hook.target, hook.secret, mail.target) == (HOOK_URL, HOOK_SECRET, APPRISE_URL)
    return hook.id, mail.id


# ---------------------------------------------------------------------------------------------
# File modes.


@pytest.mark.asyncio
async def test_a_started_cloud_keeps_its_data_directory_to_itself(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    data = tmp_path / "cloud"
    # As an earlier version left it: everything readable by every user of the machine.
    (data / "files").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    (data / "files").chmod(0o755)
    database = data / "printfleet.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    settings = Settings(
        data_dir=data, broker_url=mosquitto.url, open_registration=True, probe_interval_s=1.0
    )
    async with serving(settings) as cloud:
        token = await sign_up(cloud.client, "ada@example.org")
        assert (await upload(cloud.client, token)).status_code == 201
        user = await cloud.context.store.accounts.user_by_email("ada@example.org")
        assert user is not None
        await add_channels(cloud.context.store, user.id)
        # SQLite made its WAL and shared-memory files lazily, on the first write.
        for name in ("printfleet.sqlite3", "printfleet.sqlite3-wal", "printfleet.sqlite3-shm"):
            assert mode(data / name) == 0o600, name
        for name in (KEY_FILE, SECRETS_KEY_FILE):
            assert mode(data / name) == 0o600, name
        for directory in (data, data / "files", data / "files" / ".incoming"):
            assert mode(directory) == 0o700, directory
        [stored] = [path for path in (data / "files").iterdir() if path.is_file()]
        assert mode(stored) == 0o600
    assert mode(database) == 0o600


# ---------------------------------------------------------------------------------------------
# Sealed columns.


@pytest.mark.asyncio
async def test_channel_targets_and_secrets_are_sealed_in_the_database(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with serving(settings_for(tmp_path, api_database_url, mosquitto.url)) as cloud:
        store = cloud.context.store
        user = await store.accounts.create_user(
            "ada@example.org", display_name="Ada", password_hash="-"
        )
        hook_id, mail_id = await add_channels(store, user.id)
        opened = {channel.id: channel for channel in await store.channels.for_user(user.id)}
        assert (opened[hook_id].target, opened[hook_id].secret) == (HOOK_URL, HOOK_SECRET)
        assert opened[mail_id].target == APPRISE_URL
    stored = await raw_channels(api_database_url)
    assert len(stored) == 2
    for _, target, secret in stored:
        assert target.startswith(SEALED_PREFIX)
        assert secret is None or secret.startswith(SEALED_PREFIX)
        assert not any(plain in f"{target}{secret}" for plain in PLAIN)
    if api_database_url.startswith("sqlite"):
        on_disk = raw_sqlite_bytes(api_database_url)
        assert not any(plain.encode() in on_disk for plain in PLAIN)
    # The key that opens them is in the data directory, not in the database.
    key = load_or_create_secret_box(tmp_path / "cloud" / SECRETS_KEY_FILE)
    async with await open_store(api_database_url, secrets=key) as reopened:
        assert (await reopened.channels.get(hook_id)).secret == HOOK_SECRET


@pytest_asyncio.fixture
async def sealed(migrated_url: str, clock: FakeClock) -> AsyncIterator[tuple[Store, bytes]]:
    """A store with a key of its own, and the key, on SQLite and on PostgreSQL."""
    key = AESGCM.generate_key(bit_length=256)
    async with await open_store(migrated_url, clock=clock, secrets=SecretBox([key])) as store:
        yield store, key


@pytest.mark.asyncio
async def test_a_sealed_value_opens_only_in_its_own_row_and_with_its_key(
    sealed: tuple[Store, bytes], migrated_url: str
) -> None:
    store, _ = sealed
    user = await store.accounts.create_user(
        "ada@example.org", display_name="Ada", password_hash="-"
    )
    mallory = await store.accounts.create_user(
        "mal@example.org", display_name="M", password_hash="-"
    )
    hook_id, _ = await add_channels(store, user.id)
    theirs = await store.channels.create(
        mallory.id, kind=ChannelKind.WEBHOOK, target="https://mallory.example/h", secret="m"
    )
    # Someone who can write the database copies Ada's sealed secret into their own channel:
    # their webhooks would then be signed with it. It does not open there.
    await execute(
        migrated_url,
        "UPDATE notification_channels SET secret = "
        "(SELECT secret FROM notification_channels WHERE id = :hook) WHERE id = :theirs",
        hook=hook_id,
        theirs=theirs.id,
    )
    with pytest.raises(SecretUnreadable, match="altered, or moved"):
        await store.channels.get(theirs.id)
    assert (await store.channels.get(hook_id)).secret == HOOK_SECRET
    # Without the key, or with another one, nothing opens; the message says why.
    async with await open_store(migrated_url) as keyless:
        with pytest.raises(SecretUnreadable, match="without the secrets key"):
            await keyless.channels.get(hook_id)
    async with await open_store(migrated_url, secrets=SecretBox.generate()) as stranger:
        with pytest.raises(SecretUnreadable, match="replicas must share that file"):
            await stranger.channels.for_user(user.id)


@pytest.mark.asyncio
async def test_a_rotated_key_reseals_every_row_and_plain_rows_get_sealed(
    sealed: tuple[Store, bytes], migrated_url: str, tmp_path: Path
) -> None:
    store, old_key = sealed
    user = await store.accounts.create_user(
        "ada@example.org", display_name="Ada", password_hash="-"
    )
    hook_id, _ = await add_channels(store, user.id)
    # A tool without the key wrote a channel as given.
    async with await open_store(migrated_url) as keyless:
        plain = await keyless.channels.create(
            user.id, kind=ChannelKind.WEBHOOK, target="https://hooks.example.org/2", secret="s2"
        )
    stored = {(target, secret) for _, target, secret in await raw_channels(migrated_url)}
    assert ("https://hooks.example.org/2", "s2") in stored

    # A new key file (as a first start makes one), with the old key appended below the new.
    key_file = tmp_path / SECRETS_KEY_FILE
    new = load_or_create_secret_box(key_file)
    with key_file.open("a") as lines:
        lines.write(base64.urlsafe_b64encode(old_key).decode() + "\n")
    both = load_or_create_secret_box(key_file)
    assert both.key_id == new.key_id
    async with await open_store(migrated_url, secrets=both) as restarted:
        assert await restarted.channels.seal_secrets() == 3
        assert await restarted.channels.seal_secrets() == 0
    for _, target, secret in await raw_channels(migrated_url):
        assert target.startswith(f"{SEALED_PREFIX}{new.key_id}:")
        assert secret is None or secret.startswith(f"{SEALED_PREFIX}{new.key_id}:")
    # The old key can go now.
    async with await open_store(migrated_url, secrets=new) as later:
        assert (await later.channels.get(hook_id)).secret == HOOK_SECRET
        assert (await later.channels.get(plain.id)).secret == "s2"


@pytest.mark.asyncio
async def test_the_migration_seals_existing_channels_and_dates_existing_tokens(
    database_url: str,
) -> None:
    await upgrade(database_url, "0001")
    user_id, hook_id, mail_id = new_id(), new_id(), new_id()
    await execute(
        database_url,
        "INSERT INTO users (id, email, display_name, password_hash, created_at) "
        "VALUES (:id, 'ada@example.org', 'Ada', '-', 1)",
        id=user_id,
    )
    await execute(
        database_url,
        "INSERT INTO api_tokens (id, user_id, name, token_sha256, scopes, created_at) "
        "VALUES (:id, :user, 'laptop', :digest, '[\"read\"]', 1)",
        id=new_id(),
        user=user_id,
        digest="ab" * 32,
    )
    for channel_id, kind, target, secret in [
        (hook_id, "webhook", HOOK_URL, HOOK_SECRET),
        (mail_id, "apprise", APPRISE_URL, None),
    ]:
        await execute(
            database_url,
            "INSERT INTO notification_channels (id, user_id, kind, target, secret, enabled, "
            "created_at) VALUES (:id, :user, :kind, :target, :secret, true, 1)",
            id=channel_id,
            user=user_id,
            kind=kind,
            target=target,
            secret=secret,
        )

    # Without the key the upgrade is refused as a whole, rather than leaving plain text.
    with pytest.raises(RuntimeError, match="needs the data directory's secrets key"):
        await upgrade(database_url)
    assert await current_revision(database_url) == "0001"

    box = SecretBox.generate()
    before = time.time_ns() // 1_000_000
    await upgrade(database_url, secrets=box)
    after = time.time_ns() // 1_000_000
    assert await current_revision(database_url) == head_revision()
    stored = await raw_channels(database_url)
    assert all(target.startswith(SEALED_PREFIX) for _, target, _ in stored)
    assert not any(plain in repr(stored) for plain in PLAIN)
    if database_url.startswith("sqlite"):
        on_disk = raw_sqlite_bytes(database_url)
        assert not any(plain.encode() in on_disk for plain in PLAIN)
    async with await open_store(database_url, secrets=box) as store:
        hook = await store.channels.get(hook_id)
        assert (hook.target, hook.secret) == (HOOK_URL, HOOK_SECRET)
        assert (await store.channels.get(mail_id)).target == APPRISE_URL
        [token] = await store.accounts.tokens_for_user(user_id)
    # Nobody is logged out by the upgrade: a token works 30 days from then.
    assert before + 30 * DAY_MS <= token.expires_at <= after + 30 * DAY_MS

    await downgrade(database_url, "0001", secrets=box)
    assert {(t, s) for _, t, s in await raw_channels(database_url)} == {
        (HOOK_URL, HOOK_SECRET),
        (APPRISE_URL, None),
    }


# ---------------------------------------------------------------------------------------------
# Expiring tokens.


@pytest_asyncio.fixture
async def service(migrated_url: str, clock: FakeClock) -> AsyncIterator[CloudService]:
    """The real service over a real store, both on the fake clock."""
    async with await open_store(migrated_url, clock=clock) as store:
        signer = CommandSigner.generate()
        yield CloudService(store, signer, CommandIssuer(signer, new_id), clock_ms=clock)


@pytest.mark.asyncio
async def test_tokens_expire_after_their_lifetime(service: CloudService, clock: FakeClock) -> None:
    await service.accounts.register_user("ada@example.org", PASSWORD)
    logged_in = await service.accounts.login("ada@example.org", PASSWORD)
    assert logged_in is not None
    record, token = logged_in
    assert record.expires_at == T0 + 30 * DAY_MS
    principal = await service.accounts.authenticate(token)
    assert principal is not None
    hour, _ = await service.accounts.issue_token(principal, "ci", ["read"], lifetime_s=3600)
    assert hour.expires_at == T0 + 3_600_000
    for wrong in (59, MAX_TOKEN_LIFETIME_S + 1):
        with pytest.raises(InvalidRequest, match="365 days"):
            await service.accounts.issue_token(principal, "ci", ["read"], lifetime_s=wrong)

    clock.advance(30 * DAY_MS - 1)
    assert await service.accounts.authenticate(token) is not None
    clock.advance(1)
    with pytest.raises(TokenExpired, match=r"the token expired at .* log in again"):
        await service.accounts.authenticate(token)
    # Unknown tokens are still simply unknown.
    assert await service.accounts.authenticate("pf_unknown") is None


@pytest.mark.asyncio
async def test_an_expired_token_is_refused_over_http_saying_so(cloud: Running) -> None:
    client = cloud.client
    token = await sign_up(client, "ada@example.org")
    [login] = (await client.get("/api/v1/tokens", headers=bearer(token))).json()
    assert 30 * DAY_MS - 60_000 <= login["expires_at"] - login["created_at"] <= 30 * DAY_MS
    made = await client.post(
        "/api/v1/tokens",
        headers=bearer(token),
        json={"name": "ci", "scopes": ["read"], "expires_in_s": 3600},
    )
    assert made.status_code == 201, made.text
    assert 3_600_000 - 60_000 <= made.json()["expires_at"] - made.json()["created_at"] <= 3_600_000
    for wrong in (MAX_TOKEN_LIFETIME_S + 1, 10, True, "3600"):
        refused = await client.post(
            "/api/v1/tokens",
            headers=bearer(token),
            json={"name": "ci", "scopes": ["read"], "expires_in_s": wrong},
        )
        assert refused.status_code == 422, wrong
        assert refused.json()["error"] == "invalid_request"

    # Time passes for the store's rows: the login token's end moves into the past.
    async with cloud.context.store.engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE api_tokens SET expires_at = 1 WHERE id = :id"), {"id": login["id"]}
        )
    expired = await client.get("/api/v1/tokens", headers=bearer(token))
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_token"
    assert "expired" in expired.json()["message"]
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    unknown = await client.get("/api/v1/tokens", headers=bearer("pf_nobody"))
    assert "unknown or revoked" in unknown.json()["message"]
    ci = await client.get("/api/v1/tokens", headers=bearer(made.json()["token"]))
    assert ci.status_code == 200


# ---------------------------------------------------------------------------------------------
# Capability tokens in logs.


@pytest.mark.asyncio
async def test_a_printers_file_link_reaches_no_log_with_its_token(
    mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    async with serving(settings_for(tmp_path, url, mosquitto.url), access_log=True) as cloud:
        token = await sign_up(cloud.client, "ada@example.org")
        auth = bearer(token)
        printer_id = unique("p1")
        provisioned = await cloud.client.post(
            "/api/v1/printers", headers=auth, json={"id": printer_id, "name": "P", "model": "p1"}
        )
        assert provisioned.status_code == 201, provisioned.text
        uploaded = await upload(cloud.client, token, data=GCODE)
        assert uploaded.status_code == 201, uploaded.text
        # The bytes go missing, so the printer's fetch fails: its error names the whole URL.
        record = await cloud.context.store.files.get(uploaded.json()["id"])
        cloud.context.files.path_of(record).unlink()
        config = AgentConfig.model_validate(
            {
                **tomllib.loads(provisioned.json()["agent_config"]),
                "data_dir": tmp_path / "agent",
                "telemetry_period_s": 0.2,
            }
        )
        # The agent runs in a process of its own, where the cloud put no filter: it must.
        _remove_redaction(name for name in REDACTED_LOGGERS if not name.startswith("uvicorn"))
        async with (
            SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=20) as hardware,
            _running(PrinterAgent(config, hardware).run()),
        ):
            await cloud.link_verified()

            async def online() -> bool | None:
                printer = await cloud.client.get(f"/api/v1/printers/{printer_id}", headers=auth)
                return printer.json()["online"] or None

            await eventually(online)
            submitted = await cloud.client.post(
                "/api/v1/jobs",
                headers=auth,
                json={"file_id": record.id, "printer_id": printer_id},
            )
            assert submitted.status_code == 201, submitted.text

            def failed_fetch() -> logging.LogRecord | None:
                found = [r for r in caplog.records if "download failed" in r.getMessage()]
                return found[0] if found else None

            async def logged() -> logging.LogRecord | None:
                return failed_fetch()

            warning = await eventually(logged)
            job = await cloud.client.get(f"/api/v1/jobs/{submitted.json()['id']}", headers=auth)

    lines = [entry.getMessage() for entry in caplog.records]
    # The fetch happened, and was logged by all three: the cloud's access log, the agent's
    # HTTP client, and the agent's own warning (sent on to the cloud as the stage's failure).
    access = [line for line in lines if "/printer-files/" in line and " 404" in line]
    client = [
        line for line in lines if line.startswith("HTTP Request: GET") and "/printer-files/" in line
    ]
    assert access, lines
    assert client, lines
    assert "/printer-files/" in warning.getMessage()
    for line in [*access, *client, warning.getMessage()]:
        assert "token=<redacted>" in line
    assert not UNREDACTED.search(caplog.text)
    assert not UNREDACTED.search(job.text)


def _remove_redaction(names: Iterable[str]) -> None:
    for name in names:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, TokenRedaction)]:
            logger.removeFilter(existing)
