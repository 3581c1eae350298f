"""``printfleet demo``: the whole of printfleet in one process, for a first look.

:func:`running_demo` serves the cloud (with its embedded broker unless one is given), provisions
a simulated fleet through the cloud's own service — each printer gets real broker credentials
and an agent config that pins the cloud's key, and its own filament and nozzle, so that routing
by material shows — creates a demo account and token and a second account the first shares a
printer with, uploads a sample print and submits it. The dashboard tests reuse it to get a
cloud with printers they can put faults into. The demo keeps its state (database, key,
accounts, printers' journals) in its data directory, so a second run finds the same accounts
and fleet again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import WATCHDOG_TIMEOUT_S, Loadout, MaterialSlot
from printfleet.agent.runtime import PrinterAgent
from printfleet.cloud.api import ApiContext
from printfleet.cloud.app import create_app
from printfleet.cloud.service import Principal, Scope
from printfleet.cloud.settings import Settings
from printfleet.cloud.store import ShareRole, UserRecord
from printfleet.sim.clock import SimClock
from printfleet.sim.faults import PoweredPrinter, check_fault_printers, parse_fault, run_faults
from printfleet.sim.materials import (
    MaterialSpec,
    check_material_printers,
    parse_material,
    with_materials,
)
from printfleet.sim.plate import check_eject_printers
from printfleet.sim.printer import EJECT_S, SimulatedPrinter
from printfleet.sim.samples import make_sample_gcode

__all__ = [
    "DEMO_EMAIL",
    "EXIT_INTERRUPTED",
    "OPERATOR_EMAIL",
    "DemoError",
    "DemoOptions",
    "DemoPrinter",
    "RunningDemo",
    "run_demo",
    "running_demo",
]

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@printfleet.example"
OPERATOR_EMAIL = "bo@printfleet.example"
"""A second account: the demo account shares :data:`SHARED_PRINTER` with it as operator."""
SHARED_PRINTER = "p1-02"
STATE_FILE = "demo-state.json"
"""The demo account's password and the printers' broker passwords, mode 0600."""
EXIT_INTERRUPTED = 130
"""The exit status after Ctrl-C (or SIGTERM): the shell's convention, 128 + SIGINT."""
SAMPLE_NAME = "demo-cube.gcode"
_STARTUP_TIMEOUT_S = 60.0


class DemoOptions(BaseModel):
    """What ``printfleet demo`` runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path(".printfleet/demo")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    """0: any free port."""
    printers: Annotated[int, Field(ge=2, le=50)] = 4
    """Half x1-like (plate sensor), half p1-like (a person confirms the plate)."""
    time_scale: Annotated[float, Field(gt=0, le=1000)] = 10.0
    """Simulated hardware seconds per real second."""
    broker_url: str | None = None
    """An external broker; none: the cloud's embedded one."""
    telemetry_period_s: Annotated[float, Field(gt=0)] = 1.0
    probe_interval_s: Annotated[float, Field(gt=0)] = 2.0
    sample_layers: Annotated[int, Field(ge=1, le=10_000)] = 20
    """About 400 s of hardware time with heating: 40 s at the default speed."""
    submit_sample: bool = True
    """Submit the sample print to the first x1-like printer once everything runs."""
    outbound_allow: tuple[str, ...] = ()
    """Internal addresses channels may reach (the cloud's ``outbound_allow``)."""
    attendant_after_s: Annotated[float | None, Field(gt=0)] = None
    """Simulated seconds after each print's end until a person clears the plate (and confirms it
    on p1-like printers); None: nobody does, and each printer stops after one print."""
    faults: tuple[str, ...] = ()
    """Faults to inject, as ``printfleet demo --fault`` takes them (see `printfleet.sim.faults`)."""
    max_heatups: Annotated[int, Field(ge=0)] = 0
    """At most this many printers heating up at once (the cloud's ``PRINTFLEET_MAX_HEATUPS``);
    0: no cap."""
    materials: tuple[str, ...] = ()
    """What slots hold, as ``printfleet demo --material`` takes them, over the demo's own
    loadouts (see :func:`demo_loadout`)."""
    auto_eject: tuple[str, ...] = ()
    """Printers that clear their own plate after each completed print (an eject mechanism, and
    ``plate_clearing = "auto_eject"`` in their agents' configs)."""


