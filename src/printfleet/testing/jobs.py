"""``MemoryJobs``: the dispatcher's ``JobRepository`` in memory, with the store's rules.

Compare-and-set saves on a version, open jobs oldest first (the unended, and the cancelled a
printer may still run), idempotent creation by key. ``tests/cloud/test_store_jobs_contract.py``
holds it to the same cases as the SQL store on SQLite and PostgreSQL, so the shell tests, the
chaos world and the deterministic simulation that run on it run on the store's behaviour.

Nothing here ever waits: the simulation drives the dispatcher's coroutines without an event
loop, which works only while every port answers at once.
"""

import asyncio
from dataclasses import replace

from printfleet.cloud.dispatch.dispatcher import StoredJob
from printfleet.cloud.store.errors import Conflict, NotFound
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobState


class MemoryJobs:
    """Jobs in a dict; every save bumps the version, keeps the job's states, wakes waiters."""

    def __init__(self, *, file_size: int = 0) -> None:
        self.rows: dict[str, StoredJob] = {}
        self.audit_log: list[tuple[str, str, str | None]] = []
        """``(action, job id, command id)`` of everything the dispatcher audited."""
        self.history: dict[str, list[JobState]] = {}
        """Job id -> every state it was saved in, in order."""
        self.changed = asyncio.Condition()
        self._file_size = file_size
        self._by_key: dict[str, str] = {}
        self._in_order = True

    def add(self, job: StoredJob) -> None:
        """Put ``job`` in as it is (its version included)."""
        if self.rows:
            # Jobs usually come in the order they were made; sort only when they did not.
            newest = next(reversed(self.rows.values())).view
            if (job.view.created_at, job.view.id) < (newest.created_at, newest.id):
                self._in_order = False
        self.rows[job.view.id] = job
        self.history[job.view.id] = [job.view.state]

    async def create(self, view: JobView, *, owner: str, key: str | None) -> tuple[str, bool]:
        """Add a job; with an idempotency key already used, the existing job instead."""
        if key is not None and key in self._by_key:
            return self._by_key[key], False
        self.add(StoredJob(view, 1, owner, "part.gcode", self._file_size))
        if key is not None:
            self._by_key[key] = view.id
        return view.id, True

    async def open_jobs(self) -> list[StoredJob]:
        """Every job not over (and cancelled ones a printer may still run), oldest first."""
        open_jobs = [
            job
            for job in self.rows.values()
            if not job.view.state.terminal
            or (job.view.state is JobState.CANCELLED and job.view.assigned_printer is not None)
        ]
        if not self._in_order:
            open_jobs.sort(key=lambda job: (job.view.created_at, job.view.id))
        return open_jobs

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set on the version; the new version."""
        row = self.rows.get(job.id)
        if row is None:
            msg = f"no job {job.id}"
            raise NotFound(msg)
        if row.version != expected_version:
            raise Conflict(job.id, expected_version, row.version)
        if row.view.state.terminal and job.state is not row.view.state:
            msg = f"job {job.id} already ended {row.view.state.value}"
            raise ValueError(msg)
        self.rows[job.id] = replace(row, view=job, version=row.version + 1)
        if self.history[job.id][-1] is not job.state:
            self.history[job.id].append(job.state)
        async with self.changed:
            self.changed.notify_all()
        return row.version + 1

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Kept for tests to read."""
        del detail
        self.audit_log.append((action, job.id, command_id))

    async def job(self, job_id: str) -> JobView | None:
        """One job as stored now."""
        row = self.rows.get(job_id)
        return None if row is None else row.view

    async def states(self) -> dict[str, int]:
        """How many jobs are in each state."""
        counts: dict[str, int] = {}
        for job in self.rows.values():
            counts[job.view.state.value] = counts.get(job.view.state.value, 0) + 1
        return counts

    def user_id(self, user: str) -> str:
        """A person's id in this store: their name."""
        return user

    async def wait_for_state(self, job_id: str, state: JobState, within: float) -> None:
        """Wait until the job is saved in ``state`` (TimeoutError after ``within`` seconds)."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: self.rows[job_id].view.state is state)
