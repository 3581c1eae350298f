"""The commands that run printfleet's processes: ``serve`` (the cloud), ``agent`` (one printer,
or its screen), ``sim`` (a simulated fleet) and ``demo`` (all of them in one process, as
:mod:`printfleet.demo` puts them together)."""

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from printfleet.cli.output import console

if TYPE_CHECKING:
    from printfleet.sim.faults import FaultSpec
    from printfleet.sim.materials import MaterialSpec

VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log debug messages too.", metavar="")
]


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler  # noqa: PLC0415 - only commands that run need it

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


def _check_broker(url: str) -> None:
    from printfleet.broker_address import BrokerAddress  # noqa: PLC0415

    try:
        BrokerAddress.parse(url)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--broker") from None


async def _run_for(coroutine: Coroutine[Any, Any, None], duration: float | None) -> None:
    task = asyncio.ensure_future(coroutine)
    if duration is None:
        await task
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), duration)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


agent_app = typer.Typer(help="Run one printer agent, or its screen.")


@agent_app.callback(invoke_without_command=True)
def agent(
    context: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="A TOML file with the agent's settings.", exists=True)
    ] = None,
    printer_id: Annotated[str | None, typer.Option(help="This printer's id.")] = None,
    model: Annotated[str, typer.Option(help="Simulated model: x1 (plate sensor) or p1.")] = "x1",
    broker: Annotated[str, typer.Option(help="mqtt://[user:pass@]host:port")] = (
        "mqtt://127.0.0.1:1883"
    ),
    cloud_key: Annotated[
        str | None, typer.Option(help="The cloud's public key; without it, no command verifies.")
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="Journal and SD card.")] = Path(
        ".printfleet/agent"
    ),
    time_scale: Annotated[float, typer.Option(help="Simulated hardware speed-up.")] = 1.0,
    verbose: VerboseOption = False,
) -> None:
    """Run one printer agent (driving a simulated printer)."""
    from printfleet.agent.config import AgentConfig  # noqa: PLC0415
    from printfleet.agent.runtime import PrinterAgent  # noqa: PLC0415
    from printfleet.sim.printer import EJECT_S, SimulatedPrinter  # noqa: PLC0415

    if context.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    if config is not None:
        settings = AgentConfig.from_file(config)
    elif printer_id is not None:
        _check_broker(broker)
        settings = AgentConfig(
            printer_id=printer_id,
            model=model,
            broker=broker,
            cloud_public_key=cloud_key,
            data_dir=data_dir,
        )
    else:
        raise typer.BadParameter("give --config FILE or --printer-id ID", param_hint="--config")

    async def main() -> None:
        # A printer configured to clear its own plate is simulated with an eject mechanism.
        ejects = settings.plate_clearing == "auto_eject"
        async with SimulatedPrinter(
            settings.model,
            storage_dir=settings.data_dir / "sd",
            time_scale=time_scale,
            eject_s=EJECT_S if ejects else None,
        ) as printer:
            await PrinterAgent(settings, printer).run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@agent_app.command("screen")
def agent_screen(
    config: Annotated[
        Path | None,
        typer.Option(
            help="The agent's TOML config: its lan_listen and lan_access_code.", exists=True
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="The agent's LAN API, host:port (default: from --config).")
    ] = None,
    access_code: Annotated[
        str | None, typer.Option(envvar="PRINTFLEET_ACCESS_CODE", help="The LAN access code.")
    ] = None,
) -> None:
    """The printer's screen: print files from its SD card, confirm the plate, pause, cancel,
    clear a fault, over the agent's LAN API (works with the broker and the cloud down)."""
    from printfleet.agent.config import AgentConfig, lan_address  # noqa: PLC0415
    from printfleet.agent.screen import PrinterScreen  # noqa: PLC0415
    from printfleet.client.lan import LanClient  # noqa: PLC0415

    if config is not None:
        settings = AgentConfig.from_file(config)
        if settings.lan_listen is None or settings.lan_access_code is None:
            raise typer.BadParameter("its LAN API is off (no lan_listen)", param_hint="--config")
        listen_host, port = lan_address(settings.lan_listen)
        # A wildcard address is where it listens, not where to reach it: this very host.
        reach = "127.0.0.1" if listen_host in {"0.0.0.0", "::"} else listen_host  # noqa: S104
        host = host or f"{reach}:{port}"
        access_code = access_code or settings.lan_access_code.get_secret_value()
    if host is None or not access_code:
        raise typer.BadParameter("give --config FILE, or --host and --access-code")
    try:
        client = LanClient(host, access_code)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--host") from None
    with client:
        raise typer.Exit(PrinterScreen(client).run())


FaultOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Inject a fault, PRINTER:KIND[:ARG]@WHEN (repeatable), e.g. "
        "x1-01:heater-disconnected@print+30s or p1-02:power-loss:2m@90s. KIND: "
        "heater-disconnected, thermistor-detached, sensor-open, sensor-short, heater-stuck-on "
        "(ARG: hotend, the default, or bed), power-loss (ARG: how long it stays off; none: for "
        "good). WHEN: simulated time after start, or print+TIME after a print starts. The demo "
        "also takes broker:outage[:DURATION]@WHEN: its embedded broker stops for DURATION "
        "(default 30s).",
    ),
]


def _parse_faults(specs: list[str] | None) -> "tuple[FaultSpec, ...]":
    from printfleet.sim.faults import parse_fault  # noqa: PLC0415

    try:
        return tuple(parse_fault(spec) for spec in specs or ())
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--fault") from None


MaterialOption = Annotated[
    list[str] | None,
    typer.Option(
        help="What a slot holds at start, PRINTER:SLOT=MATERIAL[:#rrggbb] (repeatable), e.g. "
        "x1-01:2=PETG or p1-02:1=PLA:#ff0000; no MATERIAL empties the slot (x1-01:1=). x1-like "
        "printers have slots 1-4, p1-like ones slot 1; each starts with PLA in slot 1 and a "
        "0.4 mm nozzle unless told otherwise.",
    ),
]


def _parse_materials(specs: list[str] | None) -> "tuple[MaterialSpec, ...]":
    from printfleet.sim.materials import parse_material  # noqa: PLC0415

    try:
        return tuple(parse_material(spec) for spec in specs or ())
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--material") from None


AutoEjectOption = Annotated[
    list[str] | None,
    typer.Option(
        help="A printer that clears its own plate (repeatable), e.g. p1-02: after each "
        "completed print it runs an eject routine (20 simulated s) and confirms the plate "
        "itself; after a failed or cancelled one it waits for a person.",
        metavar="PRINTER",
    ),
]


def _check_auto_eject(ejecting: list[str] | None, printer_ids: list[str]) -> tuple[str, ...]:
    from printfleet.sim.plate import check_eject_printers  # noqa: PLC0415

    try:
        check_eject_printers(ejecting or (), printer_ids)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--auto-eject") from None
    return tuple(ejecting or ())


