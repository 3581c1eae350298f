"""Alembic's environment for the store: runs the revisions on an async engine.

Called through ``printfleet.cloud.migrations`` (which passes the URL in ``Config.attributes``)
or by the ``alembic`` command with ``sqlalchemy.url`` set in an ini file.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url

from printfleet.cloud.migrations import URL_ATTRIBUTE
from printfleet.cloud.store.engine import WRITE_OPTION, create_engine, database_url
from printfleet.cloud.store.models import Base

# Any fixed 64-bit number, the same in every replica: the key of the migration lock.
_ADVISORY_LOCK_KEY = 0x7072_696E_7466_6C74  # "printflt"


def _url() -> URL:
    given = context.config.attributes.get(URL_ATTRIBUTE)
    if isinstance(given, URL):
        return given
    option = context.config.get_main_option("sqlalchemy.url")
    if option is None:
        raise RuntimeError("no database URL: set sqlalchemy.url or use printfleet's upgrade()")
    return database_url(make_url(option))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters most things only by copying the table; batch mode does that.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _migrate(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_online(url: URL) -> None:
    engine = create_engine(url, pool_size=1, pool_timeout_s=30.0)
    try:
        # One transaction for all revisions: on SQLite it begins IMMEDIATE, which also keeps a
        # second process out until this one is done; on PostgreSQL the advisory lock does.
        async with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            await connection.run_sync(_migrate)
        if engine.dialect.name == "sqlite":
            # Move the migrations' writes into the database file and empty the WAL, so page
            # images a revision replaced (secrets from before they were sealed) leave the disk.
            async with engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()


def _migrate_offline(url: URL) -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _migrate_offline(_url())
else:
    asyncio.run(_migrate_online(_url()))
