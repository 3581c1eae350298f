"""PostgresServer: a real throwaway cluster that answers SQL, and the faults it injects."""

from __future__ import annotations

import asyncio
import os

import asyncpg  # type: ignore[import-untyped,unused-ignore]  # typed only with asyncpg-stubs
import psutil
import pytest

from printfleet.testing import PostgresServer

pytestmark = pytest.mark.postgres


def fetch(dsn: str, query: str, *, timeout: float = 10.0) -> object:
    """Run one query on a new connection and return the first column of its first row."""

    async def run() -> object:
        connection = await asyncpg.connect(dsn, timeout=timeout)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    return asyncio.run(run())


def test_select_one(postgres: PostgresServer) -> None:
    assert postgres.port != 5432
    assert postgres.url == f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/postgres"
    assert fetch(postgres.dsn, "select 1") == 1


def test_create_database(postgres: PostgresServer) -> None:
    url = postgres.create_database("printfleet_created")
    assert url == postgres.url_for("printfleet_created")
    assert fetch(postgres.dsn_for("printfleet_created"), "select current_database()") == (
        "printfleet_created"
    )


def test_kill_then_restart_keeps_committed_data(fresh_postgres: PostgresServer) -> None:
    server = fresh_postgres
    fetch(server.dsn, "create table jobs as select 7 as id")
    port = server.port

    server.kill()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        fetch(server.dsn, "select 1")

    server.restart()
    assert server.port == port
    assert fetch(server.dsn, "select id from jobs") == 7
    assert "database system was interrupted" in server.log_tail(100)


def test_kill_reaps_the_server_and_all_its_workers(fresh_postgres: PostgresServer) -> None:
    assert fresh_postgres.pid is not None
    processes = [psutil.Process(fresh_postgres.pid)]
    processes += processes[0].children(recursive=True)
    assert len(processes) > 1  # checkpointer, writers, ...

    fresh_postgres.kill()
    assert [p.pid for p in processes if psutil.pid_exists(p.pid)] == []


def test_freeze_makes_connect_time_out_and_thaw_recovers(fresh_postgres: PostgresServer) -> None:
    fresh_postgres.freeze()
    with pytest.raises(TimeoutError):
        fetch(fresh_postgres.dsn, "select 1", timeout=0.5)

    fresh_postgres.thaw()
    assert fetch(fresh_postgres.dsn, "select 1") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the user switch happens only when run as root")
def test_runs_as_the_postgres_user_when_root(postgres: PostgresServer) -> None:
    assert postgres.pid is not None
    assert psutil.Process(postgres.pid).username() == "postgres"
