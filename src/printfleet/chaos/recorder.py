"""The history of a run against real processes: structured events, one JSON object a line.

The cloud's dispatcher reports what it published and which jobs it ended to a typed observer
(:class:`~printfleet.cloud.dispatch.dispatcher.DispatchObserver`), and each printer agent what
it judged and which faults it latched or saw cleared to another
(:class:`~printfleet.agent.observer.AgentObserver`); :class:`DispatchHistory` and
:class:`AgentHistory` are the ones that write those reports here. The chaos harness writes what
only an outside witness knows (what a user asked for, what the hardware physically did, which
faults it injected). Outside a chaos world nobody listens, so a service's own logs never carry
these events.
"""

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Self

from printfleet.agent.observer import CommandJudged
from printfleet.cloud.dispatch.dispatcher import CommandPublished, SettingsPublished
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.protocol.dispatch import JobChange


class Kind(StrEnum):
    """Every kind of event a history holds."""

    INTENT_CREATED = "intent_created"
    """A user asked for a print: job id, the request it came from, who asked, the printer (or
    the model, for any printer of it), the window."""
    COMMAND_PUBLISHED = "command_published"
    """The cloud tried to publish a command: outcome ``sent``, ``not_sent`` or ``unknown``."""
    PUBLISH_FAILED = "publish_failed"
    """A publish that did not get the broker's acknowledgement (``not_sent`` or ``unknown``)."""
    COMMAND_RECEIVED = "command_received"
    """A printer judged a command: accepted, or rejected with its reason."""
    PRINT_STARTED = "print_started"
    """The hardware physically began a print, with the truth at that instant."""
    HEATER_TARGET = "heater_target"
    """The hardware was told to heat."""
    THERMAL_FAULT = "thermal_fault"
    """A printer latched a thermal fault."""
    FAULT_CLEARED = "fault_cleared"
    """A person cleared a latched fault."""
    PLATE_CLEARED = "plate_cleared"
    """A person took everything off a plate."""
    PLATE_CONFIRMED = "plate_confirmed"
    """A person confirmed at the printer that its plate is clear."""
    JOB_TERMINAL = "job_terminal"
    """A job reached a terminal state."""
    NOTIFICATION_SENT = "notification_sent"
    """The submitter of a job was told how it ended."""
    FAULT_INJECTED = "fault_injected"
    """The harness broke something (or healed it)."""
    ROSTER_CHANGED = "roster_changed"
    """The store's word on a printer, as it is from now on: who may operate it (its owner and
    operator shares) and the plate check its owner wants. Recorded for every printer when the
    world starts, then at every share, revocation and setting a person makes."""


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One line of a history: wall-clock milliseconds, kind, fields."""

    at: int
    kind: Kind
    fields: Mapping[str, object]

    def get(self, name: str) -> object:
        """A field, or None."""
        return self.fields.get(name)

    def text(self, name: str) -> str:
        """A field as text ('' when absent)."""
        value = self.fields.get(name)
        return "" if value is None else str(value)

    def number(self, name: str) -> int | None:
        """An integer field, or None."""
        value = self.fields.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def to_json(self) -> str:
        """The JSON line."""
        return json.dumps({"at": self.at, "kind": self.kind.value, **self.fields}, default=str)

    @classmethod
    def from_json(cls, line: str) -> "RecordedEvent":
        """Parse one JSON line; ValueError if it is not an event."""
        document = json.loads(line)
        if not isinstance(document, dict):
            msg = f"not a history event: {line[:80]!r}"
            raise ValueError(msg)  # noqa: TRY004 - a bad line is a value problem
        at = document.pop("at")
        kind = Kind(document.pop("kind"))
        if not isinstance(at, int):
            msg = f"event time must be an integer, not {at!r}"
            raise ValueError(msg)  # noqa: TRY004 - a bad line is a value problem
        return cls(at, kind, document)


def wall_ms() -> int:
    """True time for the history: the machine's wall clock in milliseconds (cloud time)."""
    return time.time_ns() // 1_000_000


