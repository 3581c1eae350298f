"""The cloud's store: the single source of truth for jobs, and for everything else the cloud keeps.

Each method is one short transaction, so no connection is held while the caller does I/O.
Jobs are written by compare-and-set on their version: a replica acts on a decision only after
its write won, so several cloud replicas can share one PostgreSQL database without a leader.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import uuid_utils
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    exc,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from printfleet.cloud.store.engine import WRITE_OPTION, create_engine, redacted
from printfleet.cloud.store.errors import (
    AlreadyExists,
    Conflict,
    IdempotencyMismatch,
    NotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from printfleet.cloud.store.models import (
    Alert,
    ApiToken,
    AuditEntry,
    Base,
    Delivery,
    File,
    Job,
    NotificationChannel,
    Printer,
    PrinterShare,
    TelemetrySample,
    User,
)
from printfleet.cloud.store.records import (
    AlertRecord,
    AuditRecord,
    ChannelRecord,
    DeliveryRecord,
    FileRecord,
    JobCreated,
    JobRecord,
    PrinterAccess,
    PrinterRecord,
    TelemetryRecord,
    TokenRecord,
    UserRecord,
    alert_record,
    audit_record,
    channel_record,
    delivery_record,
    file_record,
    job_creation_columns,
    job_mutable_columns,
    job_record,
    metadata_document,
    printer_record,
    telemetry_record,
    token_record,
    user_record,
)
from printfleet.cloud.store.sealing import (
    SecretBox,
    SecretUnreadable,
    is_sealed,
    seal_context,
)
from printfleet.cloud.store.values import (
    Actor,
    AuditNote,
    ChannelKind,
    FileMetadata,
    JSONObject,
    JSONValue,
    Role,
    Severity,
    ShareRole,
)
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.lifecycle import TERMINAL_STATES, JobState

CANCEL_WATCH_MS = 7 * 24 * 3_600_000
"""How long a cancelled job stays among :meth:`Store.open_jobs` (see there)."""

TOKEN_TOUCH_INTERVAL_MS = 60_000
"""``last_used_at`` is updated at most this often: one write per request would turn every
authenticated read into a write, the very load the overload design avoids."""

_TERMINAL = sorted(TERMINAL_STATES)
_OPEN = sorted(set(JobState) - TERMINAL_STATES)


def wall_clock_ms() -> int:
    """The cloud's clock: Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A fresh time-ordered id (UUIDv7), as jobs, files and the protocol's messages use."""
    return str(uuid_utils.uuid7())


def token_digest(token: str) -> str:
    """What the store keeps of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


