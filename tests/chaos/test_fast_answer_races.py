"""Printers that answer faster than the cloud records having asked.

A printer on a fast link answers a command within milliseconds: the agent reports a small file
staged (or refuses the stage), or answers a journal query, before the cloud's publish returns.
Only an answer to the command a job records is read, so if the dispatcher recorded the command
after publishing it, the answer would be ignored and the job would wait a retry interval, or its
whole window, for nothing. The cloud-crash chaos scenario found the journal case.
"""

import uuid
from collections.abc import Callable

import pytest

from printfleet.cloud.dispatch.dispatcher import Dispatcher, StoredJob
from printfleet.cloud.dispatch.fleet_view import FleetView
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.protocol.dispatch import JobChange, JobView, WaitCode
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import (
    Command,
    Event,
    JournalQueryCommand,
    JournalReportBody,
    JournalStatus,
    PlateStatus,
    Presence,
    PrinterStateBody,
    PrinterStatus,
    RejectedBody,
    StageCommand,
    StagedBody,
    WireModel,
    decode_command,
    encode,
    make_event,
)
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner
from printfleet.protocol.topics import Topics
from printfleet.testing.jobs import MemoryJobs
from printfleet.testing.roster import MemoryRoster

NOW = 1_800_000_000_000
PRINTER = "x1-0"
SHA = "a" * 64

Answer = Callable[[Command], Event | None]


class AnsweringLink:
    """A verified link to a printer that answers each command before ``publish`` returns."""

    def __init__(self, answer: Answer, outcome: PublishOutcome = PublishOutcome.SENT) -> None:
        self.topics = Topics()
        self.dispatcher: Dispatcher | None = None
        self.answer = answer
        self.outcome = outcome
        self.sent: list[Command] = []

    def verified(self) -> bool:
        return True

    def evidence_age(self) -> float | None:
        return 0.1

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> PublishOutcome:
        command = decode_command(payload)
        self.sent.append(command)
        event = self.answer(command)
        if event is not None:
            assert self.dispatcher is not None
            await self.dispatcher.on_event(event)
        return self.outcome


def _event(body: WireModel, job_id: str | None) -> Event:
    return make_event(
        body,
        event_id=str(uuid.uuid4()),
        printer_id=PRINTER,
        job_id=job_id,
        sent_at=NOW,
    )


def staged(command: Command) -> Event:
    assert isinstance(command, StageCommand)
    return _event(StagedBody(sha256=SHA), command.job_id)


def refused(command: Command) -> Event:
    assert isinstance(command, StageCommand)
    body = RejectedBody(
        command_id=command.id,
        command_type="stage",
        reason=Reason.CLOUD_DISABLED,
        detail="this printer takes commands over the LAN only",
    )
    return _event(body, command.job_id)


def never_started(command: Command) -> Event:
    assert isinstance(command, JournalQueryCommand)
    jobs = dict.fromkeys(command.body.job_ids, JournalStatus.UNKNOWN)
    return _event(JournalReportBody(query_id=command.id, jobs=jobs), None)


def _dispatcher(link: AnsweringLink, jobs: MemoryJobs) -> Dispatcher:
    fleet = FleetView(lambda: NOW)
    state = PrinterStateBody(
        status=PrinterStatus.IDLE,
        job_id=None,
        plate=PlateStatus.CLEAR,
        has_plate_sensor=True,
        plate_check=True,
        fault=None,
        clock_synced=True,
    )
    assert fleet.ingest(Topics().events(PRINTER), encode(_event(state, None))) is not None

    async def on_change(change: JobChange, job: StoredJob) -> None:
        del change, job

    roster = MemoryRoster()
    roster.add(PRINTER, "x1", "alice")
    dispatcher = Dispatcher(
        jobs,
        fleet,
        link,
        CommandIssuer(CommandSigner.generate(), lambda: str(uuid.uuid4())),
        roster=roster,
        file_url=lambda job, printer_id: "http://127.0.0.1:1/f",
        on_change=on_change,
        clock_ms=lambda: NOW,
    )
    link.dispatcher = dispatcher
    return dispatcher


def _job(jobs: MemoryJobs, state: JobState, **fields: object) -> str:
    job_id = str(uuid.uuid4())
    view = JobView(
        id=job_id,
        created_at=NOW - 20_000,
        start_by=NOW + 600_000,
        state=state,
        sha256=SHA,
        submitter="alice",
        **{"printer_id": PRINTER, **fields},  # type: ignore[arg-type]
    )
    jobs.add(StoredJob(view, 0, "alice", "part.gcode", 10))
    return job_id


