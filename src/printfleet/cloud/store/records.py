"""What the store hands out: frozen records, and the one place rows turn into them and back.

Records are plain dataclasses rather than ORM objects, so nothing a caller holds can lazy-load
(which would do I/O outside a transaction) or be changed and flushed by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from printfleet.cloud.store.models import (
    Alert,
    ApiToken,
    AuditEntry,
    Delivery,
    File,
    Job,
    NotificationChannel,
    Pool,
    Printer,
    TelemetrySample,
    User,
)
from printfleet.cloud.store.values import (
    Actor,
    ChannelKind,
    FileMetadata,
    JSONObject,
    JSONValue,
    Role,
    Severity,
)
from printfleet.protocol.dispatch import JobView, Requirements, WaitCode


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user; ``password_hash`` is the API's argon2 string."""

    id: str
    email: str
    display_name: str
    password_hash: str
    created_at: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token's metadata (the token itself is never stored)."""

    id: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
    expires_at: int

    def expired(self, now: int) -> bool:
        """Whether the token has stopped working by ``now`` (cloud ms)."""
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class PrinterRecord:
    """A provisioned printer."""

    id: str
    owner_id: str
    name: str
    model: str
    broker_username: str
    broker_password_hash: str
    plate_check: bool
    cloud_enabled: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class PrinterAccess:
    """A printer a user may see, and what that user may do with it."""

    printer: PrinterRecord
    role: Role


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file."""

    id: str
    owner_id: str
    name: str
    size: int
    sha256: str
    storage_key: str
    metadata: FileMetadata
    created_at: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored: the dispatcher's :class:`JobView`, its version, and its owner's details.

    Pass ``version`` back as ``expected_version`` when saving a view derived from ``view``.
    """

    view: JobView
    version: int
    owner_id: str
    file_id: str | None
    name: str
    notify_completion: bool
    idempotency_key: str | None
    ended_at: int | None
    batch_id: str | None = None
    """Shared by the copies of one submission; None for a single job."""
    copy_index: int | None = None
    """Which copy this is, from 1; None for a single job."""
    copies: int | None = None
    """How many copies the submission asked for; None for a single job."""


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """A named group of printers, and the printers in it (by id, sorted)."""

    id: str
    owner_id: str
    name: str
    printer_ids: tuple[str, ...]
    created_at: int


class JobCreated(NamedTuple):
    """The job a creation request refers to, and whether this request created it."""

    job: JobRecord
    created: bool
    """False when an earlier request with the same idempotency key already had."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit log entry."""

    id: int
    at: int
    actor: Actor
    action: str
    printer_id: str | None
    job_id: str | None
    command_id: str | None
    detail: Mapping[str, JSONValue]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert, whether, when and by whom it was acknowledged, and whether and when its
    condition cleared."""

    id: str
    printer_id: str
    job_id: str | None
    kind: str
    severity: Severity
    message: str
    created_at: int
    acked_by: str | None
    acked_at: int | None
    resolved_at: int | None
    resolution: str | None

    @property
    def duration_ms(self) -> int | None:
        """How long the alert lasted: until it was resolved, or else acknowledged."""
        ended = self.resolved_at if self.resolved_at is not None else self.acked_at
        return None if ended is None else ended - self.created_at


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """A notification channel."""

    id: str
    user_id: str
    kind: ChannelKind
    target: str
    secret: str | None
    enabled: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A notification on its way to one channel."""

    id: str
    channel_id: str
    event_key: str
    payload: Mapping[str, JSONValue]
    attempts: int
    next_attempt_at: int
    delivered_at: int | None
    dead_lettered_at: int | None
    last_error: str
    created_at: int


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    """One stored telemetry snapshot."""

    printer_id: str
    at: int
    data: Mapping[str, JSONValue]


# ---------------------------------------------------------------------------------------------
# Rows <-> records. The job conversions are the only place that knows how JobView is stored.

IMMUTABLE_JOB_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "start_by",
        "sha256",
        "printer_id",
        "model",
        "submitter",
        "pool_id",
        "requirements",
    }
)
"""JobView fields fixed when the job is created; saving a view never changes them."""


def job_view(row: Job) -> JobView:
    """The dispatcher's view of a job row."""
    return JobView(
        id=row.id,
        created_at=row.created_at,
        start_by=row.start_by,
        state=row.state,
        sha256=row.sha256,
        submitter=row.owner_id,
        printer_id=row.printer_id,
        model=row.model,
        assigned_printer=row.assigned_printer,
        stage_sent_at=row.stage_sent_at,
        stage_command_id=row.stage_command_id,
        command_id=row.command_id,
        not_after=row.not_after,
        last_query_at=row.last_query_at,
        query_id=row.query_id,
        cancel_sent_at=row.cancel_sent_at,
        reason=row.reason,
        wait=_wait_code(row.wait),
        priority=row.priority,
        pool_id=row.pool_id,
        requirements=Requirements(material=row.material, nozzle_um=row.nozzle_um),
    )


def _wait_code(value: str | None) -> WaitCode | None:
    # A code this version does not know (written by a newer replica) reads as "no code": the
    # job's reason still says it in words.
    try:
        return None if value is None else WaitCode(value)
    except ValueError:
        return None


