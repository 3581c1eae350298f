"""``printfleet watch``: the fleet live from the server's event stream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, ClassVar

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from printfleet.cli.failures import reported
from printfleet.cli.output import SEVERITY_STYLE, PrinterRow, out, printers_table
from printfleet.cli.profiles import ProfileOption, connected
from printfleet.client import Printer, StreamEvent


@dataclass
class WatchDisplay:
    """What ``printfleet watch`` shows live: the printers, and the latest notifications with
    alerts highlighted."""

    refetch: Callable[[], list[Printer]]
    only: str | None
    rows: dict[str, PrinterRow] = field(default_factory=dict)
    log: list[Text] = field(default_factory=list)
    fetched_at: float = 0.0

    REFETCH_S: ClassVar[float] = 5.0
    """How often the printers are fetched again: the stream carries no link evidence."""

    def fetch(self) -> None:
        """Fetch the printers afresh."""
        # A new dict, not an update: the refresh thread may be drawing the old one.
        self.rows = {p.id: PrinterRow.of(p) for p in self.refetch() if self._wanted(p.id)}
        self.fetched_at = time.monotonic()

    def apply(self, event: StreamEvent) -> None:
        """Fold one stream block into the view."""
        if event.kind in {"dropped", "resync"}:
            self.fetch()
            self._note(Text(f"{event.kind}: refetched the printers", style="dim"))
            return
        if time.monotonic() - self.fetched_at > self.REFETCH_S:
            self.fetch()
        note = event.notification
        if note is None or not self._wanted(note.printer_id):
            return
        row = self.rows.get(note.printer_id or "")
        if row is not None and note.kind in {"printer_state", "printer_telemetry"}:
            row.apply(note.kind, note.data)
            return
        style = SEVERITY_STYLE.get(note.severity, "") if note.is_alert else ""
        stamp = note.created_at[11:19]
        self._note(Text(f"{stamp} {note.kind} {note.printer_id or ''}: {note.title}", style=style))

    def _wanted(self, printer_id: str | None) -> bool:
        return self.only is None or printer_id == self.only

    def _note(self, line: Text) -> None:
        self.log = [*self.log, line][-12:]

    def __rich__(self) -> Group:
        """The view as rich renderables (Live redraws it, so ages keep counting)."""
        title = f"printer {self.only}" if self.only else "fleet"
        log = Text("\n").join(self.log) if self.log else Text("waiting for events", style="dim")
        return Group(
            printers_table(list(self.rows.values()), title=f"{title} (live; Ctrl-C to stop)"),
            Panel(log, title="events", title_align="left"),
        )


def watch(
    printer: Annotated[str | None, typer.Argument(help="Only this printer.")] = None,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events (default: never).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each event as one line of JSON instead.")
    ] = False,
    profile: ProfileOption = None,
) -> None:
    """Follow your fleet (or one printer) live from the server's event stream.

    Alerts are highlighted; the stream reconnects by itself and resumes where it left off.
    """
    login, client = connected(profile)
    with reported(login.url), client:
        seen = 0
        if printer is not None:
            client.get_printer(printer)  # fails early, and clearly, for an unknown printer
        events = client.events()
        if json_output:
            for event in events:
                note = event.notification
                if printer is not None and note is not None and note.printer_id != printer:
                    continue
                typer.echo(json.dumps({"kind": event.kind, "id": event.id, "data": event.data}))
                seen += 1
                if count is not None and seen >= count:
                    break
            events.close()
            return
        view = WatchDisplay(client.list_printers, printer)
        view.fetch()
        with Live(view, console=out, refresh_per_second=4) as live:
            for event in events:
                view.apply(event)
                live.refresh()
                seen += 1
                if count is not None and seen >= count:
                    break
        events.close()
