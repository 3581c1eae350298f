"""``printfleet maintenance PRINTER``: print hours since each part (nozzle, belts) was serviced,
against its interval; ``--serviced PART`` marks a part serviced, ``--every PART=HOURS`` sets its
interval."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from printfleet.cli.failures import USAGE, CliError, reported
from printfleet.cli.output import JsonOption, out, print_json
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client.models import MaintenancePart

DEFAULT = "default"
"""``--every nozzle=default``: back to the cloud's interval."""


def interval_value(text: str) -> tuple[str, float | None]:
    """``nozzle=300`` as the part and its interval in print hours (``nozzle=default``: None).
    The cloud checks the part and the range; this only reads the shape."""
    part, equals, hours = (piece.strip() for piece in text.partition("="))
    if equals and part and hours == DEFAULT:
        return part, None
    try:
        value = float(hours) if equals and part else None
    except ValueError:
        value = None
    if value is None:
        msg = f"--every takes PART=HOURS, e.g. nozzle=300 (or nozzle={DEFAULT}), not {text!r}"
        raise CliError(msg, USAGE)
    return part, value


def maintenance(
    printer: Annotated[str, typer.Argument(help="A printer you can see.")],
    serviced: Annotated[
        list[str] | None,
        typer.Option(
            "--serviced",
            metavar="PART",
            help="Mark PART (nozzle, belts) serviced now: its hours start again and its "
            "reminder is resolved (owner or operator). Repeatable.",
        ),
    ] = None,
    every: Annotated[
        list[str] | None,
        typer.Option(
            "--every",
            metavar="PART=HOURS",
            help=f"Service PART every HOURS print hours, e.g. nozzle=300; nozzle={DEFAULT} goes "
            "back to the cloud's interval (owner). Repeatable.",
        ),
    ] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Print hours since each part of a printer was serviced, its interval, and whether it is
    due; a part that falls due raises a maintenance_due alert until it is marked serviced."""
    login, client = connected(profile)
    with reported(login.url), client:
        # Read before anything is sent: a typo changes nothing.
        intervals = [interval_value(text) for text in every or []]
        parts = None
        for part in serviced or []:
            parts = client.mark_serviced(printer, part)
        for part, hours in intervals:
            parts = client.set_maintenance_interval(printer, part, hours)
        if parts is None:
            parts = client.maintenance(printer)
        if json_output:
            print_json(parts)
            return
        for part in serviced or []:
            out.print(f"{printer}: {part} marked serviced")
        out.print(maintenance_table(printer, parts))


def maintenance_table(printer: str, parts: list[MaintenancePart]) -> Table:
    """One row per part: hours since service, interval, due."""
    table = Table(title=f"maintenance of {printer}")
    table.add_column("part")
    table.add_column("hours since", justify="right")
    table.add_column("every", justify="right")
    table.add_column("due")
    for part in parts:
        every = f"{part.interval_h:g} h" + (" (default)" if part.default_interval else "")
        due = "[bold red]due[/]" if part.due else "no"
        table.add_row(part.part, f"{part.hours_since_service:.1f}", every, due)
    return table
