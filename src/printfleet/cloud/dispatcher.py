"""The cloud's dispatcher: a thin shell around ``protocol.dispatch`` that does I/O and timing.

Each tick loads the open jobs from the store, asks ``plan`` what to do with the evidence at
hand (the link supervisor's round trips, the fleet view's fresh printer state), and carries the
decisions out. Ownership of a decision comes from the store: every change is a compare-and-set
on the job's version, so two cloud replicas never both dispatch one job. A start is recorded
before it is published; whatever becomes of the publish, its outcome is settled from the
printer's journal, never by sending it again.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from printfleet.cloud.fleet_view import FleetView
from printfleet.cloud.link import PublishOutcome
from printfleet.cloud.store.errors import Conflict
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobChange,
    JobView,
    LinkEvidence,
    PrinterView,
    SafetySettings,
)
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import CommandBase, Event, TimeRequestEvent, encode
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)
_history = logging.getLogger("printfleet.history")
"""Structured events for the chaos harness's checker; silent unless it listens."""


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as the dispatcher needs it: the protocol view plus what staging needs."""

    view: JobView
    version: int
    owner: str
    file_name: str
    file_size: int
    file_id: str | None = None
    notify_completion: bool = False
    """The submitter asked to be told of completion too (S7 tells every other end anyway)."""


class JobRepository(Protocol):
    """The part of the store the dispatcher uses."""

    async def open_jobs(self) -> list[StoredJob]:
        """Every job that is not over (and cancelled ones a printer may still run)."""
        ...

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Write ``job`` if its stored version is still ``expected_version``; else Conflict."""
        ...

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Record who or what caused a command (the system, here)."""
        ...


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """What the store says of one printer, read afresh at every planning round."""

    model: str
    operators: frozenset[str]
    """The users who may operate it now: its owner and its operator shares (S1)."""
    desired: SafetySettings
    """The safety settings its owner chose (S5)."""


class PrinterRoster(Protocol):
    """The printers as the store knows them: who may print where, and what each must apply."""

    async def roster(self) -> Mapping[str, RosterEntry]:
        """Every provisioned printer, by id."""
        ...

    async def audit(
        self, action: str, printer_id: str, *, command_id: str | None, detail: str
    ) -> None:
        """Record a command the cloud sent a printer of its own accord (the system's)."""
        ...


class Publisher(Protocol):
    """What the dispatcher needs of the link supervisor."""

    topics: Topics

    def verified(self) -> bool:
        """Whether the link has fresh round-trip evidence."""
        ...

    def evidence_age(self) -> float | None:
        """Seconds since the last round trip, if any."""
        ...

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> PublishOutcome:
        """Publish now or not at all."""
        ...


JobNotice = Callable[[JobChange, StoredJob], Awaitable[None]]
PlateNotice = Callable[[StoredJob, str], Awaitable[None]]
"""Told, each round, of a job waiting on a printer whose plate a person must confirm."""
FileUrl = Callable[[StoredJob, str], str]


def cloud_ms() -> int:
    """Cloud time: the cloud's own wall clock in milliseconds."""
    return time.time_ns() // 1_000_000


class Dispatcher:
    """Runs dispatch decisions against the store and the link."""

    def __init__(
        self,
        jobs: JobRepository,
        fleet: FleetView,
        link: Publisher,
        issuer: CommandIssuer,
        *,
        roster: PrinterRoster,
        file_url: FileUrl,
        on_change: JobNotice,
        on_plate_needed: PlateNotice | None = None,
        policy: DispatchPolicy | None = None,
        probe_interval_ms: int = 2_000,
        clock_ms: Callable[[], int] = cloud_ms,
        tick_s: float = 0.5,
    ) -> None:
        self.jobs = jobs
        self.roster = roster
        self.fleet = fleet
        self.link = link
        self.issuer = issuer
        self.policy = policy or DispatchPolicy()
        self._file_url = file_url
        self._on_change = on_change
        self._on_plate_needed = on_plate_needed
        self._probe_interval_ms = probe_interval_ms
        self._clock_ms = clock_ms
        self._tick_s = tick_s
        self._wake = asyncio.Event()
        self._ticked = asyncio.Condition()
        self.ticks = 0
        self._settings_sent: dict[str, tuple[int, SafetySettings]] = {}
        """When each printer was last sent which settings: pacing, not a queue."""
        self.publish_outcomes: dict[PublishOutcome, int] = dict.fromkeys(PublishOutcome, 0)

    def wake(self) -> None:
        """Plan again soon (a job was submitted, a printer reported)."""
        self._wake.set()

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # a bad tick must not stop dispatching for everyone
                log.exception("dispatch tick failed")
            async with self._ticked:
                self.ticks += 1
                self._ticked.notify_all()
            self._wake.clear()
            try:
                async with asyncio.timeout(self._tick_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def wait_ticks(self, count: int) -> None:
        """Wait until ``count`` more planning rounds have completed."""
        async with self._ticked:
            target = self.ticks + count
            await self._ticked.wait_for(lambda: self.ticks >= target)

    def _evidence(self, now: int) -> LinkEvidence:
        age = self.link.evidence_age()
        verified_at = None if age is None or not self.link.verified() else now - int(age * 1000)
        return LinkEvidence(verified_at, self._probe_interval_ms)

    async def views(self) -> dict[str, PrinterView]:
        """Every provisioned printer heard from: its reports joined with the store's word on
        who may operate it and which safety settings it must apply, as of now."""
        roster = await self.roster.roster()
        heard = self.fleet.views()
        return {
            printer_id: replace(
                heard[printer_id],
                # The store's model, not the one the printer announces: a printer cannot
                # join another model's pool by saying so.
                model=entry.model,
                operators=entry.operators,
                desired=entry.desired,
                settings_sent_at=self._sent_at(printer_id, entry.desired),
            )
            for printer_id, entry in roster.items()
            if printer_id in heard
        }

    def _sent_at(self, printer_id: str, desired: SafetySettings) -> int | None:
        # Pacing holds only for the same settings: a change the owner just made goes out now.
        sent = self._settings_sent.get(printer_id)
        return sent[0] if sent is not None and sent[1] == desired else None

    async def tick(self) -> None:
        """Plan once and carry the decisions out."""
        stored = {job.view.id: job for job in await self.jobs.open_jobs()}
        printers = await self.views()
        now = self._clock_ms()
        decisions = dispatch.plan(
            now,
            [job.view for job in stored.values()],
            printers,
            self._evidence(now),
            self.policy,
        )
        for decision in decisions:
            if isinstance(decision, dispatch.ApplySettings):
                await self._apply_settings(decision, now)
                continue
            job = stored[decision.job_id]
            try:
                await self._carry_out(decision, job, now)
            except Conflict:
                log.info(
                    "job %s changed under us; another dispatcher has it",
                    job.view.id,
                    extra=_ids(job.view),
                )

    async def _carry_out(self, decision: dispatch.Decision, job: StoredJob, now: int) -> None:
        view = job.view
        match decision:
            case dispatch.Expire():
                await self._commit(dispatch.expire(view), job)
            case dispatch.Stage(printer_id=printer_id):
                stage = self.issuer.stage(
                    printer_id,
                    view.id,
                    now=now,
                    file_url=self._file_url(job, printer_id),
                    sha256=view.sha256,
                    size=job.file_size,
                    name=stage_name(view.id),
                )
                # Recorded first, like a query: a printer on a fast link reports the file staged
                # (or refuses it) before the publish returns, and only the printer the job is
                # assigned to, answering its latest stage, may move it.
                version = await self._save(dispatch.staged_on(view, printer_id, stage.id, now), job)
                if await self._send(printer_id, stage, job, "stage") is PublishOutcome.NOT_SENT:
                    # Nothing left, so nothing can answer: free the job for the next round.
                    await self.jobs.save_job(view, expected_version=version)
            case dispatch.Start(printer_id=printer_id, not_after=not_after):
                start = self.issuer.start(
                    printer_id,
                    view.id,
                    now=now,
                    not_after=not_after,
                    sha256=view.sha256,
                    name=stage_name(view.id),
                    plate_check=decision.plate_check,
                )
                # Recorded first: if we crash or the publish fails, the journal settles it.
                await self._save(dispatch.dispatched(view, start.id, start.not_after), job)
                await self._send(printer_id, start, job, "start")
            case dispatch.QueryJournal(printer_id=printer_id):
                query = self.issuer.journal_query(printer_id, (view.id,), now=now)
                # Recorded first: a printer on a fast link answers before the publish returns,
                # and only the answer to the query the job waits on may settle it. A query that
                # could not be sent is asked again after the query interval.
                await self._save(dispatch.queried(view, query.id, now), job)
                await self._send(printer_id, query, job, "journal_query")
            case dispatch.CancelOnPrinter(printer_id=printer_id):
                cancel = self.issuer.cancel(printer_id, view.id, now=now)
                if (
                    await self._send(printer_id, cancel, job, "cancel")
                    is not PublishOutcome.NOT_SENT
                ):
                    await self._save(dispatch.cancel_sent(view, now), job)
            case dispatch.Unassign():
                await self._save(dispatch.unassigned(view), job)
            case dispatch.Withdraw(reason=reason):
                await self.jobs.audit("withdrawn", view, command_id=None, detail=reason)
                await self._commit(dispatch.withdraw(view, reason), job)
            case dispatch.Waiting(reason=reason):
                await self._save(dispatch.waiting(view, reason), job)
            case dispatch.PlateNeeded(printer_id=printer_id):
                # The job simply waits, in the queue, within its window; a person is asked
                # (the listener makes that once per job and printer, not once per round).
                if self._on_plate_needed is not None:
                    await self._on_plate_needed(job, printer_id)

    async def _apply_settings(self, decision: dispatch.ApplySettings, now: int) -> None:
        """Send a printer the safety settings its owner chose, until it reports them (S5)."""
        printer_id = decision.printer_id
        command = self.issuer.set_plate_check(
            printer_id,
            now=now,
            enabled=decision.settings.plate_check,
            by="the cloud (the owner's setting)",
        )
        outcome = await self.link.publish(self.link.topics.commands(printer_id), encode(command))
        self.publish_outcomes[outcome] += 1
        if outcome is not PublishOutcome.NOT_SENT:
            self._settings_sent[printer_id] = (now, decision.settings)
        log.info(
            "plate check %s sent to %s: %s",
            "on" if decision.settings.plate_check else "off",
            printer_id,
            outcome.value,
            extra={"printer_id": printer_id, "command_id": command.id},
        )
        if _history.isEnabledFor(logging.DEBUG):
            fields = {
                "command_id": command.id,
                "printer_id": printer_id,
                "plate_check": decision.settings.plate_check,
                "outcome": outcome.value,
            }
            _history.debug("settings_published", extra={"history": fields})
        await self.roster.audit(
            f"settings.sent:{outcome.value}",
            printer_id,
            command_id=command.id,
            detail=f"plate check {'on' if decision.settings.plate_check else 'off'}",
        )

    async def _send(
        self,
        printer_id: str,
        command: CommandBase,
        job: StoredJob,
        action: str,
    ) -> PublishOutcome:
        evidence_age = self.link.evidence_age()
        outcome = await self.link.publish(self.link.topics.commands(printer_id), encode(command))
        self.publish_outcomes[outcome] += 1
        log.info(
            "%s of job %s to %s: %s",
            action,
            job.view.id,
            printer_id,
            outcome.value,
            extra={"job_id": job.view.id, "printer_id": printer_id, "command_id": command.id},
        )
        if _history.isEnabledFor(logging.DEBUG):
            # For the chaos checker: what was sent, and the link evidence it was sent on (S8/S9).
            fields = {
                "command_id": command.id,
                "type": str(getattr(command, "type", action)),
                "job_id": job.view.id,
                "printer_id": printer_id,
                "issued_at": command.issued_at,
                "not_after": command.not_after,
                "outcome": outcome.value,
                "evidence_age_ms": None if evidence_age is None else int(evidence_age * 1000),
                "probe_interval_ms": self._probe_interval_ms,
            }
            _history.debug("command_published", extra={"history": fields})
            if outcome is not PublishOutcome.SENT:
                _history.debug("publish_failed", extra={"history": fields})
        await self.jobs.audit(
            f"{action}:{outcome.value}",
            job.view,
            command_id=command.id,
            detail=f"to {printer_id}",
        )
        return outcome

    async def _save(self, view: JobView, job: StoredJob) -> int:
        return await self.jobs.save_job(view, expected_version=job.version)

    async def _commit(self, change: JobChange, job: StoredJob) -> None:
        await self._save(change.job, job)
        if change.job.state.terminal and _history.isEnabledFor(logging.DEBUG):
            fields = {
                "job_id": change.job.id,
                "state": change.job.state.value,
                "reason": change.job.reason,
                "notify": change.notify,
            }
            _history.debug("job_terminal", extra={"history": fields})
        await self._on_change(change, job)

    # -- printer events --------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """Fold a printer event into the jobs it concerns; answer time requests."""
        if isinstance(event, TimeRequestEvent):
            reply = self.issuer.time_reply(
                event.printer_id,
                now=self._clock_ms(),
                nonce=event.body.nonce,
                request_sent_local=event.body.sent_local,
            )
            await self.link.publish(self.link.topics.commands(event.printer_id), encode(reply))
            return
        now = self._clock_ms()
        for job in await self.jobs.open_jobs():
            change = dispatch.apply_event(job.view, event, now, self.policy)
            if change is None:
                continue
            try:
                await self._commit(change, job)
            except Conflict:
                log.info(
                    "job %s changed under us while applying %s",
                    job.view.id,
                    event.type,
                    extra=_ids(job.view),
                )
        self.wake()


def _ids(view: JobView) -> dict[str, str | None]:
    """``extra=`` for a log line about a job: structured logs carry its and its printer's id."""
    return {"job_id": view.id, "printer_id": view.assigned_printer or view.printer_id}


def stage_name(job_id: str) -> str:
    """The file name a job's G-code gets on the printer's storage."""
    return f"job-{job_id}.gcode"


__all__ = [
    "Conflict",
    "Dispatcher",
    "JobRepository",
    "PrinterRoster",
    "Publisher",
    "RosterEntry",
    "StoredJob",
    "cloud_ms",
    "stage_name",
]
