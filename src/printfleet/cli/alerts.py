"""``printfleet alerts``: list alerts, and ``alerts ack`` to acknowledge one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from printfleet.cli.failures import reported
from printfleet.cli.output import SEVERITY_STYLE, JsonOption, out, print_json, when
from printfleet.cli.profiles import ProfileOption, connected

alerts_app = typer.Typer(help="Alerts from your printers: list them, acknowledge them.")


@alerts_app.callback(invoke_without_command=True)
def alerts(
    context: typer.Context,
    all_alerts: Annotated[bool, typer.Option("--all", help="Include acknowledged alerts.")] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Alerts nobody acknowledged yet (with --all, every recent one), newest first."""
    if context.invoked_subcommand is not None:
        return
    login, client = connected(profile)
    with reported(login.url), client:
        found = client.list_alerts(unacked=not all_alerts)
        if json_output:
            print_json(found)
            return
        table = Table("alert", "printer", "kind", "severity", "message", "raised", "acked")
        for alert in found:
            style = SEVERITY_STYLE.get(alert.severity, "")
            table.add_row(
                alert.id,
                alert.printer_id,
                alert.kind,
                Text(alert.severity, style=style),
                alert.message,
                when(alert.created_at),
                when(alert.acked_at),
            )
        out.print(table if found else "no alerts")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert to acknowledge.")],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Acknowledge an alert (the first acknowledgement stands)."""
    login, client = connected(profile)
    with reported(login.url), client:
        alert = client.ack_alert(alert_id)
        if json_output:
            print_json(alert)
        else:
            out.print(f"acknowledged {alert.kind} on {alert.printer_id}")
