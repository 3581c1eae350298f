"""``printfleet bench``: resource and overload benchmarks, each against a ceiling measured in the
same run."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from printfleet.cli.output import console

bench_app = typer.Typer(
    help="Measure printfleet against its resource targets.", no_args_is_help=True
)


@bench_app.command("fleet")
def bench_fleet(
    printers: Annotated[
        str | None,
        typer.Option(help="Fleet sizes, comma-separated (default: 100,1000; --quick: 20)."),
    ] = None,
    telemetry_period: Annotated[
        float | None, typer.Option(min=0.01, help="Seconds between reports (default: 1).")
    ] = None,
    settle: Annotated[
        float | None, typer.Option(min=0, help="Seconds to settle once connected (default: 10).")
    ] = None,
    window: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds per sample window (default: 5).")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(min=1, help="Windows per fleet size (default: 5).")
    ] = None,
    connect_timeout: Annotated[
        float | None, typer.Option(min=1, help="Seconds a fleet may take to connect.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="CI smoke run: 20 printers, short windows.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 when a target is missed.")
    ] = False,
) -> None:
    """RSS and CPU per idle simulated printer, against an empty fleet measured in the same run."""
    import dataclasses  # noqa: PLC0415 - keeps --help fast
    import json  # noqa: PLC0415

    from printfleet.bench.fleet import (  # noqa: PLC0415
        FleetBenchError,
        FleetBenchSettings,
        run_fleet_bench,
    )
    from printfleet.testing import ServiceError  # noqa: PLC0415

    settings = FleetBenchSettings.quick() if quick else FleetBenchSettings()
    given: dict[str, Any] = {
        "telemetry_period_s": telemetry_period,
        "settle_s": settle,
        "window_s": window,
        "samples": samples,
        "connect_timeout_s": connect_timeout,
    }
    if printers is not None:
        try:
            given["sizes"] = tuple(int(size) for size in printers.split(",") if size.strip())
        except ValueError:
            raise typer.BadParameter(
                "give whole numbers: 100,1000", param_hint="--printers"
            ) from None
        if any(size < 0 for size in given["sizes"]):
            raise typer.BadParameter("fleet sizes cannot be negative", param_hint="--printers")
    settings = dataclasses.replace(
        settings, **{name: value for name, value in given.items() if value is not None}
    )
    errors = Console(stderr=True)
    try:
        report = run_fleet_bench(settings, progress=lambda line: errors.print(line, style="dim"))
    except (FleetBenchError, ServiceError) as error:
        errors.print(f"[red]fleet benchmark failed:[/] {error}")
        raise typer.Exit(2) from None
    if json_output:
        print(json.dumps(report.to_json(), indent=2))
    else:
        # Piped into a log or CI, rich would assume 80 columns and fold every cell.
        out = console if console.is_terminal else Console(width=150)
        out.print(report.table())
        for note in report.notes():
            out.print(f"[yellow]note:[/] {note}")
    if check and not report.met:
        raise typer.Exit(1)


@bench_app.command("overload")
def bench_overload(
    quick: Annotated[
        bool, typer.Option("--quick", help="CI smoke run: 3 s steps, 40 clients (< 60 s).")
    ] = False,
    step: Annotated[
        float | None, typer.Option(min=0.5, help="Seconds per load step (default: 10).")
    ] = None,
    clients: Annotated[
        int | None, typer.Option(min=1, help="Simulated clients (default: 200).")
    ] = None,
    plot: Annotated[Path, typer.Option(help="The PNG plot to write.", dir_okay=False)] = (
        Path("overload.png")
    ),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the figures as JSON instead of a table.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 when 'built' misses a target.")
    ] = False,
) -> None:
    """Goodput, latency and recovery from 0.5x to 10x capacity: printfleet as built vs naive."""
    import dataclasses  # noqa: PLC0415 - keeps --help fast
    import json  # noqa: PLC0415

    from printfleet.bench.overload import (  # noqa: PLC0415
        OverloadBenchError,
        OverloadSettings,
        run_overload_bench,
    )

    settings = OverloadSettings.quick() if quick else OverloadSettings()
    given: dict[str, Any] = {"step_s": step, "clients": clients}
    settings = dataclasses.replace(
        settings, **{name: value for name, value in given.items() if value is not None}
    )
    errors = Console(stderr=True)
    try:
        report = run_overload_bench(
            settings, plot=plot, progress=lambda line: errors.print(line, style="dim")
        )
    except OverloadBenchError as error:
        errors.print(f"[red]overload benchmark failed:[/] {error}")
        raise typer.Exit(2) from None
    if json_output:
        print(json.dumps(report.to_json(), indent=2))
    else:
        out = console if console.is_terminal else Console(width=170)
        out.print(report.table())
        for note in report.notes():
            out.print(f"[yellow]note:[/] {note}")
    if check and not report.met:
        raise typer.Exit(1)


@bench_app.command("farm")
def bench_farm(
    quick: Annotated[
        bool, typer.Option("--quick", help="CI smoke run: 4 printers, half a simulated hour.")
    ] = False,
    printers: Annotated[
        int | None, typer.Option(min=2, max=50, help="Simulated printers (default: 6).")
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(min=0.05, max=100, help="Simulated hours of submitting (default: 10)."),
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(min=1, max=200, help="Simulated seconds per real second (default: 60)."),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(help="An MQTT broker URL to use (default: the cloud's embedded broker)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the figures as JSON instead of a table.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 when anything was found.")
    ] = False,
) -> None:
    """A demo farm with a plate attendant, its queue kept full for simulated hours, then every
    job audited: all completed, no print onto an occupied plate, statistics agreeing."""
    import asyncio  # noqa: PLC0415 - keeps --help fast
    import dataclasses  # noqa: PLC0415
    import json  # noqa: PLC0415

    from rich.table import Table  # noqa: PLC0415

    from printfleet.bench.farm import FarmError, FarmSettings, report_rows, run_farm  # noqa: PLC0415

    settings = FarmSettings.quick() if quick else FarmSettings()
    given: dict[str, Any] = {
        "printers": printers,
        "hours": hours,
        "time_scale": time_scale,
        "broker_url": broker,
    }
    settings = dataclasses.replace(
        settings, **{name: value for name, value in given.items() if value is not None}
    )
    errors = Console(stderr=True)
    try:
        report = asyncio.run(
            run_farm(settings, progress=lambda line: errors.print(line, style="dim"))
        )
    except FarmError as error:
        errors.print(f"[red]farm run failed:[/] {error}")
        raise typer.Exit(2) from None
    rows = report_rows(report)
    if json_output:
        print(json.dumps({"figures": dict(rows), "findings": report.findings}, indent=2))
    else:
        table = Table(title="printfleet farm run")
        table.add_column("figure")
        table.add_column("value", overflow="fold")
        for figure, value in rows:
            table.add_row(figure, value)
        out = console if console.is_terminal else Console(width=150)
        out.print(table)
        for finding in report.findings:
            out.print(f"[red]finding:[/] {finding}")
    if check and not report.passed:
        raise typer.Exit(1)
