"""``Announcer``: what the cloud learns, told to the people it concerns, once.

Job changes go to the job's submitter; a printer's state, telemetry summaries and alerts go to
everyone who can see the printer (its owner and the users it is shared with). Alerts are kept in
the store under an id derived from what raised them (the printer's event id, a job and printer
waiting on a plate), so a message the broker delivers twice, or a decision made again every
dispatch round, raises one alert and sends one notification. Notifications that must leave the
cloud (alerts, job ends, tests: :func:`goes_to_channels`) are written to the store's delivery
table per channel before they are sent, and each outcome is recorded there, so a person can see
what was delivered and what was given up on (dead letters).
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from printfleet.cloud.notify.model import (
    Notification,
    NotificationKind,
    from_alert,
    goes_to_channels,
)
from printfleet.cloud.notify.notifier import Channel, ChannelKind, DeliveryOutcome, Notifier
from printfleet.cloud.store import (
    AlreadyExists,
    JobRecord,
    NotFound,
    Severity,
    Store,
    StoreError,
)
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobEvent
from printfleet.protocol.messages import (
    AlertBody,
    AlertEvent,
    HeaterTelemetry,
    PlateStatus,
    Presence,
    PrinterStateEvent,
    PrinterStatus,
    Telemetry,
)

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c1f5e-3b7e-4a44-9d0b-8a6c2d7e0f42")
"""Derived ids (uuid5) live in a namespace of printfleet's own."""

SUMMARY_INTERVAL_S = 5.0
"""At most one telemetry summary and one progress notification per printer this often."""
DELIVERY_LEASE_S = 120.0
"""A delivery still unsettled this long after it was queued is sent again, by any replica: its
sender died. Longer than a webhook's whole retry deadline (60 s), so a live one is left alone."""
CATCH_UP_S = 900.0
"""At start, job ends this recent are checked for submitters a crash left untold."""
AUDIENCE_TTL_S = 5.0
"""How long who-can-see-a-printer is cached; shares change rarely, telemetry comes often."""
_MEMORY = 4096
"""Bounds on the per-job and per-printer memories below."""

_JOB_KINDS = {
    JobEvent.STAGED: NotificationKind.JOB_STAGED,
    JobEvent.STARTED: NotificationKind.JOB_STARTED,
    JobEvent.PAUSED: NotificationKind.JOB_PAUSED,
    JobEvent.RESUMED: NotificationKind.JOB_RESUMED,
    JobEvent.REQUEUED: NotificationKind.JOB_REQUEUED,
    JobEvent.COMPLETED: NotificationKind.JOB_COMPLETED,
    JobEvent.FAILED: NotificationKind.JOB_FAILED,
    JobEvent.CANCELLED: NotificationKind.JOB_CANCELLED,
    JobEvent.REJECTED: NotificationKind.JOB_REJECTED,
    JobEvent.EXPIRED: NotificationKind.JOB_EXPIRED,
}
"""``DISPATCHED`` is missing on purpose: a sent start is told when the printer accepts it."""

_JOB_ALERTS = frozenset(
    {NotificationKind.JOB_FAILED, NotificationKind.JOB_REJECTED, NotificationKind.JOB_EXPIRED}
)
"""Job ends that are also alerts on their printer (S7 tells the submitter in any case)."""

_JOB_TEXT = {
    NotificationKind.JOB_SUBMITTED: ("{name} is queued", "{name} waits for {printer}."),
    NotificationKind.JOB_STAGED: ("{name} is on {printer}", "The file is on {printer}."),
    NotificationKind.JOB_STARTED: ("{name} started", "{name} started printing on {printer}."),
    NotificationKind.JOB_PAUSED: ("{name} paused", "{name} is paused on {printer}."),
    NotificationKind.JOB_RESUMED: ("{name} resumed", "{name} is printing again on {printer}."),
    NotificationKind.JOB_REQUEUED: ("{name} waits again", "{name} waits again: {reason}"),
    NotificationKind.JOB_COMPLETED: ("{name} finished", "{name} finished on {printer}."),
    NotificationKind.JOB_FAILED: ("{name} failed", "{name} failed on {printer}: {reason}"),
    NotificationKind.JOB_CANCELLED: ("{name} was cancelled", "{name} was cancelled: {reason}"),
    NotificationKind.JOB_REJECTED: ("{name} was refused", "{printer} refused {name}: {reason}"),
    NotificationKind.JOB_EXPIRED: (
        "{name} expired",
        "{name} could not start within its window and will not start: {reason}",
    ),
}


