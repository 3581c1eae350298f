"""Jobs in the store, on SQLite and PostgreSQL: creation with idempotency keys, compare-and-set
saves, ends with their notifications, the dispatcher's view, and the audit trail of a start."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.cloud.conftest import T0, FakeClock, Seed

from printfleet.cloud.store import (
    CANCEL_WATCH_MS,
    Actor,
    ActorKind,
    AuditNote,
    Conflict,
    IdempotencyMismatch,
    JobRecord,
    NotFound,
    Store,
    new_id,
)
from printfleet.cloud.store.models import Job
from printfleet.cloud.store.records import (
    IMMUTABLE_JOB_FIELDS,
    job_creation_columns,
    job_mutable_columns,
)
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobView,
    apply_event,
    cancel,
    cancel_sent,
    dispatched,
    expire,
    queried,
    staged_on,
    unassigned,
)
from printfleet.protocol.lifecycle import JobEvent, JobState, transition
from printfleet.protocol.messages import (
    AckBody,
    AckEvent,
    JobEndedBody,
    JobEndedEvent,
    JobOutcome,
    StagedBody,
    StagedEvent,
)

MINUTE = 60_000
POLICY = DispatchPolicy()
DISPATCHER = Actor.system("dispatcher")


async def new_job(
    store: Store,
    seed: Seed,
    *,
    printer_id: str | None = "p1",
    name: str = "",
    notify_completion: bool = False,
    idempotency_key: str | None = None,
) -> JobRecord:
    created = await store.jobs.create(
        seed.owner.id,
        sha256=seed.sha256,
        start_by=T0 + 60 * MINUTE,
        printer_id=printer_id,
        model="mk4",
        name=name,
        notify_completion=notify_completion,
        idempotency_key=idempotency_key,
    )
    return created.job


def staged(view: JobView, printer_id: str, now: int) -> JobView:
    """The job staged on ``printer_id``: its stage sent, and the printer's report of it in."""
    sent = staged_on(view, printer_id, new_id(), now)
    return replace(sent, state=transition(sent.state, JobEvent.STAGED))


def test_every_jobview_field_is_stored() -> None:
    # A field added to JobView must get a column, and be written at creation or by every save.
    # The submitter is the job's owner: the one field stored under another name.
    # Requirements are stored as two columns.
    renamed = {"submitter": {"owner_id"}, "requirements": {"material", "nozzle_um"}}
    fields = {field.name for field in dataclasses.fields(JobView)}
    columns = {column for name in fields for column in renamed.get(name, {name})}
    assert columns <= set(Job.__table__.columns.keys())
    view = JobView(id="j", created_at=1, start_by=2, state=JobState.QUEUED, sha256="s")
    saved = set(job_mutable_columns(view))
    assert saved | IMMUTABLE_JOB_FIELDS == fields
    assert set(job_creation_columns(view)) == columns
    assert not saved & IMMUTABLE_JOB_FIELDS


# ---------------------------------------------------------------------------------------------
# Creation.