@pytest.mark.asyncio
async def test_a_staged_answer_faster_than_the_cloud_still_stages_the_job() -> None:
    jobs = MemoryJobs()
    job_id = _job(jobs, JobState.QUEUED)
    link = AnsweringLink(staged)
    await _dispatcher(link, jobs).tick()
    assert len(link.sent) == 1
    assert jobs.rows[job_id].view.state is JobState.STAGED


@pytest.mark.asyncio
async def test_a_refusal_faster_than_the_cloud_still_ends_the_job() -> None:
    jobs = MemoryJobs()
    job_id = _job(jobs, JobState.QUEUED)
    await _dispatcher(AnsweringLink(refused), jobs).tick()
    view = jobs.rows[job_id].view
    assert view.state is JobState.REJECTED
    assert view.reason == "CLOUD_DISABLED: this printer takes commands over the LAN only"


@pytest.mark.asyncio
async def test_a_stage_that_was_not_sent_is_undone_and_planned_again() -> None:
    jobs = MemoryJobs()
    job_id = _job(jobs, JobState.QUEUED)
    link = AnsweringLink(lambda command: None, PublishOutcome.NOT_SENT)
    dispatcher = _dispatcher(link, jobs)
    await dispatcher.tick()
    view = jobs.rows[job_id].view
    assert (view.state, view.assigned_printer, view.stage_command_id) == (
        JobState.QUEUED,
        None,
        None,
    )
    await dispatcher.tick()  # not held back by a retry timer: nothing was sent
    assert len(link.sent) == 2


@pytest.mark.asyncio
async def test_a_journal_answer_faster_than_the_cloud_still_settles_the_job() -> None:
    jobs = MemoryJobs()
    # Dispatched before a crash; the start never left; its deadline passed long ago.
    job_id = _job(
        jobs,
        JobState.DISPATCHED,
        assigned_printer=PRINTER,
        command_id=str(uuid.uuid4()),
        not_after=NOW - 10_000,
    )
    link = AnsweringLink(never_started)
    await _dispatcher(link, jobs).tick()
    assert [type(command) for command in link.sent] == [JournalQueryCommand]
    # The printer never started it: the job goes back to the queue at once, window still open.
    assert jobs.rows[job_id].view.state is JobState.QUEUED


@pytest.mark.asyncio
async def test_a_printer_cannot_join_another_models_pool_by_announcing_it() -> None:
    # The store says PRINTER is an x1; its presence claims p1. A job for "any p1" must not
    # go there (S1: a pool is the store's word, not the printer's), a job for "any x1" may.
    jobs = MemoryJobs()
    link = AnsweringLink(lambda command: None)
    dispatcher = _dispatcher(link, jobs)
    claim = Presence(printer_id=PRINTER, online=True, model="p1")
    assert dispatcher.fleet.ingest(Topics().presence(PRINTER), encode(claim)) is not None
    p1_job = _job(jobs, JobState.QUEUED, printer_id=None, model="p1")
    await dispatcher.tick()
    assert link.sent == []
    assert "no printer of model p1" in jobs.rows[p1_job].view.reason
    x1_job = _job(jobs, JobState.QUEUED, printer_id=None, model="x1")
    await dispatcher.tick()
    assert [(type(c).__name__, c.job_id) for c in link.sent] == [("StageCommand", x1_job)]


@pytest.mark.asyncio
async def test_the_stores_pools_reach_the_planner_and_a_wait_is_stored_with_its_code() -> None:
    # Not a race: the dispatcher joins the store's pools and wear into what it plans with, and
    # records a wait's code with its sentence.
    jobs = MemoryJobs()
    link = AnsweringLink(lambda command: None)
    dispatcher = _dispatcher(link, jobs)
    roster = dispatcher.roster
    assert isinstance(roster, MemoryRoster)
    pool_job = _job(jobs, JobState.QUEUED, printer_id=None, pool_id="farm")
    await dispatcher.tick()
    assert link.sent == []
    waiting = jobs.rows[pool_job].view
    assert waiting.wait is WaitCode.NO_PRINTER
    assert waiting.reason == "no printer in pool farm that you may operate has been heard from"
    roster.set_pools(PRINTER, frozenset({"farm"}))
    roster.set_print_hours(PRINTER, 12.5)
    view = (await dispatcher.views())[PRINTER]
    assert (view.pools, view.print_hours) == (frozenset({"farm"}), 12.5)
    await dispatcher.tick()
    assert [(type(c).__name__, c.job_id) for c in link.sent] == [("StageCommand", pool_job)]
    assert jobs.rows[pool_job].view.wait is None
