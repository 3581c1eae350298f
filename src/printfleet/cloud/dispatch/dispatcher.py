"""The cloud's dispatcher: a thin shell around ``protocol.dispatch`` that does I/O and timing.

Each tick loads the open jobs from the store, asks ``plan`` what to do with the evidence at
hand (the link supervisor's round trips, the fleet view's fresh printer state), and carries the
decisions out. Ownership of a decision comes from the store: every change is a compare-and-set
on the job's version, so two cloud replicas never both dispatch one job. A start is recorded
before it is published; whatever becomes of the publish, its outcome is settled from the
printer's journal, never by sending it again.

This carry-out exists once: the cloud runs it, and so does the deterministic chaos simulation
(``printfleet.chaos.simulation``), which drives this very class over simulated ports.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from printfleet.cloud.dispatch.fleet_view import FleetView
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.cloud.store.errors import Conflict
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobChange,
    JobView,
    LinkEvidence,
    Planner,
    PrinterView,
    SafetySettings,
)
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import (
    CommandBase,
    Event,
    SetPlateCheckCommand,
    TimeRequestEvent,
    encode,
)
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)


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
    pools: frozenset[str] = frozenset()
    """The pools it belongs to."""
    print_hours: float = 0.0
    """Hours printed so far (least worn first among equals)."""


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


@dataclass(frozen=True, slots=True)
class CommandPublished:
    """A command the dispatcher tried to publish for a job, and what became of it."""

    command: CommandBase
    action: str
    """``stage``, ``start``, ``journal_query`` or ``cancel``."""
    job_id: str
    printer_id: str
    outcome: PublishOutcome
    evidence_age_ms: int | None
    """How old the link's round-trip evidence was just before publishing (S8)."""
    probe_interval_ms: int


@dataclass(frozen=True, slots=True)
class SettingsPublished:
    """A printer's desired safety settings the dispatcher tried to send it (S5)."""

    command: SetPlateCheckCommand
    printer_id: str
    settings: SafetySettings
    outcome: PublishOutcome


class DispatchObserver(Protocol):
    """Who wants to know what the dispatcher did: the chaos harness's history, for one. Told
    after the fact; must not block or raise."""

    def command_published(self, published: CommandPublished) -> None:
        """A command for a job was published (or refused, or left unacknowledged)."""
        ...

    def settings_published(self, published: SettingsPublished) -> None:
        """Safety settings were sent to a printer (or could not be)."""
        ...

    def job_ended(self, change: JobChange) -> None:
        """The dispatcher recorded a job's end."""
        ...


