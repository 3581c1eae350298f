"""The store as the dispatcher sees it: open jobs with what staging needs, compare-and-set saves,
and the roster of printers with who may operate each and the settings each must apply."""

from printfleet.cloud.dispatch.dispatcher import RosterEntry, StoredJob
from printfleet.cloud.store import Actor, Store
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


class StoreRoster:
    """Adapts :class:`Store` to the dispatcher's ``PrinterRoster``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def roster(self) -> dict[str, RosterEntry]:
        """Every printer with its operators and desired settings, read now (S1, S5)."""
        return {
            printer.id: RosterEntry(
                model=printer.model,
                operators=operators,
                desired=SafetySettings(plate_check=printer.plate_check),
            )
            for printer, operators in await self.store.printers.operators()
        }

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