def sim(
    printers: Annotated[int, typer.Option(min=0, max=5000, help="How many printers.")] = 4,
    models: Annotated[str, typer.Option(help="Models, taken in turn (x1, p1).")] = "x1,p1",
    broker: Annotated[str, typer.Option(help="mqtt://[user:pass@]host:port")] = (
        "mqtt://127.0.0.1:1883"
    ),
    cloud_key: Annotated[str | None, typer.Option(help="The cloud's public key.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Journals and SD cards (default: a temporary folder).")
    ] = None,
    time_scale: Annotated[float, typer.Option(help="Simulated hardware speed-up.")] = 1.0,
    telemetry_period: Annotated[float, typer.Option(help="Seconds between reports.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop by itself after this many real seconds.")
    ] = None,
    attendant_after: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="A person clears each plate (and confirms it on sensorless printers) this many "
            "simulated seconds after a print ends (default: nobody does).",
        ),
    ] = None,
    fault: FaultOption = None,
    material: MaterialOption = None,
    auto_eject: AutoEjectOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run a fleet of simulated printers, each with its own agent and broker connection."""
    from printfleet.sim.faults import check_fault_printers  # noqa: PLC0415
    from printfleet.sim.fleet import FleetSpec, run_fleet  # noqa: PLC0415
    from printfleet.sim.printer import MODELS  # noqa: PLC0415

    _setup_logging(verbose)
    _check_broker(broker)
    names = [name.strip() for name in models.split(",") if name.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if not names or unknown:
        raise typer.BadParameter(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
    with contextlib.ExitStack() as stack:
        folder = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        spec = FleetSpec(
            printers=printers,
            models=names,
            broker=broker,
            data_dir=folder,
            cloud_public_key=cloud_key,
            time_scale=time_scale,
            telemetry_period_s=telemetry_period,
            attendant_after_s=attendant_after,
            faults=_parse_faults(fault),
            materials=_parse_materials(material),
            auto_eject=tuple(auto_eject or ()),
        )
        _check_auto_eject(auto_eject, [printer_id for printer_id, _ in spec.printer_ids()])
        try:
            check_fault_printers(spec.faults, (printer_id for printer_id, _ in spec.printer_ids()))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--fault") from None
        try:
            spec.loadouts()
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--material") from None
        console.print(f"[bold]{printers}[/] simulated printers ({', '.join(names)}) on {broker}")
        if attendant_after is not None:
            console.print(f"an attendant clears plates {attendant_after:g} s after each print")
        for scheduled in spec.faults:
            console.print(f"fault scheduled: {scheduled.describe()}, {scheduled.when()}")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run_for(run_fleet(spec), duration))


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLite or PostgreSQL URL (env PRINTFLEET_DATABASE_URL; default: a "
            "SQLite file in the data dir)."
        ),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            help="mqtt://user:pass@host:port (env PRINTFLEET_BROKER_URL; default: an "
            "embedded broker on 127.0.0.1)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Signing key, files, SQLite (env PRINTFLEET_DATA_DIR; default .printfleet/cloud)."
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Where printers reach this server (env PRINTFLEET_PUBLIC_URL; "
            "default http://HOST:PORT)."
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the cloud: HTTP API, dispatcher and broker link (and a broker, if none is given)."""
    import os  # noqa: PLC0415 - keeps --help fast
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from printfleet.cloud.app import create_app  # noqa: PLC0415
    from printfleet.cloud.logs import use_json_logs, wants_json  # noqa: PLC0415
    from printfleet.cloud.settings import Settings  # noqa: PLC0415

    _setup_logging(verbose)
    try:
        if wants_json():  # PRINTFLEET_LOG_FORMAT=json: one JSON object per line
            use_json_logs()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if not verbose:
        # The embedded broker and its state machine log every connection at INFO.
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if broker_url is not None:
        _check_broker(broker_url)
    # Bound here rather than by uvicorn, so that with --port 0 the real port is known for the
    # printers' file URLs and for the message below. proto=IPPROTO_TCP matters: asyncio turns
    # Nagle off only on sockets that say they are TCP, and with it on every response that is
    # written in two parts waits 40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {error}") from None
    port = listener.getsockname()[1]
    if public_url is None and not os.environ.get("PRINTFLEET_PUBLIC_URL"):
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104 - compared
        public_url = f"http://{shown}:{port}"
    try:
        settings = Settings.from_env(
            database_url=database_url,
            broker_url=broker_url,
            data_dir=data_dir,
            public_url=public_url,
        )
    except ValueError as error:
        listener.close()
        raise typer.BadParameter(str(error)) from None
    # One unwrapped line, whatever the terminal: scripts read the URL from it.
    console.print(
        f"printfleet cloud on http://{host}:{port}, data in {settings.data_dir}", soft_wrap=True
    )
    # log_config=None: keep the logging set up above instead of uvicorn's own.
    # A bounded graceful shutdown: open event streams (/api/v1/events) never end by themselves.
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1, and
    # anything relayed from there could choose the address that rate limits count; the app
    # trusts proxies only when PRINTFLEET_TRUSTED_PROXIES names them.
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        ws="none",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    # uvicorn shuts down gracefully on Ctrl-C, then re-raises it: that is a normal exit here.
    with listener, contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])


def demo(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Database, key, account and printers' journals.")
    ] = Path(".printfleet/demo"),
    printers: Annotated[
        int, typer.Option(min=2, max=50, help="How many printers, x1-like and p1-like in turn.")
    ] = 4,
    time_scale: Annotated[
        float, typer.Option(min=0.1, max=1000, help="Simulated hardware speed-up.")
    ] = 10.0,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop by itself after this many real seconds.")
    ] = None,
    attendant_after: Annotated[
        float,
        typer.Option(
            min=0,
            help="A person clears each plate this many simulated seconds after a print ends "
            "(0: nobody does).",
        ),
    ] = 30.0,
    max_heatups: Annotated[
        int,
        typer.Option(
            min=0,
            help="At most this many printers heating up at once (0: no cap).",
        ),
    ] = 0,
    fault: FaultOption = None,
    material: MaterialOption = None,
    auto_eject: AutoEjectOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the cloud, its broker and a simulated fleet, with a demo account and a sample print.

    Exits 0 when --duration runs out and 130 after Ctrl-C (or SIGTERM), having stopped every
    part cleanly.
    """
    from printfleet.demo import DemoError, DemoOptions, fleet_plan, run_demo  # noqa: PLC0415

    ejecting = _check_auto_eject(auto_eject, [pid for pid, _ in fleet_plan(printers)])
    _parse_faults(fault)  # the demo checks them again, but a bad one is the option's error
    _parse_materials(material)
    _setup_logging(verbose)
    if not verbose:
        for noisy in ("amqtt", "transitions", "uvicorn.error", "httpx", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    options = DemoOptions(
        data_dir=data_dir,
        port=port,
        printers=printers,
        time_scale=time_scale,
        attendant_after_s=attendant_after or None,
        faults=tuple(fault or ()),
        materials=tuple(material or ()),
        max_heatups=max_heatups,
        auto_eject=ejecting,
    )
    try:
        status = run_demo(options, duration=duration, console=console)
    except DemoError as error:
        Console(stderr=True).print(f"[red]demo failed:[/] {error}")
        raise typer.Exit(2) from None
    raise typer.Exit(status)
