"""One contract for the dispatcher's job repository, three implementations held to it.

``MemoryJobs`` (``printfleet.testing.jobs``) is what the shell tests, the chaos world and the
deterministic simulation run on; ``StoreJobs`` is the cloud's, over the SQL store on SQLite and
on PostgreSQL. The same cases run against each, so whatever the simulation proves, it proves on
the store's rules: compare-and-set saves, open jobs oldest first (and the cancelled a printer may
still run), ends that stay ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import pytest_asyncio
from tests.cloud.conftest import T0, FakeClock

from printfleet.cloud.dispatch.dispatcher import JobRepository, StoredJob
from printfleet.cloud.dispatch.store_jobs import StoreJobs
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.store import Conflict, NotFound, Store, open_store
from printfleet.protocol.dispatch import (
    JobView,
    cancel,
    cancel_sent,
    dispatched,
    expire,
    queried,
    staged_on,
    waiting,
)
from printfleet.protocol.dispatch_decisions import Waiting
from printfleet.protocol.dispatch_views import Requirements, WaitCode
from printfleet.protocol.lifecycle import JobEvent, JobState, transition
from printfleet.testing import PostgresServer
from printfleet.testing.jobs import MemoryJobs

SHA = "cd" * 32
HOUR = 3_600_000


@dataclass
class Jobs:
    """A repository under contract, and how to put a new queued job in it."""

    repository: JobRepository
    clock: FakeClock
    memory: MemoryJobs | None = None
    store: Store | None = None
    owner: str = "alice"

    async def add(self, *, printer_id: str | None = "p1", model: str | None = None) -> str:
        """A queued job created now (the clock's now); its id."""
        if self.memory is not None:
            view = JobView(
                id=str(uuid.uuid4()),
                created_at=self.clock.now,
                start_by=self.clock.now + HOUR,
                state=JobState.QUEUED,
                sha256=SHA,
                submitter=self.owner,
                printer_id=printer_id,
                model=model if printer_id is None else None,
            )
            job_id, _ = await self.memory.create(view, owner=self.owner, key=None)
            return job_id
        assert self.store is not None
        created = await self.store.jobs.create(
            self.owner,
            sha256=SHA,
            start_by=self.clock.now + HOUR,
            printer_id=printer_id,
            model=model if printer_id is None else "mk4",
        )
        return created.job.view.id

    async def add_for_pool(self, requirements: Requirements, priority: int) -> str:
        """A queued job for a pool of p1 and p2, with requirements and a priority; its id."""
        if self.memory is not None:
            view = JobView(
                id=str(uuid.uuid4()),
                created_at=self.clock.now,
                start_by=self.clock.now + HOUR,
                state=JobState.QUEUED,
                sha256=SHA,
                submitter=self.owner,
                pool_id="farm",
                requirements=requirements,
                priority=priority,
            )
            job_id, _ = await self.memory.create(view, owner=self.owner, key=None)
            return job_id
        assert self.store is not None
        pool = await self.store.pools.create(self.owner, "farm", ["p1", "p2"])
        created = await self.store.jobs.create(
            self.owner,
            sha256=SHA,
            start_by=self.clock.now + HOUR,
            pool_id=pool.id,
            requirements=requirements,
            priority=priority,
        )
        return created.job.view.id

    async def get(self, job_id: str) -> StoredJob | None:
        """The job as the dispatcher sees it, if it is open."""
        return next((j for j in await self.repository.open_jobs() if j.view.id == job_id), None)

    async def open_one(self, job_id: str) -> StoredJob:
        stored = await self.get(job_id)
        assert stored is not None, f"job {job_id} is not open"
        return stored


async def _store_jobs(url: str, clock: FakeClock) -> AsyncIterator[Jobs]:
    await upgrade(url)
    async with await open_store(url, clock=clock) as store:
        owner = await store.accounts.create_user(
            "owner@example.org", display_name="Owner", password_hash="h"
        )
        for printer_id in ("p1", "p2"):
            await store.printers.create(
                printer_id,
                owner_id=owner.id,
                name=printer_id,
                model="mk4",
                broker_username=f"broker-{printer_id}",
                broker_password_hash="bh",
            )
        yield Jobs(StoreJobs(store), clock, store=store, owner=owner.id)


@pytest_asyncio.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def jobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Jobs]:
    """The repository under contract: in memory, or the store's on each database."""
    clock = FakeClock()
    if request.param == "memory":
        memory = MemoryJobs()
        yield Jobs(memory, clock, memory=memory)
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"contract_{uuid.uuid4().hex}")
    async for arranged in _store_jobs(url, clock):
        yield arranged


pytestmark = pytest.mark.asyncio


def transition_to(view: JobView, event: JobEvent) -> JobView:
    """``view`` moved by a printer's report of ``event``."""
    return replace(view, state=transition(view.state, event))


async def test_a_new_job_is_open_queued_and_as_created(jobs: Jobs) -> None:
    job_id = await jobs.add()
    stored = await jobs.open_one(job_id)
    view = stored.view
    assert (view.id, view.state, view.created_at, view.start_by) == (
        job_id,
        JobState.QUEUED,
        T0,
        T0 + HOUR,
    )
    assert (view.sha256, view.submitter, view.printer_id, view.assigned_printer) == (
        SHA,
        jobs.owner,
        "p1",
        None,
    )


