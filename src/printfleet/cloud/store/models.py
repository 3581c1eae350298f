"""The cloud's schema as typed SQLAlchemy models: one class per table, and nothing else.

Times are cloud milliseconds (integers) throughout, as in the protocol, so a row and a
:class:`~printfleet.protocol.dispatch.JobView` compare without time-zone conversions on either
database. The Alembic revisions in ``printfleet.cloud.migrations`` create these tables; a test
checks that they and these models agree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from printfleet.cloud.store.values import (
    ActorKind,
    ChannelKind,
    JSONObject,
    JSONValue,
    Severity,
    ShareRole,
)
from printfleet.protocol.lifecycle import JobState

# Deterministic constraint names, so later migrations (SQLite's batch mode above all) can
# name what they alter, identically on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LENGTH = 36
PRINTER_ID_LENGTH = 64
"""Protocol printer ids are at most 63 characters."""
SHA256_LENGTH = 64

# JSONB on PostgreSQL: binary, indexable, and compares by value rather than by text. (Typed
# Any: SQLAlchemy's own JSON value type leaves out floats; the Mapped annotations say more.)
JSONColumn: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")

# An auto-incrementing 64-bit key; SQLite only auto-increments a column declared INTEGER.
SerialKey: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")


def _enum(kind: type[StrEnum], name: str) -> Enum:
    # VARCHAR plus a CHECK rather than a native PostgreSQL enum: the same on both databases,
    # and storing the values ("queued"), which is what the wire format and the API show.
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in kind),
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """The declarative base of every table of the store."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person who signs in; the password hash (argon2) is made by the API."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer token for the CLI and SDK; only its SHA-256 is stored, never the token."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    scopes: Mapped[list[JSONValue]] = mapped_column(JSONColumn)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    """Every token ends; the service chooses when (see ``CloudService.create_token``)."""


class Printer(Base):
    """A provisioned printer; ``id`` is its protocol printer id."""

    __tablename__ = "printers"

    id: Mapped[str] = mapped_column(String(PRINTER_ID_LENGTH), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(40))
    broker_username: Mapped[str] = mapped_column(String(128), unique=True)
    broker_password_hash: Mapped[str] = mapped_column(Text)
    plate_check: Mapped[bool] = mapped_column(Boolean)
    """S5: on by default; turning it off is audited."""
    cloud_enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[int] = mapped_column(BigInteger)


class PrinterShare(Base):
    """A printer shared with another user, who may operate or only view it."""

    __tablename__ = "printer_shares"

    printer_id: Mapped[str] = mapped_column(
        ForeignKey("printers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[ShareRole] = mapped_column(_enum(ShareRole, "share_role"))


class File(Base):
    """An uploaded print file; its bytes live in object storage under ``storage_key``."""

    __tablename__ = "files"
    __table_args__ = (Index(None, "owner_id", "sha256"),)

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    storage_key: Mapped[str] = mapped_column(String(500), unique=True)
    # "metadata" is taken on declarative classes, so the attribute has another name.
    file_metadata: Mapped[JSONObject] = mapped_column("metadata", JSONColumn)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Job(Base):
    """A print job: every field of ``JobView`` under the same name, plus its owner's details.

    ``version`` grows by one on every write; writers compare-and-set on it, which is what
    makes a replica's dispatch decision its own.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        Index(None, "owner_id", "created_at"),
        # The dispatcher's query: open states, and recently ended (cancelled) jobs.
        Index(None, "state", "ended_at"),
    )

    # JobView's fields.
    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    start_by: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"))
    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    printer_id: Mapped[str | None] = mapped_column(ForeignKey("printers.id"))
    model: Mapped[str | None] = mapped_column(String(40))
    assigned_printer: Mapped[str | None] = mapped_column(ForeignKey("printers.id"), index=True)
    stage_sent_at: Mapped[int | None] = mapped_column(BigInteger)
    stage_command_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    command_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    not_after: Mapped[int | None] = mapped_column(BigInteger)
    last_query_at: Mapped[int | None] = mapped_column(BigInteger)
    query_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    cancel_sent_at: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)

    # The rest.
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    notify_completion: Mapped[bool] = mapped_column(Boolean)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)

    # A farm's queue (revision r0004): order, target pool, requirements, why it waits, copies.
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    """Higher first; a person reorders the queue by changing it."""
    pool_id: Mapped[str | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), index=True
    )
    """Set null only under ended jobs: a pool with waiting jobs cannot be deleted."""
    material: Mapped[str | None] = mapped_column(String(40))
    nozzle_um: Mapped[int | None] = mapped_column(Integer)
    wait: Mapped[str | None] = mapped_column(String(40))
    """A ``WaitCode`` value; a plain string so that new codes need no migration."""
    batch_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), index=True)
    """Shared by the copies of one submission."""
    copy_index: Mapped[int | None] = mapped_column(Integer)
    copies: Mapped[int | None] = mapped_column(Integer)


