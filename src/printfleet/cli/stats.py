"""``printfleet stats``: outcomes, print hours, filament, energy and cost of ended jobs, per
printer, submitter or printer model."""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import Annotated, Literal

import typer
from rich.table import Table

from printfleet.cli.failures import reported
from printfleet.cli.output import JsonOption, out, print_json
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client import calls
from printfleet.client.models import Stats, StatsGroup

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class GroupBy(StrEnum):
    """What the figures are grouped by."""

    PRINTER = "printer"
    USER = "user"
    MODEL = "model"
    POOL = "pool"


_GROUPINGS: dict[GroupBy, Literal["printer", "user", "model", "pool"]] = {
    GroupBy.PRINTER: "printer",
    GroupBy.USER: "user",
    GroupBy.MODEL: "model",
    GroupBy.POOL: "pool",
}


def since_value(text: str | None, *, now_ms: int | None = None) -> int | str | None:
    """``7d``, ``12h``, ``30m``, ``2w`` as the cloud time that long ago (ms); anything else (an
    ISO 8601 time, milliseconds) as given, for the cloud to read."""
    if text is None:
        return None
    found = _RELATIVE.fullmatch(text.strip())
    if found is None:
        return text
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    return now - int(float(found.group(1)) * _UNIT_MS[found.group(2)])


def stats(
    by: Annotated[
        GroupBy, typer.Option(help="Group by printer, submitter, printer model or pool of yours.")
    ] = GroupBy.PRINTER,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Jobs ended since: 7d, 12h, 30m, 2w ago, or an ISO 8601 time (UTC unless it "
            "says).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Jobs ended before: as --since."),
    ] = None,
    json_output: JsonOption = False,
    csv_output: Annotated[
        bool, typer.Option("--csv", help="Print the cloud's CSV instead of a table.")
    ] = False,
    profile: ProfileOption = None,
) -> None:
    """History and costs of your ended jobs and of those on your printers: outcomes, success
    rate (completed of completed and failed), print hours, filament from the files' slicer
    metadata, energy from each model's power draw setting, and cost."""
    login, client = connected(profile)
    grouping = _GROUPINGS[by]
    start, end = since_value(since), since_value(until)
    with reported(login.url), client:
        if csv_output:
            typer.echo(client.send(calls.stats_csv(by=grouping, since=start, until=end)), nl=False)
            return
        found = client.stats(by=grouping, since=start, until=end)
        if json_output:
            print_json(found)
            return
        out.print(stats_table(found) if found.groups else "no ended jobs")


def stats_table(found: Stats) -> Table:
    """One row per group and a last one for all of them."""
    currency = found.currency
    table = Table(title=f"jobs by {found.by}", caption=_caption(found))
    table.add_column(found.by, overflow="fold")
    for heading in ("done", "failed", "cancelled", "expired", "rejected", "success"):
        table.add_column(heading, justify="right")
    table.add_column("hours", justify="right")
    table.add_column("filament")
    table.add_column("kWh", justify="right")
    table.add_column(f"cost ({currency})", justify="right")
    for group in [*found.groups, found.total]:
        table.add_row(*_cells(group), end_section=group is found.groups[-1])
    return table


def _cells(group: StatsGroup) -> list[str]:
    jobs = group.jobs
    outcomes = ("completed", "failed", "cancelled", "expired", "rejected")
    success = "-" if group.success_rate is None else f"{group.success_rate:.0%}"
    return [
        group.key,
        *(str(jobs.get(outcome, 0)) for outcome in outcomes),
        success,
        f"{group.print_hours:.2f}",
        _filament(group),
        f"{group.energy_kwh:.2f}",
        f"{group.cost:.2f}",
    ]


def _filament(group: StatsGroup) -> str:
    parts = [f"{grams:g} g {material}" for material, grams in group.filament_g.items()]
    if group.filament_mm:
        parts.append(f"{group.filament_mm / 1000:.2f} m")
    if group.filament_unknown_jobs:
        parts.append(f"{group.filament_unknown_jobs} without grams")
    return ", ".join(parts) or "-"


def _caption(found: Stats) -> str:
    rates = found.rates
    return (
        f"energy at {rates.power_w:g} W per printer unless its model has its own, "
        f"{rates.price_per_kwh:g} {found.currency}/kWh; filament at "
        f"{rates.material_price_per_kg:g} {found.currency}/kg unless its material has its own; "
        "grams only where the slicer metadata gave them"
    )
