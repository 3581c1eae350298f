"""Ended jobs as history: one row per job with what statistics need of its file, printer and
submitter, read in one query (no ORM objects leave it)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from printfleet.cloud.store.engine import Database
from printfleet.cloud.store.models import AuditEntry, File, Job, Pool, Printer, User
from printfleet.protocol.lifecycle import TERMINAL_STATES, JobState

START_ACTIONS = ("start:sent", "start:unknown")
"""The audit actions of a start command that may have reached its printer (the dispatcher logs
``start:<publish outcome>``)."""

PRINTED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
"""The ends a print may have run before: expired and rejected jobs never printed."""

_MS_PER_HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class JobHistoryRow:
    """One ended job, as statistics count it."""

    job_id: str
    state: JobState
    submitter_id: str
    submitter_email: str
    printer_id: str | None
    """The printer it was assigned to, else the one it was submitted for."""
    model: str | None
    """That printer's model, else the model the job was submitted for."""
    started_at: int | None
    """When the last start command that may have reached the printer was sent (cloud ms); None
    if none was."""
    ended_at: int
    filament_mm: float | None
    filament_g: float | None
    material: str | None
    pool_name: str | None = None
    """The name of the pool the job was submitted to, if that pool is the reader's own (other
    people's pools stay theirs); None otherwise, and for a job not submitted to a pool."""


class JobHistory:
    """Ended jobs a user may see: those they submitted and those on printers they own."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def ended_jobs(
        self, user_id: str, *, since: int | None = None, until: int | None = None
    ) -> list[JobHistoryRow]:
        """Jobs that ended at or after ``since`` and before ``until`` (cloud ms), oldest end
        first."""
        printer = aliased(Printer)
        printer_id = func.coalesce(Job.assigned_printer, Job.printer_id)
        started = (
            select(func.max(AuditEntry.at))
            .where(AuditEntry.job_id == Job.id, AuditEntry.action.in_(START_ACTIONS))
            .correlate(Job)
            .scalar_subquery()
        )
        conditions: list[ColumnElement[bool]] = [
            Job.state.in_(sorted(TERMINAL_STATES)),
            Job.ended_at.is_not(None),
            or_(Job.owner_id == user_id, printer.owner_id == user_id),
        ]
        if since is not None:
            conditions.append(Job.ended_at >= since)
        if until is not None:
            conditions.append(Job.ended_at < until)
        query = (
            select(
                Job.id,
                Job.state,
                Job.owner_id,
                User.email,
                printer_id,
                func.coalesce(printer.model, Job.model),
                started,
                Job.ended_at,
                File.file_metadata,
                case((Pool.owner_id == user_id, Pool.name), else_=None),
            )
            .join(User, User.id == Job.owner_id)
            .outerjoin(printer, printer.id == printer_id)
            .outerjoin(File, File.id == Job.file_id)
            .outerjoin(Pool, Pool.id == Job.pool_id)
            .where(and_(*conditions))
            .order_by(Job.ended_at, Job.id)
        )
        async with self._db.transaction(write=False) as session:
            rows = (await session.execute(query)).all()
        history = []
        for job_id, state, owner_id, email, on, model, started_at, ended_at, document, pool in rows:
            metadata = document or {}
            history.append(
                JobHistoryRow(
                    job_id=job_id,
                    state=state,
                    submitter_id=owner_id,
                    submitter_email=email,
                    printer_id=on,
                    model=model,
                    started_at=started_at,
                    ended_at=ended_at,
                    filament_mm=_number(metadata.get("filament_mm")),
                    # Stored only where the slicer metadata gave them; never derived from length.
                    filament_g=_number(metadata.get("filament_g")),
                    material=_text(metadata.get("material")),
                    pool_name=pool,
                )
            )
        return history

    async def print_hours(self, printer_id: str | None = None) -> dict[str, float]:
        """Printer id -> hours printed so far, over every ended job (one query); of
        ``printer_id`` alone if given.

        Counted as statistics count them: from the last start command that may have reached
        the printer to the job's end, for jobs that ended completed, failed or cancelled.
        """
        started = (
            select(func.max(AuditEntry.at))
            .where(AuditEntry.job_id == Job.id, AuditEntry.action.in_(START_ACTIONS))
            .correlate(Job)
            .scalar_subquery()
        )
        query = (
            select(Job.assigned_printer, func.sum(Job.ended_at - started))
            .where(
                Job.state.in_(sorted(PRINTED_STATES)),
                Job.assigned_printer.is_not(None)
                if printer_id is None
                else Job.assigned_printer == printer_id,
                Job.ended_at >= started,
            )
            .group_by(Job.assigned_printer)
        )
        async with self._db.transaction(write=False) as session:
            rows = (await session.execute(query)).all()
        return {
            printer_id: int(total or 0) / _MS_PER_HOUR
            for printer_id, total in rows
            if printer_id is not None
        }


def _number(value: object) -> float | None:
    # JSON does not tell 3.0 from 3; a bool is not a quantity.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
