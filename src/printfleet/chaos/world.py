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

This module holds the world the harness's hands act on (:class:`World`) and its start-up
(:func:`running_world`); its settings, store, cloud and printers have modules of their own
(``world_settings``, ``world_store``, ``world_cloud``, ``world_printers``).
"""

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from printfleet.agent.config import AgentConfig
from printfleet.agent.runtime import PLATE_PROMPT_ID, PrinterAgent, monotonic_ms, new_message_id
from printfleet.broker_address import BrokerAddress
from printfleet.chaos.proxy import FaultProxy, ProxyMode
from printfleet.chaos.recorder import AgentHistory, HistoryRecorder, Kind
from printfleet.chaos.unsafe import CredulousLink, PermissiveGate
from printfleet.chaos.world_cloud import ChaosCloud
from printfleet.chaos.world_printers import PrinterSlot, WitnessedPrinter, skewed_clock
from printfleet.chaos.world_settings import USER, WorldSettings
from printfleet.chaos.world_store import GCODE, SHA256, DispatchPoint, JobStore, open_stores
from printfleet.cloud.dispatch.dispatcher import cloud_ms, stage_name
from printfleet.protocol.dispatch import JobView, SafetySettings
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import encode
from printfleet.protocol.signing import CommandSigner
from printfleet.testing import MosquittoBroker, PostgresServer
from printfleet.testing.roster import MemoryRoster

log = logging.getLogger(__name__)

PLATE_CLEAR_OPTION = "The plate is clear"
FRESH_REPORT_MS = 2_000


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
        stores = await open_stores(settings, models, owners, stack)
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
