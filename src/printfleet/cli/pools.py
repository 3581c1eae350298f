"""``printfleet pools``: your pools of printers (list, create, add, remove, delete), to print on
with ``printfleet print FILE --pool NAME``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from printfleet.cli.failures import REFUSED, CliError, reported
from printfleet.cli.output import JsonOption, out, print_json, when
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client import Client, Pool

pools_app = typer.Typer(
    help="Your pools of printers: a job for a pool prints on any printer of it you may operate."
)

PoolArgument = Annotated[str, typer.Argument(help="The pool's name (or id).")]
PrintersArgument = Annotated[
    list[str], typer.Argument(help="Printer ids: printers you own or operate.")
]


def find_pool(client: Client, text: str) -> Pool:
    """One of the caller's pools by name or id."""
    for pool in client.list_pools():
        if text in (pool.name, pool.id):
            return pool
    raise CliError(f"not found: you have no pool {text!r} (see printfleet pools)", REFUSED)


@pools_app.callback(invoke_without_command=True)
def pools(
    context: typer.Context, json_output: JsonOption = False, profile: ProfileOption = None
) -> None:
    """Your pools and their printers, by name."""
    if context.invoked_subcommand is not None:
        return
    login, client = connected(profile)
    with reported(login.url), client:
        found = client.list_pools()
        if json_output:
            print_json(found)
            return
        table = Table("pool", "printers", "created")
        table.add_column("id", overflow="fold", min_width=12)
        for pool in found:
            table.add_row(
                pool.name, " ".join(pool.printer_ids) or "-", when(pool.created_at), pool.id
            )
        out.print(
            table if found else "no pools: make one with printfleet pools create NAME PRINTER..."
        )


@pools_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name of your choice, unique among your pools.")],
    printer_ids: Annotated[
        list[str] | None, typer.Argument(help="Printer ids: printers you own or operate.")
    ] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Make a pool of printers you own or operate."""
    login, client = connected(profile)
    with reported(login.url), client:
        _show(client.create_pool(name, printer_ids or []), "created", json_output=json_output)


@pools_app.command("add")
def add(
    pool: PoolArgument,
    printer_ids: PrintersArgument,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Add printers to a pool."""
    login, client = connected(profile)
    with reported(login.url), client:
        found = find_pool(client, pool)
        members = sorted({*found.printer_ids, *printer_ids})
        _show(client.update_pool(found.id, found.name, members), "updated", json_output=json_output)


@pools_app.command("remove")
def remove(
    pool: PoolArgument,
    printer_ids: PrintersArgument,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Take printers out of a pool (jobs waiting for it then use the others)."""
    login, client = connected(profile)
    with reported(login.url), client:
        found = find_pool(client, pool)
        members = [printer for printer in found.printer_ids if printer not in printer_ids]
        _show(client.update_pool(found.id, found.name, members), "updated", json_output=json_output)


@pools_app.command("delete")
def delete(
    pool: PoolArgument, json_output: JsonOption = False, profile: ProfileOption = None
) -> None:
    """Delete a pool; refused while jobs not yet ended are for it (cancel them first)."""
    login, client = connected(profile)
    with reported(login.url), client:
        _show(client.delete_pool(find_pool(client, pool).id), "deleted", json_output=json_output)


def _show(pool: Pool, done: str, *, json_output: bool) -> None:
    if json_output:
        print_json(pool)
        return
    printers = ", ".join(pool.printer_ids) or "no printers"
    out.print(f"{done} pool [bold]{pool.name}[/] ({printers})")
