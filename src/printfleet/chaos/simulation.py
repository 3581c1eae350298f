"""A deterministic fleet: the real protocol core and dispatch logic over a simulated network.

No sockets and no real clock: one integer of true cloud time advances, messages travel through
a link that delays, drops, duplicates, reorders and holds them (the 2023 burst), and printers
keep their own drifting, offset clocks. Every physical start is written to a history with the
physical truth at that instant, so the checker can judge S1 to S7 from outside the code under
test. The Hypothesis state machines and ``printfleet chaos sim`` both drive this.
"""

import hashlib
import heapq
import itertools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import DispatchPolicy, JobView, LinkEvidence, PrinterView
from printfleet.protocol.gate import (
    CancelPrint,
    FetchFile,
    GateSettings,
    HeatersOff,
    PlateReading,
    PrinterState,
    StartPrint,
)
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.journal import Journal, JournalRecord
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import (
    CommandBase,
    DecodeError,
    Event,
    JobOutcome,
    PrinterStateEvent,
    TimeRequestEvent,
    decode_event,
    encode,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandSigner, CommandVerifier

CLOUD = "cloud"
REPORT_EVERY_MS = 1_000
"""Printers report their full state this often (the real agent's telemetry period)."""
TIME_SYNC_EVERY_MS = 10_000


def _uuid_factory(rng: random.Random) -> Callable[[], str]:
    # Seeded ids keep a failing schedule exactly replayable; nothing here is secret.
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---------------------------------------------------------------------------------------------
# The network.


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """How the simulated network misbehaves."""

    max_delay_ms: int = 200
    drop: float = 0.0
    duplicate: float = 0.0


@dataclass(order=True, slots=True)
class _InFlight:
    deliver_at: int
    seq: int
    to: str = field(compare=False)
    payload: bytes = field(compare=False)


class SimulatedLink:
    """Carries payloads between the cloud and printers with seeded faults.

    A *held* printer models an MQTT client whose connection is down while it still accepts
    publishes: everything sent to or from that printer is kept and delivered in one burst when
    the hold ends, however late. That is exactly what printed onto occupied plates in 2023.
    """

    def __init__(self, rng: random.Random, faults: LinkFaults) -> None:
        self._rng = rng
        self.faults = faults
        self._queue: list[_InFlight] = []
        self._seq = itertools.count()
        self._held_until: dict[str, int] = {}
        self._cut: set[str] = set()

    def hold(self, printer_id: str, until: int) -> None:
        """Queue all traffic of ``printer_id`` until ``until``, then deliver it at once."""
        self._held_until[printer_id] = max(until, self._held_until.get(printer_id, 0))

    def cut(self, printer_id: str, *, down: bool) -> None:
        """Drop every message to or from ``printer_id`` while down (a dead link, no queue)."""
        if down:
            self._cut.add(printer_id)
        else:
            self._cut.discard(printer_id)

    def path_up(self, printer_id: str, now: int) -> bool:
        """Whether a probe through this printer's path would come back now."""
        return printer_id not in self._cut and self._held_until.get(printer_id, 0) <= now

    def send(self, now: int, printer_id: str, to: str, payload: bytes) -> None:
        """Send ``payload`` between the cloud and ``printer_id`` (either direction)."""
        if printer_id in self._cut or self._rng.random() < self.faults.drop:
            return
        copies = 2 if self._rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            deliver_at = now + self._rng.randint(0, self.faults.max_delay_ms)
            deliver_at = max(deliver_at, self._held_until.get(printer_id, 0))
            heapq.heappush(self._queue, _InFlight(deliver_at, next(self._seq), to, payload))

    def due(self, now: int) -> list[_InFlight]:
        """Everything that arrives by ``now``, in arrival order."""
        arrived = []
        while self._queue and self._queue[0].deliver_at <= now:
            arrived.append(heapq.heappop(self._queue))
        return arrived

    @property
    def in_flight(self) -> int:
        """Messages still travelling."""
        return len(self._queue)


# ---------------------------------------------------------------------------------------------
# What happened, for the checker.


@dataclass(frozen=True, slots=True)
class PhysicalStart:
    """A print that physically began, with the truth at that instant."""

    at: int
    printer_id: str
    job_id: str
    source: str
    command_id: str | None
    issued_at: int | None
    not_after: int | None
    plate_occupied: bool
    printer_busy: bool
    fault_latched: bool
    plate_check: bool
    link_verified_at_issue: bool | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job a user created, and how it ended."""

    job_id: str
    created_at: int
    start_by: int
    state: JobState
    notified: bool


@dataclass(slots=True)
class History:
    """Everything the checker needs: intents, starts, heats, ends, notifications."""

    starts: list[PhysicalStart] = field(default_factory=list)
    intents: dict[str, int] = field(default_factory=dict)
    """Job id -> creation time, for every job a user submitted."""
    terminal: dict[str, JobState] = field(default_factory=dict)
    notified: set[str] = field(default_factory=set)
    heated_while_faulted: list[tuple[int, str]] = field(default_factory=list)
    commands_issued: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    """Command id -> (issued_at, not_after, link verified when issued)."""


# ---------------------------------------------------------------------------------------------
# A printer: the real PrinterCore plus a little physics.


@dataclass(frozen=True, slots=True)
class PrinterClock:
    """``local = true * (1 + drift_ppm/1e6) + offset``: offset and drift, like a real crystal."""

    offset_ms: int
    drift_ppm: int

    def local(self, true_ms: int) -> int:
        """The printer's monotonic reading at true cloud time ``true_ms``."""
        return true_ms + (true_ms * self.drift_ppm) // 1_000_000 + self.offset_ms


class SimPrinter:
    """A printer whose protocol side is the real core and whose body is a few booleans."""

    def __init__(
        self,
        printer_id: str,
        model: str,
        *,
        verifier: CommandVerifier,
        clock: PrinterClock,
        settings: GateSettings,
        rng: random.Random,
        print_ms: int,
    ) -> None:
        self.printer_id = printer_id
        self.model = model
        self.clock = clock
        self.print_ms = print_ms
        self._verifier = verifier
        self._settings = settings
        self._new_id = _uuid_factory(rng)
        self.stored_records: list[JournalRecord] = []
        # Physical truth, independent of what the core believes.
        self.plate_occupied = False
        self.printing_job: str | None = None
        self.print_ends_at: int | None = None
        self.fault = False
        self.core = self._fresh_core(has_history=False)

    @property
    def has_sensor(self) -> bool:
        """x1-like printers have a plate sensor; p1-like ones do not."""
        return self.model == "x1"

    def _fresh_core(self, *, has_history: bool) -> PrinterCore:
        journal = Journal.replay(self.stored_records) if has_history else Journal()
        state = PrinterState(printer_id=self.printer_id, has_plate_sensor=self.has_sensor)
        return PrinterCore(
            state,
            verifier=self._verifier,
            new_id=self._new_id,
            journal=journal,
            settings=self._settings,
        )

    def _sense(self, local: int) -> None:
        if self.has_sensor:
            reading = PlateReading.OCCUPIED if self.plate_occupied else PlateReading.CLEAR
            self.core.plate_reading(reading, local)

    def _apply(
        self, output: Output, now: int, history: History, command: CommandBase | None
    ) -> list[Event]:
        # Write-ahead: the journal is stored before anything physical happens.
        self.stored_records.extend(output.records)
        for action in output.actions:
            match action:
                case StartPrint(job_id=job_id):
                    history.starts.append(
                        PhysicalStart(
                            at=now,
                            printer_id=self.printer_id,
                            job_id=job_id,
                            source="cloud" if command is not None else "screen",
                            command_id=command.id if command is not None else None,
                            issued_at=command.issued_at if command is not None else None,
                            not_after=command.not_after if command is not None else None,
                            plate_occupied=self.plate_occupied,
                            printer_busy=self.printing_job is not None,
                            fault_latched=self.fault,
                            plate_check=self.core.state.plate_check,
                            link_verified_at_issue=(
                                history.commands_issued[command.id][2]
                                if command is not None and command.id in history.commands_issued
                                else None
                            ),
                        )
                    )
                    self.printing_job = job_id
                    self.print_ends_at = now + self.print_ms
                    self.plate_occupied = True
                case CancelPrint():
                    if self.printing_job is not None:
                        self.print_ends_at = now
                case HeatersOff():
                    pass
                case FetchFile(job_id=job_id, sha256=sha256):
                    staged = self.core.staged(job_id, sha256, self.clock.local(now))
                    return [*output.events, *staged.events]
                case _:
                    pass
        return list(output.events)

    def receive(self, payload: bytes, now: int, history: History) -> list[Event]:
        """A command payload arrives."""
        local = self.clock.local(now)
        self._sense(local)
        output = self.core.receive(payload, local)
        return self._apply(output, now, history, output.command)

    def tick(self, now: int, history: History) -> list[Event]:
        """Let time pass: prints end; the printer reports its state."""
        local = self.clock.local(now)
        events: list[Event] = []
        if (
            self.printing_job is not None
            and self.print_ends_at is not None
            and now >= self.print_ends_at
        ):
            outcome = JobOutcome.FAILED if self.fault else JobOutcome.COMPLETED
            self.printing_job = None
            self.print_ends_at = None
            events.extend(
                self._apply(self.core.print_ended(outcome, "", local), now, history, None)
            )
        self._sense(local)
        return events

    def request_time(self, now: int) -> Event:
        """A time request for the cloud."""
        return self.core.request_time(self.clock.local(now))

    def state_event(self, now: int) -> Event:
        """A full state report."""
        local = self.clock.local(now)
        self._sense(local)
        return self.core.state_event(local)

    def person_clears_plate(self, now: int, *, confirm_locally: bool) -> list[Event]:
        """Someone removes the print; on a sensorless printer they may confirm at the screen."""
        if self.printing_job is not None:
            return []
        self.plate_occupied = False
        local = self.clock.local(now)
        self._sense(local)
        if confirm_locally and not self.has_sensor:
            return list(self.core.confirm_plate_locally("person", local).events)
        return [self.core.state_event(local)]

    def thermal_fault(self, now: int, history: History) -> list[Event]:
        """The heater misbehaves; the agent's thermal protection latches a fault."""
        self.fault = True
        output = self.core.thermal_fault(
            "Hotend not heating at expected rate", self.clock.local(now)
        )
        return self._apply(output, now, history, None)

    def clear_fault(self, now: int) -> list[Event]:
        """A person fixed the heater and cleared the fault at the printer."""
        self.fault = False
        return list(self.core.clear_fault_locally("person", self.clock.local(now)).events)

    def restart(self, now: int, history: History) -> list[Event]:
        """Power cycle: memory is gone, the journal file survives; a running print is lost."""
        self.printing_job = None
        self.print_ends_at = None
        self.core = self._fresh_core(has_history=True)
        output = self.core.recover(self.clock.local(now))
        self.stored_records.extend(output.records)
        return [*output.events, self.state_event(now)]


# ---------------------------------------------------------------------------------------------
# The cloud: an in-memory store and the real dispatch decisions.


class FleetSimulation:
    """One seeded world: a cloud, printers, a link, a history."""

    def __init__(
        self,
        seed: int,
        *,
        printers: int = 3,
        faults: LinkFaults | None = None,
        safeguards: bool = True,
        print_ms: int = 20_000,
        probe_interval_ms: int = 5_000,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0
        self.signer = CommandSigner.from_private_bytes(self.rng.randbytes(32))
        verifier = CommandVerifier(self.signer.public_key)
        self.policy = DispatchPolicy(safeguards=safeguards)
        self.gate_settings = GateSettings(safeguards=safeguards)
        self.link = SimulatedLink(self.rng, faults or LinkFaults())
        self.history = History()
        self.link_lies = False
        self.probe_interval_ms = probe_interval_ms
        self._new_id = _uuid_factory(self.rng)
        self.issuer = CommandIssuer(self.signer, self._new_id)
        self.jobs: dict[str, JobView] = {}
        self.views: dict[str, PrinterView] = {}
        self.probe_ok_at: int | None = None
        self.printers: dict[str, SimPrinter] = {}
        for index in range(printers):
            model = "x1" if index % 2 == 0 else "p1"
            printer_id = f"{model}-{index}"
            self.printers[printer_id] = SimPrinter(
                printer_id,
                model,
                verifier=verifier,
                clock=PrinterClock(
                    offset_ms=self.rng.randint(0, 10**9),
                    drift_ppm=self.rng.randint(-100, 100),
                ),
                settings=self.gate_settings,
                rng=self.rng,
                print_ms=print_ms,
            )
        self._last_report: dict[str, int] = {}
        self._last_sync: dict[str, int] = {}

    # -- users ----------------------------------------------------------------------------------

    def submit(self, *, printer_id: str | None, model: str | None, window_ms: int) -> str:
        """A user submits a job for a printer, or for any printer of a model."""
        job_id = self._new_id()
        self.jobs[job_id] = JobView(
            id=job_id,
            created_at=self.now,
            start_by=self.now + window_ms,
            state=JobState.QUEUED,
            sha256=hashlib.sha256(job_id.encode()).hexdigest(),
            printer_id=printer_id,
            model=model,
        )
        self.history.intents[job_id] = self.now
        return job_id

    def cancel(self, job_id: str) -> None:
        """A user cancels a job."""
        job = self.jobs[job_id]
        change = dispatch.cancel(job)
        if change.event is None:
            return
        self._commit(change)
        if job.assigned_printer is not None:
            command = self.issuer.cancel(job.assigned_printer, job_id, now=self.now)
            self._publish(job.assigned_printer, command)

    def confirm_remotely(self, printer_id: str) -> None:
        """A user presses "plate is clear" in the dashboard (only if it really is)."""
        printer = self.printers[printer_id]
        if printer.plate_occupied or printer.printing_job is not None:
            return
        self._publish(printer_id, self.issuer.confirm_plate(printer_id, now=self.now, by="user"))

    # -- the world ------------------------------------------------------------------------------

    def advance(self, ms: int, *, step_ms: int = 250) -> None:
        """Let ``ms`` of true time pass in steps."""
        end = self.now + ms
        while self.now < end:
            self.now = min(end, self.now + step_ms)
            self._step()

    def _step(self) -> None:
        now = self.now
        for message in self.link.due(now):
            if message.to == CLOUD:
                self._cloud_receives(message.payload)
            else:
                printer = self.printers[message.to]
                for event in printer.receive(message.payload, now, self.history):
                    self.printer_sends(printer.printer_id, event)
        for printer in self.printers.values():
            for event in printer.tick(now, self.history):
                self.printer_sends(printer.printer_id, event)
            if now - self._last_report.get(printer.printer_id, -(10**9)) >= REPORT_EVERY_MS:
                self._last_report[printer.printer_id] = now
                self.printer_sends(printer.printer_id, printer.state_event(now))
            if now - self._last_sync.get(printer.printer_id, -(10**9)) >= TIME_SYNC_EVERY_MS:
                self._last_sync[printer.printer_id] = now
                self.printer_sends(printer.printer_id, printer.request_time(now))
        self._probe()
        self._dispatch()

    def _probe(self) -> None:
        # The probe is an end-to-end round trip; a lying link claims success regardless.
        all_up = all(self.link.path_up(p, self.now) for p in self.printers)
        if all_up or self.link_lies:
            self.probe_ok_at = self.now

    def _link_evidence(self) -> LinkEvidence:
        return LinkEvidence(self.probe_ok_at, self.probe_interval_ms)

    def _publish(self, printer_id: str, command: CommandBase) -> bool:
        """S9: refuse unless the link is verified now; never queue for later."""
        verified = self._link_evidence().verified(self.now)
        if not verified and self.policy.safeguards:
            return False
        self.history.commands_issued[command.id] = (command.issued_at, command.not_after, verified)
        self.link.send(self.now, printer_id, printer_id, encode(command))
        return True

    def all_jobs_terminal(self) -> bool:
        """Whether every submitted job has ended."""
        return all(job.state.terminal for job in self.jobs.values())

    def printer_sends(self, printer_id: str, event: Event) -> None:
        """A printer publishes an event toward the cloud."""
        self.link.send(self.now, printer_id, CLOUD, encode(event))

    def _commit(self, change: dispatch.JobChange) -> None:
        self.jobs[change.job.id] = change.job
        if change.job.state.terminal:
            self.history.terminal[change.job.id] = change.job.state
            if change.notify and change.job.state is not JobState.COMPLETED:
                self.history.notified.add(change.job.id)

    def _cloud_receives(self, payload: bytes) -> None:
        try:
            event = decode_event(payload)
        except DecodeError:
            return
        if isinstance(event, TimeRequestEvent):
            reply = self.issuer.time_reply(
                event.printer_id,
                now=self.now,
                nonce=event.body.nonce,
                request_sent_local=event.body.sent_local,
            )
            # Time replies are answered at once like any command: only on a verified link.
            self._publish(event.printer_id, reply)
            return
        if isinstance(event, PrinterStateEvent):
            body = event.body
            model = self.printers[event.printer_id].model
            self.views[event.printer_id] = PrinterView(
                printer_id=event.printer_id,
                model=model,
                online=True,
                reported_at=min(self.now, event.sent_at or self.now),
                status=body.status,
                plate=body.plate,
                fault=body.fault,
                clock_synced=body.clock_synced,
                cloud_enabled=body.cloud_enabled,
                job_id=body.job_id,
                staged=frozenset(body.staged),
            )
        for job in list(self.jobs.values()):
            change = dispatch.apply_event(job, event, self.now, self.policy)
            if change is not None:
                self._commit(change)

    def _dispatch(self) -> None:
        decisions = dispatch.plan(
            self.now, self.jobs.values(), self.views, self._link_evidence(), self.policy
        )
        for decision in decisions:
            job = self.jobs[decision.job_id]
            match decision:
                case dispatch.Expire():
                    self._commit(dispatch.expire(job))
                case dispatch.Stage(printer_id=printer_id):
                    command = self.issuer.stage(
                        printer_id,
                        job.id,
                        now=self.now,
                        file_url=f"sim://{job.id}",
                        sha256=job.sha256,
                        size=1,
                        name="part.gcode",
                    )
                    if self._publish(printer_id, command):
                        self.jobs[job.id] = dispatch.staged_on(
                            job, printer_id, command.id, self.now
                        )
                case dispatch.Start(printer_id=printer_id, not_after=not_after):
                    start = self.issuer.start(
                        printer_id,
                        job.id,
                        now=self.now,
                        not_after=not_after,
                        sha256=job.sha256,
                        name="part.gcode",
                    )
                    # Recorded before it is published; a lost ack is settled from the journal.
                    self.jobs[job.id] = dispatch.dispatched(job, start.id, start.not_after)
                    self._publish(printer_id, start)
                case dispatch.QueryJournal(printer_id=printer_id):
                    query = self.issuer.journal_query(printer_id, (job.id,), now=self.now)
                    if self._publish(printer_id, query):
                        self.jobs[job.id] = dispatch.queried(job, query.id, self.now)
                case dispatch.CancelOnPrinter(printer_id=printer_id):
                    cancel = self.issuer.cancel(printer_id, job.id, now=self.now)
                    if self._publish(printer_id, cancel):
                        self.jobs[job.id] = dispatch.cancel_sent(job, self.now)
                case dispatch.Unassign():
                    self.jobs[job.id] = dispatch.unassigned(job)
                case dispatch.PlateNeeded():
                    pass

    # -- faults ---------------------------------------------------------------------------------

    def partition_with_burst(self, printer_id: str, duration_ms: int) -> None:
        """The printer's link goes down while the MQTT client keeps accepting and queueing."""
        self.link.hold(printer_id, self.now + duration_ms)

    def heal(self) -> None:
        """Networks stop misbehaving (for the final settle)."""
        self.link.faults = LinkFaults(max_delay_ms=self.link.faults.max_delay_ms)
        self.link_lies = False
        for printer_id in self.printers:
            self.link.cut(printer_id, down=False)
