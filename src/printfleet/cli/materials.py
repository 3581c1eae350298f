"""What is loaded at a printer, said from anywhere: ``printfleet load PRINTER SLOT MATERIAL``,
``printfleet unload PRINTER SLOT`` and ``printfleet nozzle PRINTER 0.4``.

What a person would enter at the printer's screen after loading a spool or swapping a nozzle
(operator role). The printer records it and reports it back; dispatch matches jobs against what
printers report.
"""

from __future__ import annotations

from typing import Annotated

import typer

from printfleet.cli.failures import USAGE, CliError, reported
from printfleet.cli.output import JsonOption, out, print_json
from printfleet.cli.profiles import ProfileOption, connected

__all__ = ["load", "nozzle", "nozzle_um_of", "register", "unload"]

MIN_NOZZLE_MM, MAX_NOZZLE_MM = 0.1, 2.0

PrinterArgument = Annotated[str, typer.Argument(help="A printer you own or operate.")]
SlotArgument = Annotated[
    int,
    typer.Argument(
        min=1, max=16, help="The filament slot, from 1 (a single-spool printer has slot 1 only)."
    ),
]


def nozzle_um_of(text: str) -> int:
    """``0.4`` (millimetres, as nozzles are sold) as 400 micrometres, as the cloud takes it."""
    try:
        millimetres = float(text.strip().removesuffix("mm").strip())
    except ValueError:
        millimetres = None
    if millimetres is None or not MIN_NOZZLE_MM <= millimetres <= MAX_NOZZLE_MM:
        msg = (
            f"the nozzle is its diameter in mm, {MIN_NOZZLE_MM} to {MAX_NOZZLE_MM}, "
            f"e.g. 0.4 or 0.6, not {text!r}"
        )
        raise CliError(msg, USAGE)
    return round(millimetres * 1000)


def load(
    printer: PrinterArgument,
    slot: SlotArgument,
    material: Annotated[
        str, typer.Argument(help="The filament type as slicers write it, e.g. PLA, PETG, PA-CF.")
    ],
    colour: Annotated[
        str | None,
        typer.Option("--colour", "--color", help="The spool's colour as #rrggbb, e.g. '#ff0000'."),
    ] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Tell a printer which filament a slot holds now (jobs needing it may then go there)."""
    login, client = connected(profile)
    with reported(login.url), client:
        sent = client.set_material(printer, slot, material, colour=colour)
        if json_output:
            print_json(sent)
            return
        shade = f" ({colour})" if colour else ""
        out.print(f"told {sent.printer_id}: slot {slot} holds {material.upper()}{shade}")


def unload(
    printer: PrinterArgument,
    slot: SlotArgument,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Tell a printer a slot is empty now."""
    login, client = connected(profile)
    with reported(login.url), client:
        sent = client.set_material(printer, slot, None)
        if json_output:
            print_json(sent)
            return
        out.print(f"told {sent.printer_id}: slot {slot} is empty")


def nozzle(
    printer: PrinterArgument,
    millimetres: Annotated[
        str, typer.Argument(metavar="MM", help="The nozzle's diameter in mm, e.g. 0.4 or 0.6.")
    ],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Tell a printer which nozzle is fitted now."""
    with reported():
        # Read before logging in: a typo is told at once, whatever the login.
        nozzle_um = nozzle_um_of(millimetres)
    login, client = connected(profile)
    with reported(login.url), client:
        sent = client.set_nozzle(printer, nozzle_um)
        if json_output:
            print_json(sent)
            return
        out.print(f"told {sent.printer_id}: a {nozzle_um / 1000:g} mm nozzle is fitted")


def register(app: typer.Typer) -> None:
    """Add ``load``, ``unload`` and ``nozzle`` to the ``printfleet`` app."""
    app.command()(load)
    app.command()(unload)
    app.command()(nozzle)
