"""A fleet of real components for chaos runs: Mosquitto, the cloud's MQTT side, printer agents.

Everything that decides is the production code: the cloud's link supervisors, fleet view and
dispatcher; each printer's agent with its gate, journal file and thermal protection, driving a
simulated printer. Between every component and the broker sits a :class:`FaultProxy`. The cloud
has two MQTT clients, as the 2023 cloud had: one takes printer traffic in, the other carries
commands out. The job store is in memory with the real store's compare-and-set and idempotency
rules, and so is the roster of who may operate which printer and which settings its owner chose
(or both are in the real store on PostgreSQL). Users, owners, people at the printers and the
notifier are played by the harness, which records what they did, and what the hardware
physically did, into the history.
"""

import asyncio
import contextlib
import hashlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal, Protocol

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import HeaterId
from printfleet.agent.runtime import PLATE_PROMPT_ID, PrinterAgent, monotonic_ms, new_message_id
from printfleet.broker_address import BrokerAddress
from printfleet.chaos.proxy import FaultProxy, ProxyMode
from printfleet.chaos.recorder import AgentHistory, DispatchHistory, HistoryRecorder, Kind
from printfleet.chaos.unsafe import CredulousLink, PermissiveGate, plan_without_safeguards
from printfleet.cloud.dispatcher import (
    Dispatcher,
    JobRepository,
    PrinterRoster,
    StoredJob,
    cloud_ms,
    stage_name,
)
from printfleet.cloud.fleet_view import FleetView
from printfleet.cloud.fleet_view import Kind as MessageKind
from printfleet.cloud.link import LinkSupervisor
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.store import Store, new_id, open_store
from printfleet.cloud.store_jobs import StoreJobs, StoreRoster
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    JobChange,
    JobView,
    SafetySettings,
    plan,
)
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import encode
from printfleet.protocol.signing import CommandSigner
from printfleet.sim.gcode import SimulatedPrint
from printfleet.sim.printer import SimulatedPrinter
from printfleet.sim.samples import make_sample_gcode
from printfleet.testing import MosquittoBroker, PostgresServer
from printfleet.testing.jobs import MemoryJobs
from printfleet.testing.roster import MemoryRoster

log = logging.getLogger(__name__)

GCODE = make_sample_gcode(4, heat=False).encode()
SHA256 = hashlib.sha256(GCODE).hexdigest()
PLATE_CLEAR_OPTION = "The plate is clear"
FRESH_REPORT_MS = 2_000
USER = "user"
"""The one person asking for prints in a world whose printers all have one owner."""


@dataclass(frozen=True, slots=True)
class WorldSettings:
    """How one world runs."""

    safeguards: bool = True
    probe_interval_s: float = 1.0
    dispatch_window_ms: int = 30_000
    time_scale: float = 20.0
    """Simulated printer seconds per real second: prints take a few real seconds."""
    printers: tuple[str, ...] = ("x1", "x1", "p1")
    clock_skew: bool = False
    """Give every printer's clock an offset of hours and a drift of hundreds of ppm."""
    keepalive_s: int = 2
    """The agents' MQTT keep-alive: short, so dead links are noticed within a quick run."""
    database: Literal["memory", "postgres"] = "memory"
    """Jobs in memory (the store's rules, no I/O) or in the real store on a PostgreSQL of the
    world's own, which the harness can restart."""
    owners: tuple[str, ...] = ()
    """Who owns each printer (in ``printers``' order); empty: :data:`USER` owns them all. Other
    owners need the memory store, whose roster the harness changes as owners do."""


# ---------------------------------------------------------------------------------------------
# The store.


