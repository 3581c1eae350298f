"""``printfleet chaos``: seeded fault schedules over the deterministic fleet, fault scenarios over
real processes, and the checker of every safety invariant."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from printfleet.cli.output import console

chaos_app = typer.Typer(
    help="Inject faults and check every safety invariant.", no_args_is_help=True
)


@chaos_app.command("sim")
def chaos_sim(
    seeds: Annotated[int, typer.Option(min=1, help="How many seeded schedules to run.")] = 200,
    start: Annotated[int, typer.Option(help="The first seed.")] = 0,
    seed: Annotated[int | None, typer.Option(help="Replay one seed and print its steps.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Fault/user steps per schedule.")] = 30,
    safeguards: Annotated[
        str, typer.Option(help="'on', or 'off' to show that the checker catches violations.")
    ] = "on",
    workers: Annotated[int, typer.Option(min=1, help="Processes to spread seeds over.")] = 2,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Run seeded fault schedules over the deterministic fleet (no sockets, simulated time)."""
    import json  # noqa: PLC0415
    import time  # noqa: PLC0415

    from printfleet.chaos.schedules import run_schedule, run_schedules  # noqa: PLC0415

    if safeguards not in {"on", "off"}:
        raise typer.BadParameter("use 'on' or 'off'", param_hint="--safeguards")
    guarded = safeguards == "on"
    if seed is not None:
        result = run_schedule(seed, steps=steps, safeguards=guarded)
        for number, step in enumerate(result.steps, start=1):
            console.print(f"{number:>3}  {step}")
        for violation in result.violations:
            console.print(f"[red]{violation.kind.value}[/]: {violation.evidence}")
        raise typer.Exit(0 if result.ok or not guarded else 1)
    began = time.monotonic()
    results = run_schedules(
        range(start, start + seeds), steps=steps, safeguards=guarded, workers=workers
    )
    elapsed = time.monotonic() - began
    failing = [r for r in results if not r.ok]
    summary = {
        "schedules": len(results),
        "safeguards": safeguards,
        "seconds": round(elapsed, 2),
        "schedules_per_minute": round(len(results) / elapsed * 60) if elapsed else None,
        "jobs": sum(r.jobs for r in results),
        "starts": sum(r.starts for r in results),
        "faults_injected": sum(r.faults_injected for r in results),
        "violating_schedules": len(failing),
        "violations": [
            {"seed": r.seed, "kind": v.kind.value, "evidence": v.evidence}
            for r in failing
            for v in r.violations
        ],
    }
    if json_output:
        print(json.dumps(summary, indent=2))
    else:
        table = Table(
            title=f"printfleet chaos sim: {len(results)} schedules, safeguards {safeguards}"
        )
        for key in ("schedules", "jobs", "starts", "faults_injected", "violating_schedules"):
            table.add_row(key.replace("_", " "), str(summary[key]))
        table.add_row("schedules per minute", str(summary["schedules_per_minute"]))
        console.print(table)
        for r in failing[:10]:
            kinds = ", ".join(sorted({v.kind.value for v in r.violations}))
            console.print(
                f"seed {r.seed}: {kinds} — replay: printfleet chaos sim --seed {r.seed}"
                + ("" if guarded else " --safeguards off")
            )
    if failing and guarded:
        raise typer.Exit(1)


@chaos_app.command("run")
def chaos_run(
    scenario: Annotated[str, typer.Argument(help="A scenario name (see `chaos list`), or 'all'.")],
    seed: Annotated[int, typer.Option(help="The seed (the first, with --seeds).")] = 0,
    seeds: Annotated[int, typer.Option(min=1, help="How many seeds to run from --seed.")] = 1,
    safeguards: Annotated[
        str, typer.Option(help="'on', or 'off' (every remedy off) to show what they prevent.")
    ] = "on",
    quick: Annotated[
        bool, typer.Option("--quick/--full", help="Time-scaled (a 60 s outage takes 8 s).")
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    timeline: Annotated[Path | None, typer.Option(help="Write an HTML timeline here.")] = None,
    history: Annotated[Path | None, typer.Option(help="Write the JSON-lines history here.")] = None,
) -> None:
    """Inject faults into real processes (Mosquitto, the cloud's MQTT side, printer agents)
    and check the recorded history for S1-S9."""
    from printfleet.chaos.run import run_command  # noqa: PLC0415

    if safeguards not in {"on", "off"}:
        raise typer.BadParameter("use 'on' or 'off'", param_hint="--safeguards")
    try:
        code = run_command(
            scenario,
            seed=seed,
            seeds=seeds,
            safeguards=safeguards == "on",
            quick=quick,
            json_output=json_output,
            timeline=timeline,
            history=history,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="SCENARIO") from None
    raise typer.Exit(code)


@chaos_app.command("list")
def chaos_list() -> None:
    """The scenarios `chaos run` knows."""
    from printfleet.chaos.run import SCENARIOS  # noqa: PLC0415

    for scenario in SCENARIOS.values():
        console.print(f"[bold]{scenario.name}[/]: {scenario.summary}")
