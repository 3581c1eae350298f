"""Maintenance counters: each printer's print hours and, for each part, when it was last
serviced, at how many hours, how often it should be, and whether its reminder went out.

Print hours are statistics' own (:meth:`~printfleet.cloud.store.stats.JobHistory.print_hours`):
from the last start command that may have reached the printer to the job's end, for jobs that
may have printed (completed, failed, cancelled). A part never serviced through printfleet counts
from the printer's first print.

A part's reminder is an alert whose id is derived from the printer, the part and the service it
counts from (:func:`reminder_id`): raised twice, it is kept once, and the service that ends it
knows which alert to resolve, in the same transaction that records the service.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printfleet.cloud.store.engine import Database
from printfleet.cloud.store.models import Alert, PrinterMaintenance
from printfleet.cloud.store.stats import JobHistory

PARTS = ("nozzle", "belts")
"""The parts printfleet keeps service counters for."""

_REMINDERS = uuid.UUID("5d0b6a43-63b1-4f4e-8a4b-6f1c2d9e7a10")


@dataclass(frozen=True, slots=True)
class PartService:
    """A part's service record; a part with none stored reads as never serviced."""

    part: str
    interval_h: float | None
    """Print hours between services; None: the cloud's default for the part."""
    serviced_at: int | None
    """When it was last marked serviced (cloud ms); None: never."""
    hours_at_service: float
    """The printer's print hours at that service (0 if never serviced)."""
    alerted_at: int | None
    """When the reminder since that service was raised; None: not yet."""


@dataclass(frozen=True, slots=True)
class MaintenanceState:
    """A printer's print hours and the service record of every part."""

    printer_id: str
    print_hours: float
    parts: tuple[PartService, ...]
    """Every part of :data:`PARTS`, in that order."""

    def part(self, name: str) -> PartService:
        """The record of the part called ``name`` (one of :data:`PARTS`)."""
        return next(part for part in self.parts if part.part == name)


def reminder_id(printer_id: str, part: str, serviced_at: int | None) -> str:
    """The id of the alert that reminds of ``part``'s service, counting from the service at
    ``serviced_at`` (None: never serviced): one reminder per part and service."""
    since = "never" if serviced_at is None else str(serviced_at)
    return str(uuid.uuid5(_REMINDERS, "\x1f".join((printer_id, part, since))))


class MaintenanceLog:
    """The repository of maintenance counters; what is due is the use case's decision."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._history = JobHistory(database)

    async def print_hours(self, printer_id: str) -> float:
        """The hours the printer has printed, over every ended job."""
        return (await self._history.print_hours(printer_id)).get(printer_id, 0.0)

    async def state(self, printer_id: str) -> MaintenanceState:
        """The printer's print hours and its parts' service records."""
        hours = await self.print_hours(printer_id)
        async with self._db.transaction(write=False) as session:
            return await _state(session, printer_id, hours)

    async def mark_serviced(
        self, printer_id: str, part: str, *, resolution: str
    ) -> MaintenanceState:
        """Record that ``part`` was serviced now: its hours count from the printer's present
        print hours, the reminder of the service before is resolved with ``resolution``, and
        a new one may be raised when the part is due again. Raises :class:`NotFound` for a
        printer the store does not have."""
        now = self._db.now()
        hours = await self.print_hours(printer_id)
        async with self._db.transaction(write=True) as session:
            before = await session.scalar(
                select(PrinterMaintenance.serviced_at).where(*_is(printer_id, part))
            )
            await _resolve(session, reminder_id(printer_id, part, before), now, resolution)
            serviced = {"serviced_at": now, "hours_at_service": hours, "alerted_at": None}
            await session.execute(
                self._db.insert(PrinterMaintenance)
                .values(printer_id=printer_id, part=part, interval_h=None, **serviced)
                .on_conflict_do_update(index_elements=_KEY, set_=serviced)
            )
            return await _state(session, printer_id, hours)

    async def set_interval(
        self, printer_id: str, part: str, interval_h: float | None
    ) -> MaintenanceState:
        """Service ``part`` every ``interval_h`` print hours (None: the default). Raises
        :class:`NotFound` for a printer the store does not have."""
        hours = await self.print_hours(printer_id)
        async with self._db.transaction(write=True) as session:
            await session.execute(
                self._db.insert(PrinterMaintenance)
                .values(
                    printer_id=printer_id,
                    part=part,
                    interval_h=interval_h,
                    serviced_at=None,
                    hours_at_service=0.0,
                    alerted_at=None,
                )
                .on_conflict_do_update(index_elements=_KEY, set_={"interval_h": interval_h})
            )
            return await _state(session, printer_id, hours)

    async def mark_reminded(self, printer_id: str, part: str, *, serviced_at: int | None) -> bool:
        """Note that the reminder of ``part`` since the service at ``serviced_at`` was raised.

        False, noting nothing, if the part was serviced again meanwhile: the note must never
        silence the next service's reminder.
        """
        now = self._db.now()
        same_service = (
            PrinterMaintenance.serviced_at.is_(None)
            if serviced_at is None
            else PrinterMaintenance.serviced_at == serviced_at
        )
        async with self._db.transaction(write=True) as session:
            noted = await session.scalar(
                self._db.insert(PrinterMaintenance)
                .values(
                    printer_id=printer_id,
                    part=part,
                    interval_h=None,
                    serviced_at=serviced_at,
                    hours_at_service=0.0,
                    alerted_at=now,
                )
                .on_conflict_do_update(
                    index_elements=_KEY, set_={"alerted_at": now}, where=same_service
                )
                .returning(PrinterMaintenance.part)
            )
        return noted is not None

    async def resolve_reminder(
        self, printer_id: str, part: str, *, serviced_at: int | None, resolution: str
    ) -> bool:
        """Resolve the reminder of ``part`` since the service at ``serviced_at`` if it is
        open; whether it was."""
        async with self._db.transaction(write=True) as session:
            alert_id = reminder_id(printer_id, part, serviced_at)
            return await _resolve(session, alert_id, self._db.now(), resolution)


_KEY = [PrinterMaintenance.printer_id, PrinterMaintenance.part]


def _is(printer_id: str, part: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return PrinterMaintenance.printer_id == printer_id, PrinterMaintenance.part == part


async def _resolve(session: AsyncSession, alert_id: str, now: int, resolution: str) -> bool:
    resolved = await session.scalar(
        update(Alert)
        .where(Alert.id == alert_id, Alert.resolved_at.is_(None))
        .values(resolved_at=now, resolution=resolution)
        .returning(Alert.id)
    )
    return resolved is not None


async def _state(session: AsyncSession, printer_id: str, hours: float) -> MaintenanceState:
    rows = {
        row.part: row
        for row in await session.scalars(
            select(PrinterMaintenance).where(PrinterMaintenance.printer_id == printer_id)
        )
    }
    parts = tuple(_part(part, rows.get(part)) for part in PARTS)
    return MaintenanceState(printer_id, hours, parts)


def _part(part: str, row: PrinterMaintenance | None) -> PartService:
    if row is None:
        return PartService(part, None, None, 0.0, None)
    return PartService(part, row.interval_h, row.serviced_at, row.hours_at_service, row.alerted_at)
