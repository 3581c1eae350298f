"""A printer that answers a stage before the cloud records having sent it.

The agent fetches a small file from a nearby cloud in milliseconds and reports it staged (or
refuses the stage) at once. If the dispatcher recorded the stage only after the publish
returned, the answer would find the job assigned to no printer and be ignored; the job would
then wait on a file that is already there until its whole window passed.
"""

import uuid
from collections.abc import Callable

import pytest

from printfleet.chaos.world import ChaosJobs
from printfleet.cloud.dispatcher import Dispatcher, StoredJob
from printfleet.cloud.fleet_view import FleetView
from printfleet.cloud.link import PublishOutcome
from printfleet.protocol.dispatch import JobChange, JobView
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import (
    Event,
    PlateStatus,
    PrinterStateBody,
    PrinterStatus,
    RejectedBody,
    StageCommand,
    StagedBody,
    decode_command,
    encode,
    make_event,
)
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner
from printfleet.protocol.topics import Topics

NOW = 1_800_000_000_000
PRINTER = "x1-0"
SHA = "a" * 64

Answer = Callable[[StageCommand], Event | None]


class AnsweringLink:
    """A verified link to a printer that answers each stage before ``publish`` returns."""

    def __init__(self, answer: Answer, outcome: PublishOutcome = PublishOutcome.SENT) -> None:
        self.topics = Topics()
        self.dispatcher: Dispatcher | None = None
        self.answer = answer
        self.outcome = outcome
        self.stages = 0

    def verified(self) -> bool:
        return True

    def evidence_age(self) -> float | None:
        return 0.1

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> PublishOutcome:
        command = decode_command(payload)
        assert isinstance(command, StageCommand)
        self.stages += 1
        event = self.answer(command)
        if event is not None:
            assert self.dispatcher is not None
            await self.dispatcher.on_event(event)
        return self.outcome


def _event(body: StagedBody | RejectedBody, job_id: str) -> Event:
    return make_event(
        body, event_id=str(uuid.uuid4()), printer_id=PRINTER, job_id=job_id, sent_at=NOW
    )


def staged(command: StageCommand) -> Event:
    return _event(StagedBody(sha256=SHA), command.job_id)


def refused(command: StageCommand) -> Event:
    body = RejectedBody(
        command_id=command.id,
        command_type="stage",
        reason=Reason.CLOUD_DISABLED,
        detail="this printer takes commands over the LAN only",
    )
    return _event(body, command.job_id)


def _dispatcher(link: AnsweringLink, jobs: ChaosJobs) -> Dispatcher:
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
    report = make_event(
        state, event_id=str(uuid.uuid4()), printer_id=PRINTER, job_id=None, sent_at=NOW
    )
    assert fleet.ingest(Topics().events(PRINTER), encode(report)) is not None

    async def on_change(change: JobChange, job: StoredJob) -> None:
        del change, job

    dispatcher = Dispatcher(
        jobs,
        fleet,
        link,
        CommandIssuer(CommandSigner.generate(), lambda: str(uuid.uuid4())),
        file_url=lambda job, printer_id: "http://127.0.0.1:1/f",
        on_change=on_change,
        clock_ms=lambda: NOW,
    )
    link.dispatcher = dispatcher
    return dispatcher


def _queued(jobs: ChaosJobs, *, printer_id: str) -> str:
    job_id = str(uuid.uuid4())
    view = JobView(
        id=job_id,
        created_at=NOW - 1_000,
        start_by=NOW + 600_000,
        state=JobState.QUEUED,
        sha256=SHA,
        printer_id=printer_id,
    )
    jobs.rows[job_id] = StoredJob(view, 0, "alice", "part.gcode", 10)
    return job_id


@pytest.mark.asyncio
async def test_a_staged_answer_faster_than_the_cloud_still_stages_the_job() -> None:
    jobs = ChaosJobs()
    job_id = _queued(jobs, printer_id=PRINTER)
    link = AnsweringLink(staged)
    await _dispatcher(link, jobs).tick()
    assert link.stages == 1
    assert jobs.rows[job_id].view.state is JobState.STAGED


@pytest.mark.asyncio
async def test_a_refusal_faster_than_the_cloud_still_ends_the_job() -> None:
    jobs = ChaosJobs()
    job_id = _queued(jobs, printer_id=PRINTER)
    link = AnsweringLink(refused)
    await _dispatcher(link, jobs).tick()
    view = jobs.rows[job_id].view
    assert view.state is JobState.REJECTED
    assert view.reason == "CLOUD_DISABLED: this printer takes commands over the LAN only"


@pytest.mark.asyncio
async def test_a_stage_that_was_not_sent_is_undone_and_planned_again() -> None:
    jobs = ChaosJobs()
    job_id = _queued(jobs, printer_id=PRINTER)
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
    assert link.stages == 2
