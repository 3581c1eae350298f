"""The audit log: who or what did each thing to a printer or a job, and on whose authority (S1).

Other repositories write their audit entries in the same transaction as the change they record,
through :func:`audit_row`; :class:`AuditLog` reads the log and adds stand-alone entries.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, select

from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.models import AuditEntry, Printer
from printfleet.cloud.store.records import AuditRecord, audit_record
from printfleet.cloud.store.values import Actor, AuditNote, JSONValue
from printfleet.protocol.dispatch import JobView


def audit_row(
    at: int,
    actor: Actor,
    action: str,
    *,
    printer_id: str | None = None,
    job_id: str | None = None,
    command_id: str | None = None,
    detail: Mapping[str, JSONValue] | None = None,
) -> AuditEntry:
    """An audit entry stamped ``at`` (cloud ms), to add to the transaction of what it records."""
    return AuditEntry(
        at=at,
        actor_kind=actor.kind,
        actor_id=actor.id,
        action=action,
        printer_id=printer_id,
        job_id=job_id,
        command_id=command_id,
        detail=dict(detail or {}),
    )


def job_audit_row(at: int, view: JobView, note: AuditNote) -> AuditEntry:
    """The entry for a change of the job ``view``, about its assigned (or chosen) printer."""
    return audit_row(
        at,
        note.actor,
        note.action,
        printer_id=view.assigned_printer or view.printer_id,
        job_id=view.id,
        command_id=note.command_id,
        detail=note.detail,
    )


class AuditLog:
    """The audit log's repository."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def append(
        self,
        actor: Actor,
        action: str,
        *,
        printer_id: str | None = None,
        job_id: str | None = None,
        command_id: str | None = None,
        detail: Mapping[str, JSONValue] | None = None,
    ) -> AuditRecord:
        """Add an entry to the audit log, stamped with the store's clock."""
        row = audit_row(
            self._db.now(),
            actor,
            action,
            printer_id=printer_id,
            job_id=job_id,
            command_id=command_id,
            detail=detail,
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
            await session.flush()
            return audit_record(row)

    async def for_job(self, job_id: str) -> list[AuditRecord]:
        """Everything logged about a job, in order: who created it, and each command and end."""
        return await self._where(AuditEntry.job_id == job_id)

    async def for_command(self, command_id: str) -> list[AuditRecord]:
        """Entries about one command; with :meth:`for_job` on their job they answer "who or
        what caused this command?"."""
        return await self._where(AuditEntry.command_id == command_id)

    async def for_printer(
        self, printer_id: str, *, since: int | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """A printer's most recent entries (at or after ``since``), in order."""
        conditions = [AuditEntry.printer_id == printer_id]
        if since is not None:
            conditions.append(AuditEntry.at >= since)
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(limit)
            )
            return [audit_record(row) for row in reversed(rows.all())]

    async def record_local_job(
        self, printer_id: str, job_id: str, *, outcome: str, detail: Mapping[str, JSONValue]
    ) -> bool:
        """Put a print a person started at the printer (LAN or screen) in its history, once.

        The entry is ``local_job.<outcome>`` by the printer, in its audit log. Printers send
        such reports again until acknowledged, so a job already recorded is not recorded twice:
        that returns False. Raises :class:`NotFound` for a printer this cloud does not know.
        """
        async with self._db.transaction(write=True) as session:
            await get_row(session, Printer, printer_id)
            recorded = await session.scalar(
                select(AuditEntry.id)
                .where(
                    AuditEntry.job_id == job_id,
                    AuditEntry.printer_id == printer_id,
                    AuditEntry.action.startswith("local_job."),
                )
                .limit(1)
            )
            if recorded is not None:
                return False
            session.add(
                audit_row(
                    self._db.now(),
                    Actor.printer(printer_id),
                    f"local_job.{outcome}",
                    printer_id=printer_id,
                    job_id=job_id,
                    detail=detail,
                )
            )
        return True

    async def record_plate_cleared(self, printer_id: str, event_id: str, *, message: str) -> bool:
        """Put a printer's own clearing of its plate (an auto-eject) in its audit log, once:
        ``plate.cleared`` by the printer, with its words as the evidence. A copy of the same
        event (the broker may deliver one twice) returns False. Raises :class:`NotFound` for a
        printer this cloud does not know."""
        async with self._db.transaction(write=True) as session:
            await get_row(session, Printer, printer_id)
            entries = await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.printer_id == printer_id, AuditEntry.action == "plate.cleared")
                .order_by(AuditEntry.id.desc())
                .limit(20)
            )
            if any((entry.detail or {}).get("event_id") == event_id for entry in entries):
                return False
            session.add(
                audit_row(
                    self._db.now(),
                    Actor.printer(printer_id),
                    "plate.cleared",
                    printer_id=printer_id,
                    detail={"event_id": event_id, "evidence": message},
                )
            )
        return True

    async def _where(self, condition: ColumnElement[bool]) -> list[AuditRecord]:
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(AuditEntry).where(condition).order_by(AuditEntry.id)
            )
            return [audit_record(row) for row in rows]
