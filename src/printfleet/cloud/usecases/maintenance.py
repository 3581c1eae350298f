"""Maintenance: the print hours since each part of a printer was serviced, which parts are due,
marking one serviced and changing its interval; and the reminder raised once a part falls due.

A part is due once its print hours since service reach its interval (the printer's own, or the
cloud's default for the part). Its reminder is a ``maintenance_due`` alert, raised after a job
ends on the printer (when the hours grow), once per part and service, and resolved when the part
is marked serviced.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from printfleet.cloud.store import Actor, NotFound, Role, StoreError
from printfleet.cloud.store.maintenance import PARTS, MaintenanceState, PartService, reminder_id
from printfleet.cloud.usecases.ports import AuditTrail
from printfleet.cloud.usecases.principal import InvalidRequest, Principal, Scope
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobEvent
from printfleet.protocol.messages import AlertBody

log = logging.getLogger(__name__)

DEFAULT_INTERVALS_H: Mapping[str, float] = {"nozzle": 200.0, "belts": 1000.0}
"""Print hours between services of each part where the cloud's settings say nothing else."""

MAX_INTERVAL_H = 100_000.0
"""The longest interval accepted: about eleven years of printing without a pause."""

ALERT_KIND = "maintenance_due"

_PRINT_ENDS = frozenset({JobEvent.COMPLETED, JobEvent.FAILED, JobEvent.CANCELLED})
"""The job ends that may add print hours (as statistics count them)."""


@dataclass(frozen=True, slots=True)
class PartStatus:
    """One part of a printer as people see it."""

    part: str
    interval_h: float
    """Print hours between services: the printer's own, else the cloud's default."""
    default_interval: bool
    """Whether ``interval_h`` is the cloud's default (no interval of the printer's own)."""
    hours_since_service: float
    due: bool
    serviced_at: int | None
    """When it was last marked serviced (cloud ms); None: never, so its hours count from the
    printer's first print."""


class MaintenanceRecords(Protocol):
    """The maintenance counters the use cases read and write (the store's ``MaintenanceLog``)."""

    async def state(self, printer_id: str) -> MaintenanceState:
        """The printer's print hours and its parts' service records."""
        ...

    async def mark_serviced(
        self, printer_id: str, part: str, *, resolution: str
    ) -> MaintenanceState:
        """Record a service now, resolving the part's reminder with ``resolution``."""
        ...

    async def set_interval(
        self, printer_id: str, part: str, interval_h: float | None
    ) -> MaintenanceState:
        """Service ``part`` every ``interval_h`` print hours (None: the default)."""
        ...

    async def mark_reminded(self, printer_id: str, part: str, *, serviced_at: int | None) -> bool:
        """Note the reminder since that service raised; False if serviced again meanwhile."""
        ...

    async def resolve_reminder(
        self, printer_id: str, part: str, *, serviced_at: int | None, resolution: str
    ) -> bool:
        """Resolve the reminder since that service if it is open; whether it was."""
        ...


class PrinterAccess(Protocol):
    """Who may do what with a printer (the printer use cases' ``access``)."""

    async def access(self, principal: Principal, printer_id: str, minimum: Role) -> object:
        """The printer if the caller holds ``minimum`` on it: NotFound if they may not see it,
        Forbidden if they may see but not do this."""
        ...


class AlertRaising(Protocol):
    """Where a reminder goes: kept as an alert and told to the printer's people on every
    channel (the announcer, in the running cloud)."""

    async def raise_alert(
        self, printer_id: str, alert: AlertBody, *, alert_id: str, job_id: str | None = None
    ) -> object:
        """Keep the alert and tell the printer's people; nothing if ``alert_id`` was raised."""
        ...


def check_part(part: str) -> str:
    """``part`` if printfleet keeps counters for it; InvalidRequest naming those it does."""
    if part not in PARTS:
        known = ", ".join(PARTS)
        msg = f"no part {part!r}: the parts with service counters are {known} (e.g. nozzle)"
        raise InvalidRequest(msg)
    return part


def check_interval(interval_h: float | None) -> float | None:
    """``interval_h`` if it is a usable interval (or None: the default); InvalidRequest if not."""
    if interval_h is not None and not (0 < interval_h <= MAX_INTERVAL_H):
        msg = (
            f"an interval is more than 0 and at most {MAX_INTERVAL_H:g} print hours, or null for "
            f"the default, not {interval_h!r} (e.g. 300)"
        )
        raise InvalidRequest(msg)
    return interval_h


def statuses(state: MaintenanceState, defaults: Mapping[str, float]) -> list[PartStatus]:
    """Each part of ``state`` as people see it, with ``defaults`` where it has no interval."""
    return [_status(state.print_hours, part, defaults) for part in state.parts]


def _status(print_hours: float, part: PartService, defaults: Mapping[str, float]) -> PartStatus:
    interval = part.interval_h if part.interval_h is not None else defaults[part.part]
    since = max(0.0, print_hours - part.hours_at_service)
    return PartStatus(
        part=part.part,
        interval_h=interval,
        default_interval=part.interval_h is None,
        hours_since_service=since,
        due=since >= interval,
        serviced_at=part.serviced_at,
    )