@dataclass(frozen=True, slots=True)
class DemoPrinter:
    """One simulated printer of the demo fleet, and the agent driving it."""

    id: str
    model: str
    hardware: SimulatedPrinter
    power: PoweredPrinter
    """The printer's power switch, which holds its agent (a fresh one after a power loss)."""

    @property
    def agent(self) -> PrinterAgent:
        """The agent driving the printer now."""
        return self.power.agent


@dataclass(slots=True)
class RunningDemo:
    """Everything the demo started, for the command to show and for tests to drive."""

    url: str
    email: str
    password: str
    token: str
    context: ApiContext
    principal: Principal
    attendant_after_s: float | None = None
    faults: tuple[str, ...] = ()
    """The faults ``--fault`` scheduled, as given."""
    operator_email: str = OPERATOR_EMAIL
    operator_password: str = ""
    """The second account's password: it operates :data:`SHARED_PRINTER`."""
    printers: dict[str, DemoPrinter] = field(default_factory=dict)
    sample_job_id: str | None = None

    async def wait_until_online(self) -> None:
        """Until every agent is connected, the cloud's link is proven (S8) and every printer's
        clock is synced with the cloud's: then a job can be dispatched at once."""
        core = self.context.core
        async with asyncio.timeout(_STARTUP_TIMEOUT_S):
            await asyncio.gather(*(p.agent.ready.wait() for p in self.printers.values()))
            if core is None:
                return
            await core.link.wait_verified()
            fleet = core.fleet

            def synced() -> bool:
                return all(
                    (view := fleet.view(printer_id)) is not None and view.clock_synced
                    for printer_id in self.printers
                )

            while not synced():  # noqa: ASYNC110 - the fleet view notifies nobody of changes
                await asyncio.sleep(0.05)


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


class _PrinterState(BaseModel):
    model: str
    password: str


class _DemoState(BaseModel):
    """What a later run needs: secrets the cloud keeps only as hashes."""

    email: str
    password: str
    operator_password: str | None = None
    """None in a data directory from before the demo had a second account."""
    printers: dict[str, _PrinterState] = {}


def _load_state(path: Path) -> _DemoState | None:
    try:
        return _DemoState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None


def _save_state(path: Path, state: _DemoState) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(state.model_dump_json(indent=2))
    temporary.replace(path)


def fleet_plan(count: int) -> list[tuple[str, str]]:
    """(printer id, model) for ``count`` printers: x1-like and p1-like in turn."""
    plan = []
    for index in range(count):
        model = "x1" if index % 2 == 0 else "p1"
        plan.append((f"{model}-{index + 1:02d}", model))
    return plan


_LOADOUTS = (
    # A material system with white PLA and black PETG: jobs needing either may go here.
    Loadout(
        4,
        (
            MaterialSlot(slot=1, material="PLA", colour="#f5f5f5"),
            MaterialSlot(slot=2, material="PETG", colour="#1a1a1a"),
        ),
        400,
    ),
    Loadout(1, (MaterialSlot(slot=1, material="PLA", colour="#d62828"),), 400),
    # PLA only, behind a 0.6 mm nozzle: a job sliced for 0.4 mm waits for another printer.
    Loadout(4, (MaterialSlot(slot=1, material="PLA", colour="#2a9d8f"),), 600),
    Loadout(1, (MaterialSlot(slot=1, material="PETG", colour="#264653"),), 400),
)
"""The demo fleet's loadouts in turn, matching :func:`fleet_plan`'s x1, p1, x1, p1."""


def demo_loadout(index: int) -> Loadout:
    """What the demo's printer number ``index`` (from 0) has loaded at start: x1-01 PLA and
    PETG, p1-02 PLA, x1-03 PLA with a 0.6 mm nozzle, p1-04 PETG, and so on in turn."""
    return _LOADOUTS[index % len(_LOADOUTS)]


