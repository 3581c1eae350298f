"""Printer messages told to the people who can see the printer: its state as it changes
(online, offline, status, plate, fault), telemetry summaries and job progress at a bounded rate,
and the alerts it raises; a printer that goes away raises one, resolved when it is back."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from printfleet.cloud.notify.alerting import AlertRaiser
from printfleet.cloud.notify.audience import Bounded, PrinterAudience
from printfleet.cloud.notify.deliveries import ChannelDeliveries
from printfleet.cloud.notify.job_news import JobOwner, derived_id
from printfleet.cloud.notify.model import Notification, NotificationKind
from printfleet.cloud.notify.records import AlertBook, JobLookup
from printfleet.cloud.store import NotFound
from printfleet.protocol.messages import (
    PLATE_EJECTED,
    AlertBody,
    AlertEvent,
    HeaterTelemetry,
    PlateStatus,
    Presence,
    PrinterStateEvent,
    PrinterStatus,
    Telemetry,
)

# The announcer's parts log under the announcer's name: one logger for operators to follow.
log = logging.getLogger("printfleet.cloud.notify.announcer")

SUMMARY_INTERVAL_S = 5.0
"""At most one telemetry summary and one progress notification per printer this often."""


@dataclass(frozen=True, slots=True)
class PrinterSummary:
    """What ``printer_state`` reports; a change in any field is announced."""

    online: bool
    status: PrinterStatus
    plate: PlateStatus
    fault: str | None
    job_id: str | None

    def data(self) -> dict[str, Any]:
        """The notification's ``data``."""
        return {
            "online": self.online,
            "status": self.status.value,
            "plate": self.plate.value,
            "fault": self.fault,
            "job_id": self.job_id,
        }

    def with_online(self, *, online: bool) -> PrinterSummary:
        """The same summary, online or not."""
        return PrinterSummary(online, self.status, self.plate, self.fault, self.job_id)


