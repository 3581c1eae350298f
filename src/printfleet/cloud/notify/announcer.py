"""``Announcer``: what the cloud learns, told to the people it concerns, once.

Job changes go to the job's submitter; a printer's state, telemetry summaries and alerts go to
everyone who can see the printer (its owner and the users it is shared with). Alerts are kept in
the store under an id derived from what raised them (the printer's event id, a job and printer
waiting on a plate), so a message the broker delivers twice, or a decision made again every
dispatch round, raises one alert and sends one notification. Notifications that must leave the
cloud (alerts, job ends, tests: :func:`goes_to_channels`) are written to the store's delivery
table per channel before they are sent, and each outcome is recorded there, so a person can see
what was delivered and what was given up on (dead letters).

Each of those is a part of its own: :mod:`~printfleet.cloud.notify.job_news`,
:mod:`~printfleet.cloud.notify.printer_news`, :mod:`~printfleet.cloud.notify.alerting` and
:mod:`~printfleet.cloud.notify.deliveries`, with who may hear of a printer in
:mod:`~printfleet.cloud.notify.audience`, each taking only what it needs of the store
(:mod:`~printfleet.cloud.notify.records`); the announcer builds them over one store and one
notifier and is what the rest of the cloud calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable

from printfleet.cloud.notify.alerting import AlertRaiser
from printfleet.cloud.notify.audience import AUDIENCE_TTL_S, Bounded, PrinterAudience
from printfleet.cloud.notify.deliveries import DELIVERY_LEASE_S, ChannelDeliveries
from printfleet.cloud.notify.job_news import CATCH_UP_S, JobNews, derived_id, job_data
from printfleet.cloud.notify.model import Notification
from printfleet.cloud.notify.notifier import DeliveryOutcome, Notifier
from printfleet.cloud.notify.printer_news import SUMMARY_INTERVAL_S, PrinterNews
from printfleet.cloud.store import JobRecord, Store
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobEvent
from printfleet.protocol.messages import AlertBody, Presence, Telemetry

__all__ = [
    "AUDIENCE_TTL_S",
    "CATCH_UP_S",
    "DELIVERY_LEASE_S",
    "SUMMARY_INTERVAL_S",
    "Announcer",
    "derived_id",
    "job_data",
]


class Announcer:
    """Turns job changes and printer messages into notifications, alerts and deliveries."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        summary_interval_s: float = SUMMARY_INTERVAL_S,
        audience_ttl_s: float = AUDIENCE_TTL_S,
        delivery_lease_s: float = DELIVERY_LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.deliveries = ChannelDeliveries(
            store.channels, store.deliveries, notifier, lease_s=delivery_lease_s
        )
        audience = PrinterAudience(store.printers, ttl_s=audience_ttl_s, clock=clock)
        self.alerts = AlertRaiser(store.alerts, audience, self.deliveries)
        job_owners = Bounded()
        self.jobs = JobNews(store.alerts, self.deliveries, self.alerts, job_owners)
        self.printers = PrinterNews(
            alerts=store.alerts,
            jobs=store.jobs,
            audience=audience,
            deliveries=self.deliveries,
            raiser=self.alerts,
            job_owners=job_owners,
            summary_interval_s=summary_interval_s,
            clock=clock,
        )
        self._audience = audience

    async def job_changed(
        self,
        view: JobView,
        event: JobEvent | None,
        *,
        owner: str,
        name: str,
        version: int,
        notify_completion: bool = False,
    ) -> Notification | None:
        """Tell the submitter of a job's change (see :meth:`JobNews.job_changed`)."""
        return await self.jobs.job_changed(
            view,
            event,
            owner=owner,
            name=name,
            version=version,
            notify_completion=notify_completion,
        )

    async def catch_up(self, ended: Iterable[JobRecord]) -> int:
        """Make sure the submitters of ``ended`` jobs were told (see :meth:`JobNews.catch_up`)."""
        return await self.jobs.catch_up(ended)

    async def plate_needed(self, job_id: str, printer_id: str) -> None:
        """A job waits on a plate a person must confirm: ask, once per job and printer."""
        await self.jobs.plate_needed(job_id, printer_id)

    async def printer_message(
        self,
        printer_id: str,
        *,
        event: object = None,
        telemetry: Telemetry | None = None,
        presence: Presence | None = None,
    ) -> None:
        """One decoded printer message: alerts, state changes, summaries, progress."""
        await self.printers.printer_message(
            printer_id, event=event, telemetry=telemetry, presence=presence
        )

    async def audience(self, printer_id: str, *, fresh: bool = False) -> frozenset[str]:
        """Who can see the printer (see :meth:`PrinterAudience.of`)."""
        return await self._audience.of(printer_id, fresh=fresh)

    async def raise_alert(
        self, printer_id: str, alert: AlertBody, *, alert_id: str, job_id: str | None = None
    ) -> Notification | None:
        """Keep the alert and tell the printer's people; nothing if ``alert_id`` was raised."""
        return await self.alerts.raise_alert(printer_id, alert, alert_id=alert_id, job_id=job_id)

    async def send(
        self,
        notification: Notification,
        *,
        to_channels: bool,
        channel_ids: Collection[str] | None = None,
    ) -> None:
        """Publish to the live streams, and to channels if asked (see
        :meth:`ChannelDeliveries.send`)."""
        await self.deliveries.send(notification, to_channels=to_channels, channel_ids=channel_ids)

    async def resend_unsettled(self) -> int:
        """Send again the deliveries a dead sender left unsettled; how many were queued."""
        return await self.deliveries.resend_unsettled()

    async def resend_unsettled_forever(self) -> None:
        """:meth:`resend_unsettled` every quarter lease, until cancelled."""
        await self.deliveries.resend_unsettled_forever()

    async def delivery_ended(self, outcome: DeliveryOutcome) -> None:
        """Record how a delivery ended: delivered, or a dead letter to look at."""
        await self.deliveries.ended(outcome)
