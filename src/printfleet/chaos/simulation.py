"""A deterministic fleet: the real protocol core and the real dispatcher over a simulated network.

No sockets, no event loop and no real clock: one integer of true cloud time advances, messages
travel through a link that delays, drops, duplicates, reorders and holds them (the 2023 burst),
and printers keep their own drifting, offset clocks. The cloud is the production code: its
:class:`~printfleet.cloud.dispatch.dispatcher.Dispatcher` (the carry-out of every decision: record,
publish, record the outcome), its :class:`~printfleet.cloud.dispatch.fleet_view.FleetView`, on the
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

This module holds the cloud on simulated ports and the schedule driver
(:class:`FleetSimulation`); the pieces it drives have modules of their own: the network
(:mod:`~printfleet.chaos.sim_link`), the printers (:mod:`~printfleet.chaos.sim_printer`),
the tenants (:mod:`~printfleet.chaos.sim_tenancy`) and the history
(:mod:`~printfleet.chaos.sim_history`).
"""

import hashlib
import random
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from printfleet.chaos.sim_history import LOADOUT_GRACE_MS, Ask, History, IssuedCommand
from printfleet.chaos.sim_link import LinkFaults, SimulatedLink
from printfleet.chaos.sim_printer import PrinterClock, SimPrinter, uuid_factory
from printfleet.chaos.sim_tenancy import Roster, ShareRole, Tenancy
from printfleet.chaos.unsafe import PermissiveGate, plan_without_safeguards
from printfleet.cloud.dispatch.dispatcher import Dispatcher, RosterEntry, StoredJob
from printfleet.cloud.dispatch.fleet_view import FleetView, Kind
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobView,
    LinkEvidence,
    Planner,
    Requirements,
)
from printfleet.protocol.gate import SafetyGate
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import (
    CommandBase,
    DecodeError,
    Event,
    StageCommand,
    StartCommand,
    Telemetry,
    decode_command,
    encode,
)
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