def describe_loadout(loadout: Loadout) -> str:
    """``PLA, PETG; 0.4 mm``: what a person reads about a printer's loadout."""
    materials = ", ".join(held.material for held in loadout.materials) or "no filament"
    nozzle = "nozzle unknown" if loadout.nozzle_um is None else f"{loadout.nozzle_um / 1000:g} mm"
    return f"{materials}; {nozzle}"


def _loadouts(count: int, specs: list[MaterialSpec]) -> dict[str, Loadout]:
    """Each printer's loadout: the demo's, with ``--material`` applied over it."""
    plan = fleet_plan(count)
    check_material_printers(specs, (printer_id for printer_id, _ in plan))
    return {
        printer_id: with_materials(demo_loadout(index), printer_id, specs)
        for index, (printer_id, _) in enumerate(plan)
    }


class _QuietServer(uvicorn.Server):
    """uvicorn without its own Ctrl-C handling: the demo stops its parts in its own order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGINT over, shut only itself down and then re-raise the signal.
        yield


def _listen(host: str, port: int) -> socket.socket:
    # Bound here so that with port 0 the real port is known for printers' file URLs.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        msg = f"cannot listen on {host}:{port}: {error} (try --port 0 for any free port)"
        raise DemoError(msg) from None
    return listener


@contextlib.asynccontextmanager
async def _served(settings: Settings, listener: socket.socket) -> AsyncIterator[ApiContext]:
    app = create_app(settings)
    # No proxy headers: uvicorn would otherwise believe X-Forwarded-For from loopback, and the
    # rate limits must key on the real peer (PRINTFLEET_TRUSTED_PROXIES says otherwise).
    config = uvicorn.Config(
        app,
        log_config=None,
        ws="none",
        access_log=False,
        timeout_graceful_shutdown=3,
        proxy_headers=False,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="demo cloud http")
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT_S):
            # uvicorn has no readiness event, only this flag.
            while not server.started:
                if task.done():
                    await task
                    raise DemoError("the cloud did not start; see the log above")
                await asyncio.sleep(0.02)
        context = app.state.printfleet
        if not isinstance(context, ApiContext):
            raise DemoError("the cloud started without its context")
        yield context
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _account(context: ApiContext, state: _DemoState | None) -> tuple[UserRecord, str, str]:
    """The demo user, its password, and a fresh token."""
    service = context.service
    if state is None:
        password = secrets.token_urlsafe(12)
        await service.accounts.register_user(DEMO_EMAIL, password, "Demo")
    else:
        password = state.password
    login = await service.accounts.login(DEMO_EMAIL, password, token_name="demo")  # noqa: S106 - a label
    if login is None:
        msg = (
            "the demo account in this data directory does not accept its saved password; "
            "remove the directory (or pass another --data-dir) to start afresh"
        )
        raise DemoError(msg)
    record, token = login
    user = await context.store.accounts.get_user(record.user_id)
    return user, password, token


async def _second_account(context: ApiContext, principal: Principal, state: _DemoState) -> str:
    """The second account's password, the account made if this data dir has none yet; the demo
    account shares :data:`SHARED_PRINTER` with it as operator (again, if a person took the share
    away last time: the demo starts from the same farm)."""
    service = context.service
    if state.operator_password is None:
        password = secrets.token_urlsafe(12)
        if await context.store.accounts.user_by_email(OPERATOR_EMAIL) is not None:
            msg = (
                f"{OPERATOR_EMAIL} has an account in this data directory but no saved password; "
                "remove the directory (or pass another --data-dir) to start afresh"
            )
            raise DemoError(msg)
        await service.accounts.register_user(OPERATOR_EMAIL, password, "Bo")
        state.operator_password = password
    await service.printers.share_printer(
        principal, SHARED_PRINTER, OPERATOR_EMAIL, ShareRole.OPERATOR
    )
    return state.operator_password


async def _provision(
    context: ApiContext, principal: Principal, options: DemoOptions, state: _DemoState
) -> dict[str, AgentConfig]:
    """Agent configs for the fleet, provisioning the printers this data dir has not seen."""
    service = context.service
    configs: dict[str, AgentConfig] = {}
    for printer_id, model in fleet_plan(options.printers):
        known = state.printers.get(printer_id)
        if known is None:
            provisioned = await service.printers.register_printer(
                principal, printer_id, name=f"Demo {model.upper()} #{printer_id[-2:]}", model=model
            )
            context.printer_registered(provisioned.printer)
            values: dict[str, Any] = tomllib.loads(provisioned.agent_config)
            known = _PrinterState(model=model, password=values["password"])
            state.printers[printer_id] = known
        configs[printer_id] = AgentConfig(
            printer_id=printer_id,
            model=known.model,
            # The broker (an embedded one gets a new port each run) is the cloud's of today.
            broker=service.settings.broker_url_for_printers,
            # As stored: a data dir from before usernames were derived keeps its old ones.
            username=(await context.store.printers.get(printer_id)).broker_username,
            password=known.password,
            cloud_public_key=service.signer.public_key,
            data_dir=options.data_dir / "printers" / printer_id,
            telemetry_period_s=options.telemetry_period_s,
            plate_clearing="auto_eject" if printer_id in options.auto_eject else "person",
        )
    return configs


async def _submit_sample(demo: RunningDemo, layers: int) -> str:
    """Upload the sample G-code and print it on the first x1-like printer (plate sensor)."""
    context = demo.context
    sample = make_sample_gcode(layers).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield sample

    file = await context.files.save(demo.principal.user.id, SAMPLE_NAME, chunks())
    target = next(p.id for p in demo.printers.values() if p.model == "x1")
    created = await context.service.jobs.submit_job(
        demo.principal, file_id=file.id, printer_id=target, start_within_s=600
    )
    return created.job.view.id


@contextlib.asynccontextmanager
async def running_demo(options: DemoOptions) -> AsyncIterator[RunningDemo]:
    """Run the cloud, the fleet, the account and (optionally) the sample print."""
    try:
        faults = [parse_fault(fault) for fault in options.faults]
        check_fault_printers(
            faults,
            (printer_id for printer_id, _ in fleet_plan(options.printers)),
            broker_owned=options.broker_url is None,
        )
        materials = [parse_material(spec) for spec in options.materials]
        loadouts = _loadouts(options.printers, materials)
        check_eject_printers(
            options.auto_eject, (printer_id for printer_id, _ in fleet_plan(options.printers))
        )
    except ValueError as error:
        raise DemoError(str(error)) from None
    data_dir = options.data_dir
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    listener = _listen(options.host, options.port)
    shown = "127.0.0.1" if options.host in {"0.0.0.0", "::"} else options.host  # noqa: S104
    url = f"http://{shown}:{listener.getsockname()[1]}"
    settings = Settings(
        data_dir=data_dir / "cloud",
        broker_url=options.broker_url,
        public_url=url,
        probe_interval_s=options.probe_interval_s,
        outbound_allow=options.outbound_allow,
        max_heatups=options.max_heatups,
    )
    state_path = data_dir / STATE_FILE
    state = await asyncio.to_thread(_load_state, state_path)
    with listener:
        async with _served(settings, listener) as context:
            user, password, token = await _account(context, state)
            principal = Principal(user, frozenset({Scope.READ.value, Scope.WRITE.value}))
            saved = state or _DemoState(email=DEMO_EMAIL, password=password)
            configs = await _provision(context, principal, options, saved)
            operator_password = await _second_account(context, principal, saved)
            await asyncio.to_thread(_save_state, state_path, saved)
            demo = RunningDemo(
                url,
                DEMO_EMAIL,
                password,
                token,
                context,
                principal,
                options.attendant_after_s,
                options.faults,
                operator_password=operator_password,
            )
            clock = SimClock(options.time_scale)
            async with contextlib.AsyncExitStack() as stack:
                tasks: list[asyncio.Task[None]] = []
                for printer_id, config in configs.items():
                    hardware = SimulatedPrinter(
                        config.model,
                        storage_dir=config.data_dir / "sd",
                        clock=clock,
                        name=printer_id,
                        # The board's watchdog counts hardware seconds: at 10x speed a 0.3 s
                        # hiccup of a busy laptop would look like a hung agent and cut the
                        # heaters mid-print. The demo keeps it at 3 s of real time instead.
                        watchdog_timeout=WATCHDOG_TIMEOUT_S * max(1.0, options.time_scale),
                        attendant_after_s=options.attendant_after_s,
                        loadout=loadouts[printer_id],
                        eject_s=EJECT_S if config.plate_clearing == "auto_eject" else None,
                    )
                    await stack.enter_async_context(hardware)
                    unit = PoweredPrinter(hardware, config)
                    demo.printers[printer_id] = DemoPrinter(
                        printer_id, config.model, hardware, unit
                    )
                    tasks.append(asyncio.create_task(unit.run(), name=f"demo agent {printer_id}"))
                units = {printer_id: p.power for printer_id, p in demo.printers.items()}
                injector = asyncio.create_task(
                    run_faults(faults, units, broker=context.embedded_broker, clock=clock),
                    name="demo faults",
                )
                try:
                    if options.submit_sample:
                        # Once the printers listen: a command to a printer not yet subscribed
                        # is lost by design (S9), and the job would wait for a retry.
                        await demo.wait_until_online()
                        demo.sample_job_id = await _submit_sample(demo, options.sample_layers)
                    yield demo
                finally:
                    injector.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await injector
                    # Agents first, while the broker still runs: they say goodbye (presence).
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)


def describe(demo: RunningDemo) -> Panel:
    """The dashboard's address, the credentials, and what runs: for the terminal."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Dashboard", f"[link={demo.url}/]{demo.url}/[/link]")
    table.add_row("E-mail", demo.email)
    table.add_row("Password", demo.password)
    table.add_row("API token", demo.token)
    table.add_row(
        "Second account",
        f"{demo.operator_email}, password {demo.operator_password} (operates {SHARED_PRINTER})",
    )
    printers = "\n".join(
        f"{p.id} ({'sensor' if p.model == 'x1' else 'no sensor'}; "
        f"{'auto-eject; ' if p.hardware.eject_s is not None else ''}"
        f"{describe_loadout(p.hardware.loadout())})"
        for p in demo.printers.values()
    )
    table.add_row("Printers", printers)
    if demo.attendant_after_s is None:
        table.add_row("Attendant", "none: clear plates yourself (--attendant-after to change)")
    else:
        table.add_row(
            "Attendant",
            f"clears each plate {demo.attendant_after_s:g} simulated s after a print ends "
            "(--attendant-after 0: none)",
        )
    if demo.faults:
        table.add_row("Faults", "\n".join(demo.faults))
    if demo.sample_job_id is not None:
        table.add_row("Sample job", demo.sample_job_id)
    table.add_row("API", f"{demo.url}/docs")
    return Panel(table, title="printfleet demo", subtitle="Ctrl-C stops everything")


async def _main(options: DemoOptions, duration: float | None, console: Console) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    interrupted: list[int] = []

    def on_signal(number: int) -> None:
        interrupted.append(number)
        stop.set()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        async with running_demo(options) as demo:
            await demo.wait_until_online()
            # One line a script can read the address from, then the panel for people.
            console.print(f"printfleet demo dashboard on {demo.url}/", soft_wrap=True)
            console.print(describe(demo))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration):
                    await stop.wait()
            console.print("stopping the demo ...")
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
    console.print("demo stopped")
    return EXIT_INTERRUPTED if interrupted else 0


def run_demo(options: DemoOptions, *, duration: float | None = None, console: Console) -> int:
    """Run the demo until Ctrl-C, SIGTERM or ``duration`` seconds; the exit status.

    0 when ``duration`` ran out, :data:`EXIT_INTERRUPTED` (130) after Ctrl-C or SIGTERM.
    Raises :class:`DemoError` when it cannot start.
    """
    return asyncio.run(_main(options, duration, console))
