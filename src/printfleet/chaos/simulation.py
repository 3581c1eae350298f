"""A deterministic fleet: the real protocol core and dispatch logic over a simulated network.

No sockets and no real clock: one integer of true cloud time advances, messages travel through
a link that delays, drops, duplicates, reorders and holds them (the 2023 burst), and printers
keep their own drifting, offset clocks. Several tenants own printers and share them (as operators
or viewers), grant and revoke shares, and turn plate checks on and off, also while a printer is
away. Every physical start is written to a history with the physical truth at that instant, and
every stage or start the cloud issues with the store's truth at that instant (could its submitter
operate the printer? did the owner want the plate checked?), so the checker can judge S1 to S9
from outside the code under test. The Hypothesis state machines and ``printfleet chaos sim``
both drive this.
"""

import hashlib
import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobView,
    LinkEvidence,
    PrinterView,
    SafetySettings,
)
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
USERS = ("ana", "ben", "cai")
"""The tenants: ana and ben own printers, cai owns none and prints only where shared."""
OWNERS = ("ana", "ana", "ben")
"""Printer ``index`` belongs to ``OWNERS[index % 3]``: each owner has an x1 of their own."""
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
    """The printer's own plate-check setting at that instant."""
    link_verified_at_issue: bool | None
    has_plate_sensor: bool = True
    plate_confirmed: bool = False
    """A person confirmed the plate clear (at the screen or remotely) since the last start."""


@dataclass(frozen=True, slots=True)
class IssuedCommand:
    """A stage or start the cloud issued, with the store's truth at that instant (S1, S5)."""

    at: int
    command_id: str
    kind: Literal["stage", "start"]
    printer_id: str
    job_id: str
    submitter: str
    """Who asked for the job, as the user's request said (not as the cloud recorded it)."""
    submitter_may_operate: bool
    """Whether the submitter owned the printer or held an operator share at that instant."""
    desired_plate_check: bool
    """The owner's plate-check setting at that instant."""
    sent: bool
    """Whether it left the cloud (a publish refused for want of link evidence did not)."""
    file_url: str | None = None
    """For a stage: the link to the submitter's file that the printer was handed."""


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
    submitters: dict[str, str] = field(default_factory=dict)
    """Job id -> the user who asked for it."""
    issued: dict[str, IssuedCommand] = field(default_factory=dict)
    """Command id -> every stage and start, with who could operate and what the owner wanted."""
    tenancy_changes: int = 0
    """Shares granted or revoked, plate checks turned on or off: how much the store moved."""
    checks_on_while_away: int = 0
    """Plate checks turned back on while the printer, its own check off, could not hear it."""


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
        self.confirmed_by_person = False
        """Someone said the plate is clear since the last start (the checker's S5 witness)."""
        self.printing_job: str | None = None
        self.print_ends_at: int | None = None
        self.fault = False
        self.powered = True
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
                            has_plate_sensor=self.has_sensor,
                            plate_confirmed=self.confirmed_by_person,
                        )
                    )
                    self.confirmed_by_person = False
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
        if not self.powered:
            return []
        local = self.clock.local(now)
        self._sense(local)
        if confirm_locally and not self.has_sensor:
            self.confirmed_by_person = True
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
        self.power_off()
        return self.power_on(now, history)

    def power_off(self) -> None:
        """The power goes: the running print stops where it is (its part stays on the plate),
        and the printer hears and says nothing until it is switched on again."""
        self.printing_job = None
        self.print_ends_at = None
        self.powered = False

    def power_on(self, now: int, history: History) -> list[Event]:
        """Boot from the journal file: settings and every job acted on are remembered."""
        del history  # recovery starts nothing
        self.powered = True
        self.core = self._fresh_core(has_history=True)
        output = self.core.recover(self.clock.local(now))
        self.stored_records.extend(output.records)
        return [*output.events, self.state_event(now)]


# ---------------------------------------------------------------------------------------------
# Tenants: who owns which printer, who it is shared with, what each owner chose.

ShareRole = Literal["operator", "viewer"]