class PrinterNews:
    """Tells the people who can see a printer what it reports."""

    def __init__(
        self,
        *,
        alerts: AlertBook,
        jobs: JobLookup,
        audience: PrinterAudience,
        deliveries: ChannelDeliveries,
        raiser: AlertRaiser,
        job_owners: Bounded,
        summary_interval_s: float = SUMMARY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alerts = alerts
        self.jobs = jobs
        self.audience = audience
        self.deliveries = deliveries
        self.raiser = raiser
        self.job_owners = job_owners
        """Job id -> :class:`JobOwner` (or None), shared with the jobs' news."""
        self._summary_interval_s = summary_interval_s
        self._clock = clock
        self._summaries: Bounded = Bounded()
        self._telemetry_sent: Bounded = Bounded()
        self._progress_sent: Bounded = Bounded()

    async def printer_message(
        self,
        printer_id: str,
        *,
        event: object = None,
        telemetry: Telemetry | None = None,
        presence: Presence | None = None,
    ) -> None:
        """One decoded printer message: alerts, state changes, summaries, progress."""
        if (
            isinstance(event, PrinterStateEvent)
            or telemetry is not None
            or (presence is not None and presence.online)
        ):
            before = self._summaries.get(printer_id)
            if before is None or not before.online:
                await self._resolve_offline(printer_id)
        if isinstance(event, AlertEvent) and event.body.kind == PLATE_EJECTED:
            pass  # evidence for the audit log (CloudCore records it), not news for people
        elif isinstance(event, AlertEvent):
            await self.raiser.raise_alert(
                printer_id,
                event.body,
                alert_id=derived_id("event", printer_id, event.id),
                job_id=event.job_id,
            )
        elif isinstance(event, PrinterStateEvent):
            body = event.body
            await self._state(
                printer_id,
                PrinterSummary(
                    online=True,
                    status=body.status,
                    plate=body.plate,
                    fault=body.fault,
                    job_id=body.job_id,
                ),
            )
        elif telemetry is not None:
            await self._state(
                printer_id,
                PrinterSummary(
                    online=True,
                    status=telemetry.status,
                    plate=telemetry.plate,
                    fault=telemetry.fault,
                    job_id=telemetry.job_id,
                ),
            )
            await self._telemetry(printer_id, telemetry)
        elif presence is not None:
            await self._presence(printer_id, presence)

    async def _presence(self, printer_id: str, presence: Presence) -> None:
        before: PrinterSummary | None = self._summaries.get(printer_id)
        if presence.online or before is None:
            # Only a printer seen online here can be said to go offline: the broker hands a
            # restarted cloud every printer's retained "offline", which is old news.
            if before is not None:
                await self._state(printer_id, before.with_online(online=presence.online))
            return
        await self._state(printer_id, before.with_online(online=False))
        if before.online:
            await self.raiser.raise_alert(
                printer_id,
                AlertBody(
                    kind="printer_offline",
                    severity="warning",
                    message=f"{printer_id} lost its connection; it starts nothing it is sent "
                    "until it is back.",
                ),
                alert_id=str(uuid.uuid4()),
            )

    async def _resolve_offline(self, printer_id: str) -> None:
        # Whatever says the printer is online (presence, state, telemetry) comes first, and also
        # after a restart of the cloud (nothing known of the printer yet): an alert raised
        # before the restart is as resolved by the printer's return as one raised since.
        resolved = await self.alerts.resolve(
            printer_id, kind="printer_offline", resolution=f"{printer_id} is back online"
        )
        for alert in resolved:
            log.info(
                "printer_offline alert %s on %s resolved: the printer is back online",
                alert.id,
                printer_id,
                extra={"printer_id": printer_id},
            )

    async def _resolve_plate(self, printer_id: str, summary: PrinterSummary) -> None:
        # A plate that becomes clear (a sensor reading it, a person confirming it) ends the
        # wait its plate_confirmation_needed alerts were about. Only on the change: a report
        # that merely repeats "clear" resolves nothing raised since.
        before = self._summaries.get(printer_id)
        if summary.plate is not PlateStatus.CLEAR or (
            before is not None and before.plate is PlateStatus.CLEAR
        ):
            return
        resolved = await self.alerts.resolve(
            printer_id,
            kind="plate_confirmation_needed",
            resolution=f"the plate of {printer_id} is clear",
        )
        for alert in resolved:
            log.info(
                "plate_confirmation_needed alert %s on %s resolved: the plate is clear",
                alert.id,
                printer_id,
                extra={"printer_id": printer_id},
            )

    async def _state(self, printer_id: str, summary: PrinterSummary) -> None:
        if summary.online:
            await self._resolve_plate(printer_id, summary)
        if self._summaries.get(printer_id) == summary:
            return
        self._summaries[printer_id] = summary
        # Changes are few (a handful per print): who can see the printer is read afresh.
        audience = await self.audience.of(printer_id, fresh=True)
        if not audience:
            return
        state = summary.status.value if summary.online else "offline"
        notification = Notification.create(
            NotificationKind.PRINTER_STATE,
            title=f"{printer_id} is {state}",
            message=f"{printer_id}: {state}, plate {summary.plate.value}"
            + (f", fault: {summary.fault}" if summary.fault else ""),
            user_ids=audience,
            printer_id=printer_id,
            job_id=summary.job_id,
            data=summary.data(),
        )
        await self.deliveries.send(notification, to_channels=False)

    async def _telemetry(self, printer_id: str, report: Telemetry) -> None:
        now = self._clock()
        last = self._telemetry_sent.get(printer_id)
        if last is None or now - last >= self._summary_interval_s:
            self._telemetry_sent[printer_id] = now
            audience = await self.audience.of(printer_id)
            if audience:
                await self.deliveries.send(
                    Notification.create(
                        NotificationKind.PRINTER_TELEMETRY,
                        title=f"{printer_id}: {report.status.value}",
                        message=f"hotend {report.hotend.temp_dc / 10:.1f} °C, "
                        f"bed {report.bed.temp_dc / 10:.1f} °C",
                        user_ids=audience,
                        printer_id=printer_id,
                        job_id=report.job_id,
                        data={
                            "status": report.status.value,
                            "job_id": report.job_id,
                            "hotend": _heater(report.hotend),
                            "bed": _heater(report.bed),
                            "progress": _progress(report),
                        },
                    ),
                    to_channels=False,
                )
        if report.job_id is not None and report.progress is not None:
            await self._job_progress(report.job_id, printer_id, report, now)

    async def _job_progress(
        self, job_id: str, printer_id: str, report: Telemetry, now: float
    ) -> None:
        assert report.progress is not None  # noqa: S101 - checked by the caller
        percent = report.progress.percent
        sent: tuple[int, float] | None = self._progress_sent.get(job_id)
        if sent is not None and (sent[0] == percent or now - sent[1] < self._summary_interval_s):
            return
        owner = await self._owner_of(job_id)
        if owner is None:
            return  # a job started at the printer: nobody here submitted it
        self._progress_sent[job_id] = (percent, now)
        notification = Notification.create(
            NotificationKind.JOB_PROGRESS,
            title=f"{owner.name}: {percent}%",
            message=f"{owner.name} is at {percent}% on {printer_id} "
            f"(layer {report.progress.layer} of {report.progress.total_layers}).",
            user_ids=[owner.owner],
            printer_id=printer_id,
            job_id=job_id,
            data={
                "state": "printing",
                "reason": None,
                "name": owner.name,
                "printer_id": printer_id,
                "progress": report.progress.model_dump(),
            },
        )
        await self.deliveries.send(notification, to_channels=False)

    async def _owner_of(self, job_id: str) -> JobOwner | None:
        if job_id in self.job_owners:
            owner: JobOwner | None = self.job_owners[job_id]
            return owner
        try:
            record = await self.jobs.load(job_id)
        except NotFound:
            found = None
        else:
            found = JobOwner(record.owner_id, record.name)
        self.job_owners[job_id] = found
        return found


def _heater(heater: HeaterTelemetry) -> dict[str, Any]:
    return {"current_c": heater.temp_dc / 10, "target_c": heater.target_dc / 10}


def _progress(report: Telemetry) -> dict[str, Any] | None:
    if report.progress is None:
        return None
    return report.progress.model_dump()
