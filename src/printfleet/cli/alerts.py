"""``printfleet alerts``: list alerts, and ``alerts ack`` to acknowledge one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from printfleet.cli.failures import reported
from printfleet.cli.ids import full_id
from printfleet.cli.output import SEVERITY_STYLE, JsonOption, age, out, print_json, when
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client import Alert

alerts_app = typer.Typer(help="Alerts from your printers: list them, acknowledge them.")


@alerts_app.callback(invoke_without_command=True)
def alerts(
    context: typer.Context,
    all_alerts: Annotated[
        bool, typer.Option("--all", help="Include acknowledged and resolved alerts.")
    ] = False,
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Alerts that need attention: nobody acknowledged them and their condition has not
    cleared (with --all, every recent one, and how long it lasted), newest first."""
    if context.invoked_subcommand is not None:
        return
    login, client = connected(profile)
    with reported(login.url), client:
        found = client.list_alerts(unacked=not all_alerts)
        if json_output:
            print_json(found)
            return
        table = Table()
        # Whole ids, folded to fit, as `alerts ack` takes them (or a unique start or end of one).
        table.add_column("alert", overflow="fold", min_width=12)
        for heading in ("printer", "kind", "severity", "message", "raised", "acked", "resolved"):
            table.add_column(heading)
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
                _resolved(alert),
            )
        out.print(table if found else "no alerts")


def _resolved(alert: Alert) -> str:
    """The resolved column, "after 2 min: p1 is back online"; "-" while the condition lasts."""
    if alert.resolved_at is None:
        return "-"
    return f"after {age(alert.duration_s)}: {alert.resolution or 'its condition cleared'}"


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[
        str, typer.Argument(help="The alert to acknowledge: its id, or the start of it.")
    ],
    json_output: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Acknowledge an alert (the first acknowledgement stands)."""
    login, client = connected(profile)
    with reported(login.url), client:
        full = full_id(alert_id, "alert", lambda: [found.id for found in client.list_alerts()])
        alert = client.ack_alert(full)
        if json_output:
            print_json(alert)
        else:
            out.print(f"acknowledged {alert.kind} on {alert.printer_id}")