class MaintenanceActions:
    """What people do about maintenance: read the counters (viewer), mark a part serviced
    (operator; audited), change its interval (owner; audited)."""

    def __init__(
        self,
        records: MaintenanceRecords,
        printers: PrinterAccess,
        audit: AuditTrail,
        *,
        intervals: Mapping[str, float] = DEFAULT_INTERVALS_H,
    ) -> None:
        self.records = records
        self.printers = printers
        self.audit = audit
        self.intervals = {**DEFAULT_INTERVALS_H, **intervals}

    async def maintenance(self, principal: Principal, printer_id: str) -> list[PartStatus]:
        """The printer's parts: hours since service, interval, and whether each is due."""
        principal.require(Scope.READ)
        await self.printers.access(principal, printer_id, Role.VIEWER)
        return statuses(await self.records.state(printer_id), self.intervals)

    async def mark_serviced(
        self, principal: Principal, printer_id: str, part: str
    ) -> list[PartStatus]:
        """A person says ``part`` was serviced now: its hours start again from 0 and its
        reminder, if raised, is resolved. Audited with the hours it had run."""
        principal.require(Scope.WRITE)
        check_part(part)
        await self.printers.access(principal, printer_id, Role.OPERATOR)
        before = _status_of(await self.records.state(printer_id), part, self.intervals)
        resolution = f"{printer_id}: {part} serviced by {principal.user.email}"
        state = await self.records.mark_serviced(printer_id, part, resolution=resolution)
        await self.audit.append(
            Actor.user(principal.user.id),
            "maintenance.serviced",
            printer_id=printer_id,
            detail={"part": part, "hours_since_service": round(before.hours_since_service, 4)},
        )
        return statuses(state, self.intervals)

    async def set_interval(
        self, principal: Principal, printer_id: str, part: str, interval_h: float | None
    ) -> list[PartStatus]:
        """The owner sets how many print hours ``part`` runs between services (None: the
        cloud's default). Audited with the interval before. A reminder already raised stays
        until the part is serviced; a part that becomes due is reminded of after the next
        print."""
        principal.require(Scope.WRITE)
        check_part(part)
        check_interval(interval_h)
        await self.printers.access(principal, printer_id, Role.OWNER)
        before = (await self.records.state(printer_id)).part(part).interval_h
        state = await self.records.set_interval(printer_id, part, interval_h)
        await self.audit.append(
            Actor.user(principal.user.id),
            "maintenance.interval",
            printer_id=printer_id,
            detail={"part": part, "interval_h": interval_h, "before": before},
        )
        return statuses(state, self.intervals)


def _status_of(state: MaintenanceState, part: str, defaults: Mapping[str, float]) -> PartStatus:
    return _status(state.print_hours, state.part(part), defaults)


def reminder_text(printer_id: str, status: PartStatus) -> str:
    """What a reminder says: "x1-01: nozzle service due after 203 print hours (every 200 h)"."""
    # Rounded down: a reminder never claims an hour the part has not run.
    hours = math.floor(status.hours_since_service)
    return (
        f"{printer_id}: {status.part} service due after {hours} print hours "
        f"(every {status.interval_h:g} h)"
    )


class MaintenanceReminders:
    """Raises each part's reminder once it is due, once per service."""

    def __init__(
        self,
        records: MaintenanceRecords,
        alerts: AlertRaising,
        *,
        intervals: Mapping[str, float] = DEFAULT_INTERVALS_H,
    ) -> None:
        self.records = records
        self.alerts = alerts
        self.intervals = {**DEFAULT_INTERVALS_H, **intervals}

    async def job_changed(self, view: JobView, event: JobEvent | None) -> None:
        """A job changed: if it ended on a printer, remind of what fell due there. A store
        that fails now is logged, not raised: the reminder comes after the next print."""
        if event not in _PRINT_ENDS or view.assigned_printer is None:
            return
        try:
            await self.job_ended(view.assigned_printer)
        except StoreError as error:
            log.warning(
                "maintenance of %s not checked: %s",
                view.assigned_printer,
                error,
                extra={"printer_id": view.assigned_printer, "job_id": view.id},
            )

    async def job_ended(self, printer_id: str) -> list[str]:
        """A job ended on the printer, so its print hours may have grown: remind of each part
        that is now due and was not reminded of since its service. The parts reminded of."""
        try:
            state = await self.records.state(printer_id)
        except NotFound:
            return []
        reminded = []
        for part, status in zip(state.parts, statuses(state, self.intervals), strict=True):
            if status.due and part.alerted_at is None:
                await self._remind(printer_id, part, status)
                reminded.append(part.part)
        return reminded

    async def _remind(self, printer_id: str, part: PartService, status: PartStatus) -> None:
        # Raised before it is noted: a crash in between raises it again under the same id,
        # which keeps it once, rather than noting a reminder nobody got.
        alert_id = reminder_id(printer_id, part.part, part.serviced_at)
        alert = AlertBody(
            kind=ALERT_KIND, severity="warning", message=reminder_text(printer_id, status)
        )
        await self.alerts.raise_alert(printer_id, alert, alert_id=alert_id)
        noted = await self.records.mark_reminded(
            printer_id, part.part, serviced_at=part.serviced_at
        )
        if not noted:
            # Serviced while the reminder was being raised: it is over already.
            await self.records.resolve_reminder(
                printer_id,
                part.part,
                serviced_at=part.serviced_at,
                resolution=f"{printer_id}: {part.part} serviced",
            )
        log.info(
            "%s: %s service due, reminder %s",
            printer_id,
            part.part,
            alert_id,
            extra={"printer_id": printer_id},
        )