async def open_store(
    url: str,
    *,
    pool_size: int = 5,
    pool_timeout_s: float = 2.0,
    connect_timeout_s: float = 5.0,
    busy_timeout_ms: int = 5_000,
    clock: Callable[[], int] = wall_clock_ms,
    secrets: SecretBox | None = None,
) -> Store:
    """Connect to the database at ``url`` (SQLite file or PostgreSQL) and check that it answers.

    The schema must exist already: run ``printfleet.cloud.migrations.upgrade(url)`` first.
    ``clock`` gives the cloud time (ms) the store stamps rows with. ``secrets`` seals secret
    columns (see :class:`Store`). Raises :class:`StoreUnavailable` if the database cannot be
    reached.
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        pool_timeout_s=pool_timeout_s,
        connect_timeout_s=connect_timeout_s,
        busy_timeout_ms=busy_timeout_ms,
    )
    store = Store(engine, clock=clock, secrets=secrets)
    try:
        await store.ping()
    except BaseException:
        await store.close()
        raise
    return store


class Store:
    """Repository over the cloud's database; see :func:`open_store`.

    Every method runs in a transaction of its own. Besides the errors each names, any method
    may raise :class:`StoreBusy` (no connection or lock in time) or :class:`StoreUnavailable`.

    Secret columns (a channel's target and secret) are sealed with ``secrets``, the data
    directory's key, and opened when read. The cloud always passes it; a store opened without
    one (a test, a tool) keeps what it writes as given and cannot read sealed values
    (:class:`SecretUnreadable`); :meth:`seal_secrets` seals such values later.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        secrets: SecretBox | None = None,
    ) -> None:
        self.engine = engine
        """The engine, for health checks and tests; prefer the methods."""
        self.url = redacted(engine.url)
        """The database URL, password masked."""
        self._clock = clock
        self._secrets = secrets
        self._dialect = engine.dialect.name
        self._readers = async_sessionmaker(engine, expire_on_commit=False)
        self._writers = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    async def ping(self) -> None:
        """Check that the database answers; raises StoreUnavailable or StoreBusy if not."""
        async with self._transaction(write=False) as session:
            await session.execute(text("SELECT 1"))

    # -----------------------------------------------------------------------------------------
    # Transactions and errors.

    @contextlib.asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        """One transaction; commits if the block returns, rolls back if it raises."""
        sessions = self._writers if write else self._readers
        async with sessions() as session:
            try:
                # Check a connection out (and BEGIN) before running anything, so that a failure
                # here is known to be about getting a connection, not about a statement.
                await session.connection()
            except Exception as error:
                raise self._connect_failure(error) from error
            try:
                yield session
                await session.commit()
            except Exception as error:
                translated = self._statement_failure(error)
                if translated is None:
                    raise
                raise translated from error

    def _connect_failure(self, error: Exception) -> StoreError:
        if isinstance(error, exc.TimeoutError):
            # QueuePool found no free connection within pool_timeout.
            return StoreBusy(f"no database connection free in time ({self.url})")
        if isinstance(error, exc.DBAPIError):
            return self._statement_failure(error) or StoreUnavailable(
                f"database {self.url} is unavailable: {_first_line(error)}"
            )
        # A refused or timed-out connect arrives as the driver's own error (OSError,
        # TimeoutError, asyncpg's), not wrapped by SQLAlchemy.
        return StoreUnavailable(f"database {self.url} is unavailable: {error!r}")

    def _statement_failure(self, error: Exception) -> StoreError | None:
        if not isinstance(error, exc.DBAPIError):
            return None
        if _sqlite_error(error).startswith("SQLITE_BUSY"):
            # The busy timeout ran out waiting for another writer (BEGIN IMMEDIATE waits here).
            return StoreBusy(f"database is locked by another writer ({self.url})")
        if isinstance(error, exc.IntegrityError):
            return _integrity_error(error)
        if error.connection_invalidated:
            return StoreUnavailable(f"database {self.url} went away: {_first_line(error)}")
        return None

    def _insert(self, entity: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say ON CONFLICT, in this database's dialect."""
        return postgresql.insert(entity) if self._dialect == "postgresql" else sqlite.insert(entity)

    # -----------------------------------------------------------------------------------------
    # Users and tokens.

    async def create_user(self, email: str, *, display_name: str, password_hash: str) -> UserRecord:
        """Add a user. E-mail addresses are stored lower-cased, so they are unique regardless of
        case. Raises :class:`AlreadyExists` for a known address."""
        row = User(
            id=new_id(),
            email=_normal_email(email),
            display_name=display_name,
            password_hash=password_hash,
            created_at=self._clock(),
        )
        async with self._transaction(write=True) as session:
            session.add(row)
        return user_record(row)

    async def get_user(self, user_id: str) -> UserRecord:
        """A user by id; raises :class:`NotFound`."""
        async with self._transaction(write=False) as session:
            return user_record(await _get(session, User, user_id))

    async def user_by_email(self, email: str) -> UserRecord | None:
        """A user by e-mail address (any case), or None."""
        async with self._transaction(write=False) as session:
            row = await session.scalar(select(User).where(User.email == _normal_email(email)))
            return None if row is None else user_record(row)

    async def create_token(
        self, user_id: str, *, name: str, token: str, scopes: Iterable[str], expires_at: int
    ) -> TokenRecord:
        """Register an API token the caller generated, working until ``expires_at`` (cloud ms);
        only its digest is kept."""
        row = ApiToken(
            id=new_id(),
            user_id=user_id,
            name=name,
            token_sha256=token_digest(token),
            scopes=sorted(set(scopes)),
            created_at=self._clock(),
            last_used_at=None,
            revoked_at=None,
            expires_at=expires_at,
        )
        async with self._transaction(write=True) as session:
            session.add(row)
        return token_record(row)

    async def authenticate_token(self, token: str) -> TokenRecord | None:
        """The unrevoked token with this value, or None; notes that it was used unless it has
        expired (the caller checks :meth:`TokenRecord.expired`, to say why it refuses)."""
        async with self._transaction(write=False) as session:
            row = await session.scalar(
                select(ApiToken).where(ApiToken.token_sha256 == token_digest(token))
            )
            if row is None or row.revoked_at is not None:
                return None
            record = token_record(row)
        now = self._clock()
        if record.expired(now):
            return record
        stale = now - TOKEN_TOUCH_INTERVAL_MS
        if record.last_used_at is None or record.last_used_at <= stale:
            async with self._transaction(write=True) as session:
                await session.execute(
                    update(ApiToken)
                    .where(
                        ApiToken.id == record.id,
                        or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale),
                    )
                    .values(last_used_at=now)
                )
            record = replace(record, last_used_at=now)
        return record

    async def tokens_for_user(self, user_id: str) -> list[TokenRecord]:
        """A user's tokens, revoked ones included, oldest first."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(ApiToken)
                .where(ApiToken.user_id == user_id)
                .order_by(ApiToken.created_at, ApiToken.id)
            )
            return [token_record(row) for row in rows]

    async def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke a token (a second revocation keeps the first time); raises :class:`NotFound`."""
        async with self._transaction(write=True) as session:
            row = await _get(session, ApiToken, token_id)
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return token_record(row)

    # -----------------------------------------------------------------------------------------
    # Printers and shares.

    async def create_printer(
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
        """Provision a printer. Raises :class:`AlreadyExists` for a known printer id or broker
        user, :class:`NotFound` for an unknown owner."""
        row = Printer(
            id=printer_id,
            owner_id=owner_id,
            name=name,
            model=model,
            broker_username=broker_username,
            broker_password_hash=broker_password_hash,
            plate_check=plate_check,
            cloud_enabled=cloud_enabled,
            created_at=self._clock(),
        )
        async with self._transaction(write=True) as session:
            session.add(row)
            session.add(
                self._audit_row(
                    Actor.user(owner_id),
                    "printer.created",
                    printer_id=printer_id,
                    detail={"plate_check": plate_check, "cloud_enabled": cloud_enabled},
                )
            )
        return printer_record(row)

    async def get_printer(self, printer_id: str) -> PrinterRecord:
        """A printer by id; raises :class:`NotFound`."""
        async with self._transaction(write=False) as session:
            return printer_record(await _get(session, Printer, printer_id))

    async def printers(self) -> list[PrinterRecord]:
        """Every printer, by id (the dispatcher's roster)."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(select(Printer).order_by(Printer.id))
            return [printer_record(row) for row in rows]

    async def update_printer(
        self,
        printer_id: str,
        *,
        actor: Actor,
        name: str | None = None,
        plate_check: bool | None = None,
        cloud_enabled: bool | None = None,
    ) -> PrinterRecord:
        """Change a printer's settings (None leaves one as is), auditing what changed: turning
        the plate check off is a safety decision someone must answer for (S5)."""
        async with self._transaction(write=True) as session:
            row = await _get(session, Printer, printer_id)
            changes: JSONObject = {}
            if name is not None and name != row.name:
                row.name, changes["name"] = name, name
            if plate_check is not None and plate_check != row.plate_check:
                row.plate_check, changes["plate_check"] = plate_check, plate_check
            if cloud_enabled is not None and cloud_enabled != row.cloud_enabled:
                row.cloud_enabled, changes["cloud_enabled"] = cloud_enabled, cloud_enabled
            if changes:
                session.add(
                    self._audit_row(actor, "printer.updated", printer_id=printer_id, detail=changes)
                )
            return printer_record(row)

    async def share_printer(
        self, printer_id: str, user_id: str, role: ShareRole, *, actor: Actor
    ) -> None:
        """Give ``user_id`` a role on the printer, replacing any role it had (audited).

        Raises :class:`NotFound` for an unknown printer or user, ValueError for the owner.
        """
        async with self._transaction(write=True) as session:
            printer = await _get(session, Printer, printer_id)
            if printer.owner_id == user_id:
                raise ValueError("a printer's owner cannot also be given a share of it")
            statement = self._insert(PrinterShare).values(
                printer_id=printer_id, user_id=user_id, role=role
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[PrinterShare.printer_id, PrinterShare.user_id],
                    set_={"role": statement.excluded.role},
                )
            )
            session.add(
                self._audit_row(
                    actor,
                    "printer.shared",
                    printer_id=printer_id,
                    detail={"user_id": user_id, "role": role.value},
                )
            )

    async def unshare_printer(
        self, printer_id: str, user_id: str, *, actor: Actor
    ) -> ShareRole | None:
        """Take a user's share away (audited); the role it gave, or None if there was none."""
        async with self._transaction(write=True) as session:
            role: ShareRole | None = await session.scalar(
                delete(PrinterShare)
                .where(PrinterShare.printer_id == printer_id, PrinterShare.user_id == user_id)
                .returning(PrinterShare.role)
            )
            if role is None:
                return None
            session.add(
                self._audit_row(
                    actor, "printer.unshared", printer_id=printer_id, detail={"user_id": user_id}
                )
            )
            return role

    async def shares_of(self, printer_id: str) -> list[tuple[UserRecord, ShareRole]]:
        """Who the printer is shared with, and as what, by e-mail address."""
        async with self._transaction(write=False) as session:
            rows = await session.execute(
                select(User, PrinterShare.role)
                .join(PrinterShare, PrinterShare.user_id == User.id)
                .where(PrinterShare.printer_id == printer_id)
                .order_by(User.email)
            )
            return [(user_record(user), role) for user, role in rows]

    async def printers_for_user(self, user_id: str) -> list[PrinterAccess]:
        """The printers a user owns or has a share of, with the user's role, by printer id."""
        visible = or_(Printer.owner_id == user_id, PrinterShare.user_id.is_not(None))
        async with self._transaction(write=False) as session:
            rows = await session.execute(
                _with_share_of(user_id).where(visible).order_by(Printer.id)
            )
            return [
                PrinterAccess(printer_record(printer), _role(printer, user_id, share))
                for printer, share in rows
            ]

    async def printer_audience(self, printer_id: str) -> frozenset[str]:
        """Every user who can see the printer: its owner and each user it is shared with."""
        async with self._transaction(write=False) as session:
            owner = await session.scalar(select(Printer.owner_id).where(Printer.id == printer_id))
            if owner is None:
                return frozenset()
            shared = await session.scalars(
                select(PrinterShare.user_id).where(PrinterShare.printer_id == printer_id)
            )
            return frozenset({owner, *shared})

    async def printer_operators(self) -> list[tuple[PrinterRecord, frozenset[str]]]:
        """Every printer, by id, with the users who may operate it: its owner and every user
        it is shared with as operator (two queries, whatever the fleet's size)."""
        async with self._transaction(write=False) as session:
            printers = list(await session.scalars(select(Printer).order_by(Printer.id)))
            shares = await session.execute(
                select(PrinterShare.printer_id, PrinterShare.user_id).where(
                    PrinterShare.role == ShareRole.OPERATOR
                )
            )
            operators: dict[str, set[str]] = {}
            for printer_id, user_id in shares:
                operators.setdefault(printer_id, set()).add(user_id)
            return [
                (printer_record(row), frozenset({row.owner_id, *operators.get(row.id, ())}))
                for row in printers
            ]

    async def printer_role(self, printer_id: str, user_id: str) -> Role | None:
        """What ``user_id`` may do with the printer, or None if it may not even see it."""
        async with self._transaction(write=False) as session:
            rows = await session.execute(_with_share_of(user_id).where(Printer.id == printer_id))
            row = rows.first()
        if row is None:
            return None
        printer, share = row
        if printer.owner_id != user_id and share is None:
            return None
        return _role(printer, user_id, share)

    # -----------------------------------------------------------------------------------------
    # Files.

    async def create_file(
        self,
        owner_id: str,
        *,
        name: str,
        size: int,
        sha256: str,
        storage_key: str,
        metadata: FileMetadata | None = None,
    ) -> FileRecord:
        """Record an uploaded file whose bytes are stored under ``storage_key``."""
        row = File(
            id=new_id(),
            owner_id=owner_id,
            name=name,
            size=size,
            sha256=sha256,
            storage_key=storage_key,
            file_metadata=metadata_document(metadata or FileMetadata()),
            created_at=self._clock(),
        )
        async with self._transaction(write=True) as session:
            session.add(row)
        return file_record(row)

    async def get_file(self, file_id: str) -> FileRecord:
        """A file by id; raises :class:`NotFound`."""
        async with self._transaction(write=False) as session:
            return file_record(await _get(session, File, file_id))

    async def files_by_id(self, file_ids: Collection[str]) -> dict[str, FileRecord]:
        """The files with these ids that exist, by id (one query for a page of jobs)."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(select(File).where(File.id.in_(list(file_ids))))
            return {row.id: file_record(row) for row in rows}

    async def files_for_owner(self, owner_id: str) -> list[FileRecord]:
        """A user's files, newest first."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(File)
                .where(File.owner_id == owner_id)
                .order_by(File.created_at.desc(), File.id.desc())
            )
            return [file_record(row) for row in rows]

    # -----------------------------------------------------------------------------------------
    # Jobs.

    async def create_job(
        self,
        owner_id: str,
        *,
        sha256: str,
        start_by: int,
        printer_id: str | None = None,
        model: str | None = None,
        file_id: str | None = None,
        name: str = "",
        notify_completion: bool = False,
        idempotency_key: str | None = None,
    ) -> JobCreated:
        """Queue a job for ``printer_id``, or for any printer of ``model``, and audit who asked.

        With an ``idempotency_key`` already used by the same owner, nothing is created: the
        earlier job is returned (``created`` is False), so a client may retry a creation whose
        answer it never got. Reusing a key for a different request (another file, printer,
        model, name or notification choice) raises :class:`IdempotencyMismatch`; ``start_by``
        is not compared, since a retry computes its window afresh.
        """
        if printer_id is None and model is None:
            raise ValueError("a job needs a printer or a printer model")
        view = JobView(
            id=new_id(),
            created_at=self._clock(),
            start_by=start_by,
            state=JobState.QUEUED,
            sha256=sha256,
            submitter=owner_id,
            printer_id=printer_id,
            model=model,
        )
        details = {
            "file_id": file_id,
            "name": name,
            "notify_completion": notify_completion,
            "idempotency_key": idempotency_key,
        }
        async with self._transaction(write=True) as session:
            # ON CONFLICT DO NOTHING rather than look-then-insert: on PostgreSQL two concurrent
            # requests with one key both look first, and only the unique index tells them apart.
            inserted = await session.scalar(
                self._insert(Job)
                .values(**job_creation_columns(view), **details, ended_at=None, version=1)
                .on_conflict_do_nothing(index_elements=[Job.owner_id, Job.idempotency_key])
                .returning(Job.id)
            )
            if inserted is None:
                existing = await session.scalar(
                    select(Job).where(
                        Job.owner_id == owner_id, Job.idempotency_key == idempotency_key
                    )
                )
                if existing is None:  # pragma: no cover - the conflicting row cannot vanish
                    raise StoreError("idempotency key conflict without a job")
                record = job_record(existing)
                asked = (sha256, printer_id, model, file_id, name, notify_completion)
                if _request_of(record) != asked:
                    raise IdempotencyMismatch(
                        f"idempotency key {idempotency_key!r} was used for job {record.view.id}, "
                        "a different request"
                    )
                return JobCreated(record, created=False)
            session.add(
                self._audit_row(
                    Actor.user(owner_id),
                    "job.created",
                    printer_id=printer_id,
                    job_id=view.id,
                    detail={"sha256": sha256, "model": model, "start_by": start_by},
                )
            )
        record = JobRecord(
            view=view,
            version=1,
            owner_id=owner_id,
            file_id=file_id,
            name=name,
            notify_completion=notify_completion,
            idempotency_key=idempotency_key,
            ended_at=None,
        )
        return JobCreated(record, created=True)

    async def load_job(self, job_id: str) -> JobRecord:
        """A job by id; raises :class:`NotFound`."""
        async with self._transaction(write=False) as session:
            return job_record(await _get(session, Job, job_id))

    async def open_jobs(self, *, cancel_watch_ms: int = CANCEL_WATCH_MS) -> list[JobRecord]:
        """The jobs the dispatcher must plan for, oldest first.

        These are the jobs not yet ended, plus cancelled jobs that may still be running on
        their printer: a cancel can cross a start in flight, and ``plan`` sends the cancel
        again while the printer reports the job. Such a job is still assigned to a printer and
        was cancelled within ``cancel_watch_ms``: 7 days by default, longer than prints run, so
        that a printer coming back after days offline still running it is told again. Older
        ones are left out, which keeps this query (run every dispatcher tick) from growing with
        the history; both halves are ranges of one index, on (state, ended_at).
        """
        cutoff = self._clock() - cancel_watch_ms
        may_still_run = and_(
            Job.state == JobState.CANCELLED,
            Job.ended_at >= cutoff,
            Job.assigned_printer.is_not(None),
        )
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(Job)
                .where(or_(Job.state.in_(_OPEN), may_still_run))
                .order_by(Job.created_at, Job.id)
            )
            return [job_record(row) for row in rows]

    async def jobs_ended_since(self, since: int, *, limit: int = 1000) -> list[JobRecord]:
        """Jobs that ended at or after ``since`` (cloud ms), oldest end first: what a starting
        cloud checks its submitters were told of (one range of the (state, ended_at) index)."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(Job)
                .where(Job.state.in_(_TERMINAL), Job.ended_at >= since)
                .order_by(Job.ended_at, Job.id)
                .limit(limit)
            )
            return [job_record(row) for row in rows]

    async def jobs_for_owner(
        self,
        owner_id: str,
        *,
        states: Collection[JobState] | None = None,
        printer_id: str | None = None,
        older_than: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """A user's jobs, newest first, a page at a time.

        ``states`` keeps jobs in those states; ``printer_id`` keeps jobs chosen for or assigned
        to that printer; ``older_than`` (a job id, the last of the previous page) continues a
        listing. Raises :class:`NotFound` if ``older_than`` is not one of the owner's jobs.
        """
        conditions: list[ColumnElement[bool]] = [Job.owner_id == owner_id]
        if states is not None:
            conditions.append(Job.state.in_(list(states)))
        if printer_id is not None:
            conditions.append(or_(Job.printer_id == printer_id, Job.assigned_printer == printer_id))
        async with self._transaction(write=False) as session:
            if older_than is not None:
                after = await session.scalar(
                    select(Job.created_at).where(Job.id == older_than, Job.owner_id == owner_id)
                )
                if after is None:
                    raise NotFound(f"no job {older_than} of this owner")
                conditions.append(tuple_(Job.created_at, Job.id) < tuple_(after, older_than))
            rows = await session.scalars(
                select(Job)
                .where(*conditions)
                .order_by(Job.created_at.desc(), Job.id.desc())
                .limit(limit)
            )
            return [job_record(row) for row in rows]

    async def save_job(
        self, view: JobView, *, expected_version: int, audit: AuditNote | None = None
    ) -> JobRecord:
        """Write a job's new view if the job is still at ``expected_version``; returns the job
        at its next version.

        Record each dispatch decision here *before* acting on it, with its audit note: if
        another replica moved the job first this raises :class:`Conflict`, and the decision
        must be dropped. Fields fixed at creation (``id``, ``created_at``, ``start_by``,
        ``sha256``, ``printer_id``, ``model``) are not written. A view that ends the job stamps
        ``ended_at``; an ended job may still change (a cancelled one notes each cancel sent)
        but not leave its end state: trying raises ValueError.
        """
        now = self._clock()
        # An ended job keeps its state; an open one may move anywhere, an end included.
        same_end: ColumnElement[bool] = Job.state.not_in(_TERMINAL)
        if view.state.terminal:
            same_end = or_(same_end, Job.state == view.state)
        columns = {**job_mutable_columns(view), "ended_at": _ended_at(view, now)}
        async with self._transaction(write=True) as session:
            row = await self._compare_and_set(session, view, expected_version, same_end, columns)
            if row is None:
                raise await self._refusal(session, view, expected_version)
            if audit is not None:
                session.add(self._job_audit_row(view, audit))
            return job_record(row)

    async def record_terminal(
        self,
        view: JobView,
        *,
        expected_version: int,
        actor: Actor,
        command_id: str | None = None,
        detail: Mapping[str, JSONValue] | None = None,
    ) -> JobRecord:
        """End a job: :meth:`save_job` for a terminal ``view`` that insists the job was still
        open, and audits the end as ``job.<state>`` by ``actor`` in the same transaction.

        Raises ValueError if ``view`` is not terminal or the job has already ended, and
        :class:`Conflict` if it moved since ``expected_version``.
        """
        if not view.state.terminal:
            raise ValueError(f"record_terminal needs an ended job, not a {view.state.value} one")
        columns = {**job_mutable_columns(view), "ended_at": self._clock()}
        note = AuditNote(actor, f"job.{view.state.value}", command_id, detail or {})
        async with self._transaction(write=True) as session:
            row = await self._compare_and_set(
                session, view, expected_version, Job.state.not_in(_TERMINAL), columns
            )
            if row is None:
                raise await self._refusal(session, view, expected_version)
            session.add(self._job_audit_row(view, note))
            return job_record(row)

    async def _compare_and_set(
        self,
        session: AsyncSession,
        view: JobView,
        expected_version: int,
        state_condition: ColumnElement[bool],
        columns: Mapping[str, object],
    ) -> Job | None:
        # One UPDATE ... WHERE version = expected: the database decides who was first. On
        # PostgreSQL a concurrent writer waits for the row lock, then finds the version moved.
        result = await session.execute(
            update(Job)
            .where(Job.id == view.id, Job.version == expected_version, state_condition)
            .values(**columns, version=Job.version + 1)
            .returning(Job),
            execution_options={"synchronize_session": False},
        )
        return result.scalar_one_or_none()

    async def _refusal(
        self, session: AsyncSession, view: JobView, expected_version: int
    ) -> StoreError | ValueError:
        current = await session.scalar(select(Job).where(Job.id == view.id))
        if current is None:
            return NotFound(f"no job {view.id}")
        if current.version != expected_version:
            return Conflict(view.id, expected_version, current.version)
        return ValueError(f"job {view.id} has already ended ({current.state.value})")

    # -----------------------------------------------------------------------------------------
    # Audit.

    async def append_audit(
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
        row = self._audit_row(
            actor,
            action,
            printer_id=printer_id,
            job_id=job_id,
            command_id=command_id,
            detail=detail,
        )
        async with self._transaction(write=True) as session:
            session.add(row)
            await session.flush()
            return audit_record(row)

    async def audit_for_job(self, job_id: str) -> list[AuditRecord]:
        """Everything logged about a job, in order: who created it, and each command and end."""
        return await self._audit_where(AuditEntry.job_id == job_id)

    async def audit_for_command(self, command_id: str) -> list[AuditRecord]:
        """Entries about one command; with :meth:`audit_for_job` on their job they answer
        "who or what caused this command?"."""
        return await self._audit_where(AuditEntry.command_id == command_id)

    async def audit_for_printer(
        self, printer_id: str, *, since: int | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """A printer's most recent entries (at or after ``since``), in order."""
        conditions = [AuditEntry.printer_id == printer_id]
        if since is not None:
            conditions.append(AuditEntry.at >= since)
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(limit)
            )
            return [audit_record(row) for row in reversed(rows.all())]

    async def record_local_job(
        self, printer_id: str, job_id: str, *, outcome: str, detail: Mapping[str, JSONValue]
    ) -> bool:
        """Put a print a person started at the printer (LAN or screen) in its history, once.

        The entry is ``local_job.<outcome>`` by the printer, in its audit log. Printers send
        such reports again until acknowledged, so a job already recorded is not recorded twice:
        that returns False. Raises :class:`NotFound` for a printer this cloud does not know.
        """
        async with self._transaction(write=True) as session:
            await _get(session, Printer, printer_id)
            recorded = await session.scalar(
                select(AuditEntry.id)
                .where(
                    AuditEntry.job_id == job_id,
                    AuditEntry.printer_id == printer_id,
                    AuditEntry.action.startswith("local_job."),
                )
                .limit(1)
            )
            if recorded is not None:
                return False
            session.add(
                self._audit_row(
                    Actor.printer(printer_id),
                    f"local_job.{outcome}",
                    printer_id=printer_id,
                    job_id=job_id,
                    detail=detail,
                )
            )
        return True

    async def _audit_where(self, condition: ColumnElement[bool]) -> list[AuditRecord]:
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(AuditEntry).where(condition).order_by(AuditEntry.id)
            )
            return [audit_record(row) for row in rows]

    def _audit_row(
        self,
        actor: Actor,
        action: str,
        *,
        printer_id: str | None = None,
        job_id: str | None = None,
        command_id: str | None = None,
        detail: Mapping[str, JSONValue] | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            at=self._clock(),
            actor_kind=actor.kind,
            actor_id=actor.id,
            action=action,
            printer_id=printer_id,
            job_id=job_id,
            command_id=command_id,
            detail=dict(detail or {}),
        )

    def _job_audit_row(self, view: JobView, note: AuditNote) -> AuditEntry:
        return self._audit_row(
            note.actor,
            note.action,
            printer_id=view.assigned_printer or view.printer_id,
            job_id=view.id,
            command_id=note.command_id,
            detail=note.detail,
        )

    # -----------------------------------------------------------------------------------------
    # Alerts.

    async def add_alert(
        self,
        printer_id: str,
        *,
        kind: str,
        severity: Severity,
        message: str,
        job_id: str | None = None,
        alert_id: str | None = None,
    ) -> AlertRecord:
        """Raise an alert; sending it on to people's channels is the notifier's job.

        ``alert_id`` (a UUID) makes raising idempotent: the id of the printer event that
        reported it, say, so that the same event delivered twice raises :class:`AlreadyExists`
        the second time.
        """
        row = Alert(
            id=alert_id or new_id(),
            printer_id=printer_id,
            job_id=job_id,
            kind=kind,
            severity=severity,
            message=message,
            created_at=self._clock(),
            acked_by=None,
            acked_at=None,
        )
        async with self._transaction(write=True) as session:
            session.add(row)
        return alert_record(row)

    async def list_alerts(
        self,
        *,
        printer_ids: Collection[str] | None = None,
        unacked_only: bool = False,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Alerts, newest first: of ``printer_ids`` only if given, unacknowledged only if asked."""
        conditions: list[ColumnElement[bool]] = []
        if printer_ids is not None:
            conditions.append(Alert.printer_id.in_(list(printer_ids)))
        if unacked_only:
            conditions.append(Alert.acked_at.is_(None))
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(Alert)
                .where(*conditions)
                .order_by(Alert.created_at.desc(), Alert.id.desc())
                .limit(limit)
            )
            return [alert_record(row) for row in rows]

    async def ack_alert(self, alert_id: str, *, user_id: str) -> AlertRecord:
        """Acknowledge an alert; the first acknowledgement stands. Raises :class:`NotFound`."""
        async with self._transaction(write=True) as session:
            row = await _get(session, Alert, alert_id)
            if row.acked_at is None:
                row.acked_by, row.acked_at = user_id, self._clock()
            return alert_record(row)

    async def resolve_alerts(self, printer_id: str, *, kind: str) -> list[AlertRecord]:
        """Acknowledge every open ``kind`` alert of a printer on the system's behalf, because
        its condition cleared (a printer back online). ``acked_by`` stays None: no person did."""
        async with self._transaction(write=True) as session:
            rows = list(
                await session.scalars(
                    select(Alert).where(
                        Alert.printer_id == printer_id,
                        Alert.kind == kind,
                        Alert.acked_at.is_(None),
                    )
                )
            )
            now = self._clock()
            for row in rows:
                row.acked_at = now
            return [alert_record(row) for row in rows]

    # -----------------------------------------------------------------------------------------
    # Notification channels, and deliveries: a durable queue of sends that a sender claims,
    # retries and finally marks delivered or dead-lettered.

    async def create_channel(
        self,
        user_id: str,
        *,
        kind: ChannelKind,
        target: str,
        secret: str | None = None,
        enabled: bool = True,
    ) -> ChannelRecord:
        """Add a notification channel for a user; its target and secret are sealed."""
        channel_id = new_id()
        row = NotificationChannel(
            id=channel_id,
            user_id=user_id,
            kind=kind,
            target=self._seal(target, "target", channel_id),
            secret=None if secret is None else self._seal(secret, "secret", channel_id),
            enabled=enabled,
            created_at=self._clock(),
        )
        async with self._transaction(write=True) as session:
            session.add(row)
        return replace(channel_record(row), target=target, secret=secret)

    async def channels_for_user(self, user_id: str) -> list[ChannelRecord]:
        """A user's channels, oldest first."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(NotificationChannel)
                .where(NotificationChannel.user_id == user_id)
                .order_by(NotificationChannel.created_at, NotificationChannel.id)
            )
            return [self._channel(row) for row in rows]

    async def channels_for_users(self, user_ids: Collection[str]) -> list[ChannelRecord]:
        """The enabled channels of any of ``user_ids``, oldest first."""
        if not user_ids:
            return []
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(NotificationChannel)
                .where(
                    NotificationChannel.user_id.in_(list(user_ids)),
                    NotificationChannel.enabled.is_(True),
                )
                .order_by(NotificationChannel.created_at, NotificationChannel.id)
            )
            return [self._channel(row) for row in rows]

    async def get_channel(self, channel_id: str) -> ChannelRecord:
        """One channel; raises :class:`NotFound`."""
        async with self._transaction(write=False) as session:
            return self._channel(await _get(session, NotificationChannel, channel_id))

    async def seal_secrets(self) -> int:
        """Seal every secret column value not yet sealed under the newest key: values kept as
        given (by a store without the key, or before sealing existed) and values sealed under
        an older key. Returns how many rows changed. Raises ValueError without a key, and
        :class:`SecretUnreadable` for a value no key at hand opens (nothing is changed then).
        """
        box = self._secrets
        if box is None:
            raise ValueError("sealing secrets needs the data directory's secrets key")
        changed = 0
        async with self._transaction(write=True) as session:
            rows = await session.scalars(
                select(NotificationChannel).order_by(NotificationChannel.id).with_for_update()
            )
            for row in rows:
                target = self._reseal(box, row.target, "target", row.id)
                secret = row.secret
                if secret is not None:
                    secret = self._reseal(box, secret, "secret", row.id)
                if (target, secret) != (row.target, row.secret):
                    row.target, row.secret = target, secret
                    changed += 1
        return changed

    def _seal(self, value: str, column: str, channel_id: str) -> str:
        if self._secrets is None:
            return value
        return self._secrets.seal(value, context=_channel_context(column, channel_id))

    def _reveal(self, stored: str, column: str, channel_id: str) -> str:
        context = _channel_context(column, channel_id)
        if self._secrets is None:
            if is_sealed(stored):
                msg = f"{context} is sealed, and this store was opened without the secrets key"
                raise SecretUnreadable(msg)
            return stored
        return self._secrets.open(stored, context=context)

    @staticmethod
    def _reseal(box: SecretBox, stored: str, column: str, channel_id: str) -> str:
        if box.is_current(stored):
            return stored
        context = _channel_context(column, channel_id)
        return box.seal(box.open(stored, context=context), context=context)

    def _channel(self, row: NotificationChannel) -> ChannelRecord:
        return replace(
            channel_record(row),
            target=self._reveal(row.target, "target", row.id),
            secret=None if row.secret is None else self._reveal(row.secret, "secret", row.id),
        )

    async def delete_channel(self, channel_id: str) -> None:
        """Remove a channel and its deliveries; raises :class:`NotFound`."""
        async with self._transaction(write=True) as session:
            await session.execute(delete(Delivery).where(Delivery.channel_id == channel_id))
            await session.delete(await _get(session, NotificationChannel, channel_id))

    async def deliveries_for_channel(
        self, channel_id: str, *, limit: int = 100
    ) -> list[DeliveryRecord]:
        """A channel's most recent deliveries, newest first."""
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(Delivery)
                .where(Delivery.channel_id == channel_id)
                .order_by(Delivery.created_at.desc(), Delivery.id.desc())
                .limit(limit)
            )
            return [delivery_record(row) for row in rows]

    async def enqueue_delivery(
        self,
        channel_id: str,
        *,
        event_key: str,
        payload: Mapping[str, JSONValue],
        hold_ms: int = 0,
    ) -> DeliveryRecord:
        """Queue ``payload`` for a channel, once per ``event_key``: a repeated key returns the
        delivery queued first. Raises :class:`NotFound` for an unknown channel.

        ``hold_ms``: a sender that sends it right away keeps :meth:`claim_deliveries` off it
        for that long; unsettled after that (its sender died), it is due for anyone to send.
        """
        now = self._clock()
        row = {
            **_new_delivery(channel_id, event_key, payload, now),
            "next_attempt_at": now + hold_ms,
        }
        async with self._transaction(write=True) as session:
            await session.execute(
                self._insert(Delivery)
                .values(row)
                .on_conflict_do_nothing(index_elements=[Delivery.channel_id, Delivery.event_key])
            )
            return delivery_record(await _delivery(session, channel_id, event_key))

    async def record_dead_letter(
        self,
        channel_id: str,
        *,
        event_key: str,
        payload: Mapping[str, JSONValue],
        attempts: int,
        error: str,
    ) -> DeliveryRecord:
        """Keep a delivery that a sender gave up on (one it never queued here, or one it did),
        for a person or a job to look at and retry."""
        now = self._clock()
        given_up = {"attempts": attempts, "last_error": error, "dead_lettered_at": now}
        async with self._transaction(write=True) as session:
            statement = self._insert(Delivery).values(
                {**_new_delivery(channel_id, event_key, payload, now), **given_up}
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Delivery.channel_id, Delivery.event_key], set_=given_up
                )
            )
            return delivery_record(await _delivery(session, channel_id, event_key))

    async def claim_deliveries(
        self, *, limit: int = 20, lease_ms: int = 30_000
    ) -> list[DeliveryRecord]:
        """Take up to ``limit`` deliveries that are due, for ``lease_ms``.

        A claim counts an attempt and moves ``next_attempt_at`` to the end of the lease, so
        other replicas leave the rows alone while this one sends; if it dies, they are due
        again when the lease ends (delivery is at least once). Report each outcome with
        :meth:`delivery_succeeded` or :meth:`delivery_failed`.
        """
        now = self._clock()
        async with self._transaction(write=True) as session:
            due = (
                select(Delivery.id)
                .where(
                    Delivery.delivered_at.is_(None),
                    Delivery.dead_lettered_at.is_(None),
                    Delivery.next_attempt_at <= now,
                )
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
                # PostgreSQL: replicas claiming at once each take different rows instead of
                # queueing on the same ones (SQLite serialises writers anyway).
                .with_for_update(skip_locked=True)
            )
            ids = list(await session.scalars(due))
            if not ids:
                return []
            rows = await session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(attempts=Delivery.attempts + 1, next_attempt_at=now + lease_ms)
                .returning(Delivery),
                execution_options={"synchronize_session": False},
            )
            claimed = [delivery_record(row) for row in rows]
        return sorted(claimed, key=lambda delivery: (delivery.created_at, delivery.id))

    async def delivery_succeeded(self, delivery_id: str, *, attempts: int | None = None) -> None:
        """Mark a claimed delivery as delivered (after ``attempts`` tries, if the sender says)."""
        async with self._transaction(write=True) as session:
            row = await _get(session, Delivery, delivery_id)
            if row.delivered_at is None:
                row.delivered_at = self._clock()
                if attempts is not None:
                    row.attempts = max(row.attempts, attempts)

    async def delivery_failed(self, delivery_id: str, *, error: str, retry_at: int | None) -> None:
        """Record a failed attempt: try again at ``retry_at``, or give up (dead-letter) if None."""
        async with self._transaction(write=True) as session:
            row = await _get(session, Delivery, delivery_id)
            row.last_error = error
            if retry_at is None:
                row.dead_lettered_at = self._clock()
            else:
                row.next_attempt_at = retry_at

    # -----------------------------------------------------------------------------------------
    # Telemetry history.

    async def append_telemetry(
        self, printer_id: str, *, at: int, data: Mapping[str, JSONValue]
    ) -> None:
        """Store one telemetry snapshot; the caller decides how often (bounded writes)."""
        async with self._transaction(write=True) as session:
            session.add(TelemetrySample(printer_id=printer_id, at=at, data=dict(data)))

    async def append_telemetry_batch(self, samples: Sequence[TelemetryRecord]) -> int:
        """Store many snapshots in one transaction; how many were stored.

        Snapshots of printers the store does not know (never provisioned, or deleted since)
        are skipped rather than failing the batch they share with everyone else's.
        """
        if not samples:
            return 0
        async with self._transaction(write=True) as session:
            known = set(
                await session.scalars(
                    select(Printer.id).where(Printer.id.in_({s.printer_id for s in samples}))
                )
            )
            rows = [
                {"printer_id": s.printer_id, "at": s.at, "data": dict(s.data)}
                for s in samples
                if s.printer_id in known
            ]
            if rows:
                await session.execute(insert(TelemetrySample), rows)
            return len(rows)

    async def telemetry_for(
        self, printer_id: str, *, since: int | None = None, limit: int = 500
    ) -> list[TelemetryRecord]:
        """A printer's most recent snapshots (at or after ``since``), oldest first."""
        conditions = [TelemetrySample.printer_id == printer_id]
        if since is not None:
            conditions.append(TelemetrySample.at >= since)
        async with self._transaction(write=False) as session:
            rows = await session.scalars(
                select(TelemetrySample)
                .where(*conditions)
                .order_by(TelemetrySample.at.desc(), TelemetrySample.id.desc())
                .limit(limit)
            )
            return [telemetry_record(row) for row in reversed(rows.all())]

    async def prune_telemetry(self, *, before: int) -> int:
        """Delete snapshots older than ``before``; returns how many."""
        async with self._transaction(write=True) as session:
            result = await session.execute(
                delete(TelemetrySample).where(TelemetrySample.at < before)
            )
            return cast("CursorResult[Any]", result).rowcount


