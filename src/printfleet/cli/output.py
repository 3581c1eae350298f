"""Where the commands write, and how the client commands show answers: tables, times, ages,
styles, and JSON with --json."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from printfleet.client import Printer
from printfleet.protocol.lifecycle import JobState

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console()
"""For the commands that run or measure printfleet."""
out = Console(highlight=False)
"""For the client commands' answers (no guessing which words are numbers or paths)."""
err = Console(stderr=True, highlight=False)
"""For the client commands' errors and progress."""


def print_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    """An answer as indented JSON on stdout (what --json prints)."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    typer.echo(json.dumps(data, indent=2))


def when(ms: int | None) -> str:
    """A time in milliseconds since the epoch, as local date and time."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """How long ago, in seconds below two minutes and in minutes above."""
    if seconds is None:
        return "-"
    if seconds < 120:  # noqa: PLR2004 - below two minutes, seconds read best
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


STATE_STYLE = {
    "idle": "green",
    "printing": "cyan",
    "paused": "yellow",
    "error": "bold red",
    "offline": "dim",
}
SEVERITY_STYLE = {"critical": "bold white on red", "warning": "bold yellow", "info": ""}
PLATE_STYLE = {"clear": "green", "occupied": "red", "needs_confirmation": "yellow"}
JOB_STYLE = {
    JobState.COMPLETED: "green",
    JobState.PRINTING: "cyan",
    JobState.FAILED: "red",
    JobState.REJECTED: "red",
    JobState.EXPIRED: "yellow",
    JobState.CANCELLED: "dim",
}


def styled(value: str | None, styles: dict[str, str]) -> Text:
    """A value in the style the table gives it (a dim dash for none)."""
    if value is None:
        return Text("-", style="dim")
    return Text(value, style=styles.get(value, ""))


def heater(current: float | None, target: float | None) -> str:
    """A heater's temperature, and its target when it has one."""
    if current is None:
        return "-"
    return f"{current:.0f}/{target:.0f}°C" if target else f"{current:.0f}°C"


@dataclass
class PrinterRow:
    """One printer's row in a printers table; ``printfleet watch`` updates it from the event
    stream."""

    id: str
    name: str
    model: str
    online: bool
    status: str | None
    plate: str | None
    fault: str | None
    job_id: str | None
    hotend: tuple[float | None, float | None] = (None, None)
    bed: tuple[float | None, float | None] = (None, None)
    percent: int | None = None
    reported_at: float | None = None
    """``time.monotonic()`` when the printer last reported, so that its age keeps counting."""
    link_evidence_at: float | None = None
    """``time.monotonic()`` of the cloud's latest broker-link evidence, as last fetched."""
    materials: tuple[str, ...] = ()
    """What its slots hold, as "1:PETG" (slot and material), in slot order."""
    nozzle_um: int | None = None

    @classmethod
    def of(cls, printer: Printer) -> PrinterRow:
        """From the API's printer."""
        temps = printer.temperatures
        return cls(
            id=printer.id,
            name=printer.name,
            model=printer.model,
            online=printer.online,
            status=str(printer.status) if printer.status is not None else None,
            plate=str(printer.plate) if printer.plate is not None else None,
            fault=printer.fault,
            job_id=printer.job_id,
            hotend=(temps.hotend.current_c, temps.hotend.target_c) if temps else (None, None),
            bed=(temps.bed.current_c, temps.bed.target_c) if temps else (None, None),
            percent=printer.progress.percent if printer.progress else None,
            reported_at=instant(printer.report_age_s),
            link_evidence_at=instant(printer.link_evidence_age_s),
            materials=tuple(f"{slot.slot}:{slot.material}" for slot in printer.materials),
            nozzle_um=printer.nozzle_um,
        )

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        """A ``printer_state`` or ``printer_telemetry`` event's data (docs/api.md 2.2)."""
        if kind == "printer_state":
            self.online = bool(data.get("online", self.online))
            for name in ("status", "plate", "fault", "job_id"):
                if name in data:
                    setattr(self, name, data[name])
        elif kind == "printer_telemetry":
            self.status = data.get("status", self.status)
            for heater in ("hotend", "bed"):
                reading = data.get(heater)
                if isinstance(reading, dict):
                    setattr(self, heater, (reading.get("current_c"), reading.get("target_c")))
            progress = data.get("progress")
            self.percent = progress.get("percent") if isinstance(progress, dict) else None
        self.reported_at = time.monotonic()


def nozzle(nozzle_um: int | None) -> str:
    """A nozzle as people say it: "0.4 mm"."""
    return "-" if nozzle_um is None else f"{nozzle_um / 1000:g} mm"


def loaded(materials: tuple[str, ...], nozzle_um: int | None) -> Text:
    """What a printer has loaded: its slots ("1:PETG 2:PLA"), and its nozzle below."""
    slots = " ".join(materials) if materials else "-"
    return Text.assemble(slots, "\n", (nozzle(nozzle_um), "dim"))


def instant(age_s: float | None) -> float | None:
    """The ``time.monotonic()`` moment that was ``age_s`` seconds ago."""
    return None if age_s is None else time.monotonic() - age_s


def printers_table(rows: list[PrinterRow], title: str = "printers") -> Table:
    """The printers as a table, with ages counted up to now."""
    now = time.monotonic()
    table = Table(title=title, title_justify="left")
    for column in ("printer", "model", "state", "loaded", "hotend", "bed", "plate", "job", "heard"):
        table.add_column(column)
    table.add_column("link evidence", justify="right")
    for row in rows:
        state = (row.status or "online") if row.online else "offline"
        if row.fault:
            state = f"error: {row.fault}"
        job = "-" if row.job_id is None else row.job_id[-8:]
        if row.percent is not None:
            job = f"{job} {row.percent}%"
        table.add_row(
            Text.assemble(row.id, "\n", (row.name, "dim")),
            row.model,
            styled(state, STATE_STYLE) if not row.fault else Text(state, style="bold red"),
            loaded(row.materials, row.nozzle_um),
            heater(*row.hotend),
            heater(*row.bed),
            styled(row.plate, PLATE_STYLE),
            job,
            age(None if row.reported_at is None else now - row.reported_at),
            age(None if row.link_evidence_at is None else now - row.link_evidence_at),
        )
    return table
