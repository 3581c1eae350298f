"""The store's Alembic migrations, on SQLite and PostgreSQL: they build exactly the models'
schema, run again harmlessly, run concurrently from two replicas, and undo themselves."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from printfleet.cloud import migrations
from printfleet.cloud.migrations import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from printfleet.cloud.store.engine import create_engine
from printfleet.cloud.store.models import Base


def schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


T = TypeVar("T")


async def run_on(url: str, function: Callable[[Connection], T]) -> T:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(function)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_the_migrations_build_the_models_schema(database_url: str) -> None:
    await upgrade(database_url)
    assert await run_on(database_url, schema_differences) == []
    assert await run_on(database_url, table_names) == {
        table.name for table in Base.metadata.sorted_tables
    } | {"alembic_version"}


@pytest.mark.asyncio
async def test_upgrading_again_changes_nothing(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await upgrade(database_url)
    await upgrade(database_url)
    assert await current_revision(database_url) == head_revision() == "r0005"


@pytest.mark.asyncio
async def test_concurrent_upgrades_in_one_process_take_turns(database_url: str) -> None:
    await asyncio.gather(*(upgrade(database_url) for _ in range(3)))
    assert await current_revision(database_url) == head_revision()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_replicas_starting_together_all_succeed(database_url: str) -> None:
    # Separate processes, as replicas are: only the database's lock keeps them apart.
    script = "import asyncio, sys; from printfleet.cloud.migrations import upgrade; "
    script += "asyncio.run(upgrade(sys.argv[1]))"
    replicas = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, database_url)
        for _ in range(3)
    ]
    assert [await replica.wait() for replica in replicas] == [0, 0, 0]
    assert await current_revision(database_url) == head_revision()
    assert await run_on(database_url, schema_differences) == []


@pytest.mark.asyncio
async def test_downgrading_to_base_removes_everything(database_url: str) -> None:
    await upgrade(database_url)
    await downgrade(database_url, "base")
    assert await current_revision(database_url) is None
    assert await run_on(database_url, table_names) <= {"alembic_version"}
    await upgrade(database_url)  # and back: the downgrade left nothing in the way (triggers)
    assert await run_on(database_url, schema_differences) == []


def test_the_revisions_ship_inside_the_package() -> None:
    package = Path(migrations.__file__).parent
    assert (package / "env.py").is_file()
    assert (package / "script.py.mako").is_file()
    assert sorted(path.name for path in (package / "versions").glob("r*.py")) == [
        "r0001_initial.py",
        "r0002_sealed_secrets_token_expiry.py",
        "r0003_alert_resolution.py",
        "r0004_farm_queue.py",
        "r0005_maintenance.py",
    ]


@pytest.mark.parametrize("url", ["sqlite:///unused.db", "postgresql://unused@localhost/unused"])
def test_the_migrations_can_be_printed_as_sql_for_a_dba(url: str) -> None:
    config = alembic_config(url)
    config.output_buffer = script = io.StringIO()
    command.upgrade(config, "head", sql=True)
    text = script.getvalue()
    # Every table once, and alembic_version; SQLite rebuilds a table it alters through a copy.
    created = text.count("CREATE TABLE") - text.count("CREATE TABLE _alembic_tmp_")
    assert created == len(Base.metadata.tables) + 1
    assert "CREATE TRIGGER" in text
