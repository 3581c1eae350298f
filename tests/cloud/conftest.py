"""Store fixtures: a migrated database on SQLite (a temp file) and on PostgreSQL (the suite's own
server), so that every store test runs on both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from printfleet.cloud.migrations import upgrade
from printfleet.cloud.store import PrinterRecord, Store, UserRecord, open_store
from printfleet.testing import PostgresServer

T0 = 1_750_000_000_000
"""The fake clock's start, in cloud milliseconds."""


class FakeClock:
    """The cloud clock, moved by hand."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of this test's own: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"store_{uuid.uuid4().hex}")


@pytest_asyncio.fixture
async def migrated_url(database_url: str) -> str:
    """``database_url`` with the store's schema."""
    await upgrade(database_url)
    return database_url


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock."""
    return FakeClock()


@pytest_asyncio.fixture
async def store(migrated_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """An open store on a migrated database, closed after the test."""
    async with await open_store(migrated_url, clock=clock) as opened:
        yield opened


class Seed:
    """Two users and two printers of one model, owned by ``owner``."""

    def __init__(self, owner: UserRecord, other: UserRecord, printers: list[PrinterRecord]) -> None:
        self.owner = owner
        self.other = other
        self.printers = printers
        self.sha256 = "ab" * 32


@pytest_asyncio.fixture
async def seed(store: Store) -> Seed:
    """Users and printers to hang jobs, shares and alerts on."""
    owner = await store.accounts.create_user(
        "Owner@Example.org", display_name="Owner", password_hash="h1"
    )
    other = await store.accounts.create_user(
        "other@example.org", display_name="Other", password_hash="h2"
    )
    printers = [
        await store.printers.create(
            printer_id,
            owner_id=owner.id,
            name=printer_id.upper(),
            model="mk4",
            broker_username=f"broker-{printer_id}",
            broker_password_hash="bh",
        )
        for printer_id in ("p1", "p2")
    ]
    return Seed(owner, other, printers)