# ---------------------------------------------------------------------------------------------
# Helpers.


_Row = TypeVar("_Row", bound=Base)


async def _get(session: AsyncSession, entity: type[_Row], key: str) -> _Row:
    row = await session.get(entity, key)
    if row is None:
        # Worded as the service words "not yours", so a missing id and someone else's read
        # alike, and never naming a table.
        raise NotFound(f"no {_NOUNS.get(entity, 'such thing')} {key}")
    return row


_NOUNS: dict[type[Base], str] = {
    User: "user",
    ApiToken: "token",
    Printer: "printer",
    File: "file",
    Job: "job",
    Alert: "alert",
    NotificationChannel: "channel",
    Delivery: "delivery",
}


async def _delivery(session: AsyncSession, channel_id: str, event_key: str) -> Delivery:
    row = await session.scalar(
        select(Delivery).where(Delivery.channel_id == channel_id, Delivery.event_key == event_key)
    )
    if row is None:  # pragma: no cover - written just before, in the same transaction
        raise NotFound(f"no delivery {event_key} to channel {channel_id}")
    return row


def _new_delivery(
    channel_id: str, event_key: str, payload: Mapping[str, JSONValue], now: int
) -> dict[str, object]:
    return {
        "id": new_id(),
        "channel_id": channel_id,
        "event_key": event_key,
        "payload": dict(payload),
        "attempts": 0,
        "next_attempt_at": now,
        "delivered_at": None,
        "dead_lettered_at": None,
        "last_error": "",
        "created_at": now,
    }


