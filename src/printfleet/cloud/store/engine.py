"""Database engines for the store: SQLite set up for many readers and one writer at a time,
PostgreSQL with a small pool that says "busy" quickly instead of queueing requests; and
:class:`Database`, the one transaction and error layer the store's repositories share.

The store and the migrations both get their engines here, so both see the same settings.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from printfleet.cloud.store.errors import NotFound, connect_failure, statement_failure
from printfleet.cloud.store.models import (
    Alert,
    ApiToken,
    Base,
    Delivery,
    File,
    Job,
    NotificationChannel,
    Printer,
    User,
)

WRITE_OPTION = "printfleet_write"
"""Execution option marking a connection whose transactions will write.

On SQLite such a transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front,
waiting up to the busy timeout for it, instead of reading first and then failing with
"database is locked" when it tries to upgrade to writing while another writer committed.
Reads keep a plain (deferred) ``BEGIN`` so they never queue behind writers (WAL).
"""

_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def database_url(url: str | URL) -> URL:
    """``url`` with the async driver the store uses (``sqlite://`` -> ``sqlite+aiosqlite://``).

    Raises ValueError for any other database or driver, and for in-memory SQLite, which has no
    WAL and vanishes with its last connection.
    """
    parsed = make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    expected = _ASYNC_DRIVERS.get(backend)
    if expected is None:
        raise ValueError(f"unsupported database {redacted(parsed)}: use SQLite or PostgreSQL")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+{expected}")
    elif driver != expected:
        raise ValueError(f"unsupported driver {driver!r} for {backend}: use {expected}")
    if backend == "sqlite" and parsed.database in {None, "", ":memory:"}:
        raise ValueError("the store needs a SQLite file, not an in-memory database")
    return parsed


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL, or None for PostgreSQL."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database is None:
        return None
    return Path(parsed.database)


SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database, which hold its pages too."""


def make_sqlite_private(url: str | URL) -> list[Path]:
    """Make a SQLite store's files readable by this user only (0600); returns those changed.

    A missing database is created empty with mode 0600 before SQLite opens it: SQLite gives
    the WAL and shared-memory files it creates later the database's own mode, so they are
    private from their first byte. Files that exist already are narrowed. Blocking; nothing
    to do for PostgreSQL.
    """
    path = sqlite_path(url)
    if path is None:
        return []
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    changed = []
    for candidate in (path, *(path.with_name(path.name + tail) for tail in SQLITE_COMPANIONS)):
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            candidate.chmod(mode & 0o700)
            changed.append(candidate)
    return changed


def redacted(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    pool_timeout_s: float = 2.0,
    connect_timeout_s: float = 5.0,
    busy_timeout_ms: int = 5_000,
) -> AsyncEngine:
    """An engine for the store's database.

    Both databases get a fixed pool of ``pool_size`` connections (no overflow) and a short
    ``pool_timeout_s``: under overload a request waits briefly for a connection and then fails
    (the API answers 503) rather than piling up behind a growing queue. SQLite additionally runs
    in WAL mode with ``synchronous=NORMAL``, a busy timeout and foreign keys on; PostgreSQL
    connections are pinged on checkout and connecting gives up after ``connect_timeout_s``.
    """
    parsed = database_url(url)
    common: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": pool_timeout_s,
        # Statement parameters can hold password hashes and token digests: keep them out of
        # exception messages, which end up in logs.
        "hide_parameters": True,
    }
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, **common)
        _configure_sqlite(engine.sync_engine, busy_timeout_ms)
        return engine
    return create_async_engine(
        parsed,
        **common,
        # A server restart or failover leaves dead connections in the pool; a ping on checkout
        # replaces them instead of failing the request that drew one.
        pool_pre_ping=True,
        connect_args={"timeout": connect_timeout_s},
    )


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """SQLAlchemy's documented recipe for SQLite transactions, plus the pragmas the store needs."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Stop the driver from issuing its own (always deferred) BEGIN; _on_begin issues it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # The busy timeout first: switching to WAL needs a lock another connection may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL cannot corrupt the database; a power cut may lose the last
            # commits, which the cloud tolerates in exchange for not syncing on every commit.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class Database:
    """The transaction and error layer every repository of the store shares.

    :meth:`transaction` is one short transaction: it commits if its block returns and rolls
    back if it raises, and it turns a busy or unreachable database, and a broken constraint,
    into the store's own errors (:mod:`printfleet.cloud.store.errors`), so no caller ever sees
    a driver's exception. No connection is held between transactions, so none is held while a
    caller does I/O.
    """

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.url = redacted(engine.url)
        """The database URL, password masked."""
        self.now = clock
        """The cloud time (ms) rows are stamped with."""
        self._dialect = engine.dialect.name
        self._readers = async_sessionmaker(engine, expire_on_commit=False)
        self._writers = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        """One transaction; commits if the block returns, rolls back if it raises."""
        sessions = self._writers if write else self._readers
        async with sessions() as session:
            try:
                # Check a connection out (and BEGIN) before running anything, so that a failure
                # here is known to be about getting a connection, not about a statement.
                await session.connection()
            except Exception as error:
                raise connect_failure(error, self.url) from error
            try:
                yield session
                await session.commit()
            except Exception as error:
                translated = statement_failure(error, self.url)
                if translated is None:
                    raise
                raise translated from error

    def insert(self, entity: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say ON CONFLICT, in this database's dialect."""
        return postgresql.insert(entity) if self._dialect == "postgresql" else sqlite.insert(entity)

    async def ping(self) -> None:
        """Check that the database answers; raises StoreUnavailable or StoreBusy if not."""
        async with self.transaction(write=False) as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


_Row = TypeVar("_Row", bound=Base)


async def get_row(session: AsyncSession, entity: type[_Row], key: str) -> _Row:
    """The row of ``entity`` with primary key ``key``; raises :class:`NotFound`."""
    row = await session.get(entity, key)
    if row is None:
        # Worded as the service words "not yours", so a missing id and someone else's read
        # alike, and never naming a table.
        raise NotFound(f"no {_NOUNS.get(entity, 'such thing')} {key}")
    return row


_NOUNS: dict[type[Base], str] = {
    User: "user",
    ApiToken: "token",
    Printer: "printer",
    File: "file",
    Job: "job",
    Alert: "alert",
    NotificationChannel: "channel",
    Delivery: "delivery",
}
