"""Telemetry history: snapshots of each printer's state, kept for the charts and pruned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import CursorResult

from printfleet.cloud.store.engine import Database
from printfleet.cloud.store.models import Printer, TelemetrySample
from printfleet.cloud.store.records import TelemetryRecord, telemetry_record
from printfleet.cloud.store.values import JSONValue


class TelemetryLog:
    """The repository of telemetry snapshots; the caller decides how often (bounded writes)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def append(self, printer_id: str, *, at: int, data: Mapping[str, JSONValue]) -> None:
        """Store one telemetry snapshot."""
        async with self._db.transaction(write=True) as session:
            session.add(TelemetrySample(printer_id=printer_id, at=at, data=dict(data)))

    async def append_batch(self, samples: Sequence[TelemetryRecord]) -> int:
        """Store many snapshots in one transaction; how many were stored.

        Snapshots of printers the store does not know (never provisioned, or deleted since)
        are skipped rather than failing the batch they share with everyone else's.
        """
        if not samples:
            return 0
        async with self._db.transaction(write=True) as session:
            known = set(
                await session.scalars(
                    select(Printer.id).where(Printer.id.in_({s.printer_id for s in samples}))
                )
            )
            rows = [
                {"printer_id": s.printer_id, "at": s.at, "data": dict(s.data)}
                for s in samples
                if s.printer_id in known
            ]
            if rows:
                await session.execute(insert(TelemetrySample), rows)
            return len(rows)

    async def for_printer(
        self, printer_id: str, *, since: int | None = None, limit: int = 500
    ) -> list[TelemetryRecord]:
        """A printer's most recent snapshots (at or after ``since``), oldest first."""
        conditions = [TelemetrySample.printer_id == printer_id]
        if since is not None:
            conditions.append(TelemetrySample.at >= since)
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(TelemetrySample)
                .where(*conditions)
                .order_by(TelemetrySample.at.desc(), TelemetrySample.id.desc())
                .limit(limit)
            )
            return [telemetry_record(row) for row in reversed(rows.all())]

    async def prune(self, *, before: int) -> int:
        """Delete snapshots older than ``before``; returns how many."""
        async with self._db.transaction(write=True) as session:
            result = await session.execute(
                delete(TelemetrySample).where(TelemetrySample.at < before)
            )
            return cast("CursorResult[Any]", result).rowcount
