"""The store under load and failure: SQLite's settings and write locking, concurrent writers,
a full pool, a held lock, a database that is not there or goes away."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import pytest
from blockbuster import blockbuster_ctx
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from tests.cloud.conftest import T0, Seed

from printfleet.cloud.migrations import upgrade
from printfleet.cloud.store import Actor, Store, StoreBusy, StoreUnavailable, open_store
from printfleet.cloud.store.engine import WRITE_OPTION, create_engine, database_url, redacted
from printfleet.testing import PostgresServer, free_port

# ---------------------------------------------------------------------------------------------
# URLs and engine settings.


def test_urls_get_the_async_drivers() -> None:
    assert str(database_url("sqlite:///a.db")) == "sqlite+aiosqlite:///a.db"
    assert str(database_url("sqlite+aiosqlite:///a.db")) == "sqlite+aiosqlite:///a.db"
    assert database_url("postgresql://u:p@h/d").drivername == "postgresql+asyncpg"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://u:p@h/d", "unsupported database mysql://u:\\*\\*\\*@h/d"),
        ("postgresql+psycopg://h/d", "unsupported driver 'psycopg'"),
        ("sqlite+pysqlite:///a.db", "unsupported driver 'pysqlite'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ],
)
def test_other_databases_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        database_url(url)


def test_passwords_are_redacted() -> None:
    url = URL.create("postgresql+asyncpg", "u", "s3cret", "db.example", 5432, "pf")
    assert redacted(url) == "postgresql+asyncpg://u:***@db.example:5432/pf"
    assert "s3cret" not in redacted(url.render_as_string(hide_password=False))


@pytest.mark.asyncio
async def test_sqlite_runs_in_wal_with_its_safety_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}", busy_timeout_ms=1_234)
    try:
        async with engine.connect() as connection:
            settings = [
                await connection.scalar(text(f"PRAGMA {name}"))
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert settings == ["wal", 1, 1_234, 1]  # synchronous 1 is NORMAL


@pytest.mark.asyncio
async def test_sqlite_writes_begin_immediate_and_reads_do_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await upgrade(url)
    async with await open_store(url) as store:
        begins: list[str] = []

        @event.listens_for(store.engine.sync_engine, "before_cursor_execute")
        def note_begin(*args: object) -> None:
            statement = str(args[2])
            if statement.startswith("BEGIN"):
                begins.append(statement)

        await store.accounts.create_user("a@example.org", display_name="A", password_hash="h")
        await store.accounts.user_by_email("a@example.org")
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


@pytest.mark.asyncio
async def test_postgresql_gets_a_small_fixed_pool(postgres: PostgresServer) -> None:
    engine = create_engine(postgres.url, pool_size=3, pool_timeout_s=0.5)
    try:
        pool = engine.sync_engine.pool
        assert (pool.size(), pool.timeout(), pool.overflow()) == (3, 0.5, -3)  # type: ignore[attr-defined]
        assert pool._pre_ping  # a dead connection is replaced, not handed out
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Concurrent writers.


@pytest.mark.asyncio
async def test_concurrent_job_creations_all_succeed(store: Store, seed: Seed) -> None:
    async def create(number: int) -> str:
        created = await store.jobs.create(
            seed.owner.id, sha256=seed.sha256, start_by=T0 + 60_000, model="mk4",
            idempotency_key=f"k{number}",
        )  # fmt: skip
        return created.job.view.id

    ids = await asyncio.gather(*(create(number) for number in range(20)))
    assert len(set(ids)) == 20
    assert len(await store.jobs.for_owner(seed.owner.id, limit=100)) == 20


@pytest.mark.asyncio
async def test_two_processes_writing_one_sqlite_file_do_not_lock_each_other_out(
    tmp_path: Path,
) -> None:
    # Two stores with pools of their own stand for two processes on one file, each with 10
    # job creations and 10 printer updates in flight. An update reads the printer and then
    # writes it: begun DEFERRED, half of them fail at once with "database is locked" (the
    # reader's snapshot went stale when another writer committed, and SQLite does not wait
    # then); begun IMMEDIATE, each waits its turn for the lock.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    await upgrade(url)
    async with (
        await open_store(url, pool_size=10, pool_timeout_s=10) as first,
        await open_store(url, pool_size=10, pool_timeout_s=10) as second,
    ):
        owner = await first.accounts.create_user(
            "o@example.org", display_name="O", password_hash="h"
        )
        await first.printers.create(
            "p1", owner_id=owner.id, name="initial", model="mk4", broker_username="b",
            broker_password_hash="h",
        )  # fmt: skip

        async def create(store: Store, number: int) -> None:
            await store.jobs.create(
                owner.id, sha256="ab" * 32, start_by=T0, model="mk4", idempotency_key=f"k{number}"
            )

        async def rename(store: Store, number: int) -> None:
            await store.printers.update("p1", actor=Actor.user(owner.id), name=f"P{number}")

        await asyncio.gather(
            *(create(first, number) for number in range(10)),
            *(rename(first, number) for number in range(10)),
            *(create(second, number) for number in range(10, 20)),
            *(rename(second, number) for number in range(10, 20)),
        )
        assert len(await second.jobs.for_owner(owner.id, limit=100)) == 20
        renames = [e for e in await first.audit.for_printer("p1") if e.action == "printer.updated"]
        assert len(renames) == 20


# ---------------------------------------------------------------------------------------------
# Busy.


@pytest.mark.asyncio
async def test_an_exhausted_pool_raises_store_busy_soon(migrated_url: str) -> None:
    async with await open_store(migrated_url, pool_size=1, pool_timeout_s=0.3) as store:
        async with store.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            started = time.monotonic()
            with pytest.raises(StoreBusy, match="no database connection free"):
                await store.accounts.user_by_email("a@example.org")
            waited = time.monotonic() - started
        # Bounded by the pool timeout, not by how long the connection is held.
        assert waited < 5
        await store.ping()  # and the store works again once the connection is back


@pytest.mark.asyncio
async def test_a_sqlite_write_lock_held_too_long_raises_store_busy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await upgrade(url)
    async with (
        await open_store(url, busy_timeout_ms=200) as store,
        await open_store(url) as other,
    ):
        await store.accounts.create_user("a@example.org", display_name="A", password_hash="h")
        writer = other.engine.execution_options(**{WRITE_OPTION: True})
        async with writer.connect() as holder:
            await holder.execute(text("SELECT 1"))  # begins IMMEDIATE: the write lock is held
            started = time.monotonic()
            with pytest.raises(StoreBusy, match="locked"):
                await store.accounts.create_user(
                    "b@example.org", display_name="B", password_hash="h"
                )
            assert time.monotonic() - started < 5
            # WAL: readers are not blocked by the writer.
            assert await store.accounts.user_by_email("a@example.org") is not None
            await holder.rollback()
        await store.accounts.create_user("b@example.org", display_name="B", password_hash="h")


# ---------------------------------------------------------------------------------------------
# Unavailable.


@pytest.mark.asyncio
async def test_a_sqlite_file_that_cannot_be_opened_raises_store_unavailable(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "a.db"
    with pytest.raises(StoreUnavailable, match=str(missing)):
        await open_store(f"sqlite:///{missing}")
    # aiosqlite stops the failed connection's thread without waiting; if the loop closed first,
    # that thread would fail to report back. Wait for it, as a long-running cloud would.
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 10)


@pytest.mark.asyncio
async def test_a_postgresql_server_that_is_not_there_raises_store_unavailable() -> None:
    url = f"postgresql://printfleet:s3cret@127.0.0.1:{free_port()}/printfleet"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        await open_store(url, connect_timeout_s=2)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "postgresql+asyncpg://printfleet:***@127.0.0.1" in message
    assert "s3cret" not in message


@pytest.mark.asyncio
async def test_a_database_that_goes_away_raises_store_unavailable_until_it_is_back(
    fresh_postgres: PostgresServer,
) -> None:
    url = fresh_postgres.create_database("printfleet")
    await upgrade(url)
    async with await open_store(url) as store:
        user = await store.accounts.create_user(
            "a@example.org", display_name="A", password_hash="h"
        )
        await asyncio.to_thread(fresh_postgres.kill)
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await store.accounts.get_user(user.id)
        await asyncio.to_thread(fresh_postgres.restart)
        # The pool's dead connections are pinged and replaced: no restart of the cloud needed.
        assert await store.accounts.get_user(user.id) == user


# ---------------------------------------------------------------------------------------------
# The event loop.


@pytest.mark.asyncio
async def test_store_calls_never_block_the_event_loop(store: Store, seed: Seed) -> None:
    # Fill the pool first: asyncpg, while connecting, looks for its optional client files
    # (~/.pgpass, ~/.postgresql/*) synchronously -- once per pooled connection, not per call.
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(5):
            connection = await stack.enter_async_context(store.engine.connect())
            await connection.execute(text("SELECT 1"))
    # blockbuster raises on any blocking call (file, socket, sleep, lock) on the loop's thread.
    with blockbuster_ctx():
        jobs = await asyncio.gather(
            *(
                store.jobs.create(seed.owner.id, sha256=seed.sha256, start_by=T0, model="mk4")
                for _ in range(8)
            )
        )
        await asyncio.gather(*(store.jobs.open() for _ in range(8)))
        first = jobs[0].job
        await store.jobs.save(first.view, expected_version=first.version)
        await store.accounts.authenticate_token("no such token")
