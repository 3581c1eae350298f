"""``printfleet protocol``: look inside the printer protocol."""

import typer
from rich.table import Table

from printfleet.cli.output import console

protocol_app = typer.Typer(help="Look inside the printer protocol.", no_args_is_help=True)


@protocol_app.command("demo")
def protocol_demo() -> None:
    """Walk through a cloud-to-printer conversation and show every gate decision."""
    from printfleet.protocol.walkthrough import walk_through  # noqa: PLC0415 - keeps --help fast

    table = Table(title="printfleet protocol walk-through (printer p1-demo, no plate sensor)")
    table.add_column("#", justify="right")
    table.add_column("what happens")
    table.add_column("sent")
    table.add_column("printer's verdict")
    table.add_column("detail")
    for number, step in enumerate(walk_through(), start=1):
        style = "green" if step.verdict == "accepted" else "yellow"
        table.add_row(
            str(number), step.title, step.sent, f"[{style}]{step.verdict}[/]", step.detail
        )
    console.print(table)
    console.print(
        "Every start above was judged by the same gate a real printer runs: "
        "signed, fresh (S2), once (S3), idle (S4), onto a clear plate (S5), no fault (S6)."
    )