async def test_a_save_at_the_stored_version_is_read_back_whole_at_the_next(jobs: Jobs) -> None:
    job_id = await jobs.add()
    stored = await jobs.open_one(job_id)
    command_id = str(uuid.uuid4())
    staging = staged_on(stored.view, "p1", command_id, T0 + 5)
    version = await jobs.repository.save_job(staging, expected_version=stored.version)
    assert version == stored.version + 1
    reread = await jobs.open_one(job_id)
    assert (reread.view, reread.version) == (staging, version)
    # Every field a dispatch decision writes comes back as written.
    staged = transition_to(staging, JobEvent.STAGED)
    start = dispatched(staged, str(uuid.uuid4()), T0 + 30_000)
    asked = waiting(
        queried(start, str(uuid.uuid4()), T0 + 40_000),
        Waiting(job_id, WaitCode.REPORT_STALE, "no answer from p1 yet"),
    )
    # The queue's fields a save writes come back too: the wait code and the priority.
    asked = replace(asked, priority=7)
    version = await jobs.repository.save_job(asked, expected_version=version)
    reread = await jobs.open_one(job_id)
    assert (reread.view, reread.version) == (asked, version)


async def test_a_pool_job_keeps_its_pool_requirements_and_priority(jobs: Jobs) -> None:
    wanted = Requirements(material="PETG", nozzle_um=400)
    job_id = await jobs.add_for_pool(wanted, priority=5)
    view = (await jobs.open_one(job_id)).view
    assert (view.model, view.printer_id, view.requirements, view.priority) == (
        None,
        None,
        wanted,
        5,
    )
    assert view.pool_id is not None
    assert view.wait is None


async def test_a_save_at_a_stale_version_conflicts_and_changes_nothing(jobs: Jobs) -> None:
    job_id = await jobs.add()
    stored = await jobs.open_one(job_id)
    first = staged_on(stored.view, "p1", str(uuid.uuid4()), T0 + 5)
    await jobs.repository.save_job(first, expected_version=stored.version)
    second = staged_on(stored.view, "p2", str(uuid.uuid4()), T0 + 6)
    with pytest.raises(Conflict):
        await jobs.repository.save_job(second, expected_version=stored.version)
    assert (await jobs.open_one(job_id)).view == first


async def test_saving_a_job_nobody_created_is_not_found(jobs: Jobs) -> None:
    await jobs.add()
    stranger = JobView(
        id=str(uuid.uuid4()), created_at=T0, start_by=T0 + HOUR, state=JobState.QUEUED, sha256=SHA
    )
    with pytest.raises(NotFound):
        await jobs.repository.save_job(stranger, expected_version=1)


async def test_open_jobs_are_the_unended_oldest_first_and_the_cancelled_still_assigned(
    jobs: Jobs,
) -> None:
    queued = await jobs.add()
    jobs.clock.advance(1)
    expired = await jobs.add()
    jobs.clock.advance(1)
    cancelled_unassigned = await jobs.add()
    jobs.clock.advance(1)
    cancelled_in_flight = await jobs.add()
    jobs.clock.advance(1)
    model_wide = await jobs.add(printer_id=None, model="mk4")

    stored = await jobs.open_one(expired)
    await jobs.repository.save_job(expire(stored.view).job, expected_version=stored.version)
    stored = await jobs.open_one(cancelled_unassigned)
    await jobs.repository.save_job(cancel(stored.view).job, expected_version=stored.version)
    stored = await jobs.open_one(cancelled_in_flight)
    staged = transition_to(staged_on(stored.view, "p2", str(uuid.uuid4()), T0), JobEvent.STAGED)
    in_flight = dispatched(staged, str(uuid.uuid4()), T0 + 30_000)
    version = await jobs.repository.save_job(in_flight, expected_version=stored.version)
    # A cancel can cross a start in flight: the printer may be running it, so it stays open.
    version = await jobs.repository.save_job(cancel(in_flight).job, expected_version=version)

    ids = [job.view.id for job in await jobs.repository.open_jobs()]
    assert ids == [queued, cancelled_in_flight, model_wide]
    crossed = await jobs.open_one(cancelled_in_flight)
    assert (crossed.view.state, crossed.version) == (JobState.CANCELLED, version)


async def test_an_ended_job_keeps_its_end(jobs: Jobs) -> None:
    job_id = await jobs.add()
    stored = await jobs.open_one(job_id)
    staged = transition_to(staged_on(stored.view, "p1", str(uuid.uuid4()), T0), JobEvent.STAGED)
    version = await jobs.repository.save_job(staged, expected_version=stored.version)
    in_flight = dispatched(staged, str(uuid.uuid4()), T0 + 30_000)
    version = await jobs.repository.save_job(in_flight, expected_version=version)
    ended = cancel(in_flight).job
    version = await jobs.repository.save_job(ended, expected_version=version)
    # Noting a cancel sent to its printer is a save of the ended job, in the same end ...
    noted = cancel_sent(ended, T0 + 50)
    version = await jobs.repository.save_job(noted, expected_version=version)
    assert (await jobs.open_one(job_id)).view == noted
    # ... but nothing brings it back.
    with pytest.raises(ValueError, match="ended"):
        await jobs.repository.save_job(in_flight, expected_version=version)
    assert (await jobs.open_one(job_id)).view == noted


async def test_an_audit_entry_is_no_save(jobs: Jobs) -> None:
    job_id = await jobs.add()
    stored = await jobs.open_one(job_id)
    await jobs.repository.audit("stage:sent", stored.view, command_id=None, detail="to p1")
    assert (await jobs.open_one(job_id)).version == stored.version
