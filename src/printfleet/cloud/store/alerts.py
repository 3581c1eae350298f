"""Alerts printers raised (a thermal fault, a plate to confirm, a printer gone), who
acknowledged them, and which cleared by themselves."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, or_, select

from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.ids import new_id
from printfleet.cloud.store.models import Alert
from printfleet.cloud.store.records import AlertRecord, alert_record
from printfleet.cloud.store.values import Severity


class Alerts:
    """The repository of alerts; sending them on to people is the notifier's job."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(
        self,
        printer_id: str,
        *,
        kind: str,
        severity: Severity,
        message: str,
        job_id: str | None = None,
        alert_id: str | None = None,
    ) -> AlertRecord:
        """Raise an alert.

        ``alert_id`` (a UUID) makes raising idempotent: the id of the printer event that
        reported it, say, so that the same event delivered twice raises :class:`AlreadyExists`
        the second time.
        """
        row = Alert(
            id=alert_id or new_id(),
            printer_id=printer_id,
            job_id=job_id,
            kind=kind,
            severity=severity,
            message=message,
            created_at=self._db.now(),
            acked_by=None,
            acked_at=None,
            resolved_at=None,
            resolution=None,
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
        return alert_record(row)

    async def latest(
        self,
        *,
        printer_ids: Collection[str] | None = None,
        unacked_only: bool = False,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Alerts, newest first: of ``printer_ids`` only if given, and if ``unacked_only`` only
        those that need attention (neither acknowledged nor resolved)."""
        conditions: list[ColumnElement[bool]] = []
        if printer_ids is not None:
            conditions.append(Alert.printer_id.in_(list(printer_ids)))
        if unacked_only:
            conditions.extend((Alert.acked_at.is_(None), Alert.resolved_at.is_(None)))
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(Alert)
                .where(*conditions)
                .order_by(Alert.created_at.desc(), Alert.id.desc())
                .limit(limit)
            )
            return [alert_record(row) for row in rows]

    async def ack(self, alert_id: str, *, user_id: str) -> AlertRecord:
        """Acknowledge an alert; the first acknowledgement stands. Raises :class:`NotFound`."""
        async with self._db.transaction(write=True) as session:
            row = await get_row(session, Alert, alert_id)
            if row.acked_at is None:
                row.acked_by, row.acked_at = user_id, self._db.now()
            return alert_record(row)

    async def resolve(self, printer_id: str, *, kind: str, resolution: str) -> list[AlertRecord]:
        """Resolve every unresolved ``kind`` alert of a printer, because its condition cleared
        (a printer back online): ``resolution`` says how. A person's acknowledgement, if any,
        stays as it was.

        Before alerts had a resolution, a cleared alert was acknowledged with ``acked_by`` None;
        such alerts are over already and are left as they are.
        """
        async with self._db.transaction(write=True) as session:
            rows = list(
                await session.scalars(
                    select(Alert).where(
                        Alert.printer_id == printer_id,
                        Alert.kind == kind,
                        Alert.resolved_at.is_(None),
                        or_(Alert.acked_at.is_(None), Alert.acked_by.is_not(None)),
                    )
                )
            )
            now = self._db.now()
            for row in rows:
                row.resolved_at, row.resolution = now, resolution
            return [alert_record(row) for row in rows]
