"""What one chaos run did and what the checker found: the text summary, the ``--json`` document
and the HTML timeline.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from printfleet.chaos.checker import Violation
from printfleet.chaos.recorder import Kind, RecordedEvent


@dataclass(slots=True)
class ScenarioResult:
    """What one run did and what the checker found."""

    scenario: str
    seed: int
    safeguards: bool
    quick: bool
    seconds: float = 0.0
    requests: int = 0
    jobs: int = 0
    starts: int = 0
    faults_injected: int = 0
    settled: bool = False
    job_states: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    events: list[RecordedEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The ``--json`` document."""
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "safeguards": "on" if self.safeguards else "off",
            "quick": self.quick,
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "jobs_submitted": self.jobs,
            "starts": self.starts,
            "faults_injected": self.faults_injected,
            "settled": self.settled,
            "job_states": self.job_states,
            "violations": [
                {"kind": v.kind.name, "invariant": v.kind.value, "evidence": v.evidence}
                for v in self.violations
            ],
        }

    def summary(self) -> str:
        """The text summary."""
        lines = [
            (
                f"scenario {self.scenario}, seed {self.seed}, safeguards "
                f"{'on' if self.safeguards else 'off'}{' (quick)' if self.quick else ''}: "
                f"{self.seconds:.1f} s"
            ),
            (
                f"  requests {self.requests}, jobs {self.jobs}, physical starts {self.starts}, "
                f"faults injected {self.faults_injected}"
            ),
            f"  job states: {', '.join(f'{k} {v}' for k, v in sorted(self.job_states.items()))}"
            + ("" if self.settled else " (did not settle)"),
            f"  violations: {len(self.violations)}",
        ]
        lines.extend(f"    {v.kind.value}: {v.evidence}" for v in self.violations[:50])
        if len(self.violations) > 50:  # noqa: PLR2004 - a screenful
            lines.append(f"    ... and {len(self.violations) - 50} more (see --json)")
        return "\n".join(lines)


def write_json(results: list[ScenarioResult]) -> str:
    """Results as one JSON document (a list when several)."""
    documents = [result.to_json() for result in results]
    return json.dumps(documents[0] if len(documents) == 1 else documents, indent=2)


_COLOURS = {
    Kind.INTENT_CREATED: "#4c78a8",
    Kind.COMMAND_PUBLISHED: "#9ecae9",
    Kind.PUBLISH_FAILED: "#e45756",
    Kind.COMMAND_RECEIVED: "#72b7b2",
    Kind.PRINT_STARTED: "#54a24b",
    Kind.PLATE_CLEARED: "#b279a2",
    Kind.PLATE_CONFIRMED: "#b279a2",
    Kind.JOB_TERMINAL: "#bab0ac",
    Kind.NOTIFICATION_SENT: "#eeca3b",
    Kind.FAULT_INJECTED: "#f58518",
    Kind.THERMAL_FAULT: "#e45756",
    Kind.FAULT_CLEARED: "#bab0ac",
    Kind.HEATER_TARGET: "#ff9da6",
}


def write_timeline(result: ScenarioResult, path: Path) -> None:
    """An HTML page with an SVG timeline: one lane per printer (and the cloud), faults shaded,
    violations listed; hover a mark for its fields. No scripts, no external assets."""
    import html  # noqa: PLC0415

    events = result.events
    if not events:
        path.write_text("<p>no events</p>", encoding="utf-8")
        return
    first, last = events[0].at, max(event.at for event in events)
    span = max(1, last - first)
    lanes = ["cloud", *sorted({e.text("printer_id") for e in events if e.text("printer_id")})]
    width, lane_height, left = 1100, 36, 110

    def x(at: int) -> float:
        return left + (at - first) / span * (width - left - 10)

    rows = []
    for number, lane in enumerate(lanes):
        y = 30 + number * lane_height
        rows.append(
            f'<text x="4" y="{y + 5}" font-size="12">{html.escape(lane)}</text>'
            f'<line x1="{left}" x2="{width - 10}" y1="{y}" y2="{y}" stroke="#ddd"/>'
        )
    marks = []
    fault_start: int | None = None
    for event in events:
        if event.kind is Kind.FAULT_INJECTED:
            healing = event.text("fault").startswith("heal")
            if not healing:
                fault_start = event.at
            elif fault_start is not None:
                height = len(lanes) * lane_height
                shade = x(event.at) - x(fault_start)
                marks.append(
                    f'<rect x="{x(fault_start):.1f}" y="12" width="{shade:.1f}"'
                    f' height="{height}" fill="#f58518" opacity="0.12"/>'
                )
                fault_start = None
        lane = event.text("printer_id") if event.kind is not Kind.COMMAND_PUBLISHED else "cloud"
        if event.kind in {Kind.INTENT_CREATED, Kind.JOB_TERMINAL, Kind.NOTIFICATION_SENT}:
            lane = "cloud"
        y = 30 + (lanes.index(lane) if lane in lanes else 0) * lane_height
        colour = _COLOURS.get(event.kind, "#888")
        if event.kind is Kind.COMMAND_RECEIVED and event.get("accepted") is False:
            colour = "#e45756"
        size = 6 if event.kind is Kind.PRINT_STARTED else 3
        title = html.escape(event.to_json())
        marks.append(
            f'<circle cx="{x(event.at):.1f}" cy="{y}" r="{size}" fill="{colour}">'
            f"<title>{title}</title></circle>"
        )
    height = 40 + len(lanes) * lane_height
    legend = " ".join(
        f'<span style="color:{colour}">&#9679; {kind.value}</span>'
        for kind, colour in _COLOURS.items()
    )
    violations = "".join(
        f"<li><b>{html.escape(v.kind.value)}</b>: {html.escape(v.evidence)}</li>"
        for v in result.violations
    )
    page = f"""<!doctype html>
<meta charset="utf-8"><title>printfleet chaos: {html.escape(result.scenario)}</title>
<body style="font-family:sans-serif">
<h1>{html.escape(result.scenario)} — seed {result.seed}, safeguards
{"on" if result.safeguards else "off"}</h1>
<pre>{html.escape(result.summary())}</pre>
<p>Shaded: a fault in force. Large green: a physical print start. Red: a refused command or a
failed publish. Hover a mark for the event.</p>
<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">
{"".join(rows)}{"".join(marks)}
</svg>
<p style="font-size:12px">{legend}</p>
<h2>Violations ({len(result.violations)})</h2><ol>{violations}</ol>
</body>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