@pytest.mark.asyncio
async def test_create_job_queues_it_and_audits_who_asked(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    created = await store.jobs.create(
        seed.owner.id,
        sha256=seed.sha256,
        start_by=clock.now + MINUTE,
        printer_id="p1",
        name="benchy",
        notify_completion=True,
    )
    assert created.created
    job = created.job
    assert job.view == JobView(
        id=job.view.id,
        created_at=clock.now,
        start_by=clock.now + MINUTE,
        state=JobState.QUEUED,
        sha256=seed.sha256,
        submitter=seed.owner.id,
        printer_id="p1",
    )
    assert (job.version, job.owner_id, job.name, job.notify_completion) == (
        1,
        seed.owner.id,
        "benchy",
        True,
    )
    assert (job.file_id, job.idempotency_key, job.ended_at) == (None, None, None)
    assert await store.jobs.load(job.view.id) == job

    [entry] = await store.audit.for_job(job.view.id)
    assert (entry.actor, entry.action, entry.printer_id, entry.at) == (
        Actor.user(seed.owner.id),
        "job.created",
        "p1",
        clock.now,
    )


@pytest.mark.asyncio
async def test_a_job_needs_a_printer_or_a_model(store: Store, seed: Seed) -> None:
    with pytest.raises(ValueError, match="a printer, a printer model or a pool"):
        await store.jobs.create(seed.owner.id, sha256=seed.sha256, start_by=1)


@pytest.mark.asyncio
async def test_a_job_for_an_unknown_owner_or_printer_is_refused(store: Store, seed: Seed) -> None:
    with pytest.raises(NotFound):
        await store.jobs.create(new_id(), sha256=seed.sha256, start_by=1, model="mk4")
    with pytest.raises(NotFound):
        await store.jobs.create(seed.owner.id, sha256=seed.sha256, start_by=1, printer_id="nope")
    assert await store.jobs.for_owner(seed.owner.id) == []


@pytest.mark.asyncio
async def test_a_repeated_idempotency_key_returns_the_first_job(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    first = await new_job(store, seed, idempotency_key="k1", name="a")
    clock.advance(5_000)  # a retry a little later computes a later start_by: still the same job
    again = await store.jobs.create(
        seed.owner.id,
        sha256=seed.sha256,
        start_by=T0 + 70 * MINUTE,
        printer_id="p1",
        model="mk4",
        name="a",
        idempotency_key="k1",
    )
    assert again == (first, False)
    assert len(await store.audit.for_job(first.view.id)) == 1

    # Keys belong to their owner: another user's "k1" is another job.
    others = await store.jobs.create(
        seed.other.id, sha256=seed.sha256, start_by=clock.now + MINUTE, model="mk4",
        idempotency_key="k1",
    )  # fmt: skip
    assert others.created
    assert others.job.view.id != first.view.id


@pytest.mark.asyncio
async def test_reusing_a_key_for_a_different_request_is_refused(store: Store, seed: Seed) -> None:
    first = await new_job(store, seed, idempotency_key="k1")
    with pytest.raises(IdempotencyMismatch, match=first.view.id):
        await new_job(store, seed, printer_id="p2", idempotency_key="k1")
    assert [job.view.id for job in await store.jobs.for_owner(seed.owner.id)] == [first.view.id]


@pytest.mark.asyncio
async def test_concurrent_creations_with_one_key_make_one_job(store: Store, seed: Seed) -> None:
    results = await asyncio.gather(*(new_job_created(store, seed) for _ in range(10)))
    assert len({job.view.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(await store.jobs.for_owner(seed.owner.id)) == 1


async def new_job_created(store: Store, seed: Seed) -> tuple[JobRecord, bool]:
    created = await store.jobs.create(
        seed.owner.id, sha256=seed.sha256, start_by=1, model="mk4", idempotency_key="same"
    )
    return created.job, created.created


@pytest.mark.asyncio
async def test_loading_an_unknown_job_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.jobs.load(new_id())


# ---------------------------------------------------------------------------------------------
# Compare-and-set.


@pytest.mark.asyncio
async def test_save_job_compares_and_sets_the_version(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = await new_job(store, seed)
    staged = staged_on(job.view, "p1", new_id(), clock.now)
    saved = await store.jobs.save(staged, expected_version=job.version)
    assert (saved.view, saved.version) == (staged, 2)
    assert await store.jobs.load(job.view.id) == saved

    # A second writer that read version 1 loses, and changes nothing.
    with pytest.raises(Conflict) as raised:
        await store.jobs.save(unassigned(job.view), expected_version=1)
    assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
    assert await store.jobs.load(job.view.id) == saved


@pytest.mark.asyncio
async def test_saving_an_unknown_job_raises_not_found(store: Store, seed: Seed) -> None:
    job = await new_job(store, seed)
    with pytest.raises(NotFound):
        await store.jobs.save(replace(job.view, id=new_id()), expected_version=1)


@pytest.mark.asyncio
async def test_of_concurrent_saves_of_one_version_exactly_one_wins(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    # Replicas planning from the same read: each stages the job on a different printer.
    for _ in range(5):
        job = await new_job(store, seed, printer_id=None)
        contenders = [
            staged_on(job.view, printer, new_id(), clock.now) for printer in ("p1", "p2", "p1")
        ]
        outcomes = await asyncio.gather(
            *(store.jobs.save(view, expected_version=job.version) for view in contenders),
            return_exceptions=True,
        )
        winners = [outcome for outcome in outcomes if isinstance(outcome, JobRecord)]
        losers = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
        assert (len(winners), len(losers)) == (1, 2), outcomes
        assert await store.jobs.load(job.view.id) == winners[0]
        assert winners[0].version == 2


@pytest.mark.asyncio
async def test_a_save_that_ends_the_job_stamps_its_end(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = await new_job(store, seed)
    clock.advance(MINUTE)
    ended = await store.jobs.save(expire(job.view).job, expected_version=job.version)
    assert (ended.view.state, ended.ended_at) == (JobState.EXPIRED, clock.now)

    # Later saves of the ended job keep its state and its end time.
    clock.advance(MINUTE)
    again = await store.jobs.save(replace(ended.view, reason="x"), expected_version=ended.version)
    assert (again.view.reason, again.ended_at) == ("x", ended.ended_at)
    for state in (JobState.QUEUED, JobState.CANCELLED):
        with pytest.raises(ValueError, match="already ended"):
            await store.jobs.save(replace(again.view, state=state), expected_version=again.version)
    assert await store.jobs.load(job.view.id) == again


@pytest.mark.asyncio
async def test_save_job_writes_its_audit_note_with_the_change(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = await new_job(store, seed)
    command_id = new_id()
    view = dispatched(staged(job.view, "p1", clock.now), command_id, clock.now + 30_000)
    note = AuditNote(DISPATCHER, "command.start", command_id, {"not_after": clock.now + 30_000})
    await store.jobs.save(view, expected_version=job.version, audit=note)

    [entry] = await store.audit.for_command(command_id)
    assert (entry.actor, entry.action, entry.job_id, entry.printer_id) == (
        DISPATCHER,
        "command.start",
        job.view.id,
        "p1",
    )
    assert entry.detail == {"not_after": clock.now + 30_000}

    # A losing writer's note is not written either.
    with pytest.raises(Conflict):
        await store.jobs.save(view, expected_version=job.version, audit=note)
    assert len(await store.audit.for_command(command_id)) == 1


# ---------------------------------------------------------------------------------------------
# Ends.


@pytest.mark.asyncio
async def test_record_terminal_ends_the_job_and_audits_who_ended_it(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = await new_job(store, seed, name="benchy")
    clock.advance(MINUTE)
    command_id = new_id()
    ended = await store.jobs.record_terminal(
        expire(job.view).job,
        expected_version=job.version,
        actor=Actor.system("expiry"),
        command_id=command_id,
        detail={"why": "window"},
    )
    assert (ended.view.state, ended.view.reason, ended.ended_at, ended.version) == (
        JobState.EXPIRED,
        "start window closed",
        clock.now,
        2,
    )
    assert await store.jobs.load(job.view.id) == ended
    last = (await store.audit.for_job(job.view.id))[-1]
    assert (last.actor, last.action, last.command_id, last.detail, last.at) == (
        Actor.system("expiry"),
        "job.expired",
        command_id,
        {"why": "window"},
        clock.now,
    )


@pytest.mark.asyncio
async def test_a_job_ends_once(store: Store, seed: Seed) -> None:
    job = await new_job(store, seed)
    ended = await store.jobs.record_terminal(
        expire(job.view).job, expected_version=job.version, actor=DISPATCHER
    )
    with pytest.raises(Conflict):
        await store.jobs.record_terminal(
            cancel(job.view).job, expected_version=job.version, actor=Actor.user(seed.owner.id)
        )
    with pytest.raises(ValueError, match="already ended"):
        await store.jobs.record_terminal(
            replace(ended.view, state=JobState.CANCELLED),
            expected_version=ended.version,
            actor=DISPATCHER,
        )
    with pytest.raises(ValueError, match="ended job"):
        await store.jobs.record_terminal(job.view, expected_version=job.version, actor=DISPATCHER)
    assert await store.jobs.load(job.view.id) == ended


@pytest.mark.asyncio
async def test_an_ended_job_keeps_its_state_but_may_note_cancels_sent(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = await new_job(store, seed)
    cancelled = await store.jobs.record_terminal(
        cancel(job.view).job, expected_version=job.version, actor=Actor.user(seed.owner.id)
    )
    noted = await store.jobs.save(
        cancel_sent(cancelled.view, clock.now), expected_version=cancelled.version
    )
    assert (noted.view.cancel_sent_at, noted.view.state) == (clock.now, JobState.CANCELLED)
    assert noted.ended_at == cancelled.ended_at
    with pytest.raises(ValueError, match="already ended"):
        await store.jobs.save(
            replace(noted.view, state=JobState.QUEUED), expected_version=noted.version
        )


# ---------------------------------------------------------------------------------------------
# The dispatcher's view and the owner's listing.


@pytest.mark.asyncio
async def test_open_jobs_are_the_unended_and_the_cancelled_that_may_still_run(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    queued = await new_job(store, seed)
    clock.advance(1)
    printing = await new_job(store, seed)
    view = dispatched(staged(printing.view, "p1", clock.now), new_id(), clock.now + 30_000)
    printing = await store.jobs.save(
        replace(view, state=transition(view.state, JobEvent.STARTED)), expected_version=1
    )
    clock.advance(1)
    completed = await new_job(store, seed)
    await store.jobs.record_terminal(
        replace(completed.view, state=JobState.COMPLETED), expected_version=1, actor=DISPATCHER
    )
    clock.advance(1)
    # Cancelled before any start was sent: it cannot be running anywhere.
    never_started = await new_job(store, seed)
    await store.jobs.record_terminal(
        cancel(never_started.view).job, expected_version=1, actor=Actor.user(seed.owner.id)
    )
    clock.advance(1)
    # Cancelled while its start was in flight: the printer may be running it.
    crossed = await new_job(store, seed)
    in_flight = dispatched(staged(crossed.view, "p2", clock.now), new_id(), clock.now + 30_000)
    crossed = await store.jobs.save(in_flight, expected_version=1)
    crossed = await store.jobs.record_terminal(
        cancel(crossed.view).job, expected_version=2, actor=Actor.user(seed.owner.id)
    )

    def ids(jobs: list[JobRecord]) -> list[str]:
        return [job.view.id for job in jobs]

    expected = [queued.view.id, printing.view.id, crossed.view.id]
    assert ids(await store.jobs.open()) == expected

    # Noting the cancels sent keeps it there, until its watch is over.
    crossed = await store.jobs.save(
        cancel_sent(crossed.view, clock.now), expected_version=crossed.version
    )
    clock.advance(CANCEL_WATCH_MS)
    assert ids(await store.jobs.open()) == expected
    assert ids(await store.jobs.open(cancel_watch_ms=CANCEL_WATCH_MS - 1)) == expected[:2]
    clock.advance(1)
    assert ids(await store.jobs.open()) == expected[:2]


@pytest.mark.asyncio
async def test_jobs_for_owner_filters_and_pages_newest_first(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    jobs = []
    for printer_id in ("p1", "p2", None, "p1", None):
        jobs.append(await new_job(store, seed, printer_id=printer_id))
        clock.advance(1_000)
    await store.jobs.create(seed.other.id, sha256=seed.sha256, start_by=1, model="mk4")
    # The third job (any mk4) was staged on p2.
    third = jobs[2]
    await store.jobs.save(staged_on(third.view, "p2", new_id(), clock.now), expected_version=1)
    await store.jobs.record_terminal(expire(jobs[0].view).job, expected_version=1, actor=DISPATCHER)

    def ids(records: list[JobRecord]) -> list[str]:
        return [record.view.id for record in records]

    newest_first = [job.view.id for job in reversed(jobs)]
    assert ids(await store.jobs.for_owner(seed.owner.id)) == newest_first
    assert ids(await store.jobs.for_owner(seed.owner.id, limit=2)) == newest_first[:2]
    page_two = await store.jobs.for_owner(seed.owner.id, older_than=newest_first[1], limit=2)
    assert ids(page_two) == newest_first[2:4]
    assert ids(await store.jobs.for_owner(seed.owner.id, states=[JobState.EXPIRED])) == [
        jobs[0].view.id
    ]
    assert (
        ids(await store.jobs.for_owner(seed.owner.id, states=[JobState.QUEUED, JobState.STAGED]))
        == newest_first[:4]
    )
    on_p2 = await store.jobs.for_owner(seed.owner.id, printer_id="p2")
    assert ids(on_p2) == [jobs[2].view.id, jobs[1].view.id]
    with pytest.raises(NotFound):
        await store.jobs.for_owner(seed.other.id, older_than=newest_first[0])


# ---------------------------------------------------------------------------------------------
# A job's whole life, driven by the protocol's own helpers, and the audit trail it leaves.


@pytest.mark.asyncio
async def test_a_start_traces_back_to_the_user_who_asked(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = await new_job(store, seed, printer_id=None)
    job = await store.jobs.save(
        staged_on(job.view, "p2", new_id(), clock.now), expected_version=job.version
    )

    staged_event = StagedEvent(
        id=new_id(), printer_id="p2", job_id=job.view.id, sent_at=clock.now,
        body=StagedBody(sha256=seed.sha256),
    )  # fmt: skip
    change = apply_event(job.view, staged_event, clock.now, POLICY)
    assert change is not None
    job = await store.jobs.save(change.job, expected_version=job.version)
    assert job.view.state is JobState.STAGED

    command_id = new_id()
    job = await store.jobs.save(
        dispatched(job.view, command_id, clock.now + 30_000),
        expected_version=job.version,
        audit=AuditNote(DISPATCHER, "command.start", command_id),
    )
    clock.advance(40_000)  # the ack was lost: ask the journal
    query_id = new_id()
    job = await store.jobs.save(
        queried(job.view, query_id, clock.now),
        expected_version=job.version,
        audit=AuditNote(DISPATCHER, "command.query_journal", query_id),
    )
    ack = AckEvent(
        id=new_id(), printer_id="p2", job_id=job.view.id, sent_at=clock.now,
        body=AckBody(command_id=command_id, command_type="start"),
    )  # fmt: skip
    change = apply_event(job.view, ack, clock.now, POLICY)
    assert change is not None
    job = await store.jobs.save(
        change.job,
        expected_version=job.version,
        audit=AuditNote(Actor.printer("p2"), "job.started", command_id),
    )
    ended = JobEndedEvent(
        id=new_id(), printer_id="p2", job_id=job.view.id, sent_at=clock.now,
        body=JobEndedBody(outcome=JobOutcome.COMPLETED),
    )  # fmt: skip
    change = apply_event(job.view, ended, clock.now, POLICY)
    assert change is not None
    assert change.job.state.terminal
    job = await store.jobs.record_terminal(
        change.job, expected_version=job.version, actor=Actor.printer("p2")
    )
    assert job.version == 7  # created, staged_on, staged, dispatched, queried, started, ended

    # "Why did p2 start?" The start command was the dispatcher's, for a job a user created.
    start_entries = [
        entry
        for entry in await store.audit.for_command(command_id)
        if entry.action == "command.start"
    ]
    [start] = start_entries
    assert (start.actor.kind, start.printer_id) == (ActorKind.SYSTEM, "p2")
    assert start.job_id is not None
    history = await store.audit.for_job(start.job_id)
    assert (history[0].action, history[0].actor) == ("job.created", Actor.user(seed.owner.id))
    assert [entry.action for entry in history] == [
        "job.created",
        "command.start",
        "command.query_journal",
        "job.started",
        "job.completed",
    ]


# ---------------------------------------------------------------------------------------------
# Round trip.

_MS = st.integers(min_value=0, max_value=2**62)
_OPTIONAL_MS = st.none() | _MS
_IDS = st.none() | st.uuids().map(str)
_PRINTERS = st.sampled_from([None, "p1", "p2"])
# PostgreSQL text cannot hold NUL; everything else must come back as it went in.
_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=300)


@st.composite
def job_views(draw: st.DrawFn) -> JobView:
    printer_id = draw(_PRINTERS)
    return JobView(
        id="replaced by the created job's",
        created_at=draw(_MS),
        start_by=draw(_MS),
        state=draw(st.sampled_from(JobState)),
        sha256=draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        printer_id=printer_id,
        model=draw(
            st.sampled_from(["mk4", "x1c"]) | (st.just(None) if printer_id else st.nothing())
        ),
        assigned_printer=draw(_PRINTERS),
        stage_sent_at=draw(_OPTIONAL_MS),
        command_id=draw(_IDS),
        not_after=draw(_OPTIONAL_MS),
        last_query_at=draw(_OPTIONAL_MS),
        query_id=draw(_IDS),
        cancel_sent_at=draw(_OPTIONAL_MS),
        reason=draw(_TEXT),
    )


@pytest.mark.asyncio
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(view=job_views())
async def test_a_job_view_round_trips_unchanged(
    store: Store, seed: Seed, clock: FakeClock, view: JobView
) -> None:
    clock.now = view.created_at
    created = await store.jobs.create(
        seed.owner.id,
        sha256=view.sha256,
        start_by=view.start_by,
        printer_id=view.printer_id,
        model=view.model,
    )
    view = replace(view, id=created.job.view.id, submitter=seed.owner.id)
    assert created.job.view == JobView(
        id=view.id,
        created_at=view.created_at,
        start_by=view.start_by,
        state=JobState.QUEUED,
        sha256=view.sha256,
        submitter=seed.owner.id,
        printer_id=view.printer_id,
        model=view.model,
    )
    if view.state.terminal:
        saved = await store.jobs.record_terminal(view, expected_version=1, actor=DISPATCHER)
    else:
        saved = await store.jobs.save(view, expected_version=1)
    assert saved.view == view
    assert (await store.jobs.load(view.id)).view == view
