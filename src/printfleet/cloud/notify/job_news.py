"""Job changes told to their submitters: every end on their channels (S7), the rest on the live
streams, each change once however often it is announced; and a plate waiting for a person's
confirmation, asked for once per job and printer."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from printfleet.cloud.notify.alerting import AlertRaiser
from printfleet.cloud.notify.audience import Bounded
from printfleet.cloud.notify.deliveries import ChannelDeliveries
from printfleet.cloud.notify.model import Notification, NotificationKind, goes_to_channels
from printfleet.cloud.notify.records import AlertBook
from printfleet.cloud.store import AlreadyExists, JobRecord, NotFound
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import JobEvent
from printfleet.protocol.messages import AlertBody

# The announcer's parts log under the announcer's name: one logger for operators to follow.
log = logging.getLogger("printfleet.cloud.notify.announcer")

_NAMESPACE = uuid.UUID("6f1c1f5e-3b7e-4a44-9d0b-8a6c2d7e0f42")
"""Derived ids (uuid5) live in a namespace of printfleet's own."""

CATCH_UP_S = 900.0
"""At start, job ends this recent are checked for submitters a crash left untold."""

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
        # As the API's JobOut says them: why it waits (null when it does not), its place.
        "wait": None if view.wait is None else {"code": view.wait.value, "text": view.reason},
        "priority": view.priority,
        "pool_id": view.pool_id,
    }


@dataclass(frozen=True, slots=True)
class JobOwner:
    """Who submitted a job, and what it is called: what its progress notifications need."""

    owner: str
    name: str


class JobNews:
    """Tells submitters of their jobs' changes."""

    def __init__(
        self,
        alerts: AlertBook,
        deliveries: ChannelDeliveries,
        raiser: AlertRaiser,
        job_owners: Bounded,
    ) -> None:
        self.alerts = alerts
        self.deliveries = deliveries
        self.raiser = raiser
        self.job_owners = job_owners
        """Job id -> :class:`JobOwner` (or None), shared with the printers' news."""
        self._plate_asked: Bounded = Bounded()

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
        self.job_owners[view.id] = JobOwner(owner, name)
        notification = _job_notification(view, kind, owner=owner, name=name, version=version)
        # A job that has no reason (yet) gets none printed, not a placeholder.
        log.info(
            "job %s is %s%s%s",
            view.id,
            view.state.value,
            f" on {printer}" if (printer := view.assigned_printer or view.printer_id) else "",
            f": {view.reason}" if view.reason else "",
            extra={"job_id": view.id, "printer_id": notification.printer_id},
        )
        await self.deliveries.send(
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
            await self.alerts.add(
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
            notification = _job_notification(
                job.view, kind, owner=job.owner_id, name=job.name, version=job.version
            )
            sent = await self.deliveries.send_late(notification, created_by=job.ended_at)
            if sent:
                queued += sent
                log.warning(
                    "job %s ended (%s) with its submitter untold: telling them now",
                    job.view.id,
                    job.view.state.value,
                    extra={"job_id": job.view.id, "printer_id": notification.printer_id},
                )
        return queued

    async def plate_needed(self, job_id: str, printer_id: str) -> None:
        """A job waits on a printer whose plate a person must confirm: ask, once per pair."""
        if (job_id, printer_id) in self._plate_asked:
            return
        self._plate_asked[job_id, printer_id] = True
        await self.raiser.raise_alert(
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


def _job_notification(
    view: JobView, kind: NotificationKind, *, owner: str, name: str, version: int
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
