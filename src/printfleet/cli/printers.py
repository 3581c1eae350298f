"""Commands about printers: ``printers``, ``status``, ``confirm-plate``, ``clear-fault`` and
``share``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from printfleet.cli.failures import BUSY, USAGE, CliError, lan_error, reported
from printfleet.cli.output import JsonOption, PrinterRow, age, out, print_json, printers_table
from printfleet.cli.profiles import ProfileOption, connected


def printers(
    printer: Annotated[str | None, typer.Argument(help="Only this printer.")] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Your printers: state, what is loaded, temperatures, plate, and evidence age.

    The loaded column lists each slot's material (1:PETG) above the nozzle; the last column
    says how fresh the cloud's evidence of its broker link is.
    """
    login, client = connected(profile)
    with reported(login.url), client:
        found = [client.get_printer(printer)] if printer else client.list_printers()
        if json_output:
            print_json(found)
            return
        if not found:
            out.print("no printers yet: provision one with the API or the web page")
            return
        out.print(printers_table([PrinterRow.of(p) for p in found]))


def status(
    lan: Annotated[
        str | None,
        typer.Option(
            help="Ask the printer at this address (host, or host:port; port "
            "8090 if none) instead of the cloud."
        ),
    ] = None,
    access_code: Annotated[
        str | None,
        typer.Option(envvar="PRINTFLEET_ACCESS_CODE", help="The printer's LAN access code."),
    ] = None,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """The cloud's health; or, with --lan, one printer's state straight from it."""
    if lan is not None:
        with reported(lan):
            if access_code is None:
                raise CliError("--lan needs the printer's --access-code", USAGE)
            from printfleet.client.lan import lan_status  # noqa: PLC0415

            try:
                state = lan_status(lan, access_code)
            except Exception as error:  # noqa: BLE001 - lan_error re-raises what it does not know
                raise lan_error(error) from None
            if json_output:
                print_json(state)
                return
            table = Table(
                title=f"{state.printer_id} ({state.model}, {state.mode})", show_header=False
            )
            for key, value in state.model_dump(mode="json").items():
                table.add_row(key, "-" if value is None else str(value))
            out.print(table)
        return
    login, client = connected(profile)
    with reported(login.url), client:
        health = client.health()
        if json_output:
            print_json(health)
        else:
            link = health.link
            evidence = "-" if link is None else age(link.evidence_age_s)
            style = "green" if health.status == "ok" else "bold red"
            out.print(
                f"{client.url}: [{style}]{health.status}[/]; store "
                f"{'ok' if health.store.ok else health.store.error}; broker link "
                f"{'verified' if link and link.verified else 'not verified'}, evidence {evidence}"
            )
        if health.status != "ok":
            raise typer.Exit(BUSY)


def confirm_plate(
    printer: Annotated[str, typer.Argument(help="The printer whose plate you have looked at.")],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Confirm a printer's plate is clear (for printers without a plate sensor)."""
    login, client = connected(profile)
    with reported(login.url), client:
        sent = client.confirm_plate(printer)
        if json_output:
            print_json(sent)
        else:
            out.print(f"told {sent.printer_id} its plate is clear")


def clear_fault(
    printer: Annotated[str, typer.Argument(help="The printer whose fault you have looked into.")],
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask; you have checked the heaters and wiring."),
    ] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Clear a printer's latched thermal fault, once someone has checked the hardware.

    A latched fault keeps the heaters off and refuses every start; clearing it lets the printer
    heat and print again, so a fault that is still there shows itself again at the next heat-up.
    """
    login, client = connected(profile)
    with reported(login.url), client:
        if not yes and not _checked(printer):
            raise CliError("nothing sent: the fault stays latched", USAGE)
        sent = client.clear_fault(printer)
        if json_output:
            print_json(sent)
        else:
            out.print(f"told {sent.printer_id} to clear its fault; it may heat again")


def _checked(printer: str) -> bool:
    """Whether the person says someone checked the hardware; no answer (no terminal, end of
    input) is a no that says how to answer without one."""
    try:
        return typer.confirm(
            f"{printer}'s heaters will be allowed to heat again. Has someone checked the "
            "heaters, thermistors and wiring?"
        )
    except typer.Abort:
        raise CliError(
            "nothing sent: no answer, so the fault stays latched "
            f"(printfleet clear-fault {printer} --yes once someone has checked)",
            USAGE,
        ) from None


def share(
    printer: Annotated[str, typer.Argument(help="A printer you own.")],
    email: Annotated[str | None, typer.Argument(help="Share it with this person.")] = None,
    role: Annotated[
        str, typer.Option(help="operator (may print on it) or viewer (may only watch it).")
    ] = "operator",
    remove: Annotated[
        bool, typer.Option("--remove", help="Take this person's share away instead.")
    ] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Who may use your printer: with no e-mail, list its shares; with one, share it as
    operator (may print on it) or viewer, or --remove the share (that person's waiting jobs
    leave the printer at once, and a job they run there can no longer be paused by them)."""
    with reported():
        if role not in {"operator", "viewer"}:
            raise CliError(f"--role must be operator or viewer, not {role!r}", USAGE)
        if remove and email is None:
            raise CliError(
                "say whose share to remove: printfleet share PRINTER EMAIL --remove", USAGE
            )
    login, client = connected(profile)
    with reported(login.url), client:
        if email is None:
            found = client.shares(printer)
            if json_output:
                print_json(found)
                return
            table = Table("shared with", "role")
            for share in found:
                table.add_row(share.email, share.role)
            out.print(table if found else f"{printer} is not shared with anyone")
            return
        if remove:
            share = client.unshare_printer(printer, email)
        else:
            share = client.share_printer(
                printer, email, "operator" if role == "operator" else "viewer"
            )
        if json_output:
            print_json(share)
        elif remove:
            out.print(f"{share.email} may no longer use {share.printer_id}")
        else:
            # The server answers an address without an account as if shared (and stores
            # nothing), so as not to tell anyone which addresses have accounts.
            out.print(
                f"{share.email} is now {share.role} of {share.printer_id}, if that address has "
                f"an account (`printfleet share {share.printer_id}` lists who has a share)"
            )