class NoObserver:
    """Nobody listens (the cloud's default)."""

    def command_published(self, published: CommandPublished) -> None:
        """Ignored."""

    def settings_published(self, published: SettingsPublished) -> None:
        """Ignored."""

    def job_ended(self, change: JobChange) -> None:
        """Ignored."""


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
        planner: Planner = dispatch.plan,
        observer: DispatchObserver | None = None,
    ) -> None:
        self.jobs = jobs
        self.roster = roster
        self.fleet = fleet
        self.link = link
        self.issuer = issuer
        self.policy = policy or DispatchPolicy()
        self.planner = planner
        """What decides: :func:`~printfleet.protocol.dispatch.plan` in the cloud."""
        self.observer: DispatchObserver = observer if observer is not None else NoObserver()
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
        self._views: dict[str, tuple[PrinterView, RosterEntry, int | None, PrinterView]] = {}
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
        who may operate it, which safety settings it must apply, its pools and its wear, as of
        now."""
        roster = await self.roster.roster()
        heard = self.fleet.views()
        return {
            printer_id: self._joined(printer_id, heard[printer_id], entry)
            for printer_id, entry in roster.items()
            if printer_id in heard
        }

    def _joined(self, printer_id: str, heard: PrinterView, entry: RosterEntry) -> PrinterView:
        sent_at = self._sent_at(printer_id, entry.desired)
        # A printer reports about once a second and the store's word rarely changes, while
        # planning runs several times a second: the same inputs give the same view.
        cached = self._views.get(printer_id)
        if (
            cached is not None
            and cached[0] is heard
            and cached[1] == entry
            and cached[2] == sent_at
        ):
            return cached[3]
        joined = replace(
            heard,
            # The store's model, not the one the printer announces: a printer cannot join
            # another model's pool by saying so.
            model=entry.model,
            operators=entry.operators,
            desired=entry.desired,
            pools=entry.pools,
            print_hours=entry.print_hours,
            settings_sent_at=sent_at,
        )
        self._views[printer_id] = (heard, entry, sent_at, joined)
        return joined

    def _sent_at(self, printer_id: str, desired: SafetySettings) -> int | None:
        # Pacing holds only for the same settings: a change the owner just made goes out now.
        sent = self._settings_sent.get(printer_id)
        return sent[0] if sent is not None and sent[1] == desired else None

    async def tick(self) -> None:
        """Plan once and carry the decisions out."""
        stored = {job.view.id: job for job in await self.jobs.open_jobs()}
        printers = await self.views()
        now = self._clock_ms()
        decisions = self.planner(
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
                recorded = dispatch.staged_on(view, printer_id, stage.id, now)
                version, outcome = await self._record_then_publish(recorded, job, stage, "stage")
                if outcome is PublishOutcome.NOT_SENT:
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
                # If we crash or the publish fails, the journal settles it.
                recorded = dispatch.dispatched(view, start.id, start.not_after)
                await self._record_then_publish(recorded, job, start, "start")
            case dispatch.QueryJournal(printer_id=printer_id):
                query = self.issuer.journal_query(printer_id, (view.id,), now=now)
                # A query that could not be sent is asked again after the query interval.
                recorded = dispatch.queried(view, query.id, now)
                await self._record_then_publish(recorded, job, query, "journal_query")
            case dispatch.CancelOnPrinter(printer_id=printer_id):
                cancel = self.issuer.cancel(printer_id, view.id, now=now)
                if (
                    await self._send(printer_id, cancel, job, "cancel")
                    is not PublishOutcome.NOT_SENT
                ):
                    await self._save(dispatch.cancel_sent(view, now), job)
            case dispatch.Unassign():
                await self._commit(dispatch.unassign(view, decision), job)
            case dispatch.Withdraw(reason=reason):
                await self.jobs.audit("withdrawn", view, command_id=None, detail=reason)
                await self._commit(dispatch.withdraw(view, reason), job)
            case dispatch.Waiting():
                await self._save(dispatch.waiting(view, decision), job)
            case dispatch.PlateNeeded(printer_id=printer_id):
                # The job simply waits, in the queue, within its window; a person is asked
                # (the listener makes that once per job and printer, not once per round).
                if self._on_plate_needed is not None:
                    await self._on_plate_needed(job, printer_id)

    async def _record_then_publish(
        self, recorded: JobView, job: StoredJob, command: CommandBase, action: str
    ) -> tuple[int, PublishOutcome]:
        """Record the job as waiting on ``command``, then publish it: the new version and the
        outcome.

        In this order, always: a printer on a fast link answers (staged, refused, started, its
        journal) before the publish returns, and only an answer to the command the job records
        moves it; a start recorded first is settled from the printer's journal whatever becomes
        of its publish, never sent again. ``tests/chaos/test_carry_out_mutation.py`` swaps the
        two steps and watches the simulation catch it.
        """
        version = await self._save(recorded, job)
        outcome = await self._send(command.printer_id, command, job, action)
        return version, outcome

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
        self.observer.settings_published(
            SettingsPublished(command, printer_id, decision.settings, outcome)
        )
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
        self.observer.command_published(
            CommandPublished(
                command,
                action,
                job.view.id,
                printer_id,
                outcome,
                None if evidence_age is None else int(evidence_age * 1000),
                self._probe_interval_ms,
            )
        )
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
        if change.job.state.terminal:
            self.observer.job_ended(change)
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
    "CommandPublished",
    "Conflict",
    "DispatchObserver",
    "Dispatcher",
    "JobRepository",
    "NoObserver",
    "PrinterRoster",
    "Publisher",
    "RosterEntry",
    "SettingsPublished",
    "StoredJob",
    "cloud_ms",
    "stage_name",
]