@dataclass(slots=True)
class Tenancy:
    """The store's truth about printers and people; it changes between planning rounds.

    The cloud reads it through a :class:`Roster` at every planning round; the history records
    it, read directly, at every stage and start, so a cloud that misreads it is caught.
    """

    owners: dict[str, str]
    """Printer id -> its owner."""
    shares: dict[str, dict[str, ShareRole]] = field(default_factory=dict)
    """Printer id -> user -> role; a viewer may watch but not print."""
    desired: dict[str, SafetySettings] = field(default_factory=dict)
    """Printer id -> the safety settings its owner chose (plate check on unless turned off)."""

    def operators(self, printer_id: str) -> frozenset[str]:
        """The owner and every operator share, now."""
        shared = self.shares.get(printer_id, {})
        operators = {user for user, role in shared.items() if role == "operator"}
        return frozenset({self.owners[printer_id], *operators})

    def settings(self, printer_id: str) -> SafetySettings:
        """What the owner chose, now."""
        return self.desired.get(printer_id, SafetySettings())

    def may_operate(self, user: str, printer_id: str) -> bool:
        """Whether ``user`` may print on ``printer_id`` now."""
        return user in self.operators(printer_id)

    def share(self, printer_id: str, user: str, role: ShareRole) -> bool:
        """The owner shares the printer (or changes a share's role); False if nothing changed."""
        if user == self.owners[printer_id] or self.shares.get(printer_id, {}).get(user) == role:
            return False
        self.shares.setdefault(printer_id, {})[user] = role
        return True

    def revoke(self, printer_id: str, user: str) -> bool:
        """The owner takes a share back; False if there was none."""
        return self.shares.get(printer_id, {}).pop(user, None) is not None

    def set_plate_check(self, printer_id: str, *, enabled: bool) -> bool:
        """The owner turns the plate check on or off; False if it already was."""
        if self.settings(printer_id).plate_check == enabled:
            return False
        self.desired[printer_id] = SafetySettings(plate_check=enabled)
        return True


class Roster(Protocol):
    """What the cloud reads of the store about a printer at each planning round (a port: tests
    wrap it to show what the checker catches when the cloud misreads it)."""

    def operators(self, printer_id: str) -> frozenset[str]:
        """The users who may operate the printer now."""
        ...

    def settings(self, printer_id: str) -> SafetySettings:
        """The safety settings its owner chose."""
        ...


