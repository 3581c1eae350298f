"""Jobs: created once per request, then written by compare-and-set on their version.

A replica acts on a decision only after its write won, so several cloud replicas can share one
PostgreSQL database without a leader.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import ColumnElement, and_, case, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from printfleet.cloud.store.audit import audit_row, job_audit_row
from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.errors import Conflict, IdempotencyMismatch, NotFound, StoreError
from printfleet.cloud.store.ids import new_id
from printfleet.cloud.store.models import Job
from printfleet.cloud.store.records import (
    JobCreated,
    JobRecord,
    job_creation_columns,
    job_mutable_columns,
    job_record,
)
from printfleet.cloud.store.values import Actor, AuditNote, JSONValue
from printfleet.protocol.dispatch import JobView, Requirements
from printfleet.protocol.lifecycle import TERMINAL_STATES, JobState

MAX_COPIES = 50
"""The most copies one submission may queue."""
NAME_LENGTH = 200
"""A job name's longest (the column's length)."""
ANY_PRINTER = Requirements()
"""No requirements: any material, any nozzle."""
CANCEL_WATCH_MS = 7 * 24 * 3_600_000
"""How long a cancelled job stays among :meth:`Jobs.open` (see there)."""

_TERMINAL = sorted(TERMINAL_STATES)
_OPEN = sorted(set(JobState) - TERMINAL_STATES)


class Jobs:
    """The repository of jobs; each creation, end and dispatch decision audited with it."""

    def __init__(self, database: Database) -> None:
        self._db = database

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
        """Queue a job for ``printer_id``, any printer of ``model`` or any printer of the pool
        ``pool_id``, and audit who asked.

        ``copies`` above 1 queues that many jobs in one transaction, sharing a ``batch_id``,
        named "<name> (2/5)"; the first copy is returned. With an ``idempotency_key`` already
        used by the same owner, nothing is created: the earlier job (the first copy) is returned
        (``created`` is False), so a client may retry a creation whose answer it never got; the
        key covers the whole batch. Reusing a key for a different request (another file,
        target, requirements, number of copies, name or notification choice) raises
        :class:`IdempotencyMismatch`; ``start_by`` and ``priority`` are not compared, since a
        retry computes its window afresh and a queue may have been reordered since.
        """
        if printer_id is None and model is None and pool_id is None:
            raise ValueError("a job needs a printer, a printer model or a pool")
        if pool_id is not None and (printer_id is not None or model is not None):
            raise ValueError("a job for a pool names no printer or printer model")
        if not 1 <= copies <= MAX_COPIES:
            raise ValueError(f"copies must be between 1 and {MAX_COPIES}")
        now = self._db.now()
        batch_id = new_id() if copies > 1 else None
        # Each copy a millisecond after the one before: the queue (oldest first among equal
        # priorities) and every listing keep them in order.
        views = [
            JobView(
                id=new_id(),
                created_at=now + offset,
                start_by=start_by,
                state=JobState.QUEUED,
                sha256=sha256,
                submitter=owner_id,
                printer_id=printer_id,
                model=model,
                pool_id=pool_id,
                requirements=requirements,
                priority=priority,
            )
            for offset in range(copies)
        ]
        records = [
            JobRecord(
                view=view,
                version=1,
                owner_id=owner_id,
                file_id=file_id,
                name=copy_name(name, index, copies),
                notify_completion=notify_completion,
                # One row holds the key; the batch is created, or found, with it.
                idempotency_key=idempotency_key if index == 1 else None,
                ended_at=None,
                batch_id=batch_id,
                copy_index=index if copies > 1 else None,
                copies=copies if copies > 1 else None,
            )
            for index, view in enumerate(views, start=1)
        ]
        async with self._db.transaction(write=True) as session:
            # ON CONFLICT DO NOTHING rather than look-then-insert: on PostgreSQL two concurrent
            # requests with one key both look first, and only the unique index tells them apart.
            inserted = await session.scalar(
                self._db.insert(Job)
                .values(**_creation_row(records[0]))
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
                if _request_of(record) != _request_of(records[0]):
                    raise IdempotencyMismatch(
                        f"idempotency key {idempotency_key!r} was used for job {record.view.id}, "
                        "a different request"
                    )
                return JobCreated(record, created=False)
            for record in records[1:]:
                await session.execute(self._db.insert(Job).values(**_creation_row(record)))
            for record in records:
                session.add(
                    audit_row(
                        now,
                        Actor.user(owner_id),
                        "job.created",
                        printer_id=printer_id,
                        job_id=record.view.id,
                        detail={
                            "sha256": sha256,
                            "model": model,
                            "pool_id": pool_id,
                            "start_by": start_by,
                            "batch_id": batch_id,
                        },
                    )
                )
        return JobCreated(records[0], created=True)

    async def load(self, job_id: str) -> JobRecord:
        """A job by id; raises :class:`NotFound`."""
        async with self._db.transaction(write=False) as session:
            return job_record(await get_row(session, Job, job_id))

    async def open(self, *, cancel_watch_ms: int = CANCEL_WATCH_MS) -> list[JobRecord]:
        """The jobs the dispatcher must plan for, oldest first.

        These are the jobs not yet ended, plus cancelled jobs that may still be running on
        their printer: a cancel can cross a start in flight, and ``plan`` sends the cancel
        again while the printer reports the job. Such a job is still assigned to a printer and
        was cancelled within ``cancel_watch_ms``: 7 days by default, longer than prints run, so
        that a printer coming back after days offline still running it is told again. Older
        ones are left out, which keeps this query (run every dispatcher tick) from growing with
        the history; both halves are ranges of one index, on (state, ended_at).
        """
        cutoff = self._db.now() - cancel_watch_ms
        may_still_run = and_(
            Job.state == JobState.CANCELLED,
            Job.ended_at >= cutoff,
            Job.assigned_printer.is_not(None),
        )
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(Job)
                .where(or_(Job.state.in_(_OPEN), may_still_run))
                .order_by(Job.created_at, Job.id)
            )
            return [job_record(row) for row in rows]

    async def ended_since(self, since: int, *, limit: int = 1000) -> list[JobRecord]:
        """Jobs that ended at or after ``since`` (cloud ms), oldest end first: what a starting
        cloud checks its submitters were told of (one range of the (state, ended_at) index)."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(Job)
                .where(Job.state.in_(_TERMINAL), Job.ended_at >= since)
                .order_by(Job.ended_at, Job.id)
                .limit(limit)
            )
            return [job_record(row) for row in rows]

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
        """A user's jobs, newest first, a page at a time.

        ``states`` keeps jobs in those states; ``printer_id`` keeps jobs chosen for or assigned
        to that printer; ``batch_id`` keeps the copies of one submission; ``older_than`` (a job
        id, the last of the previous page) continues a listing. Raises :class:`NotFound` if
        ``older_than`` is not one of the owner's jobs.
        """
        conditions: list[ColumnElement[bool]] = [Job.owner_id == owner_id]
        if states is not None:
            conditions.append(Job.state.in_(list(states)))
        if printer_id is not None:
            conditions.append(or_(Job.printer_id == printer_id, Job.assigned_printer == printer_id))
        if batch_id is not None:
            conditions.append(Job.batch_id == batch_id)
        async with self._db.transaction(write=False) as session:
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

    async def save(
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
        now = self._db.now()
        # An ended job keeps its state; an open one may move anywhere, an end included.
        same_end: ColumnElement[bool] = Job.state.not_in(_TERMINAL)
        if view.state.terminal:
            same_end = or_(same_end, Job.state == view.state)
        columns = {**job_mutable_columns(view), "ended_at": _ended_at(view, now)}
        async with self._db.transaction(write=True) as session:
            row = await _compare_and_set(session, view, expected_version, same_end, columns)
            if row is None:
                raise await _refusal(session, view, expected_version)
            if audit is not None:
                session.add(job_audit_row(self._db.now(), view, audit))
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
        """End a job: :meth:`save` for a terminal ``view`` that insists the job was still
        open, and audits the end as ``job.<state>`` by ``actor`` in the same transaction.

        Raises ValueError if ``view`` is not terminal or the job has already ended, and
        :class:`Conflict` if it moved since ``expected_version``.
        """
        if not view.state.terminal:
            raise ValueError(f"record_terminal needs an ended job, not a {view.state.value} one")
        columns = {**job_mutable_columns(view), "ended_at": self._db.now()}
        note = AuditNote(actor, f"job.{view.state.value}", command_id, detail or {})
        async with self._db.transaction(write=True) as session:
            row = await _compare_and_set(
                session, view, expected_version, Job.state.not_in(_TERMINAL), columns
            )
            if row is None:
                raise await _refusal(session, view, expected_version)
            session.add(job_audit_row(self._db.now(), view, note))
            return job_record(row)


async def _compare_and_set(
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
    session: AsyncSession, view: JobView, expected_version: int
) -> StoreError | ValueError:
    current = await session.scalar(select(Job).where(Job.id == view.id))
    if current is None:
        return NotFound(f"no job {view.id}")
    if current.version != expected_version:
        return Conflict(view.id, expected_version, current.version)
    return ValueError(f"job {view.id} has already ended ({current.state.value})")


def _ended_at(view: JobView, now: int) -> ColumnElement[int | None] | int | None:
    if not view.state.terminal:
        return None
    # Stamped by the save that ends the job; later saves of the ended job keep the stamp.
    return case((Job.state.in_(_TERMINAL), Job.ended_at), else_=now)


def _request_of(job: JobRecord) -> tuple[object, ...]:
    # What a retried creation must repeat to count as the same request.
    view = job.view
    return (
        view.sha256,
        view.printer_id,
        view.model,
        view.pool_id,
        view.requirements,
        job.file_id,
        job.name,
        job.notify_completion,
        job.copies,
    )


def _creation_row(record: JobRecord) -> dict[str, object]:
    return {
        **job_creation_columns(record.view),
        "file_id": record.file_id,
        "name": record.name,
        "notify_completion": record.notify_completion,
        "idempotency_key": record.idempotency_key,
        "batch_id": record.batch_id,
        "copy_index": record.copy_index,
        "copies": record.copies,
        "ended_at": None,
        "version": record.version,
    }


def copy_name(name: str, index: int, copies: int) -> str:
    """The name of copy ``index`` of ``copies``: "part (2/5)"; a single job keeps its name."""
    if copies == 1:
        return name
    suffix = f" ({index}/{copies})"
    # The column holds 200 characters: shorten the name, never the suffix.
    return name[: NAME_LENGTH - len(suffix)] + suffix
