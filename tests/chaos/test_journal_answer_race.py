"""A race the cloud-crash scenario showed: a printer that answers a journal query faster than
the cloud records having asked it.

After a crash mid-dispatch the new cloud asks the printer's journal about the start it never
sent. A printer on a fast link answers within milliseconds; if the dispatcher records the query
only after publishing it, the answer arrives while the job still waits on no query, is ignored,
and the job waits another query interval (or its whole window) for nothing.
"""

import uuid

import pytest

from printfleet.chaos.world import ChaosJobs
from printfleet.cloud.dispatcher import Dispatcher, StoredJob
from printfleet.cloud.fleet_view import FleetView
from printfleet.cloud.link import PublishOutcome
from printfleet.protocol.dispatch import JobChange, JobView
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import (
    JournalQueryCommand,
    JournalReportBody,
    JournalStatus,
    decode_command,
    make_event,
)
from printfleet.protocol.signing import CommandSigner
from printfleet.protocol.topics import Topics

NOW = 1_800_000_000_000
PRINTER = "x1-0"


class AnsweringLink:
    """A verified link to a printer that answers every journal query before publish returns."""

    def __init__(self) -> None:
        self.topics = Topics()
        self.dispatcher: Dispatcher | None = None
        self.queries = 0

    def verified(self) -> bool:
        return True

    def evidence_age(self) -> float | None:
        return 0.1

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> PublishOutcome:
        command = decode_command(payload)
        assert isinstance(command, JournalQueryCommand)
        self.queries += 1
        report = make_event(
            JournalReportBody(
                query_id=command.id,
                jobs=dict.fromkeys(command.body.job_ids, JournalStatus.UNKNOWN),
            ),
            event_id=str(uuid.uuid4()),
            printer_id=PRINTER,
            job_id=None,
            sent_at=NOW,
        )
        assert self.dispatcher is not None
        await self.dispatcher.on_event(report)
        return PublishOutcome.SENT


@pytest.mark.asyncio
async def test_a_journal_answer_faster_than_the_cloud_still_settles_the_job() -> None:
    jobs = ChaosJobs()
    job_id = str(uuid.uuid4())
    # Dispatched before a crash; the start never left; its deadline passed long ago.
    view = JobView(
        id=job_id,
        created_at=NOW - 20_000,
        start_by=NOW + 60_000,
        state=JobState.DISPATCHED,
        sha256="a" * 64,
        printer_id=PRINTER,
        assigned_printer=PRINTER,
        command_id=str(uuid.uuid4()),
        not_after=NOW - 10_000,
    )
    jobs.rows[job_id] = StoredJob(view, 0, "alice", "part.gcode", 10)
    link = AnsweringLink()
    changes: list[JobChange] = []

    async def on_change(change: JobChange, job: StoredJob) -> None:
        changes.append(change)

    dispatcher = Dispatcher(
        jobs,
        FleetView(lambda: NOW),
        link,
        CommandIssuer(CommandSigner.generate(), lambda: str(uuid.uuid4())),
        file_url=lambda job, printer_id: "http://127.0.0.1:1/f",
        on_change=on_change,
        clock_ms=lambda: NOW,
    )
    link.dispatcher = dispatcher
    await dispatcher.tick()
    assert link.queries == 1
    # The printer never started it: the job goes back to the queue at once, window still open.
    assert jobs.rows[job_id].view.state is JobState.QUEUED
