"""A deterministic fleet: the real protocol core and the real dispatcher over a simulated network.

No sockets, no event loop and no real clock: one integer of true cloud time advances, messages
travel through a link that delays, drops, duplicates, reorders and holds them (the 2023 burst),
and printers keep their own drifting, offset clocks. The cloud is the production code: its
:class:`~printfleet.cloud.dispatcher.Dispatcher` (the carry-out of every decision: record,
publish, record the outcome), its :class:`~printfleet.cloud.fleet_view.FleetView`, on the
in-memory job repository the store's contract test holds to the SQL store's rules; only the
broker link is simulated. A message whose delay is zero arrives at once, also while the cloud
is still publishing it, so a printer may answer before the cloud's publish returns, as on a
fast network. Several tenants own printers and share them (as operators
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
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

from printfleet.chaos.unsafe import PermissiveGate, plan_without_safeguards
from printfleet.cloud.dispatcher import Dispatcher, RosterEntry, StoredJob
from printfleet.cloud.fleet_view import FleetView, Kind
from printfleet.cloud.link import PublishOutcome
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobView,
    LinkEvidence,
    Planner,
    SafetySettings,
)
from printfleet.protocol.gate import (
    CancelPrint,
    FetchFile,
    Gate,
    HeatersOff,
    PlateReading,
    PrinterState,
    SafetyGate,
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
    StageCommand,
    StartCommand,
    decode_command,
    encode,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandSigner, CommandVerifier
from printfleet.protocol.topics import Topics
from printfleet.testing.jobs import MemoryJobs

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


_T = TypeVar("_T")


def run_now(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine of the cloud's to its end, here and now, without an event loop.

    The simulation's ports (job store, roster, publisher) answer at once, so the dispatcher's
    coroutines never wait; one that did would make the run depend on scheduling, and is refused.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    msg = "a simulated port waited: the simulation runs the cloud without an event loop"
    raise RuntimeError(msg)


# ---------------------------------------------------------------------------------------------
# The network.


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """How the simulated network misbehaves."""

    max_delay_ms: int = 200
    drop: float = 0.0
    duplicate: float = 0.0
    near: frozenset[str] = frozenset()
    """Printers on a fast path to the broker: every message to or from them arrives at once,
    so they answer while the cloud is still publishing the command they answer."""


@dataclass(order=True, slots=True)
class _InFlight:
    deliver_at: int
    seq: int
    to: str = field(compare=False)
    printer_id: str = field(compare=False)
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
            deliver_at = now
            if printer_id not in self.faults.near:
                deliver_at += self._rng.randint(0, self.faults.max_delay_ms)
            deliver_at = max(deliver_at, self._held_until.get(printer_id, 0))
            message = _InFlight(deliver_at, next(self._seq), to, printer_id, payload)
            heapq.heappush(self._queue, message)

    def next_due(self, now: int) -> _InFlight | None:
        """The next message that arrives by ``now``, in arrival order, if any."""
        if self._queue and self._queue[0].deliver_at <= now:
            return heapq.heappop(self._queue)
        return None

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
        gate: Gate,
        rng: random.Random,
        print_ms: int,
    ) -> None:
        self.printer_id = printer_id
        self.model = model
        self.clock = clock
        self.print_ms = print_ms
        self._verifier = verifier
        self._gate = gate
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
            gate=self._gate,
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


# ---------------------------------------------------------------------------------------------
# The cloud: the production dispatcher and fleet view, on simulated ports.


class SimulatedPublisher:
    """The cloud's end of the simulated broker, in the link supervisor's place (S8, S9).

    It publishes only while the simulated probe made a round trip within the probe interval,
    refusing at once otherwise (nothing is queued), and it is the network's witness: every stage
    and start that leaves, or cannot, goes into the history with the store's truth at that
    instant, before any printer can act on it.
    """

    def __init__(self, world: "FleetSimulation") -> None:
        self.world = world
        self.topics = world.topics

    def verified(self) -> bool:
        """Whether the simulated probe came back within the last probe interval."""
        return self.world.link_evidence().verified(self.world.now)

    def evidence_age(self) -> float | None:
        """Seconds since the last probe came back."""
        verified_at = self.world.probe_ok_at
        return None if verified_at is None else (self.world.now - verified_at) / 1000

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> PublishOutcome:
        """Put ``payload`` on the simulated network now, or refuse it."""
        del qos
        sent = self.verified()
        self.world.witness(payload, sent=sent)
        if not sent:
            return PublishOutcome.NOT_SENT
        printer_id = self.topics.printer_of(topic)
        if printer_id is not None:
            self.world.link.send(self.world.now, printer_id, printer_id, payload)
            # Whatever arrives at once does so while the cloud is still publishing.
            self.world.deliver_due()
        return PublishOutcome.SENT


class CredulousPublisher(SimulatedPublisher):
    """The simulated counterpart of :class:`~printfleet.chaos.unsafe.CredulousLink`, for the
    unsafe fleet: it always calls the link verified, and publishes into whatever the network
    does. The history still records the truth (whether the probe had really come back)."""

    def verified(self) -> bool:
        """Always, on the client library's word."""
        return True

    def evidence_age(self) -> float | None:
        """As fresh as can be, on the same word."""
        return 0.0


