"""The ``printfleet`` Typer app, assembled from the command groups of :mod:`printfleet.cli`."""

from typing import Annotated

import typer
from typer.core import TyperOption

from printfleet import __version__
from printfleet.cli import (
    alerts,
    bench,
    chaos,
    jobs,
    login,
    maintenance,
    materials,
    pools,
    printers,
    processes,
    protocol,
    stats,
    watch,
)
from printfleet.cli.failures import EXIT_CODES_HELP
from printfleet.cli.output import console

_typed_display = TyperOption.display_type_rich


def _flag_display_type(self: TyperOption, ctx: typer.Context) -> str | None:
    """A flag takes no value, so `--help` shows it bare (`--json`), not as `--json <bool>`.

    Typer's rich help asks every option for a type label, flags included; its plain-text help
    already leaves flags bare, and this makes the rich help (the one printfleet shows) agree.
    """
    if self.is_flag and not self.count:
        return None
    return _typed_display(self, ctx)


TyperOption.display_type_rich = _flag_display_type  # type: ignore[method-assign, assignment]

app = typer.Typer(
    name="printfleet",
    help="A print cloud for fleets of 3D printers that never starts a print nobody asked for.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=EXIT_CODES_HELP,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"printfleet {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """printfleet: submit prints, run printers, prove they never start on their own."""


# The order here is the order `printfleet --help` lists them in: commands, then groups.
app.add_typer(protocol.protocol_app, name="protocol")
app.add_typer(chaos.chaos_app, name="chaos")
app.add_typer(processes.agent_app, name="agent")
app.command()(processes.sim)
app.add_typer(bench.bench_app, name="bench")
app.command()(processes.serve)
app.command()(processes.demo)
app.command()(login.login)
app.command()(printers.printers)
app.command()(jobs.upload)
app.command("print")(jobs.print_)
app.command("submit", help="The same as print.")(jobs.print_)
app.command()(jobs.jobs)
app.command()(jobs.cancel)
app.command()(watch.watch)
app.command("confirm-plate")(printers.confirm_plate)
app.command("clear-fault")(printers.clear_fault)
app.command()(printers.share)
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(pools.pools_app, name="pools")
app.command()(printers.status)
app.command()(stats.stats)
app.command()(maintenance.maintenance)
materials.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
