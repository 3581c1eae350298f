"""The store as the dispatcher sees it: open jobs with what staging needs, compare-and-set saves."""

from printfleet.cloud.dispatcher import StoredJob
from printfleet.cloud.store import Actor, Store
from printfleet.protocol.dispatch import JobView


class StoreJobs:
    """Adapts :class:`Store` to the dispatcher's ``JobRepository``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def open_jobs(self) -> list[StoredJob]:
        """Open jobs, each with its file's name and size (one extra query for all files)."""
        records = await self.store.open_jobs()
        files = await self.store.files_by_id(
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
                )
            )
        return stored

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set; the store raises ``Conflict`` if someone moved the job first."""
        record = await self.store.save_job(job, expected_version=expected_version)
        return record.version

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Log what the dispatcher sent, to which printer, and what became of it."""
        await self.store.append_audit(
            Actor.system("dispatcher"),
            action,
            printer_id=job.assigned_printer,
            job_id=job.id,
            command_id=command_id,
            detail={"detail": detail},
        )