class Pool(Base):
    """A named group of printers its owner submits jobs to ("any printer of this pool")."""

    __tablename__ = "pools"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)


class PoolPrinter(Base):
    """A printer in a pool; a printer may be in several pools."""

    __tablename__ = "pool_printers"

    pool_id: Mapped[str] = mapped_column(
        ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True
    )
    printer_id: Mapped[str] = mapped_column(
        ForeignKey("printers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AuditEntry(Base):
    """One line of the append-only audit log: who or what caused a command or a change (S1).

    No foreign keys: the log must outlive, and may mention, rows that are gone or never were
    (an event from an unknown printer). The migration adds triggers that refuse UPDATE and
    DELETE on this table.
    """

    __tablename__ = "audit"
    __table_args__ = (Index(None, "printer_id", "at"),)

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    actor_kind: Mapped[ActorKind] = mapped_column(_enum(ActorKind, "actor_kind"))
    actor_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    printer_id: Mapped[str | None] = mapped_column(String(PRINTER_ID_LENGTH))
    job_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), index=True)
    command_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), index=True)
    detail: Mapped[JSONObject] = mapped_column(JSONColumn)


class Alert(Base):
    """Something a person must see, such as a thermal fault (S6), until someone acknowledges it
    or its condition clears (a printer back online)."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "printer_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    printer_id: Mapped[str] = mapped_column(ForeignKey("printers.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[Severity] = mapped_column(_enum(Severity, "severity"))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    """When the alert's condition cleared; a person's acknowledgement is ``acked_at``."""
    resolution: Mapped[str | None] = mapped_column(Text)
    """What cleared it, as a sentence ("p1 is back online")."""


class NotificationChannel(Base):
    """Where a user's notifications go: a webhook URL or an Apprise URL."""

    __tablename__ = "notification_channels"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ChannelKind] = mapped_column(_enum(ChannelKind, "channel_kind"))
    target: Mapped[str] = mapped_column(Text)
    """Sealed (``store.sealing``): an Apprise URL may hold a password, a webhook URL a token."""
    secret: Mapped[str | None] = mapped_column(Text)
    """Signs webhook bodies, so it must be used, not only checked: sealed, never hashed."""
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Delivery(Base):
    """One notification to one channel: an outbox row, retried until delivered or dead-lettered.

    ``(channel_id, event_key)`` is unique, so enqueueing the same event twice sends it once.
    """

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("channel_id", "event_key"),)

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    channel_id: Mapped[str] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE")
    )
    event_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[JSONObject] = mapped_column(JSONColumn)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, index=True)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
    dead_lettered_at: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class TelemetrySample(Base):
    """A compact telemetry snapshot of one printer; how often to write one is the caller's call."""

    __tablename__ = "telemetry"
    __table_args__ = (Index(None, "printer_id", "at"),)

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    printer_id: Mapped[str] = mapped_column(ForeignKey("printers.id", ondelete="CASCADE"))
    at: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[JSONObject] = mapped_column(JSONColumn)


class PrinterMaintenance(Base):
    """When a part of a printer was last serviced, and how often it should be.

    A printer without a row for a part has never been serviced through printfleet and keeps
    the default interval; the row appears on the first service or interval change.
    """

    __tablename__ = "printer_maintenance"

    printer_id: Mapped[str] = mapped_column(
        ForeignKey("printers.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(16), primary_key=True)
    """``nozzle`` or ``belts``; the store's maintenance repository names the parts."""
    interval_h: Mapped[float | None]
    """Print hours between services; null: the cloud's default for the part."""
    serviced_at: Mapped[int | None] = mapped_column(BigInteger)
    hours_at_service: Mapped[float] = mapped_column(default=0.0)
    """The printer's print hours when the part was serviced; hours since count from here."""
    alerted_at: Mapped[int | None] = mapped_column(BigInteger)
    """When its ``maintenance_due`` alert was raised; cleared by the next service."""