def job_creation_columns(view: JobView) -> dict[str, object]:
    """Every JobView field, as the columns of a new row."""
    return {
        "owner_id": view.submitter,
        "id": view.id,
        "created_at": view.created_at,
        "start_by": view.start_by,
        "sha256": view.sha256,
        "printer_id": view.printer_id,
        "model": view.model,
        "pool_id": view.pool_id,
        "material": view.requirements.material,
        "nozzle_um": view.requirements.nozzle_um,
        **job_mutable_columns(view),
    }


def job_mutable_columns(view: JobView) -> dict[str, object]:
    """The JobView fields a save writes: everything but :data:`IMMUTABLE_JOB_FIELDS`."""
    return {
        "state": view.state,
        "assigned_printer": view.assigned_printer,
        "stage_sent_at": view.stage_sent_at,
        "stage_command_id": view.stage_command_id,
        "command_id": view.command_id,
        "not_after": view.not_after,
        "last_query_at": view.last_query_at,
        "query_id": view.query_id,
        "cancel_sent_at": view.cancel_sent_at,
        "reason": view.reason,
        "wait": None if view.wait is None else view.wait.value,
        "priority": view.priority,
    }


def job_record(row: Job) -> JobRecord:
    """A job row as a record."""
    return JobRecord(
        view=job_view(row),
        version=row.version,
        owner_id=row.owner_id,
        file_id=row.file_id,
        name=row.name,
        notify_completion=row.notify_completion,
        idempotency_key=row.idempotency_key,
        ended_at=row.ended_at,
        batch_id=row.batch_id,
        copy_index=row.copy_index,
        copies=row.copies,
    )


def pool_record(row: Pool, printer_ids: list[str]) -> PoolRecord:
    """A pool row, with the ids of its printers, as a record."""
    return PoolRecord(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        printer_ids=tuple(sorted(printer_ids)),
        created_at=row.created_at,
    )


def user_record(row: User) -> UserRecord:
    """A user row as a record."""
    return UserRecord(row.id, row.email, row.display_name, row.password_hash, row.created_at)


def token_record(row: ApiToken) -> TokenRecord:
    """A token row as a record."""
    return TokenRecord(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        scopes=tuple(str(scope) for scope in row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
    )


def printer_record(row: Printer) -> PrinterRecord:
    """A printer row as a record."""
    return PrinterRecord(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        model=row.model,
        broker_username=row.broker_username,
        broker_password_hash=row.broker_password_hash,
        plate_check=row.plate_check,
        cloud_enabled=row.cloud_enabled,
        created_at=row.created_at,
    )


def metadata_document(metadata: FileMetadata) -> JSONObject:
    """File metadata as stored in its JSON column."""
    return {
        "estimated_s": metadata.estimated_s,
        "layers": metadata.layers,
        "filament_mm": metadata.filament_mm,
        "has_thumbnail": metadata.has_thumbnail,
        "filament_g": metadata.filament_g,
        "material": metadata.material,
        "nozzle_um": metadata.nozzle_um,
    }


def file_record(row: File) -> FileRecord:
    """A file row as a record."""
    document = row.file_metadata
    estimated_s, layers = document.get("estimated_s"), document.get("layers")
    filament_mm, filament_g = document.get("filament_mm"), document.get("filament_g")
    material, nozzle_um = document.get("material"), document.get("nozzle_um")
    metadata = FileMetadata(
        estimated_s=estimated_s if isinstance(estimated_s, int) else None,
        layers=layers if isinstance(layers, int) else None,
        # JSON does not tell 3.0 from 3: a whole number of millimetres may come back as an int.
        filament_mm=float(filament_mm) if isinstance(filament_mm, int | float) else None,
        has_thumbnail=document.get("has_thumbnail") is True,
        filament_g=float(filament_g) if isinstance(filament_g, int | float) else None,
        material=material if isinstance(material, str) else None,
        nozzle_um=nozzle_um
        if isinstance(nozzle_um, int) and not isinstance(nozzle_um, bool)
        else None,
    )
    return FileRecord(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        storage_key=row.storage_key,
        metadata=metadata,
        created_at=row.created_at,
    )


def audit_record(row: AuditEntry) -> AuditRecord:
    """An audit row as a record."""
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=Actor(row.actor_kind, row.actor_id),
        action=row.action,
        printer_id=row.printer_id,
        job_id=row.job_id,
        command_id=row.command_id,
        detail=row.detail,
    )


def alert_record(row: Alert) -> AlertRecord:
    """An alert row as a record."""
    return AlertRecord(
        id=row.id,
        printer_id=row.printer_id,
        job_id=row.job_id,
        kind=row.kind,
        severity=row.severity,
        message=row.message,
        created_at=row.created_at,
        acked_by=row.acked_by,
        acked_at=row.acked_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
    )


def channel_record(row: NotificationChannel) -> ChannelRecord:
    """A channel row as a record."""
    return ChannelRecord(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        target=row.target,
        secret=row.secret,
        enabled=row.enabled,
        created_at=row.created_at,
    )


def delivery_record(row: Delivery) -> DeliveryRecord:
    """A delivery row as a record."""
    return DeliveryRecord(
        id=row.id,
        channel_id=row.channel_id,
        event_key=row.event_key,
        payload=row.payload,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        dead_lettered_at=row.dead_lettered_at,
        last_error=row.last_error,
        created_at=row.created_at,
    )


def telemetry_record(row: TelemetrySample) -> TelemetryRecord:
    """A telemetry row as a record."""
    return TelemetryRecord(printer_id=row.printer_id, at=row.at, data=row.data)