class HistoryRecorder:
    """Collects history events in memory and, if given a path, as JSON lines on disk.

    Use as a context manager: the file is open while it is. :meth:`record` writes an event
    stamped now; the observers below and the harness's own witnesses call it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.events: list[RecordedEvent] = []
        self._lock_events = threading.Lock()
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def record(self, kind: Kind, **fields: object) -> RecordedEvent:
        """Record an event the harness itself witnessed, stamped now."""
        event = RecordedEvent(wall_ms(), kind, fields)
        self.add(event)
        return event

    def add(self, event: RecordedEvent) -> None:
        """Append an event (thread-safe)."""
        with self._lock_events:
            self.events.append(event)
            if self._file is not None:
                self._file.write(event.to_json() + "\n")
                self._file.flush()

    def of(self, *kinds: Kind) -> Iterator[RecordedEvent]:
        """The events of the given kinds, in order."""
        wanted = set(kinds)
        return (event for event in list(self.events) if event.kind in wanted)


def load_history(path: Path) -> list[RecordedEvent]:
    """Read a JSON-lines history back."""
    with path.open(encoding="utf-8") as handle:
        return [RecordedEvent.from_json(line) for line in handle if line.strip()]


class DispatchHistory:
    """The dispatcher's observer in a chaos world: what it published, and on which evidence
    (S8, S9), and every job it ended, as history events."""

    def __init__(self, recorder: HistoryRecorder) -> None:
        self.recorder = recorder

    def command_published(self, published: CommandPublished) -> None:
        """One ``command_published`` event; a ``publish_failed`` too unless the broker
        acknowledged it."""
        command = published.command
        fields: dict[str, object] = {
            "command_id": command.id,
            "type": str(getattr(command, "type", published.action)),
            "job_id": published.job_id,
            "printer_id": published.printer_id,
            "issued_at": command.issued_at,
            "not_after": command.not_after,
            "outcome": published.outcome.value,
            "evidence_age_ms": published.evidence_age_ms,
            "probe_interval_ms": published.probe_interval_ms,
        }
        self.recorder.record(Kind.COMMAND_PUBLISHED, **fields)
        if published.outcome is not PublishOutcome.SENT:
            self.recorder.record(Kind.PUBLISH_FAILED, **fields)

    def settings_published(self, published: SettingsPublished) -> None:
        """Not part of a history: settings reach the checker through the printer's reports."""
        del published

    def job_ended(self, change: JobChange) -> None:
        """One ``job_terminal`` event."""
        self.recorder.record(
            Kind.JOB_TERMINAL,
            job_id=change.job.id,
            state=change.job.state.value,
            reason=change.job.reason,
            notify=change.notify,
        )


class AgentHistory:
    """A printer agent's observer in a chaos world: every command its gate judged (S1 to S6 are
    checked against these), every thermal fault it latched and every fault a person cleared."""

    def __init__(self, recorder: HistoryRecorder) -> None:
        self.recorder = recorder

    def command_judged(self, judged: CommandJudged) -> None:
        """One ``command_received`` event, accepted or with the gate's reason."""
        command, decision = judged.command, judged.decision
        self.recorder.record(
            Kind.COMMAND_RECEIVED,
            printer_id=judged.printer_id,
            command_id=None if command is None else command.id,
            type=str(getattr(command, "type", "unknown")),
            job_id=None if command is None else command.job_id,
            issued_at=None if command is None else command.issued_at,
            not_after=None if command is None else command.not_after,
            accepted=decision.accepted,
            reason=None if decision.reason is None else decision.reason.value,
        )

    def thermal_fault(self, printer_id: str, fault: str) -> None:
        """One ``thermal_fault`` event."""
        self.recorder.record(Kind.THERMAL_FAULT, printer_id=printer_id, fault=fault)

    def fault_cleared(self, printer_id: str) -> None:
        """One ``fault_cleared`` event."""
        self.recorder.record(Kind.FAULT_CLEARED, printer_id=printer_id)
