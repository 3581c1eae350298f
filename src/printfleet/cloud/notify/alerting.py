"""Raising alerts: kept in the store once per id, whoever reports them again, and told to
everyone who can see the printer, on every channel (S6)."""

from __future__ import annotations

import logging

from printfleet.cloud.notify.audience import PrinterAudience
from printfleet.cloud.notify.deliveries import ChannelDeliveries
from printfleet.cloud.notify.model import Notification, from_alert
from printfleet.cloud.notify.records import AlertBook
from printfleet.cloud.store import AlertRecord, AlreadyExists, NotFound, Severity
from printfleet.protocol.messages import AlertBody

# The announcer's parts log under the announcer's name: one logger for operators to follow.
log = logging.getLogger("printfleet.cloud.notify.announcer")


class AlertRaiser:
    """Keeps each alert once and tells the printer's people of it."""

    def __init__(
        self, alerts: AlertBook, audience: PrinterAudience, deliveries: ChannelDeliveries
    ) -> None:
        self.alerts = alerts
        self.audience = audience
        self.deliveries = deliveries

    async def raise_alert(
        self, printer_id: str, alert: AlertBody, *, alert_id: str, job_id: str | None = None
    ) -> Notification | None:
        """Keep the alert and tell the printer's people; nothing if ``alert_id`` was raised."""
        try:
            record = await self._add(printer_id, alert, alert_id, job_id)
        except AlreadyExists:
            log.info(
                "alert %s from %s was raised already",
                alert_id,
                printer_id,
                extra={"printer_id": printer_id, "job_id": job_id},
            )
            return None
        except NotFound:
            # A printer this cloud never provisioned (an open broker): nobody to tell.
            log.warning(
                "alert from unknown printer %s dropped",
                printer_id,
                extra={"printer_id": printer_id},
            )
            return None
        log.warning(
            "%s alert on %s: %s",
            alert.kind,
            printer_id,
            alert.message,
            extra={"printer_id": printer_id, "job_id": record.job_id},
        )
        notification = from_alert(
            printer_id,
            alert,
            user_ids=await self.audience.of(printer_id, fresh=True),
            job_id=record.job_id,
            notification_id=alert_id,
            data={"alert_id": alert_id},
        )
        await self.deliveries.send(notification, to_channels=True)
        return notification

    async def _add(
        self, printer_id: str, alert: AlertBody, alert_id: str, job_id: str | None
    ) -> AlertRecord:
        severity = Severity(alert.severity)
        try:
            return await self.alerts.add(
                printer_id,
                kind=alert.kind,
                severity=severity,
                message=alert.message,
                job_id=job_id,
                alert_id=alert_id,
            )
        except NotFound:
            if job_id is None:
                raise
        # The job is not one of ours (started at the printer): the alert still stands.
        return await self.alerts.add(
            printer_id,
            kind=alert.kind,
            severity=severity,
            message=alert.message,
            alert_id=alert_id,
        )