Planner = Callable[
    [int, Iterable[JobView], Mapping[str, PrinterView], LinkEvidence, DispatchPolicy],
    list[dispatch.Decision],
]
"""The shape of :func:`printfleet.protocol.dispatch.plan` (tests wrap it the same way)."""


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
        self.heard: dict[str, PrinterView] = {}
        """What each printer last reported; the store's word is joined in at each round."""
        self.probe_ok_at: int | None = None
        self.printers: dict[str, SimPrinter] = {}
        self.tenancy = Tenancy(owners={})
        self.roster: Roster = self.tenancy
        """What the cloud reads the store through; the checker reads ``tenancy`` itself."""
        self.planner: Planner = dispatch.plan
        self._settings_sent: dict[str, tuple[int, SafetySettings]] = {}
        for index in range(printers):
            model = "x1" if index % 2 == 0 else "p1"
            printer_id = f"{model}-{index}"
            self.tenancy.owners[printer_id] = OWNERS[index % len(OWNERS)]
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

    def submit(
        self, *, user: str, printer_id: str | None, model: str | None, window_ms: int
    ) -> str | None:
        """``user`` submits a job for a printer, or for any printer of a model.

        None when the API would refuse it: a printer the user may not operate, or a model of
        which they operate no printer (the rules of ``submit_job``).
        """
        if printer_id is not None:
            allowed = printer_id in self.printers and self.tenancy.may_operate(user, printer_id)
        else:
            allowed = any(
                printer.model == model and self.tenancy.may_operate(user, printer_id)
                for printer_id, printer in self.printers.items()
            )
        if not allowed:
            return None
        job_id = self._new_id()
        self.jobs[job_id] = JobView(
            id=job_id,
            created_at=self.now,
            start_by=self.now + window_ms,
            state=JobState.QUEUED,
            sha256=hashlib.sha256(job_id.encode()).hexdigest(),
            submitter=user,
            printer_id=printer_id,
            model=model,
        )
        self.history.intents[job_id] = self.now
        self.history.submitters[job_id] = user
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
        """The owner presses "plate is clear" in the dashboard (only if it really is)."""
        printer = self.printers[printer_id]
        if printer.plate_occupied or printer.printing_job is not None:
            return
        printer.confirmed_by_person = True
        owner = self.tenancy.owners[printer_id]
        self._publish(printer_id, self.issuer.confirm_plate(printer_id, now=self.now, by=owner))

    # -- owners ---------------------------------------------------------------------------------

    def share(self, printer_id: str, user: str, role: ShareRole) -> None:
        """The owner shares a printer with ``user``: as an operator they may print on it."""
        self.history.tenancy_changes += self.tenancy.share(printer_id, user, role)

    def revoke(self, printer_id: str, user: str) -> None:
        """The owner takes a share back; it counts from the cloud's next planning round."""
        self.history.tenancy_changes += self.tenancy.revoke(printer_id, user)

    def set_plate_check(self, printer_id: str, *, enabled: bool) -> None:
        """The owner turns the plate check on or off: saved as desired state, and nothing more.

        Getting it to the printer, and starting nothing there meanwhile, is the dispatcher's
        job (as in the cloud's ``set_plate_check`` use case), reachable or not.
        """
        changed = self.tenancy.set_plate_check(printer_id, enabled=enabled)
        self.history.tenancy_changes += changed
        printer = self.printers[printer_id]
        reachable = printer.powered and self.link.path_up(printer_id, self.now)
        if changed and enabled and not printer.core.state.plate_check and not reachable:
            self.history.checks_on_while_away += 1

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
                if not printer.powered:
                    continue  # nobody listens; nothing is kept for later
                for event in printer.receive(message.payload, now, self.history):
                    self.printer_sends(printer.printer_id, event)
        for printer in self.printers.values():
            if not printer.powered:
                continue
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
            self.heard[event.printer_id] = PrinterView(
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
                reported=SafetySettings(plate_check=body.plate_check),
            )
        for job in list(self.jobs.values()):
            change = dispatch.apply_event(job, event, self.now, self.policy)
            if change is not None:
                self._commit(change)

    def fleet_views(self) -> dict[str, PrinterView]:
        """Every printer heard from, joined with the store's word as of now (as the real
        dispatcher's ``views``): who may operate it, which settings it must apply."""
        views = {}
        for printer_id, view in self.heard.items():
            desired = self.roster.settings(printer_id)
            sent = self._settings_sent.get(printer_id)
            views[printer_id] = replace(
                view,
                operators=self.roster.operators(printer_id),
                desired=desired,
                # Pacing holds only for the same settings: an owner's change goes out now.
                settings_sent_at=sent[0] if sent is not None and sent[1] == desired else None,
            )
        return views

    def _issued(
        self, kind: Literal["stage", "start"], command: CommandBase, *, sent: bool, url: str = ""
    ) -> None:
        # The store's truth, read here and not through the roster the cloud was given.
        printer_id, job_id = command.printer_id, command.job_id or ""
        submitter = self.history.submitters.get(job_id, "")
        self.history.issued[command.id] = IssuedCommand(
            at=self.now,
            command_id=command.id,
            kind=kind,
            printer_id=printer_id,
            job_id=job_id,
            submitter=submitter,
            submitter_may_operate=self.tenancy.may_operate(submitter, printer_id),
            desired_plate_check=self.tenancy.settings(printer_id).plate_check,
            sent=sent,
            file_url=url or None,
        )

    def _dispatch(self) -> None:
        decisions = self.planner(
            self.now, self.jobs.values(), self.fleet_views(), self._link_evidence(), self.policy
        )
        for decision in decisions:
            if isinstance(decision, dispatch.ApplySettings):
                setting = self.issuer.set_plate_check(
                    decision.printer_id,
                    now=self.now,
                    enabled=decision.settings.plate_check,
                    by="the cloud (the owner's setting)",
                )
                if self._publish(decision.printer_id, setting):
                    self._settings_sent[decision.printer_id] = (self.now, decision.settings)
                continue
            job = self.jobs[decision.job_id]
            match decision:
                case dispatch.Expire():
                    self._commit(dispatch.expire(job))
                case dispatch.Stage(printer_id=printer_id):
                    url = f"sim://files/{job.id}"
                    command = self.issuer.stage(
                        printer_id,
                        job.id,
                        now=self.now,
                        file_url=url,
                        sha256=job.sha256,
                        size=1,
                        name="part.gcode",
                    )
                    sent = self._publish(printer_id, command)
                    self._issued("stage", command, sent=sent, url=url)
                    if sent:
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
                        plate_check=decision.plate_check,
                    )
                    # Recorded before it is published; a lost ack is settled from the journal.
                    self.jobs[job.id] = dispatch.dispatched(job, start.id, start.not_after)
                    self._issued("start", start, sent=self._publish(printer_id, start))
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
                case dispatch.Withdraw(reason=reason):
                    self._commit(dispatch.withdraw(job, reason))
                case dispatch.Waiting(reason=reason):
                    self.jobs[job.id] = dispatch.waiting(job, reason)
                case dispatch.PlateNeeded():
                    pass

    # -- faults ---------------------------------------------------------------------------------

    def partition_with_burst(self, printer_id: str, duration_ms: int) -> None:
        """The printer's link goes down while the MQTT client keeps accepting and queueing."""
        self.link.hold(printer_id, self.now + duration_ms)

    def power_off(self, printer_id: str) -> None:
        """A printer loses power and stays off (until :meth:`power_on`)."""
        self.printers[printer_id].power_off()

    def power_on(self, printer_id: str) -> None:
        """A printer that was off boots from its journal and reports its state."""
        printer = self.printers[printer_id]
        if printer.powered:
            return
        for event in printer.power_on(self.now, self.history):
            self.printer_sends(printer_id, event)

    def heal(self) -> None:
        """Networks stop misbehaving and printers that were off boot (for the final settle)."""
        self.link.faults = LinkFaults(max_delay_ms=self.link.faults.max_delay_ms)
        self.link_lies = False
        for printer_id in self.printers:
            self.link.cut(printer_id, down=False)
            self.power_on(printer_id)