class StoreBackedJobs:
    """Jobs in the real store (SQLite or PostgreSQL), through the cloud's own adapter."""

    def __init__(self, store: Store, owner_id: str, file_id: str) -> None:
        self.store = store
        self._adapter = StoreJobs(store)
        self._owner_id = owner_id
        self._file_id = file_id

    @classmethod
    async def open(cls, url: str, printers: dict[str, str]) -> "StoreBackedJobs":
        """Migrate, then provision one user, the printers (id -> model) and the one file."""
        await upgrade(url)
        store = await open_store(url)
        user = await store.accounts.create_user(
            f"chaos-{new_id()}@example.org",
            display_name="chaos user",
            password_hash="-",  # noqa: S106 - nobody logs in
        )
        for printer_id, model in printers.items():
            await store.printers.create(
                printer_id,
                owner_id=user.id,
                name=printer_id,
                model=model,
                broker_username=f"{printer_id}-{new_id()}",
                broker_password_hash="-",  # noqa: S106 - the agents connect anonymously
            )
        file = await store.files.create(
            user.id, name="part.gcode", size=len(GCODE), sha256=SHA256, storage_key="chaos"
        )
        return cls(store, user.id, file.id)

    def user_id(self, user: str) -> str:
        """A person's id in this store: there is one user, and every printer is theirs."""
        del user
        return self._owner_id

    async def job(self, job_id: str) -> JobView | None:
        """One job as stored now."""
        try:
            record = await self.store.jobs.load(job_id)
        except Exception:  # noqa: BLE001 - unknown, or a store still recovering: not known now
            return None
        return record.view

    async def create(self, view: JobView, *, owner: str, key: str | None) -> tuple[str, bool]:
        """Create through the store (idempotent by key, per owner)."""
        created = await self.store.jobs.create(
            self._owner_id,
            sha256=view.sha256,
            start_by=view.start_by,
            printer_id=view.printer_id,
            model=view.model,
            file_id=self._file_id,
            name="part.gcode",
            idempotency_key=key,
        )
        return created.job.view.id, created.created

    async def open_jobs(self) -> list[StoredJob]:
        """The dispatcher's view of the store."""
        return await self._adapter.open_jobs()

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set, terminal ends audited, as in production."""
        return await self._adapter.save_job(job, expected_version=expected_version)

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """The store's audit log."""
        await self._adapter.audit(action, job, command_id=command_id, detail=detail)

    async def states(self) -> dict[str, int]:
        """How many jobs are in each state."""
        counts: dict[str, int] = {}
        older_than = None
        while True:
            page = await self.store.jobs.for_owner(self._owner_id, older_than=older_than)
            for record in page:
                state = record.view.state.value
                counts[state] = counts.get(state, 0) + 1
            if not page:
                return counts
            older_than = page[-1].view.id

    async def close(self) -> None:
        """Close the store."""
        await self.store.close()


class JobStore(Protocol):
    """What the world needs of a job store: the dispatcher's repository, creation, a census."""

    async def create(self, view: JobView, *, owner: str, key: str | None) -> tuple[str, bool]:
        """Create a job (or find the one with this idempotency key)."""
        ...

    async def open_jobs(self) -> list[StoredJob]:
        """Jobs not over."""
        ...

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Compare-and-set."""
        ...

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Log a dispatcher action."""
        ...

    async def states(self) -> dict[str, int]:
        """Jobs per state."""
        ...

    def user_id(self, user: str) -> str:
        """The id the store knows ``user`` by (what rosters and jobs name them with)."""
        ...

    async def job(self, job_id: str) -> JobView | None:
        """One job as stored now (None if unknown)."""
        ...