def _ended_at(view: JobView, now: int) -> ColumnElement[int | None] | int | None:
    if not view.state.terminal:
        return None
    # Stamped by the save that ends the job; later saves of the ended job keep the stamp.
    return case((Job.state.in_(_TERMINAL), Job.ended_at), else_=now)


def _request_of(job: JobRecord) -> tuple[object, ...]:
    # What a retried creation must repeat to count as the same request.
    view = job.view
    return (view.sha256, view.printer_id, view.model, job.file_id, job.name, job.notify_completion)


def _channel_context(column: str, channel_id: str) -> str:
    return seal_context(NotificationChannel.__tablename__, column, channel_id)


def _normal_email(email: str) -> str:
    return email.strip().lower()


def _with_share_of(user_id: str) -> Select[Printer, ShareRole | None]:
    """Printers, each with ``user_id``'s share of it (None if the user has none)."""
    return select(Printer, PrinterShare.role).outerjoin(
        PrinterShare, and_(PrinterShare.printer_id == Printer.id, PrinterShare.user_id == user_id)
    )


def _role(printer: Printer, user_id: str, share: ShareRole | None) -> Role:
    if printer.owner_id == user_id:
        return Role.OWNER
    assert share is not None  # noqa: S101 - the query returns only owned or shared printers
    return Role(share.value)


def _sqlite_error(error: exc.DBAPIError) -> str:
    # sqlite3 names the error (SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE, ...) since Python 3.11.
    return str(getattr(error.orig, "sqlite_errorname", ""))


def _integrity_error(error: exc.IntegrityError) -> StoreError:
    name = _sqlite_error(error)
    code = str(getattr(error.orig, "sqlstate", "") or getattr(error.orig, "pgcode", ""))
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY" or code == "23503":
        # Callers see these words; the driver's, naming tables and columns, stay in the
        # exception's cause, for the log.
        return NotFound("it refers to something that does not exist")
    if name in {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"} or code == "23505":
        return AlreadyExists("it already exists")
    return StoreError(f"constraint violated: {_first_line(error)}")


def _first_line(error: exc.DBAPIError) -> str:
    # The driver's message without SQLAlchemy's statement echo, and only its first line:
    # PostgreSQL's DETAIL line quotes the offending values, which may be personal data.
    return str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else repr(error)