_T = TypeVar("_T")
_TELEMETRY_MARK = b'"type":"telemetry"'
"""How the simulated broker tells telemetry from events: the message's own type (the real
one has a topic for each)."""


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
                printer.model,
                roster.operators(printer_id),
                roster.settings(printer_id),
                pools=self.world.tenancy.pools_of(printer_id),
                print_hours=self.world.tenancy.print_hours.get(printer_id, 0.0),
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
        max_heating: int | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0
        self.signer = CommandSigner.from_private_bytes(self.rng.randbytes(32))
        verifier = CommandVerifier(self.signer.public_key)
        self.policy = DispatchPolicy(max_heating=max_heating)
        self.topics = Topics()
        self.link = SimulatedLink(self.rng, faults or LinkFaults())
        self.history = History(max_heating=max_heating)
        self.link_lies = False
        self.probe_interval_ms = probe_interval_ms
        self._new_id = uuid_factory(self.rng)
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
        self._round_start: dict[str, JobView] = {}
        """The jobs as stored when the current planning round began."""

    @property
    def planner(self) -> Planner:
        """What the dispatcher plans with (tests put a wrapper in its place)."""
        return self.dispatcher.planner

    @planner.setter
    def planner(self, planner: Planner) -> None:
        self.dispatcher.planner = planner

    # -- users ----------------------------------------------------------------------------------

    def submit(
        self,
        *,
        user: str,
        printer_id: str | None,
        model: str | None,
        window_ms: int,
        pool_id: str | None = None,
        priority: int = 0,
        requirements: Requirements | None = None,
    ) -> str | None:
        """``user`` submits a job for a printer, any printer of a model, or any of a pool.

        None when the API would refuse it: a printer the user may not operate, or a model or
        pool of which they operate no printer (the rules of ``submit_job``).
        """
        ask = Ask(printer_id, model, pool_id, requirements or Requirements(), priority)
        if printer_id is not None:
            allowed = printer_id in self.printers and self.tenancy.may_operate(user, printer_id)
        else:
            allowed = any(
                self._asked_for(ask, printer_id) and self.tenancy.may_operate(user, printer_id)
                for printer_id in self.printers
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
            priority=priority,
            pool_id=pool_id,
            requirements=ask.requirements,
        )
        run_now(self.store.create(view, owner=user, key=None))
        self.history.intents[job_id] = self.now
        self.history.submitters[job_id] = user
        self.history.asks[job_id] = ask
        return job_id

    def _asked_for(self, ask: Ask, printer_id: str) -> bool:
        """Whether the printer is what the job asked for: it, one of its model, one of its
        pool (the store's truth, now)."""
        if ask.printer_id is not None:
            return printer_id == ask.printer_id
        if ask.pool_id is not None:
            return ask.pool_id in self.tenancy.pools_of(printer_id)
        return self.printers[printer_id].model == ask.model

    def _fits(self, ask: Ask, printer_id: str, *, throughout: bool = False) -> bool:
        """Whether the printer had the job's material and nozzle (physical truth) at some
        moment of the grace a report in flight is allowed, or ``throughout`` it."""
        needs = ask.requirements
        since = self.now - LOADOUT_GRACE_MS
        fitting = [
            (needs.material is None or needs.material in materials)
            and (needs.nozzle_um is None or needs.nozzle_um == nozzle_um)
            for materials, nozzle_um in self._loadouts_since(printer_id, since)
        ]
        return all(fitting) if throughout else any(fitting)

    def _loadouts_since(
        self, printer_id: str, since: int
    ) -> list[tuple[tuple[str, ...], int | None]]:
        loadouts = self.printers[printer_id].loadouts
        # The loadout in effect at ``since``, and every one after it.
        first = max((i for i, (at, _, _) in enumerate(loadouts) if at <= since), default=0)
        return [(materials, nozzle) for _, materials, nozzle in loadouts[first:]]

    def _passed_over(self, job_id: str, printer_id: str) -> tuple[str, ...]:
        """Waiting jobs of higher priority than ``job_id`` that could have used ``printer_id``
        this round: asked for it, fit it throughout, their submitter may operate it, and they
        were waiting for it or for any printer when the round began and were not sent to
        another one during it."""
        mine = self.history.asks[job_id].priority
        waiting = {JobState.QUEUED, JobState.STAGED}
        passed = []
        for other_id, before in self._round_start.items():
            ask = self.history.asks.get(other_id)
            now = self.jobs.get(other_id)
            if ask is None or now is None or ask.priority <= mine:
                continue
            if before.state not in waiting or now.state not in waiting:
                continue
            if before.assigned_printer not in {None, printer_id}:
                continue
            if now.assigned_printer not in {None, printer_id}:
                continue
            if before.start_by - self.now <= self.policy.min_start_lead_ms + 1_000:
                continue
            if (
                self._asked_for(ask, printer_id)
                and self._fits(ask, printer_id, throughout=True)
                and self.tenancy.may_operate(self.history.submitters[other_id], printer_id)
            ):
                passed.append(other_id)
        return tuple(passed)

    def cancel(self, job_id: str) -> None:
        """A user cancels a job: it ends now, and its printer, if it has one, is told."""
        stored = self.store.rows[job_id]
        change = dispatch.cancel(stored.view)
        if change.event is None:
            return
        run_now(self.store.save_job(change.job, expected_version=stored.version))
        run_now(self._changed(change, stored))
        self.history.cancelled_at[job_id] = self.now
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

    def load(
        self, printer_id: str, materials: tuple[str, ...], nozzle_um: int | None = None
    ) -> None:
        """A person at the printer loads these spools and fits this nozzle; the printer says so."""
        printer = self.printers[printer_id]
        for event in printer.load(self.now, materials, nozzle_um, self.history):
            self.printer_sends(printer_id, event)

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
                if self.policy.max_heating and printer.printing_job is not None:
                    # What the heat-up cap counts by: heaters under their targets (an idle
                    # printer's state report says it is not heating).
                    self.printer_sends(printer.printer_id, printer.telemetry(now))
            if now - self._last_sync.get(printer.printer_id, -(10**9)) >= TIME_SYNC_EVERY_MS:
                self._last_sync[printer.printer_id] = now
                self.printer_sends(printer.printer_id, printer.request_time(now))
        self.deliver_due()
        self._probe()
        self._round_start = dict(self.jobs)
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
                **self._judge_target(command.type, job_id, printer_id),
            )

    def _judge_target(self, kind: str, job_id: str, printer_id: str) -> dict[str, Any]:
        """Whether the printer was what the job asked for, and (for a start) who it passed."""
        ask = self.history.asks.get(job_id)
        if ask is None:
            return {}
        fits = self._asked_for(ask, printer_id) and self._fits(ask, printer_id)
        if kind != "start":
            return {"fits": fits}
        return {"fits": fits, "passed_over": self._passed_over(job_id, printer_id)}

    def all_jobs_terminal(self) -> bool:
        """Whether every submitted job has ended."""
        return all(job.state.terminal for job in self.jobs.values())

    def printer_sends(self, printer_id: str, event: Event | Telemetry) -> None:
        """A printer publishes an event (or telemetry) toward the cloud."""
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
        topic = (
            self.topics.telemetry(printer_id)
            if _TELEMETRY_MARK in payload
            else self.topics.events(printer_id)
        )
        ingested = self.fleet.ingest(topic, payload)
        if ingested is not None and ingested.kind is Kind.EVENT and ingested.event is not None:
            run_now(self.dispatcher.on_event(ingested.event))

    # -- faults ---------------------------------------------------------------------------------

    def partition_with_burst(self, printer_id: str, duration_ms: int) -> None:
        """The printer's link goes down while the MQTT client keeps accepting and queueing."""
        self.link.hold(printer_id, self.now + duration_ms)

    def power_off(self, printer_id: str) -> None:
        """A printer loses power and stays off (until :meth:`power_on`)."""
        self.printers[printer_id].power_off(self.now)

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