class DispatchPoint:
    """Wraps a job store so a fault can strike right after the cloud records a start as
    dispatched and before it publishes it: the moment a blind re-send, or a start held in
    flight, would do harm."""

    def __init__(self, inner: JobRepository) -> None:
        self.inner = inner
        self.armed: Callable[[JobView], None] | None = None
        """Called once, at the next recorded dispatch."""
        self.struck = asyncio.Event()

    async def strike_next(self, fault: Callable[[JobView], None], *, within: float) -> bool:
        """Arm ``fault`` and wait until it struck (False if no dispatch came in time)."""
        self.struck.clear()
        self.armed = fault
        try:
            async with asyncio.timeout(within):
                await self.struck.wait()
        except TimeoutError:
            self.armed = None
            return False
        return True

    async def open_jobs(self) -> list[StoredJob]:
        """Delegated."""
        return await self.inner.open_jobs()

    async def save_job(self, job: JobView, *, expected_version: int) -> int:
        """Delegated; then, if armed and this records a dispatch, the fault."""
        version = await self.inner.save_job(job, expected_version=expected_version)
        fault = self.armed
        if fault is not None and job.state is JobState.DISPATCHED:
            self.armed = None
            fault(job)
            self.struck.set()
            await asyncio.sleep(0)  # a cancellation the fault made lands here, before publishing
        return version

    async def audit(
        self, action: str, job: JobView, *, command_id: str | None, detail: str
    ) -> None:
        """Delegated."""
        await self.inner.audit(action, job, command_id=command_id, detail=detail)


# ---------------------------------------------------------------------------------------------
# The cloud: two MQTT clients, one fleet view, one dispatcher.


class ChaosCloud:
    """The cloud's MQTT side with its two clients: ``link_in`` for printer traffic,
    ``link_out`` for commands (the dispatcher publishes through it only)."""

    def __init__(
        self,
        inbound: BrokerAddress,
        outbound: BrokerAddress,
        jobs: DispatchPoint,
        issuer: CommandIssuer,
        *,
        roster: PrinterRoster,
        file_url: Callable[[StoredJob, str], str],
        recorder: HistoryRecorder,
        settings: WorldSettings,
    ) -> None:
        self.recorder = recorder
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.link_in = LinkSupervisor(
            inbound, on_message=self._enqueue, probe_interval_s=settings.probe_interval_s
        )
        # Without safeguards the command client can be made to believe its library (the 2023
        # lie); with them it is the cloud's own supervisor, which believes only round trips.
        self.link_out = (LinkSupervisor if settings.safeguards else CredulousLink)(
            outbound,
            on_message=lambda topic, payload: None,
            probe_interval_s=settings.probe_interval_s,
        )
        self.fleet = FleetView(cloud_ms)
        self.policy = DispatchPolicy(dispatch_window_ms=settings.dispatch_window_ms)
        self.dispatcher = Dispatcher(
            jobs,
            self.fleet,
            self.link_out,
            issuer,
            roster=roster,
            file_url=file_url,
            on_change=self._notify,
            policy=self.policy,
            probe_interval_ms=int(settings.probe_interval_s * 1000),
            tick_s=0.2,
            planner=plan if settings.safeguards else plan_without_safeguards,
            observer=DispatchHistory(recorder),
        )

    def _enqueue(self, topic: str, payload: bytes) -> None:
        self.inbox.put_nowait((topic, payload))

    async def _notify(self, change: JobChange, job: StoredJob) -> None:
        # The notifier's part: every end but completion reaches the submitter (S7).
        if change.notify:
            self.recorder.record(
                Kind.NOTIFICATION_SENT,
                job_id=change.job.id,
                state=change.job.state.value,
                to=job.owner,
            )

    async def run(self) -> None:
        """Both links, the dispatcher and the inbox, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link_in.run(), name="chaos cloud link in")
            group.create_task(self.link_out.run(), name="chaos cloud link out")
            group.create_task(self.dispatcher.run(), name="chaos cloud dispatcher")
            group.create_task(self._drain(), name="chaos cloud inbox")

    async def _drain(self) -> None:
        while True:
            topic, payload = await self.inbox.get()
            ingested = self.fleet.ingest(topic, payload)
            if ingested is None:
                continue
            if ingested.kind is MessageKind.EVENT and ingested.event is not None:
                try:
                    await self.dispatcher.on_event(ingested.event)
                except Exception:  # one bad event must not stop the inbox
                    log.exception("handling an event failed")
            elif ingested.kind is not MessageKind.TELEMETRY:
                self.dispatcher.wake()


# ---------------------------------------------------------------------------------------------
# Printers: the real agent over a simulated printer whose physics the harness witnesses.


class WitnessedPrinter(SimulatedPrinter):
    """A simulated printer that tells the history what physically happened."""

    def __init__(
        self, model: str, *, printer_id: str, recorder: HistoryRecorder, **kwargs: object
    ) -> None:
        super().__init__(model, **kwargs)  # type: ignore[arg-type]
        self.printer_id = printer_id
        self.recorder = recorder
        self.own_plate_check: Callable[[], bool] = lambda: True
        """The printer's own plate-check setting now (the harness points it at the agent)."""

    async def start_print(self, file_name: str) -> SimulatedPrint:
        """Start, and record the truth at that instant."""
        objects, busy = self.plate.objects, self.current_print() is not None
        handle = await super().start_print(file_name)
        job_id = file_name.removeprefix("job-").removesuffix(".gcode")
        self.recorder.record(
            Kind.PRINT_STARTED,
            printer_id=self.printer_id,
            job_id=job_id,
            plate_objects=objects,
            busy=busy,
            has_plate_sensor=self.has_plate_sensor,
            plate_check=self.own_plate_check(),
        )
        return handle

    async def set_heater_target(self, heater: HeaterId, celsius: float) -> None:
        """Heat, and record that it was asked."""
        if celsius > 0:
            self.recorder.record(
                Kind.HEATER_TARGET,
                printer_id=self.printer_id,
                heater=heater.value,
                target_c=round(celsius),
            )
        await super().set_heater_target(heater, celsius)


