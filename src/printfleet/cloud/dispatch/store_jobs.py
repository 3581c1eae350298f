"""The store as the dispatcher sees it: open jobs with what staging needs, compare-and-set saves,
and the roster of printers with who may operate each, the settings each must apply, its pools
and its print hours."""

import time
from collections.abc import Callable

from printfleet.cloud.dispatch.dispatcher import RosterEntry, StoredJob
from printfleet.cloud.store import Actor, Store
from printfleet.cloud.store.stats import JobHistory
from printfleet.protocol.dispatch import JobView, SafetySettings
from printfleet.protocol.lifecycle import JobState


class StoreJobs:
    """Adapts :class:`Store` to the dispatcher's ``JobRepository``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def open_jobs(self) -> list[StoredJob]:
        """Open jobs, each with its file's name and size (one extra query for all files)."""
        records = await self.store.jobs.open()
        files = await self.store.files.by_id(
            {record.file_id for record in records if record.file_id is not None}
        )
        stored = []
        for record in records:
            file = files.get(record.file_id) if record.file_id is not None else None
            stored.append(
                StoredJob(
                    view=record.view,
                    version=record.version,
                    owner=record.owner_id,
                    file_name=file.name if file is not None else record.name,
                    file_size=file.size if file is not None else 0,
                    file_id=record.file_id,
                    notify_completion=record.notify_completion,
                )
            )
        return stored

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set; the store raises ``Conflict`` if someone moved the job first.

        A save that ends a job (expired, rejected, a printer's report of the end) is audited in
        the same transaction, so the log answers "why did this job end?" for every end (S1).
        A later save of an ended job (another cancel sent) logs nothing again.
        """
        if job.state.terminal:
            try:
                record = await self.store.jobs.record_terminal(
                    job,
                    expected_version=expected_version,
                    actor=_ended_by(job),
                    command_id=job.command_id,
                    detail={"reason": job.reason},
                )
            except ValueError:
                pass  # already ended at this version: a re-save, not an end
            else:
                return record.version
        record = await self.store.jobs.save(job, expected_version=expected_version)
        return record.version

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Log what the dispatcher sent, to which printer, and what became of it."""
        await self.store.audit.append(
            Actor.system("dispatcher"),
            action,
            printer_id=job.assigned_printer,
            job_id=job.id,
            command_id=command_id,
            detail={"detail": detail},
        )


PRINT_HOURS_REFRESH_S = 300.0
"""How often the roster sums print hours again: they only order equally good printers, and
the sum runs over every ended job."""


class StoreRoster:
    """Adapts :class:`Store` to the dispatcher's ``PrinterRoster``.

    Each read is three small queries (printers, operator shares, pool memberships); print
    hours, a sum over the whole history, are summed again every ``refresh_s`` seconds.
    """

    def __init__(
        self,
        store: Store,
        *,
        refresh_s: float = PRINT_HOURS_REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._history = JobHistory(store.database)
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._print_hours: dict[str, float] = {}
        self._summed_at: float | None = None

    async def roster(self) -> dict[str, RosterEntry]:
        """Every printer with its operators, desired settings and pools, read now (S1, S5)."""
        operators = await self.store.printers.operators()
        pools = await self.store.pools.memberships()
        hours = await self._hours()
        return {
            printer.id: RosterEntry(
                model=printer.model,
                operators=operators_of,
                desired=SafetySettings(plate_check=printer.plate_check),
                pools=pools.get(printer.id, frozenset()),
                print_hours=hours.get(printer.id, 0.0),
            )
            for printer, operators_of in operators
        }

    async def _hours(self) -> dict[str, float]:
        now = self._monotonic()
        if self._summed_at is None or now - self._summed_at >= self._refresh_s:
            self._print_hours = await self._history.print_hours()
            self._summed_at = now
        return self._print_hours

    async def audit(
        self, action: str, printer_id: str, *, command_id: str | None, detail: str
    ) -> None:
        """Log a settings command the dispatcher sent of its own accord."""
        await self.store.audit.append(
            Actor.system("dispatcher"),
            action,
            printer_id=printer_id,
            job_id=None,
            command_id=command_id,
            detail={"detail": detail},
        )


def _ended_by(job: JobView) -> Actor:
    # Expiry is the cloud's own doing; every other end the dispatcher records is what the
    # printer reported (an end, a refusal, its journal).
    if job.state is JobState.EXPIRED or job.assigned_printer is None:
        return Actor.system("expiry" if job.state is JobState.EXPIRED else "dispatcher")
    return Actor.printer(job.assigned_printer)
