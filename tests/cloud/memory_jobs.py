"""An in-memory ``JobRepository`` with the store's compare-and-set semantics, for shell tests."""

import asyncio
from dataclasses import replace

from printfleet.cloud.dispatcher import Conflict, StoredJob
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobState


class MemoryJobs:
    """Jobs in a dict; every save bumps the version and wakes waiters."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredJob] = {}
        self.audit_log: list[tuple[str, str, str | None]] = []
        self.history: dict[str, list[JobState]] = {}
        self.changed = asyncio.Condition()

    def add(self, job: StoredJob) -> None:
        self.rows[job.view.id] = job
        self.history[job.view.id] = [job.view.state]

    async def open_jobs(self) -> list[StoredJob]:
        return [
            job
            for job in self.rows.values()
            if not job.view.state.terminal
            or (job.view.state is JobState.CANCELLED and job.view.assigned_printer is not None)
        ]

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        row = self.rows[job.id]
        if row.version != expected_version:
            raise Conflict(job.id, expected_version, row.version)
        self.rows[job.id] = replace(row, view=job, version=row.version + 1)
        if self.history[job.id][-1] is not job.state:
            self.history[job.id].append(job.state)
        async with self.changed:
            self.changed.notify_all()
        return row.version + 1

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        self.audit_log.append((action, job.id, command_id))

    async def wait_for_state(self, job_id: str, state: JobState, within: float) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: self.rows[job_id].view.state is state)
