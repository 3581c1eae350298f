"""What a notification is, independent of how it travels: the ``Notification`` value and its JSON.

Every channel (SSE, webhooks, e-mail and the other Apprise services) sends the same public payload,
so a receiver can parse a webhook body and an SSE ``data:`` line with one function.
"""

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import uuid_utils

# One severity for alerts the store keeps and the notifications they become, re-exported
# here for the senders (an alias is how mypy's strict mode knows the re-export is meant).
from printfleet.cloud.store.values import Severity as Severity  # noqa: PLC0414
from printfleet.protocol.messages import AlertBody

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
"""A value that survives a JSON round trip unchanged."""


class NotificationKind(StrEnum):
    """What happened. Receivers switch on this; the SSE ``event:`` field carries it."""

    JOB_SUBMITTED = "job_submitted"
    JOB_STAGED = "job_staged"
    JOB_STARTED = "job_started"
    JOB_PROGRESS = "job_progress"
    JOB_PAUSED = "job_paused"
    JOB_RESUMED = "job_resumed"
    JOB_REQUEUED = "job_requeued"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_REJECTED = "job_rejected"
    JOB_EXPIRED = "job_expired"
    THERMAL_FAULT = "thermal_fault"
    FAULT_CLEARED = "fault_cleared"
    PRINTER_OFFLINE = "printer_offline"
    PLATE_CONFIRMATION_NEEDED = "plate_confirmation_needed"
    MAINTENANCE_DUE = "maintenance_due"
    PRINTER_ALERT = "printer_alert"
    """An alert kind this version does not know; ``data["alert_kind"]`` names it."""
    PRINTER_STATE = "printer_state"
    PRINTER_TELEMETRY = "printer_telemetry"
    TEST = "test"


JOB_ENDS: frozenset[NotificationKind] = frozenset(
    {
        NotificationKind.JOB_COMPLETED,
        NotificationKind.JOB_FAILED,
        NotificationKind.JOB_CANCELLED,
        NotificationKind.JOB_REJECTED,
        NotificationKind.JOB_EXPIRED,
    }
)
"""The terminal states of a job (S7)."""

DEFAULT_SEVERITY: Mapping[NotificationKind, Severity] = MappingProxyType(
    {
        NotificationKind.JOB_SUBMITTED: Severity.INFO,
        NotificationKind.JOB_STAGED: Severity.INFO,
        NotificationKind.JOB_STARTED: Severity.INFO,
        NotificationKind.JOB_PROGRESS: Severity.INFO,
        NotificationKind.JOB_PAUSED: Severity.INFO,
        NotificationKind.JOB_RESUMED: Severity.INFO,
        NotificationKind.JOB_REQUEUED: Severity.INFO,
        NotificationKind.JOB_COMPLETED: Severity.INFO,
        NotificationKind.JOB_FAILED: Severity.WARNING,
        NotificationKind.JOB_CANCELLED: Severity.INFO,
        NotificationKind.JOB_REJECTED: Severity.WARNING,
        NotificationKind.JOB_EXPIRED: Severity.WARNING,
        NotificationKind.THERMAL_FAULT: Severity.CRITICAL,
        NotificationKind.FAULT_CLEARED: Severity.INFO,
        NotificationKind.PRINTER_OFFLINE: Severity.WARNING,
        NotificationKind.PLATE_CONFIRMATION_NEEDED: Severity.INFO,
        NotificationKind.MAINTENANCE_DUE: Severity.WARNING,
        NotificationKind.PRINTER_ALERT: Severity.WARNING,
        NotificationKind.PRINTER_STATE: Severity.INFO,
        NotificationKind.PRINTER_TELEMETRY: Severity.INFO,
        NotificationKind.TEST: Severity.INFO,
    }
)
"""The severity a kind gets when its creator does not choose one."""

ALERT_KINDS: frozenset[NotificationKind] = frozenset(
    {
        NotificationKind.THERMAL_FAULT,
        NotificationKind.FAULT_CLEARED,
        NotificationKind.PRINTER_OFFLINE,
        NotificationKind.PLATE_CONFIRMATION_NEEDED,
        NotificationKind.MAINTENANCE_DUE,
        NotificationKind.PRINTER_ALERT,
    }
)
"""What a printer's people must hear about on every channel they set up, not only live (S6)."""


