"""The job store and roster of a chaos world: in memory with the real store's rules, or the real
store on a PostgreSQL of the world's own; and the dispatch point where a fault can strike between
recording a start and publishing it.
"""

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from printfleet.chaos.world_settings import WorldSettings
from printfleet.cloud.dispatch.dispatcher import JobRepository, PrinterRoster, StoredJob
from printfleet.cloud.dispatch.store_jobs import StoreJobs, StoreRoster
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.store import Store, new_id, open_store
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobState
from printfleet.sim.samples import make_sample_gcode
from printfleet.testing import PostgresServer
from printfleet.testing.jobs import MemoryJobs
from printfleet.testing.roster import MemoryRoster

GCODE = make_sample_gcode(4, heat=False).encode()
SHA256 = hashlib.sha256(GCODE).hexdigest()


# ---------------------------------------------------------------------------------------------
# The store.


class StoreBackedJobs:
    """Jobs in the real store (SQLite or PostgreSQL), through the cloud's own adapter."""

    def __init__(self, store: Store, owner_id: str, file_id: str) -> None:
        self.store = store
        self._adapter = StoreJobs(store)
        self._owner_id = owner_id
        self._file_id = file_id

    @classmethod
    async def open(cls, url: str, printers: dict[str, str]) -> "StoreBackedJobs":
        """Migrate, then provision one user, the printers (id -> model) and the one file."""
        await upgrade(url)
        store = await open_store(url)
        user = await store.accounts.create_user(
            f"chaos-{new_id()}@example.org",
            display_name="chaos user",
            password_hash="-",  # noqa: S106 - nobody logs in
        )
        for printer_id, model in printers.items():
            await store.printers.create(
                printer_id,
                owner_id=user.id,
                name=printer_id,
                model=model,
                broker_username=f"{printer_id}-{new_id()}",
                broker_password_hash="-",  # noqa: S106 - the agents connect anonymously
            )
        file = await store.files.create(
            user.id, name="part.gcode", size=len(GCODE), sha256=SHA256, storage_key="chaos"
        )
        return cls(store, user.id, file.id)

    def user_id(self, user: str) -> str:
        """A person's id in this store: there is one user, and every printer is theirs."""
        del user
        return self._owner_id

    async def job(self, job_id: str) -> JobView | None:
        """One job as stored now."""
        try:
            record = await self.store.jobs.load(job_id)
        except Exception:  # noqa: BLE001 - unknown, or a store still recovering: not known now
            return None
        return record.view

    async def create(self, view: JobView, *, owner: str, key: str | None) -> tuple[str, bool]:
        """Create through the store (idempotent by key, per owner)."""
        created = await self.store.jobs.create(
            self._owner_id,
            sha256=view.sha256,
            start_by=view.start_by,
            printer_id=view.printer_id,
            model=view.model,
            file_id=self._file_id,
            name="part.gcode",
            idempotency_key=key,
        )
        return created.job.view.id, created.created

    async def open_jobs(self) -> list[StoredJob]:
        """The dispatcher's view of the store."""
        return await self._adapter.open_jobs()

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set, terminal ends audited, as in production."""
        return await self._adapter.save_job(job, expected_version=expected_version)

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """The store's audit log."""
        await self._adapter.audit(action, job, command_id=command_id, detail=detail)

    async def states(self) -> dict[str, int]:
        """How many jobs are in each state."""
        counts: dict[str, int] = {}
        older_than = None
        while True:
            page = await self.store.jobs.for_owner(self._owner_id, older_than=older_than)
            for record in page:
                state = record.view.state.value
                counts[state] = counts.get(state, 0) + 1
            if not page:
                return counts
            older_than = page[-1].view.id

    async def close(self) -> None:
        """Close the store."""
        await self.store.close()


class JobStore(Protocol):
    """What the world needs of a job store: the dispatcher's repository, creation, a census."""

    async def create(self, view: JobView, *, owner: str, key: str | None) -> tuple[str, bool]:
        """Create a job (or find the one with this idempotency key)."""
        ...

    async def open_jobs(self) -> list[StoredJob]:
        """Jobs not over."""
        ...

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set."""
        ...

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Log a dispatcher action."""
        ...

    async def states(self) -> dict[str, int]:
        """Jobs per state."""
        ...

    def user_id(self, user: str) -> str:
        """The id the store knows ``user`` by (what rosters and jobs name them with)."""
        ...

    async def job(self, job_id: str) -> JobView | None:
        """One job as stored now (None if unknown)."""
        ...


class DispatchPoint:
    """Wraps a job store so a fault can strike right after the cloud records a start as
    dispatched and before it publishes it: the moment a blind re-send, or a start held in
    flight, would do harm."""

    def __init__(self, inner: JobRepository) -> None:
        self.inner = inner
        self.armed: Callable[[JobView], None] | None = None
        """Called once, at the next recorded dispatch."""
        self.struck = asyncio.Event()

    async def strike_next(self, fault: Callable[[JobView], None], *, within: float) -> bool:
        """Arm ``fault`` and wait until it struck (False if no dispatch came in time)."""
        self.struck.clear()
        self.armed = fault
        try:
            async with asyncio.timeout(within):
                await self.struck.wait()
        except TimeoutError:
            self.armed = None
            return False
        return True

    async def open_jobs(self) -> list[StoredJob]:
        """Delegated."""
        return await self.inner.open_jobs()

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Delegated; then, if armed and this records a dispatch, the fault."""
        version = await self.inner.save_job(job, expected_version=expected_version)
        fault = self.armed
        if fault is not None and job.state is JobState.DISPATCHED:
            self.armed = None
            fault(job)
            self.struck.set()
            await asyncio.sleep(0)  # a cancellation the fault made lands here, before publishing
        return version

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Delegated."""
        await self.inner.audit(action, job, command_id=command_id, detail=detail)


@dataclass(frozen=True, slots=True)
class WorldStores:
    jobs: JobStore
    roster: PrinterRoster
    tenants: MemoryRoster | None
    postgres: PostgresServer | None = None
    url: str | None = None


async def open_stores(
    settings: WorldSettings,
    models: dict[str, str],
    owners: dict[str, str],
    stack: contextlib.AsyncExitStack,
) -> WorldStores:
    """Jobs and the roster: in memory (owners as the settings say), or in the real store on a
    PostgreSQL of the world's own (one user owning every printer)."""
    if settings.database == "memory":
        tenants = MemoryRoster()
        for printer_id, model in models.items():
            tenants.add(printer_id, model, owners[printer_id])
        return WorldStores(MemoryJobs(file_size=len(GCODE)), tenants, tenants)
    if settings.owners:
        msg = "a world on PostgreSQL has one owner; tenants need the memory store"
        raise ValueError(msg)
    postgres = await asyncio.to_thread(PostgresServer().start)
    stack.callback(postgres.close)
    url = await asyncio.to_thread(postgres.create_database, "chaos")
    stored = await StoreBackedJobs.open(url, models)
    stack.push_async_callback(stored.close)
    return WorldStores(stored, StoreRoster(stored.store), None, postgres, url)