def derived_id(*parts: str) -> str:
    """A UUID that is the same whenever the same thing is announced (idempotency)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def job_data(view: JobView, name: str) -> dict[str, Any]:
    """The ``data`` of every ``job_*`` notification (docs/api.md, section 2.1)."""
    return {
        "state": view.state.value,
        "reason": view.reason or None,
        "name": name,
        "printer_id": view.assigned_printer or view.printer_id,
    }


def _heater(heater: HeaterTelemetry) -> dict[str, Any]:
    return {"current_c": heater.temp_dc / 10, "target_c": heater.target_dc / 10}


def _progress(report: Telemetry) -> dict[str, Any] | None:
    if report.progress is None:
        return None
    return report.progress.model_dump()


@dataclass(frozen=True, slots=True)
class _Summary:
    """What ``printer_state`` reports; a change in any field is announced."""

    online: bool
    status: PrinterStatus
    plate: PlateStatus
    fault: str | None
    job_id: str | None

    def data(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "status": self.status.value,
            "plate": self.plate.value,
            "fault": self.fault,
            "job_id": self.job_id,
        }


@dataclass(frozen=True, slots=True)
class _JobOwner:
    owner: str
    name: str


class _Bounded(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries beyond a size."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self._size:
            self.popitem(last=False)


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
        self.store = store
        self.notifier = notifier
        self._lease_ms = int(delivery_lease_s * 1000)
        self._summary_interval_s = summary_interval_s
        self._audience_ttl_s = audience_ttl_s
        self._clock = clock
        self._audiences: _Bounded = _Bounded(_MEMORY)
        self._summaries: _Bounded = _Bounded(_MEMORY)
        self._telemetry_sent: _Bounded = _Bounded(_MEMORY)
        self._progress_sent: _Bounded = _Bounded(_MEMORY)
        self._job_owners: _Bounded = _Bounded(_MEMORY)
        self._plate_asked: _Bounded = _Bounded(_MEMORY)
        self._in_flight: dict[tuple[str, str], str] = {}
        """(channel id, notification id) -> delivery id, while the notifier sends it."""

    # -- jobs ------------------------------------------------------------------------------------

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
        """Tell the submitter of a job's change (``event`` None: it was just submitted).

        ``version`` is the job's stored version after the change: with the job id it names the
        change, so announcing it again is a duplicate, not a second notification.
        """
        kind = NotificationKind.JOB_SUBMITTED if event is None else _JOB_KINDS.get(event)
        if kind is None:
            return None
        self._job_owners[view.id] = _JobOwner(owner, name)
        notification = self._job_notification(view, kind, owner=owner, name=name, version=version)
        # A job that has no reason (yet) gets none printed, not a placeholder.
        log.info(
            "job %s is %s%s%s",
            view.id,
            view.state.value,
            f" on {printer}" if (printer := view.assigned_printer or view.printer_id) else "",
            f": {view.reason}" if view.reason else "",
            extra={"job_id": view.id, "printer_id": notification.printer_id},
        )
        await self.send(
            notification,
            to_channels=goes_to_channels(kind, wants_completion=notify_completion),
        )
        if kind in _JOB_ALERTS and notification.printer_id is not None:
            await self._job_alert(view, notification)
        return notification

    async def _job_alert(self, view: JobView, notification: Notification) -> None:
        # Kept with the printer's alerts, so that the people who run it see the failures and
        # refusals too; the submitter was told above, so no second notification goes out.
        assert notification.printer_id is not None  # noqa: S101 - checked by the caller
        # AlreadyExists: raised already; NotFound: a printer or job this cloud does not know.
        with contextlib.suppress(AlreadyExists, NotFound):
            await self.store.alerts.add(
                notification.printer_id,
                kind=notification.kind.value,
                severity=notification.severity,
                message=notification.message[:500],
                job_id=view.id,
                alert_id=derived_id("job alert", view.id, view.state.value),
            )

    async def catch_up(self, ended: Iterable[JobRecord]) -> int:
        """Make sure the submitters of ``ended`` jobs were told on their channels (S7).

        A cloud that died between saving a job's end and queueing its notifications told
        nobody; announced again, an end already queued is recognised by its id and skipped.
        Returns how many deliveries this queued. Channels added after the end are left out.
        """
        queued = 0
        for job in ended:
            kind = _JOB_KINDS.get(JobEvent(job.view.state.value))
            if kind is None or not goes_to_channels(kind, wants_completion=job.notify_completion):
                continue
            notification = self._job_notification(
                job.view, kind, owner=job.owner_id, name=job.name, version=job.version
            )
            channels = await self._deliveries_for(notification, None, created_by=job.ended_at)
            if channels:
                queued += len(channels)
                log.warning(
                    "job %s ended (%s) with its submitter untold: telling them now",
                    job.view.id,
                    job.view.state.value,
                    extra={"job_id": job.view.id, "printer_id": notification.printer_id},
                )
                for channel in self.notifier.queue(notification, channels).refused:
                    await self.delivery_ended(
                        DeliveryOutcome(
                            notification,
                            channel,
                            delivered=False,
                            attempts=0,
                            reason="the notifier was full or shutting down",
                        )
                    )
        return queued

    def _job_notification(
        self, view: JobView, kind: NotificationKind, *, owner: str, name: str, version: int
    ) -> Notification:
        printer = view.assigned_printer or view.printer_id or f"a printer of model {view.model}"
        title, message = _JOB_TEXT[kind]
        words = {"name": name, "printer": printer, "reason": view.reason or "no reason given"}
        return Notification.create(
            kind,
            title=title.format(**words),
            message=message.format(**words),
            user_ids=[owner],
            printer_id=view.assigned_printer or view.printer_id,
            job_id=view.id,
            data=job_data(view, name),
            # A job ends once: its end is named by its state, so that whoever announces it
            # again (a cloud catching up after a crash) names the same notification.
            notification_id=(
                derived_id("job", view.id, "end", view.state.value)
                if view.state.terminal
                else derived_id("job", view.id, str(version))
            ),
        )

    async def plate_needed(self, job_id: str, printer_id: str) -> None:
        """A job waits on a printer whose plate a person must confirm: ask, once per pair."""
        if (job_id, printer_id) in self._plate_asked:
            return
        self._plate_asked[job_id, printer_id] = True
        await self.raise_alert(
            printer_id,
            AlertBody(
                kind="plate_confirmation_needed",
                severity="info",
                message=f"A job waits for {printer_id}: confirm its plate is clear, at the "
                "printer or remotely.",
            ),
            alert_id=derived_id("plate", job_id, printer_id),
            job_id=job_id,
        )

    # -- printers ----------------------------------------------------------------------------------

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
        if isinstance(event, AlertEvent):
            await self.raise_alert(
                printer_id,
                event.body,
                alert_id=derived_id("event", printer_id, event.id),
                job_id=event.job_id,
            )
        elif isinstance(event, PrinterStateEvent):
            body = event.body
            await self._state(
                printer_id,
                _Summary(
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
                _Summary(
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
        before: _Summary | None = self._summaries.get(printer_id)
        if presence.online or before is None:
            # Only a printer seen online here can be said to go offline: the broker hands a
            # restarted cloud every printer's retained "offline", which is old news.
            if before is not None:
                await self._state(printer_id, _with_online(before, online=presence.online))
            return
        await self._state(printer_id, _with_online(before, online=False))
        if before.online:
            await self.raise_alert(
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
        resolved = await self.store.alerts.resolve(printer_id, kind="printer_offline")
        for alert in resolved:
            log.info(
                "printer_offline alert %s on %s resolved: the printer is back online",
                alert.id,
                printer_id,
                extra={"printer_id": printer_id},
            )

    async def _state(self, printer_id: str, summary: _Summary) -> None:
        if self._summaries.get(printer_id) == summary:
            return
        self._summaries[printer_id] = summary
        # Changes are few (a handful per print): who can see the printer is read afresh.
        audience = await self.audience(printer_id, fresh=True)
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
        await self.send(notification, to_channels=False)

    async def _telemetry(self, printer_id: str, report: Telemetry) -> None:
        now = self._clock()
        last = self._telemetry_sent.get(printer_id)
        if last is None or now - last >= self._summary_interval_s:
            self._telemetry_sent[printer_id] = now
            audience = await self.audience(printer_id)
            if audience:
                await self.send(
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
        await self.send(notification, to_channels=False)

    async def _owner_of(self, job_id: str) -> _JobOwner | None:
        if job_id in self._job_owners:
            owner: _JobOwner | None = self._job_owners[job_id]
            return owner
        try:
            record = await self.store.jobs.load(job_id)
        except NotFound:
            found = None
        else:
            found = _JobOwner(record.owner_id, record.name)
        self._job_owners[job_id] = found
        return found

    async def audience(self, printer_id: str, *, fresh: bool = False) -> frozenset[str]:
        """Who can see the printer: cached for a few seconds, unless ``fresh`` (for alerts,
        and state changes, which are rarer than telemetry and must reach someone the printer
        was shared with a moment ago)."""
        now = self._clock()
        cached: tuple[float, frozenset[str]] | None = self._audiences.get(printer_id)
        if not fresh and cached is not None and now - cached[0] < self._audience_ttl_s:
            return cached[1]
        audience = await self.store.printers.audience(printer_id)
        self._audiences[printer_id] = (now, audience)
        return audience

    # -- alerts ------------------------------------------------------------------------------------

    async def raise_alert(
        self, printer_id: str, alert: AlertBody, *, alert_id: str, job_id: str | None = None
    ) -> Notification | None:
        """Keep the alert and tell the printer's people; nothing if ``alert_id`` was raised."""
        try:
            record = await self._add_alert(printer_id, alert, alert_id, job_id)
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
            user_ids=await self.audience(printer_id, fresh=True),
            job_id=record.job_id,
            notification_id=alert_id,
            data={"alert_id": alert_id},
        )
        await self.send(notification, to_channels=True)
        return notification

    async def _add_alert(
        self, printer_id: str, alert: AlertBody, alert_id: str, job_id: str | None
    ) -> Any:
        severity = Severity(alert.severity)
        try:
            return await self.store.alerts.add(
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
        return await self.store.alerts.add(
            printer_id,
            kind=alert.kind,
            severity=severity,
            message=alert.message,
            alert_id=alert_id,
        )

    # -- sending -----------------------------------------------------------------------------------

    async def send(
        self,
        notification: Notification,
        *,
        to_channels: bool,
        channel_ids: Collection[str] | None = None,
    ) -> None:
        """Publish to the live streams; with ``to_channels``, record and queue a delivery to
        each enabled channel of the recipients (only ``channel_ids``, if given)."""
        channels = await self._deliveries_for(notification, channel_ids) if to_channels else []
        receipt = self.notifier.notify(notification, channels)
        for channel in receipt.refused:
            await self.delivery_ended(
                DeliveryOutcome(
                    notification,
                    channel,
                    delivered=False,
                    attempts=0,
                    reason="the notifier was full or shutting down",
                )
            )

    async def _deliveries_for(
        self,
        notification: Notification,
        only: Collection[str] | None,
        *,
        created_by: int | None = None,
    ) -> list[Channel]:
        records = await self.store.channels.enabled_for(notification.user_ids)
        channels = []
        for record in records:
            if only is not None and record.id not in only:
                continue
            if created_by is not None and record.created_at > created_by:
                continue
            key = (record.id, notification.id)
            if key in self._in_flight:
                continue  # announced again while the first is still on its way
            delivery = await self.store.deliveries.enqueue(
                record.id,
                event_key=notification.id,
                payload=_json(notification),
                hold_ms=self._lease_ms,
            )
            if delivery.delivered_at is not None or delivery.dead_lettered_at is not None:
                continue  # an earlier announcement of the same thing settled it
            self._in_flight[key] = delivery.id
            channels.append(
                Channel(ChannelKind(record.kind.value), record.target, record.secret, id=record.id)
            )
        return channels

    async def resend_unsettled(self) -> int:
        """Send again the deliveries whose sender died before settling them (a crash, a kill
        during a restart); how many were queued. Delivery is at least once: receivers
        deduplicate on the notification id."""
        queued = 0
        for delivery in await self.store.deliveries.claim(limit=50, lease_ms=self._lease_ms):
            try:
                record = await self.store.channels.get(delivery.channel_id)
            except NotFound:
                continue
            key = (record.id, delivery.event_key)
            if not record.enabled or key in self._in_flight:
                continue
            try:
                notification = Notification.from_payload(
                    delivery.payload, user_ids=[record.user_id]
                )
            except (KeyError, TypeError, ValueError) as error:
                await self.store.deliveries.failed(
                    delivery.id, error=f"unreadable stored payload: {error}", retry_at=None
                )
                continue
            channel = Channel(
                ChannelKind(record.kind.value), record.target, record.secret, id=record.id
            )
            self._in_flight[key] = delivery.id
            if self.notifier.queue(notification, [channel]).refused:
                del self._in_flight[key]  # due again when this claim's lease ends
            else:
                queued += 1
        if queued:
            log.warning("sending %d notification deliveries again, left unsettled", queued)
        return queued

    async def resend_unsettled_forever(self) -> None:
        """:meth:`resend_unsettled` every quarter lease, until cancelled."""
        while True:
            try:
                await self.resend_unsettled()
            except StoreError:
                log.exception("could not look for unsettled notification deliveries")
            await asyncio.sleep(self._lease_ms / 4000)

    async def delivery_ended(self, outcome: DeliveryOutcome) -> None:
        """Record how a delivery ended: delivered, or a dead letter to look at."""
        channel_id = outcome.channel.id
        if channel_id is None:
            return
        notification = outcome.notification
        key = (channel_id, notification.id)
        # Still marked in flight until the outcome is written: announced again meanwhile, it
        # must look neither unsent nor unsettled.
        delivery_id = self._in_flight.get(key)
        try:
            if outcome.delivered and delivery_id is not None:
                await self.store.deliveries.succeeded(delivery_id, attempts=outcome.attempts)
            elif not outcome.delivered:
                await self.store.deliveries.record_dead_letter(
                    channel_id,
                    event_key=notification.id,
                    payload=_json(notification),
                    attempts=outcome.attempts,
                    error=outcome.reason,
                )
        except NotFound:
            pass  # the channel was deleted meanwhile
        finally:
            self._in_flight.pop(key, None)


def _with_online(summary: _Summary, *, online: bool) -> _Summary:
    return _Summary(online, summary.status, summary.plate, summary.fault, summary.job_id)


def _json(notification: Notification) -> dict[str, Any]:
    return dict(notification.payload())


__all__ = [
    "AUDIENCE_TTL_S",
    "DELIVERY_LEASE_S",
    "SUMMARY_INTERVAL_S",
    "Announcer",
    "derived_id",
    "job_data",
]