_ID = re.compile(r"[\x21-\x7e]{1,200}")
"""Visible ASCII only: an id goes into HTTP headers and SSE ``id:`` lines verbatim."""


def must_tell_submitter(kind: NotificationKind, *, wants_completion: bool = False) -> bool:
    """Whether S7 obliges the cloud to tell a job's submitter about ``kind``.

    Every end but completion must reach the submitter; completion only if they asked for it.
    """
    if kind is NotificationKind.JOB_COMPLETED:
        return wants_completion
    return kind in JOB_ENDS


def goes_to_channels(kind: NotificationKind, *, wants_completion: bool = False) -> bool:
    """Whether ``kind`` is sent to webhooks and e-mail as well as to the live event streams.

    Alerts, job ends the submitter must hear of (S7) and tests are; progress, state changes
    and telemetry are for live views only, as a mailbox full of them would hide what matters.
    """
    return (
        kind in ALERT_KINDS
        or kind is NotificationKind.TEST
        or must_tell_submitter(kind, wants_completion=wants_completion)
    )


def new_notification_id() -> str:
    """A time-ordered UUIDv7, like every other id printfleet issues."""
    return str(uuid_utils.uuid7())


def _frozen_json(data: Mapping[str, Any]) -> Mapping[str, JsonValue]:
    # A round trip through JSON proves the data is JSON-able now rather than at the first send,
    # and detaches it from the caller's objects, so a frozen notification cannot change later.
    try:
        copy = json.loads(json.dumps(dict(data), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"notification data is not JSON-able: {error}") from None
    return MappingProxyType(copy)


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing a person must be told, addressed to one or more users.

    ``id`` is the idempotency key: the bus and the notifier ignore an id they have just seen,
    and webhooks carry it so that receivers can discard a retried delivery they already have.
    ``user_ids`` says who may see it; it is never part of the payload a channel sends.
    """

    id: str
    kind: NotificationKind
    severity: Severity
    title: str
    message: str
    user_ids: frozenset[str]
    created_at: datetime
    printer_id: str | None = None
    job_id: str | None = None
    data: Mapping[str, JsonValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"a notification id is 1-200 visible ASCII characters: {self.id!r}")
        if not self.title.strip() or not self.message.strip():
            raise ValueError("a notification needs a title and a message a person can read")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        object.__setattr__(self, "kind", NotificationKind(self.kind))
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "user_ids", frozenset(self.user_ids))
        # Whole milliseconds, as on the wire, so that a payload parses back to an equal value.
        created_at = self.created_at.astimezone(UTC)
        created_at = created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)
        object.__setattr__(self, "created_at", created_at)
        object.__setattr__(self, "data", _frozen_json(self.data))

    @classmethod
    def create(
        cls,
        kind: NotificationKind,
        *,
        title: str,
        message: str,
        user_ids: Iterable[str],
        printer_id: str | None = None,
        job_id: str | None = None,
        severity: Severity | None = None,
        data: Mapping[str, Any] | None = None,
        notification_id: str | None = None,
        now: datetime | None = None,
    ) -> "Notification":
        """A new notification with a fresh id, the current time and the kind's default severity."""
        return cls(
            id=notification_id or new_notification_id(),
            kind=kind,
            severity=severity or DEFAULT_SEVERITY[kind],
            title=title,
            message=message,
            user_ids=frozenset(user_ids),
            created_at=now or datetime.now(UTC),
            printer_id=printer_id,
            job_id=job_id,
            data=dict(data or {}),
        )

    def payload(self) -> dict[str, JsonValue]:
        """The public JSON form every channel sends (without ``user_ids``: see the class)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "printer_id": self.printer_id,
            "job_id": self.job_id,
            "created_at": self.created_at.isoformat(timespec="milliseconds"),
            "data": dict(self.data),
        }

    def to_json(self) -> bytes:
        """:meth:`payload` as compact UTF-8 JSON on one line (SSE ``data:`` needs one line)."""
        return json.dumps(
            self.payload(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], *, user_ids: Iterable[str] = ()
    ) -> "Notification":
        """Parse :meth:`payload` (or a webhook body / SSE ``data:`` once JSON-decoded)."""
        return cls(
            id=str(payload["id"]),
            kind=NotificationKind(payload["kind"]),
            severity=Severity(payload["severity"]),
            title=str(payload["title"]),
            message=str(payload["message"]),
            user_ids=frozenset(user_ids),
            created_at=datetime.fromisoformat(str(payload["created_at"])),
            printer_id=payload.get("printer_id"),
            job_id=payload.get("job_id"),
            data=dict(payload.get("data") or {}),
        )

    def text(self) -> str:
        """The message with its context, as plain text for e-mail and chat services."""
        lines = [self.message, ""]
        if self.printer_id:
            lines.append(f"Printer: {self.printer_id}")
        if self.job_id:
            lines.append(f"Job: {self.job_id}")
        lines.append(f"Severity: {self.severity.value}")
        lines.append(f"Time: {self.created_at.strftime('%Y-%m-%d %H:%M:%S UTC')}")
        lines.append(f"Notification id: {self.id}")
        return "\n".join(lines)


_ALERT_KINDS: Mapping[str, NotificationKind] = MappingProxyType(
    {
        "thermal_fault": NotificationKind.THERMAL_FAULT,
        "fault_cleared": NotificationKind.FAULT_CLEARED,
        "plate_confirmation_needed": NotificationKind.PLATE_CONFIRMATION_NEEDED,
        "printer_offline": NotificationKind.PRINTER_OFFLINE,
        "maintenance_due": NotificationKind.MAINTENANCE_DUE,
    }
)

_ALERT_TITLES: Mapping[NotificationKind, str] = MappingProxyType(
    {
        NotificationKind.THERMAL_FAULT: "Thermal fault on {printer}: heaters are off",
        NotificationKind.FAULT_CLEARED: "Fault cleared on {printer}",
        NotificationKind.PLATE_CONFIRMATION_NEEDED: "{printer} needs its plate confirmed clear",
        NotificationKind.PRINTER_OFFLINE: "{printer} is offline",
        NotificationKind.MAINTENANCE_DUE: "{printer} is due for service",
    }
)


def from_alert(
    printer_id: str,
    alert: AlertBody,
    *,
    user_ids: Iterable[str],
    job_id: str | None = None,
    notification_id: str | None = None,
    now: datetime | None = None,
    data: Mapping[str, Any] | None = None,
) -> Notification:
    """The notification for an alert a printer raised; the printer's own words are the message.

    Alert kinds printfleet does not know yet become ``printer_alert`` with the printer's kind in
    ``data["alert_kind"]``, so a newer agent's alert still reaches people.
    """
    kind = _ALERT_KINDS.get(alert.kind, NotificationKind.PRINTER_ALERT)
    template = _ALERT_TITLES.get(kind, "Alert from {printer}: {kind}")
    message = (
        alert.message if alert.message.strip() else f"{printer_id} raised a {alert.kind} alert."
    )
    return Notification.create(
        kind,
        title=template.format(printer=printer_id, kind=alert.kind),
        message=message,
        user_ids=user_ids,
        printer_id=printer_id,
        job_id=job_id,
        severity=Severity(alert.severity),
        data={**(data or {}), "alert_kind": alert.kind},
        notification_id=notification_id,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery printfleet gave up on, for the store to keep and a person or a job to retry.

    ``target`` is the channel's URL as configured; for Apprise it may hold credentials, so it is
    kept out of ``repr`` and logs. ``payload`` is the exact body that was (to be) sent.
    """

    notification_id: str
    channel: str
    target: str = field(repr=False)
    reason: str
    attempts: int
    last_status: int | None
    payload: bytes = field(repr=False)
    failed_at: datetime


DeadLetterSink: TypeAlias = Callable[[DeadLetter], Awaitable[None]]
"""Where given-up deliveries go; the cloud's store persists them."""


def redact_url(url: str, *, keep_host: bool = True) -> str:
    """A URL fit for logs and error messages: scheme and host only, or the scheme alone.

    Paths, queries and user info often carry tokens (Slack-style webhook paths, Apprise
    credentials); Apprise even puts tokens in the host part, hence ``keep_host=False`` there.
    """
    parts = urlsplit(url)
    scheme = parts.scheme or "?"
    if not keep_host:
        return f"{scheme}://..."
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{scheme}://{parts.hostname or '?'}{port}/..."
