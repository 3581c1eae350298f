"""What the use cases need of the store, as narrow protocols: each names only the methods of
one repository that some use case calls, so a use case can be run over a fake of just that.

The store's repositories (``printfleet.cloud.store``) satisfy them; mypy checks it where
:class:`~printfleet.cloud.service.CloudService` hands the repositories in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from printfleet.cloud.store import (
    Actor,
    AlertRecord,
    AuditNote,
    AuditRecord,
    ChannelKind,
    ChannelRecord,
    DeliveryRecord,
    FileRecord,
    JobCreated,
    JobRecord,
    JSONValue,
    PoolRecord,
    PrinterAccess,
    PrinterRecord,
    Role,
    ShareRole,
    TelemetryRecord,
    TokenRecord,
    UserRecord,
)
from printfleet.cloud.store.jobs import ANY_PRINTER
from printfleet.cloud.store.stats import JobHistoryRow
from printfleet.protocol.dispatch import JobView, Requirements
from printfleet.protocol.lifecycle import JobState


class AccountRecords(Protocol):
    """The accounts and tokens the account use cases read and write (the store's ``Accounts``)."""

    async def create_user(self, email: str, *, display_name: str, password_hash: str) -> UserRecord:
        """Add a user. E-mail addresses are stored lower-cased, so they are unique regardless of
        case. Raises :class:`AlreadyExists` for a known address."""
        ...

    async def get_user(self, user_id: str) -> UserRecord:
        """A user by id; raises :class:`NotFound`."""
        ...

    async def user_by_email(self, email: str) -> UserRecord | None:
        """A user by e-mail address (any case), or None."""
        ...

    async def has_users(self) -> bool:
        """Whether any account exists (a fresh install has none)."""
        ...

    async def create_token(
        self, user_id: str, *, name: str, token: str, scopes: Iterable[str], expires_at: int
    ) -> TokenRecord:
        """Register an API token the caller generated, working until ``expires_at`` (cloud ms); only
        its digest is kept."""
        ...

    async def authenticate_token(self, token: str) -> TokenRecord | None:
        """The unrevoked token with this value, or None; notes that it was used unless it has
        expired (the caller checks :meth:`TokenRecord.expired`, to say why it refuses)."""
        ...

    async def tokens_for_user(self, user_id: str) -> list[TokenRecord]:
        """A user's tokens, revoked ones included, oldest first."""
        ...

    async def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke a token (a second revocation keeps the first time); raises :class:`NotFound`."""
        ...


class PrinterRecords(Protocol):
    """The printers and shares the use cases read and write (every change audited by the store)
    (the store's ``Printers``)."""

    async def create(
        self,
        printer_id: str,
        *,
        owner_id: str,
        name: str,
        model: str,
        broker_username: str,
        broker_password_hash: str,
        plate_check: bool = True,
        cloud_enabled: bool = True,
    ) -> PrinterRecord:
        """Provision a printer. Raises :class:`AlreadyExists` for a known printer id or broker user,
        :class:`NotFound` for an unknown owner."""
        ...

    async def get(self, printer_id: str) -> PrinterRecord:
        """A printer by id; raises :class:`NotFound`."""
        ...

    async def update(
        self,
        printer_id: str,
        *,
        actor: Actor,
        name: str | None = None,
        plate_check: bool | None = None,
        cloud_enabled: bool | None = None,
    ) -> PrinterRecord:
        """Change a printer's settings (None leaves one as is), auditing what changed: turning the
        plate check off is a safety decision someone must answer for (S5)."""
        ...

    async def share(self, printer_id: str, user_id: str, role: ShareRole, *, actor: Actor) -> None:
        """Give ``user_id`` a role on the printer, replacing any role it had (audited)."""
        ...

    async def unshare(self, printer_id: str, user_id: str, *, actor: Actor) -> ShareRole | None:
        """Take a user's share away (audited); the role it gave, or None if there was none."""
        ...

    async def shares_of(self, printer_id: str) -> list[tuple[UserRecord, ShareRole]]:
        """Who the printer is shared with, and as what, by e-mail address."""
        ...

    async def for_user(self, user_id: str) -> list[PrinterAccess]:
        """The printers a user owns or has a share of, with the user's role, by printer id."""
        ...

    async def role_of(self, printer_id: str, user_id: str) -> Role | None:
        """What ``user_id`` may do with the printer, or None if it may not even see it."""
        ...


class AuditTrail(Protocol):
    """The audit log as the use cases use it: entries added, and read per printer and per job
    (the store's ``AuditLog``)."""

    async def append(
        self,
        actor: Actor,
        action: str,
        *,
        printer_id: str | None = None,
        job_id: str | None = None,
        command_id: str | None = None,
        detail: Mapping[str, JSONValue] | None = None,
    ) -> AuditRecord:
        """Add an entry to the audit log, stamped with the store's clock."""
        ...

    async def for_printer(
        self, printer_id: str, *, since: int | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """A printer's most recent entries (at or after ``since``), in order."""
        ...

    async def for_job(self, job_id: str) -> list[AuditRecord]:
        """Everything logged about a job, in order: who created it, and each command and end."""
        ...


class TelemetryRecords(Protocol):
    """A printer's stored telemetry, for its charts (the store's ``TelemetryLog``)."""

    async def for_printer(
        self, printer_id: str, *, since: int | None = None, limit: int = 500
    ) -> list[TelemetryRecord]:
        """A printer's most recent snapshots (at or after ``since``), oldest first."""
        ...


class UploadedFiles(Protocol):
    """Uploaded files as their owners look them up (the store's ``Files``)."""

    async def get(self, file_id: str) -> FileRecord:
        """A file by id; raises :class:`NotFound`."""
        ...

    async def for_owner(self, owner_id: str) -> list[FileRecord]:
        """A user's files, newest first."""
        ...


class JobRecords(Protocol):
    """Jobs as people create, read, list and cancel them (the store's ``Jobs``)."""

    async def create(
        self,
        owner_id: str,
        *,
        sha256: str,
        start_by: int,
        printer_id: str | None = None,
        model: str | None = None,
        pool_id: str | None = None,
        requirements: Requirements = ANY_PRINTER,
        priority: int = 0,
        copies: int = 1,
        file_id: str | None = None,
        name: str = "",
        notify_completion: bool = False,
        idempotency_key: str | None = None,
    ) -> JobCreated:
        """Queue a job (``copies`` of it, as one batch) for ``printer_id``, any printer of
        ``model`` or any printer of the pool ``pool_id``, and audit who asked."""
        ...

    async def load(self, job_id: str) -> JobRecord:
        """A job by id; raises :class:`NotFound`."""
        ...

    async def for_owner(
        self,
        owner_id: str,
        *,
        states: Collection[JobState] | None = None,
        printer_id: str | None = None,
        batch_id: str | None = None,
        older_than: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """A user's jobs, newest first, a page at a time."""
        ...

    async def save(
        self, view: JobView, *, expected_version: int, audit: AuditNote | None = None
    ) -> JobRecord:
        """Write a job's new view if the job is still at ``expected_version``; returns the job at
        its next version."""
        ...

    async def record_terminal(
        self,
        view: JobView,
        *,
        expected_version: int,
        actor: Actor,
        command_id: str | None = None,
        detail: Mapping[str, JSONValue] | None = None,
    ) -> JobRecord:
        """End a job: :meth:`save` for a terminal ``view`` that insists the job was still open, and
        audits the end as ``job.<state>`` by ``actor`` in the same transaction."""
        ...


class PoolRecords(Protocol):
    """Pools of printers as their owners keep them (the store's ``Pools``)."""

    async def create(self, owner_id: str, name: str, printer_ids: Collection[str]) -> PoolRecord:
        """Make a pool; raises :class:`AlreadyExists` for a name the owner already uses."""
        ...

    async def get(self, pool_id: str) -> PoolRecord:
        """A pool by id; raises :class:`NotFound`."""
        ...

    async def for_owner(self, owner_id: str) -> list[PoolRecord]:
        """A user's pools, by name."""
        ...

    async def update(
        self,
        pool_id: str,
        *,
        actor: Actor,
        name: str | None = None,
        printer_ids: Collection[str] | None = None,
    ) -> PoolRecord:
        """Rename a pool or replace its printers."""
        ...

    async def delete(self, pool_id: str, *, actor: Actor) -> None:
        """Delete a pool; raises :class:`StateConflict` while open jobs target it."""
        ...

    async def of_printers(self, owner_id: str) -> dict[str, tuple[str, ...]]:
        """Printer id -> the ids of ``owner_id``'s pools it is in."""
        ...


class AlertRecords(Protocol):
    """Alerts as people list and acknowledge them (the store's ``Alerts``)."""

    async def latest(
        self,
        *,
        printer_ids: Collection[str] | None = None,
        unacked_only: bool = False,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Alerts, newest first: of ``printer_ids`` only if given, and if ``unacked_only`` only
        those that need attention (neither acknowledged nor resolved)."""
        ...

    async def ack(self, alert_id: str, *, user_id: str) -> AlertRecord:
        """Acknowledge an alert; the first acknowledgement stands. Raises :class:`NotFound`."""
        ...


class ChannelRecords(Protocol):
    """A user's notification channels (the store's ``Channels``)."""

    async def for_user(self, user_id: str) -> list[ChannelRecord]:
        """A user's channels, oldest first."""
        ...

    async def create(
        self,
        user_id: str,
        *,
        kind: ChannelKind,
        target: str,
        secret: str | None = None,
        enabled: bool = True,
    ) -> ChannelRecord:
        """Add a notification channel for a user; its target and secret are sealed."""
        ...

    async def get(self, channel_id: str) -> ChannelRecord:
        """One channel; raises :class:`NotFound`."""
        ...

    async def delete(self, channel_id: str) -> None:
        """Remove a channel and its deliveries; raises :class:`NotFound`."""
        ...


class DeliveryRecords(Protocol):
    """A channel's deliveries, for its owner to look at (the store's ``Deliveries``)."""

    async def for_channel(self, channel_id: str, *, limit: int = 100) -> list[DeliveryRecord]:
        """A channel's most recent deliveries, newest first."""
        ...


class JobHistoryRecords(Protocol):
    """Ended jobs as statistics count them (the store's ``JobHistory``)."""

    async def ended_jobs(
        self, user_id: str, *, since: int | None = None, until: int | None = None
    ) -> list[JobHistoryRow]:
        """Jobs the user submitted or that ran on printers the user owns, ended at or after
        ``since`` and before ``until`` (cloud ms), oldest end first."""
        ...