@dataclass(slots=True)
class PrinterSlot:
    """One printer: its proxy to the broker, its hardware, its running agent."""

    printer_id: str
    model: str
    home: Path
    proxy: FaultProxy
    clock_ms: Callable[[], int]
    hardware: WitnessedPrinter | None = None
    agent: PrinterAgent | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0


def skewed_clock(rng: random.Random) -> Callable[[], int]:
    """A printer clock hours off the cloud's and drifting by up to 500 ppm."""
    # Ahead only: a printer's local clock never reads below zero.
    offset = rng.randint(3_600_000, 6 * 3_600_000)
    ppm = rng.randint(-500, 500)
    origin = monotonic_ms()
    return lambda: (now := monotonic_ms()) + offset + ((now - origin) * ppm) // 1_000_000


@dataclass(slots=True)
class World:
    """A running fleet and the harness's hands on it."""

    settings: WorldSettings
    recorder: HistoryRecorder
    broker: MosquittoBroker
    cloud: ChaosCloud
    proxy_in: FaultProxy
    proxy_out: FaultProxy
    jobs: JobStore
    dispatch_point: DispatchPoint
    issuer: CommandIssuer
    signer: CommandSigner
    rng: random.Random
    make_cloud: Callable[[], ChaosCloud]
    postgres: PostgresServer | None = None
    database_url: str | None = None
    files_url: str = ""
    home: Path = Path()
    cloud_task: asyncio.Task[None] | None = None
    on_finish: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run after the settle, before the history is judged (e.g. stop cloud processes)."""
    printers: dict[str, PrinterSlot] = field(default_factory=dict)
    requests: int = 0
    faults_injected: int = 0
    roster: MemoryRoster | None = None
    """Who may operate which printer and what each owner chose, when the harness keeps it (the
    memory store); None when the real store on PostgreSQL does."""
    owners: dict[str, str] = field(default_factory=dict)
    """Printer id -> its owner."""
    shares: dict[str, dict[str, str]] = field(default_factory=dict)
    """Printer id -> user -> role ("operator" or "viewer"), as owners granted them."""

    # -- users ----------------------------------------------------------------------------------

    async def submit(
        self,
        printer_id: str | None,
        *,
        window_s: float,
        re_requests: int = 0,
        user: str = USER,
        model: str | None = None,
    ) -> str:
        """``user`` asks for a print on a printer, or on any printer of ``model`` they may
        operate; the desktop app re-sends it ``re_requests`` times at once.

        With safeguards on, every copy carries the request's idempotency key (one job); with
        them off, every copy makes a job of its own, as in 2023.
        """
        self.requests += 1
        request_id = f"request-{self.requests}"
        submitter = self.jobs.user_id(user)
        first = ""
        for _ in range(1 + re_requests):
            now = cloud_ms()
            view = JobView(
                id=new_message_id(),
                created_at=now,
                start_by=now + int(window_s * 1000),
                state=JobState.QUEUED,
                sha256=SHA256,
                submitter=submitter,
                printer_id=printer_id,
                model=model if printer_id is None else None,
            )
            key = request_id if self.settings.safeguards else None
            job_id, created = await self._create(view, user, key)
            if created:
                self.recorder.record(
                    Kind.INTENT_CREATED,
                    job_id=job_id,
                    request_id=request_id,
                    submitter=submitter,
                    printer_id=printer_id,
                    model=view.model,
                    start_by=view.start_by,
                )
            first = first or job_id
        self.cloud.dispatcher.wake()
        return first

    async def _create(self, view: JobView, user: str, key: str | None) -> tuple[str, bool]:
        # A client that cannot reach the store tries again, backing off; with an idempotency
        # key a retry can never make a second job.
        delay = 0.1
        while True:
            try:
                return await self.jobs.create(view, owner=user, key=key)
            except Exception:  # noqa: BLE001 - any store failure: the user's app retries
                log.info("job creation failed; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    # -- people at the printers -----------------------------------------------------------------

    async def tend(self, printer_id: str) -> None:
        """A person takes the finished print off and, on a printer without a sensor, confirms."""
        slot = self.printers[printer_id]
        hardware = slot.hardware
        if hardware is None or hardware.current_print() is not None:
            return
        if hardware.plate.objects:
            hardware.remove_print()
            self.recorder.record(Kind.PLATE_CLEARED, printer_id=printer_id)
        if hardware.has_plate_sensor:
            return
        if PLATE_PROMPT_ID in hardware.screen.open_prompts:
            hardware.screen.answer(PLATE_PROMPT_ID, PLATE_CLEAR_OPTION)
            self.recorder.record(Kind.PLATE_CONFIRMED, printer_id=printer_id, where="screen")

    async def confirm_remotely(self, printer_id: str) -> None:
        """A user who can see the printer presses "plate is clear" in the dashboard."""
        confirm = self.issuer.confirm_plate(printer_id, now=cloud_ms(), by="user")
        link = self.cloud.link_out
        outcome = await link.publish(link.topics.commands(printer_id), encode(confirm))
        self.recorder.record(
            Kind.PLATE_CONFIRMED, printer_id=printer_id, where="remote", outcome=outcome.value
        )

    async def tend_all(self) -> None:
        """Tend every printer once."""
        for printer_id in self.printers:
            await self.tend(printer_id)

    # -- owners ---------------------------------------------------------------------------------

    def _roster(self) -> MemoryRoster:
        if self.roster is None:
            msg = "owners change shares and settings only in a world with the memory store"
            raise RuntimeError(msg)
        return self.roster

    def record_roster(self, printer_id: str) -> None:
        """Witness what the store now says of ``printer_id``; the checker judges every stage
        and start against it."""
        if self.roster is None:
            # The real store's roster, as the world provisioned it and nobody changes it: its
            # one user owns every printer, plate check on.
            operators, plate_check = [self.jobs.user_id(self.owners[printer_id])], True
        else:
            entry = self.roster.entries[printer_id]
            operators, plate_check = sorted(entry.operators), entry.desired.plate_check
        viewers = sorted(u for u, r in self.shares.get(printer_id, {}).items() if r == "viewer")
        self.recorder.record(
            Kind.ROSTER_CHANGED,
            printer_id=printer_id,
            operators=operators,
            plate_check=plate_check,
            viewers=viewers,
        )

    def share(self, printer_id: str, user: str, role: Literal["operator", "viewer"]) -> None:
        """The owner shares a printer; an operator may print on it, a viewer only watch."""
        self.shares.setdefault(printer_id, {})[user] = role
        self._apply_shares(printer_id)

    def revoke(self, printer_id: str, user: str) -> None:
        """The owner takes a share back, while jobs may be waiting on it."""
        self.shares.get(printer_id, {}).pop(user, None)
        self._apply_shares(printer_id)

    def _apply_shares(self, printer_id: str) -> None:
        roster = self._roster()
        owner = self.owners[printer_id]
        shared = self.shares.get(printer_id, {})
        operators = {owner, *(user for user, role in shared.items() if role == "operator")}
        # Changed and witnessed in one step of the event loop: no planning round falls between.
        roster.set_operators(printer_id, frozenset(operators))
        self.record_roster(printer_id)
        self.cloud.dispatcher.wake()

    def set_plate_check(self, printer_id: str, *, enabled: bool) -> None:
        """The owner turns the plate check on or off: saved as desired state; the dispatcher
        takes it to the printer (as the cloud's ``set_plate_check`` use case leaves it to)."""
        self._roster().set_plate_check(printer_id, enabled=enabled)
        self.record_roster(printer_id)
        self.cloud.dispatcher.wake()

    def reachable(self, printer_id: str) -> bool:
        """Whether the cloud has a report from the printer fresh enough to send it anything."""
        view = self.cloud.fleet.view(printer_id)
        max_age = self.cloud.policy.report_max_age_ms
        return view is not None and view.online and cloud_ms() - view.reported_at <= max_age

    def reported_settings(self, printer_id: str) -> SafetySettings | None:
        """The safety settings the printer last reported to the cloud (None: unknown)."""
        view = self.cloud.fleet.view(printer_id)
        return None if view is None else view.reported

    # -- printers -----------------------------------------------------------------------------

    async def power_on(self, printer_id: str) -> None:
        """Start (or restart) a printer's hardware and agent."""
        slot = self.printers[printer_id]
        objects = 0 if slot.hardware is None else slot.hardware.plate.objects
        hardware = WitnessedPrinter(
            slot.model,
            printer_id=printer_id,
            recorder=self.recorder,
            storage_dir=slot.home / "sd",
            time_scale=self.settings.time_scale,
            seed=self.rng.randrange(2**31),
        )
        hardware.plate.objects = objects  # what lay on the plate is still there
        config = AgentConfig(
            printer_id=printer_id,
            model=slot.model,
            broker=f"mqtt://127.0.0.1:{slot.proxy.port}",
            cloud_public_key=self.signer.public_key,
            data_dir=slot.home,
            telemetry_period_s=0.2,
            time_sync_period_s=5.0,
            keepalive_s=self.settings.keepalive_s,
        )
        agent = PrinterAgent(
            config,
            hardware,
            clock_ms=slot.clock_ms,
            gate=None if self.settings.safeguards else PermissiveGate(),
            observer=AgentHistory(self.recorder),
        )
        hardware.own_plate_check = lambda: agent.core.state.plate_check

        async def run() -> None:
            async with hardware:
                await agent.run()

        slot.hardware, slot.agent = hardware, agent
        slot.task = asyncio.create_task(run(), name=f"chaos printer {printer_id}")

    async def power_off(self, printer_id: str) -> None:
        """Cut a printer's power: the agent and any print stop at once."""
        slot = self.printers[printer_id]
        if slot.task is not None:
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await slot.task
        slot.task = None

    async def restart_printer(self, printer_id: str) -> None:
        """Power cycle mid-whatever: memory is gone, the journal file survives."""
        await self.power_off(printer_id)
        self.printers[printer_id].restarts += 1
        await self.power_on(printer_id)

    # -- waiting ----------------------------------------------------------------------------

    async def until(
        self, condition: Callable[[], bool], *, within: float, poll: float = 0.1
    ) -> bool:
        """Wait for ``condition`` (polled: it spans processes and hardware), or give up."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True

    def fleet_ready(self) -> bool:
        """Both links verified and every printer reporting a synced clock."""
        if not (self.cloud.link_in.verified() and self.cloud.link_out.verified()):
            return False
        now = cloud_ms()
        for printer_id in self.printers:
            view = self.cloud.fleet.view(printer_id)
            if view is None or not view.clock_synced or now - view.reported_at > FRESH_REPORT_MS:
                return False
        return True

    def fault(self, what: str, **fields: object) -> None:
        """Record an injected fault (or its healing)."""
        if not what.startswith("heal"):
            self.faults_injected += 1
        self.recorder.record(Kind.FAULT_INJECTED, fault=what, **fields)

    async def all_jobs_ended(self) -> bool:
        """Whether every job the world holds is in a terminal state."""
        return await self._all_terminal()

    async def eventually(
        self, condition: Callable[[], Awaitable[bool]], *, within: float, poll: float = 0.1
    ) -> bool:
        """Wait for an asynchronous ``condition`` (one that asks the store), or give up."""
        deadline = time.monotonic() + within
        while not await condition():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True

    async def _all_terminal(self) -> bool:
        try:
            states = await self.jobs.states()
        except Exception:  # noqa: BLE001 - a store still recovering: not settled yet
            return False
        return all(JobState(state).terminal for state in states)

    # -- the cloud ------------------------------------------------------------------------------

    async def stop_cloud(self) -> None:
        """Stop the in-process cloud (a cloud process takes over)."""
        if self.cloud_task is not None:
            await _cancel(self.cloud_task)
            self.cloud_task = None

    async def delay_next_start(self, delay_s: float, *, within: float) -> str | None:
        """From just before the cloud's next start is published, delay every byte between the
        broker and that start's printer by ``delay_s``: the start arrives after its deadline, as
        over a congested or flapping link. Returns the printer (None if no start came)."""
        started: list[str] = []

        def delay(job: JobView) -> None:
            slot = self.printers.get(job.assigned_printer or "")
            if slot is not None:
                slot.proxy.delay_s = delay_s
                slot.proxy.set_mode(ProxyMode.DELAY)
                started.append(slot.printer_id)

        if not await self.dispatch_point.strike_next(delay, within=within) or not started:
            return None
        self.fault("printer link delays a start in flight", printer_id=started[0], by_s=delay_s)
        return started[0]

    async def settle(self, *, within: float) -> bool:
        """Heal, let people tend the printers, and wait until every job has ended."""
        for proxy in (self.proxy_in, self.proxy_out, *(s.proxy for s in self.printers.values())):
            proxy.set_mode(ProxyMode.FORWARD)
        if isinstance(self.cloud.link_out, CredulousLink):
            self.cloud.link_out.believing = False
        deadline = time.monotonic() + within
        while not await self._all_terminal():
            if time.monotonic() >= deadline:
                return False
            await self.tend_all()
            await asyncio.sleep(0.25)
        return True


@contextlib.asynccontextmanager
async def running_world(
    settings: WorldSettings, recorder: HistoryRecorder, *, seed: int, home: Path
) -> AsyncIterator[World]:
    """Start a broker, proxies, the cloud and the printers; tear all down on exit."""
    rng = random.Random(seed)  # noqa: S311 - a replayable world, not a secret
    signer = CommandSigner.from_private_bytes(rng.randbytes(32))
    issuer = CommandIssuer(signer, new_message_id)
    models = {f"{model}-{index}": model for index, model in enumerate(settings.printers)}
    async with contextlib.AsyncExitStack() as stack:
        broker = await asyncio.to_thread(MosquittoBroker().start)
        stack.callback(broker.close)
        owners = dict(zip(models, settings.owners or (USER,) * len(models), strict=True))
        stores = await _open_stores(settings, models, owners, stack)
        jobs = stores.jobs
        files = stack.enter_context(_file_server())
        proxy_in = await stack.enter_async_context(FaultProxy(broker.host, broker.port))
        proxy_out = await stack.enter_async_context(FaultProxy(broker.host, broker.port))
        dispatch_point = DispatchPoint(jobs)

        def make_cloud() -> ChaosCloud:
            return ChaosCloud(
                BrokerAddress.parse(f"mqtt://127.0.0.1:{proxy_in.port}"),
                BrokerAddress.parse(f"mqtt://127.0.0.1:{proxy_out.port}"),
                dispatch_point,
                issuer,
                roster=stores.roster,
                file_url=lambda job, printer_id: f"{files}/{stage_name(job.view.id)}",
                recorder=recorder,
                settings=settings,
            )

        world = World(
            settings,
            recorder,
            broker,
            make_cloud(),
            proxy_in,
            proxy_out,
            jobs,
            dispatch_point,
            issuer,
            signer,
            rng,
            make_cloud,
            stores.postgres,
            stores.url,
            files,
            home,
            roster=stores.tenants,
            owners=owners,
        )
        for printer_id in models:
            world.record_roster(printer_id)
        world.cloud_task = asyncio.create_task(world.cloud.run(), name="chaos cloud")

        async def stop_cloud() -> None:
            if world.cloud_task is not None:
                await _cancel(world.cloud_task)

        stack.push_async_callback(stop_cloud)
        for printer_id, model in models.items():
            proxy = await stack.enter_async_context(FaultProxy(broker.host, broker.port))
            clock = skewed_clock(rng) if settings.clock_skew else monotonic_ms
            world.printers[printer_id] = PrinterSlot(
                printer_id, model, home / printer_id, proxy, clock
            )
            await world.power_on(printer_id)
            stack.push_async_callback(world.power_off, printer_id)
        if not await world.until(world.fleet_ready, within=30):
            msg = "the fleet did not come up within 30 s (links verified, clocks synced)"
            raise RuntimeError(msg)
        # Sensorless printers need a person's word before their first print.
        for printer_id, slot in world.printers.items():
            if slot.hardware is not None and not slot.hardware.has_plate_sensor:
                await world.confirm_remotely(printer_id)
        yield world


@dataclass(frozen=True, slots=True)
class _Stores:
    jobs: JobStore
    roster: PrinterRoster
    tenants: MemoryRoster | None
    postgres: PostgresServer | None = None
    url: str | None = None


async def _open_stores(
    settings: WorldSettings,
    models: dict[str, str],
    owners: dict[str, str],
    stack: contextlib.AsyncExitStack,
) -> _Stores:
    """Jobs and the roster: in memory (owners as the settings say), or in the real store on a
    PostgreSQL of the world's own (one user owning every printer)."""
    if settings.database == "memory":
        tenants = MemoryRoster()
        for printer_id, model in models.items():
            tenants.add(printer_id, model, owners[printer_id])
        return _Stores(MemoryJobs(file_size=len(GCODE)), tenants, tenants)
    if settings.owners:
        msg = "a world on PostgreSQL has one owner; tenants need the memory store"
        raise ValueError(msg)
    postgres = await asyncio.to_thread(PostgresServer().start)
    stack.callback(postgres.close)
    url = await asyncio.to_thread(postgres.create_database, "chaos")
    stored = await StoreBackedJobs.open(url, models)
    stack.push_async_callback(stored.close)
    return _Stores(stored, StoreRoster(stored.store), None, postgres, url)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


@contextlib.contextmanager
def _file_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(GCODE)))
            self.end_headers()
            self.wfile.write(GCODE)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="chaos files")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