class _RosterReader:
    """The dispatcher's ``PrinterRoster`` over the simulation's :class:`Roster`, read afresh at
    every planning round (through whatever wrapper a test put in its place)."""

    def __init__(self, world: "FleetSimulation") -> None:
        self.world = world

    async def roster(self) -> dict[str, RosterEntry]:
        """Every printer: its model, who may operate it, what its owner chose."""
        roster = self.world.roster
        return {
            printer_id: RosterEntry(
                printer.model, roster.operators(printer_id), roster.settings(printer_id)
            )
            for printer_id, printer in self.world.printers.items()
        }

    async def audit(
        self, action: str, printer_id: str, *, command_id: str | None, detail: str
    ) -> None:
        """The history witnesses what matters."""
        del action, printer_id, command_id, detail


class JobViews(Mapping[str, JobView]):
    """The jobs as the store holds them now, by id (a read-only view of the repository)."""

    def __init__(self, store: MemoryJobs) -> None:
        self._rows = store.rows

    def __getitem__(self, job_id: str) -> JobView:
        return self._rows[job_id].view

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class FleetSimulation:
    """One seeded world: a cloud, printers, a link, a history.

    ``safeguards=False`` builds the unsafe fleet the way the chaos harness always does, by
    wrapping ports: printers with :class:`~printfleet.chaos.unsafe.PermissiveGate`, a cloud
    planning with :func:`~printfleet.chaos.unsafe.plan_without_safeguards` and publishing
    through a :class:`CredulousPublisher`.
    """

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
        self.policy = DispatchPolicy()
        self.topics = Topics()
        self.link = SimulatedLink(self.rng, faults or LinkFaults())
        self.history = History()
        self.link_lies = False
        self.probe_interval_ms = probe_interval_ms
        self._new_id = _uuid_factory(self.rng)
        self.issuer = CommandIssuer(self.signer, self._new_id)
        self.store = MemoryJobs(file_size=1)
        self.jobs: Mapping[str, JobView] = JobViews(self.store)
        """Every job as stored now, by id."""
        self.probe_ok_at: int | None = None
        self.printers: dict[str, SimPrinter] = {}
        self.tenancy = Tenancy(owners={})
        self.roster: Roster = self.tenancy
        """What the cloud reads the store through; the checker reads ``tenancy`` itself."""
        self.fleet = FleetView(lambda: self.now, topics=self.topics)
        self.publisher = SimulatedPublisher(self) if safeguards else CredulousPublisher(self)
        self.dispatcher = Dispatcher(
            self.store,
            self.fleet,
            self.publisher,
            self.issuer,
            roster=_RosterReader(self),
            file_url=lambda job, printer_id: f"sim://files/{job.view.id}",
            on_change=self._changed,
            policy=self.policy,
            probe_interval_ms=probe_interval_ms,
            clock_ms=lambda: self.now,
            planner=dispatch.plan if safeguards else plan_without_safeguards,
        )
        gate = SafetyGate() if safeguards else PermissiveGate()
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
                gate=gate,
                rng=self.rng,
                print_ms=print_ms,
            )
        self._last_report: dict[str, int] = {}
        self._last_sync: dict[str, int] = {}

    @property
    def planner(self) -> Planner:
        """What the dispatcher plans with (tests put a wrapper in its place)."""
        return self.dispatcher.planner

    @planner.setter
    def planner(self, planner: Planner) -> None:
        self.dispatcher.planner = planner

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
        view = JobView(
            id=job_id,
            created_at=self.now,
            start_by=self.now + window_ms,
            state=JobState.QUEUED,
            sha256=hashlib.sha256(job_id.encode()).hexdigest(),
            submitter=user,
            printer_id=printer_id,
            model=model,
        )
        run_now(self.store.create(view, owner=user, key=None))
        self.history.intents[job_id] = self.now
        self.history.submitters[job_id] = user
        return job_id

    def cancel(self, job_id: str) -> None:
        """A user cancels a job: it ends now, and its printer, if it has one, is told."""
        stored = self.store.rows[job_id]
        change = dispatch.cancel(stored.view)
        if change.event is None:
            return
        run_now(self.store.save_job(change.job, expected_version=stored.version))
        run_now(self._changed(change, stored))
        if stored.view.assigned_printer is not None:
            printer_id = stored.view.assigned_printer
            self._publish(printer_id, self.issuer.cancel(printer_id, job_id, now=self.now))

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
        self.deliver_due()
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
        self.deliver_due()
        self._probe()
        run_now(self.dispatcher.tick())

    def deliver_due(self) -> None:
        """Deliver everything that has arrived by now, including what that makes arrive."""
        while (message := self.link.next_due(self.now)) is not None:
            if message.to == CLOUD:
                self._cloud_receives(message.printer_id, message.payload)
                continue
            printer = self.printers[message.to]
            if not printer.powered:
                continue  # nobody listens; nothing is kept for later
            for event in printer.receive(message.payload, self.now, self.history):
                self.printer_sends(printer.printer_id, event)

    def _probe(self) -> None:
        # The probe is an end-to-end round trip; a lying link claims success regardless.
        all_up = all(self.link.path_up(p, self.now) for p in self.printers)
        if all_up or self.link_lies:
            self.probe_ok_at = self.now

    def link_evidence(self) -> LinkEvidence:
        """The newest probe round trip, as the cloud's link supervisor would have it."""
        return LinkEvidence(self.probe_ok_at, self.probe_interval_ms)

    def _publish(self, printer_id: str, command: CommandBase) -> None:
        """A command a person's action sends (not the dispatcher's): through the same link."""
        run_now(self.publisher.publish(self.topics.commands(printer_id), encode(command)))

    def witness(self, payload: bytes, *, sent: bool) -> None:
        """Record a command the cloud publishes (``sent``) or tried to, with the truth now: was
        the link really verified; could the submitter operate the printer; what did its owner
        want. Judged by the checker, never by the code under test."""
        try:
            command = decode_command(payload)
        except DecodeError:
            return
        if sent:
            verified = self.link_evidence().verified(self.now)
            self.history.commands_issued[command.id] = (
                command.issued_at,
                command.not_after,
                verified,
            )
        if isinstance(command, StageCommand | StartCommand):
            printer_id, job_id = command.printer_id, command.job_id or ""
            submitter = self.history.submitters.get(job_id, "")
            self.history.issued[command.id] = IssuedCommand(
                at=self.now,
                command_id=command.id,
                kind=command.type,
                printer_id=printer_id,
                job_id=job_id,
                submitter=submitter,
                submitter_may_operate=self.tenancy.may_operate(submitter, printer_id),
                desired_plate_check=self.tenancy.settings(printer_id).plate_check,
                sent=sent,
                file_url=command.body.file_url if isinstance(command, StageCommand) else None,
            )

    def all_jobs_terminal(self) -> bool:
        """Whether every submitted job has ended."""
        return all(job.state.terminal for job in self.jobs.values())

    def printer_sends(self, printer_id: str, event: Event) -> None:
        """A printer publishes an event toward the cloud."""
        self.link.send(self.now, printer_id, CLOUD, encode(event))

    async def _changed(self, change: dispatch.JobChange, job: StoredJob) -> None:
        """The notifier's part: every end is recorded, and every end but completion told."""
        del job
        if change.job.state.terminal:
            self.history.terminal[change.job.id] = change.job.state
            if change.notify and change.job.state is not JobState.COMPLETED:
                self.history.notified.add(change.job.id)

    def _cloud_receives(self, printer_id: str, payload: bytes) -> None:
        # As the cloud's inbox does: the fleet view takes every message in, the dispatcher
        # every event.
        ingested = self.fleet.ingest(self.topics.events(printer_id), payload)
        if ingested is not None and ingested.kind is Kind.EVENT and ingested.event is not None:
            run_now(self.dispatcher.on_event(ingested.event))

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
        # Delays and fast paths are the network's shape, not faults: they stay.
        self.link.faults = replace(self.link.faults, drop=0.0, duplicate=0.0)
        self.link_lies = False
        for printer_id in self.printers:
            self.link.cut(printer_id, down=False)
            self.power_on(printer_id)
