"""The invariant checker for runs against real processes: S1 to S9 over a recorded history.

It judges from what an outside witness recorded — what users asked for, what owners granted,
revoked and chose, what the hardware physically did and when, on the machine's one wall clock —
and uses the components' own events only to connect a physical start to the command behind it.
Every violation names the events that prove it.

Who may operate a printer, and whether its owner wants the plate checked, is judged as of the
moment the cloud issued the command (its ``issued_at``, on the same clock): the dispatcher reads
the roster and stamps its commands in one step of its event loop, and the harness changes the
roster and records the change in one step of the same loop, so a change recorded before that
instant was read, and one recorded after it was not. A change stamped in the very millisecond
could be either; it is given the benefit of the doubt both ways.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from printfleet.chaos.checker import Violation, ViolationKind, plate_violations
from printfleet.chaos.recorder import Kind, RecordedEvent
from printfleet.protocol.lifecycle import JobState

RECORDING_SLACK_MS = 50
"""A gate's verdict and its log line are microseconds apart; this absorbs the recorder, not
the printer's clock error (which the gate must bound itself)."""


@dataclass(slots=True)
class _PrinterTrack:
    fault_latched: bool = False
    confirmed_since_last_start: bool = False
    starts: int = 0


@dataclass(slots=True)
class _Roster:
    """Every recorded change of what the store says of each printer, in time order."""

    changes: dict[str, list[RecordedEvent]] = field(default_factory=dict)

    def _around(self, printer_id: str, at: int) -> tuple[RecordedEvent | None, ...]:
        """The entry in force just before ``at``, and with changes stamped ``at`` applied."""
        before = upto = None
        for change in self.changes.get(printer_id, []):
            if change.at < at:
                before = change
            if change.at <= at:
                upto = change
        return before, upto

    def may_operate(self, user: str, printer_id: str, at: int) -> bool:
        """Whether ``user`` was the owner or an operator of the printer at ``at``; a printer
        the roster never mentions is nobody's."""
        return any(
            entry is not None and user in _names(entry.get("operators"))
            for entry in self._around(printer_id, at)
        )

    def wants_check(self, printer_id: str, at: int) -> bool:
        """Whether the owner wanted the plate checked at ``at`` (on unless turned off)."""
        return all(
            entry is None or entry.get("plate_check") is not False
            for entry in self._around(printer_id, at)
        )


def _names(value: object) -> set[str]:
    return {str(name) for name in value} if isinstance(value, list) else set()


@dataclass(slots=True)
class _Index:
    roster: _Roster = field(default_factory=_Roster)
    intents: dict[str, RecordedEvent] = field(default_factory=dict)
    published: dict[str, RecordedEvent] = field(default_factory=dict)
    accepted_starts: dict[tuple[str, str], RecordedEvent] = field(default_factory=dict)
    terminal: dict[str, RecordedEvent] = field(default_factory=dict)
    notified: set[str] = field(default_factory=set)
    started_jobs: dict[str, RecordedEvent] = field(default_factory=dict)
    started_requests: dict[str, RecordedEvent] = field(default_factory=dict)


def _describe(event: RecordedEvent) -> str:
    keys = ("printer_id", "job_id", "command_id", "type", "outcome", "reason", "state")
    parts = [f"{key}={event.fields[key]}" for key in keys if event.fields.get(key) is not None]
    return f"[{event.kind.value} at {event.at}: {', '.join(parts)}]"


def check_recorded(
    events: Iterable[RecordedEvent],
    *,
    dispatch_window_ms: int = 30_000,
    require_terminal: bool = True,
) -> list[Violation]:
    """Every violation of S1 to S9 in a recorded history (events in recording order)."""
    ordered = sorted(events, key=lambda event: event.at)
    index = _Index()
    printers: defaultdict[str, _PrinterTrack] = defaultdict(_PrinterTrack)
    violations: list[Violation] = []

    def flag(kind: ViolationKind, *evidence: RecordedEvent, note: str = "") -> None:
        text = " ".join(_describe(event) for event in evidence)
        violations.append(Violation(kind, f"{note}: {text}" if note else text))

    # Who asked for what, and who could print where, are known before anything is judged: a
    # store on another process may hand a job to the dispatcher before its creator records it.
    for event in ordered:
        if event.kind is Kind.INTENT_CREATED:
            index.intents[event.text("job_id")] = event
        elif event.kind is Kind.ROSTER_CHANGED:
            index.roster.changes.setdefault(event.text("printer_id"), []).append(event)
    for event in ordered:
        printer = printers[event.text("printer_id")]
        match event.kind:
            case Kind.COMMAND_PUBLISHED:
                index.published[event.text("command_id")] = event
                _check_link_evidence(event, flag)
                _check_file_handed_over(event, index, flag)
            case Kind.COMMAND_RECEIVED:
                _check_delivery(event, index, flag)
                if event.text("type") == "start" and event.get("accepted") is True:
                    index.accepted_starts[(event.text("printer_id"), event.text("job_id"))] = event
            case Kind.PRINT_STARTED:
                _check_start(event, printer, index, dispatch_window_ms, flag)
            case Kind.HEATER_TARGET:
                target = event.number("target_c")
                if printer.fault_latched and target is not None and target > 0:
                    flag(ViolationKind.HEAT_WHILE_FAULTED, event)
            case Kind.THERMAL_FAULT:
                printer.fault_latched = True
            case Kind.FAULT_CLEARED:
                printer.fault_latched = False
            case Kind.PLATE_CONFIRMED:
                printer.confirmed_since_last_start = True
            case Kind.JOB_TERMINAL:
                index.terminal.setdefault(event.text("job_id"), event)
            case Kind.NOTIFICATION_SENT:
                index.notified.add(event.text("job_id"))
            case _:
                pass
    _check_endings(index, require_terminal=require_terminal, flag=flag)
    return violations


class _Flag(Protocol):
    def __call__(self, kind: ViolationKind, *evidence: RecordedEvent, note: str = "") -> None:
        """Report one violation."""


def _check_link_evidence(event: RecordedEvent, flag: _Flag) -> None:
    """S8/S9: bytes of a command left the cloud only on a fresh end-to-end round trip."""
    if event.text("outcome") == "not_sent":
        return
    age, interval = event.number("evidence_age_ms"), event.number("probe_interval_ms")
    if age is None or (interval is not None and age > interval):
        note = "no round trip at all" if age is None else f"last round trip {age} ms old"
        flag(ViolationKind.UNVERIFIED_DISPATCH, event, note=note)


def _submitter(index: _Index, job_id: str) -> str:
    intent = index.intents.get(job_id)
    return "" if intent is None else intent.text("submitter")


def _issued_at(command: RecordedEvent) -> int:
    issued_at = command.number("issued_at")
    return command.at if issued_at is None else issued_at


def _check_file_handed_over(event: RecordedEvent, index: _Index, flag: _Flag) -> None:
    """S1: a stage hands the printer a link to the submitter's file; only where they may print."""
    if event.text("type") != "stage" or event.text("outcome") == "not_sent":
        return
    job_id, printer_id = event.text("job_id"), event.text("printer_id")
    submitter = _submitter(index, job_id)
    if not index.roster.may_operate(submitter, printer_id, _issued_at(event)):
        intent = index.intents.get(job_id)
        evidence = (event,) if intent is None else (intent, event)
        note = f"{submitter or 'nobody'} may not operate {printer_id}"
        flag(ViolationKind.FOREIGN_FILE, *evidence, note=note)


def _check_delivery(event: RecordedEvent, index: _Index, flag: _Flag) -> None:
    """S9: a publish refused before any byte left can never arrive."""
    published = index.published.get(event.text("command_id"))
    if published is not None and published.text("outcome") == "not_sent":
        flag(ViolationKind.DELIVERED_AFTER_FAILED_PUBLISH, published, event)


def _check_start(
    event: RecordedEvent,
    printer: _PrinterTrack,
    index: _Index,
    dispatch_window_ms: int,
    flag: _Flag,
) -> None:
    started_jobs, started_requests = index.started_jobs, index.started_requests
    job_id = event.text("job_id")
    intent = index.intents.get(job_id)
    if intent is None:
        flag(ViolationKind.UNINTENDED_START, event, note="no user asked for this job")
    command = index.accepted_starts.get((event.text("printer_id"), job_id))
    if command is not None:
        not_after, issued_at = command.number("not_after"), command.number("issued_at")
        if not_after is not None and command.at > not_after + RECORDING_SLACK_MS:
            note = f"accepted {command.at - not_after} ms after its deadline"
            flag(ViolationKind.STALE_START, command, event, note=note)
        if not_after is not None and issued_at is not None:
            lifetime = not_after - issued_at
            if lifetime > dispatch_window_ms:
                flag(ViolationKind.LONG_DEADLINE, command, note=f"valid for {lifetime} ms")
        published = index.published.get(command.text("command_id"))
        if published is not None and published.text("outcome") == "not_sent":
            flag(ViolationKind.DELIVERED_AFTER_FAILED_PUBLISH, published, event)
    if job_id in started_jobs:
        flag(ViolationKind.DUPLICATE_START, started_jobs[job_id], event, note="job ran twice")
    request = "" if intent is None else intent.text("request_id")
    if request and request in started_requests and started_requests[request] is not event:
        first = started_requests[request]
        if first.text("job_id") != job_id:
            note = f"one request ({request}) printed twice"
            flag(ViolationKind.DUPLICATE_START, first, event, note=note)
    started_jobs.setdefault(job_id, event)
    if request:
        started_requests.setdefault(request, event)
    if event.get("busy") is True or printer.fault_latched:
        flag(ViolationKind.BUSY_START, event)
    printer_id = event.text("printer_id")
    wants_check = False  # a start from the printer's own screen answers to its setting alone
    if command is not None:
        submitter, issued_at = _submitter(index, job_id), _issued_at(command)
        if intent is not None and not index.roster.may_operate(submitter, printer_id, issued_at):
            note = f"asked for by {submitter or 'nobody'}, who could not operate {printer_id}"
            flag(ViolationKind.FOREIGN_START, intent, command, event, note=note)
        wants_check = index.roster.wants_check(printer_id, issued_at)
    objects = event.number("plate_objects") or 0
    for kind, note in plate_violations(
        occupied=objects > 0,
        unconfirmed=event.get("has_plate_sensor") is False
        and not printer.confirmed_since_last_start,
        printer_checks=event.get("plate_check") is not False,
        owner_wants_check=wants_check,
        occupied_as=f"{objects} object(s) on the plate",
    ):
        flag(kind, event, note=note)
    printer.confirmed_since_last_start = False
    printer.starts += 1


def _check_endings(index: _Index, *, require_terminal: bool, flag: _Flag) -> None:
    """S7: every job ends, and every end but completion reaches its submitter."""
    for job_id, intent in index.intents.items():
        ending = index.terminal.get(job_id)
        if ending is None:
            if require_terminal:
                flag(ViolationKind.NO_TERMINAL_STATE, intent)
            continue
        if ending.text("state") != JobState.COMPLETED.value and job_id not in index.notified:
            flag(ViolationKind.NOT_NOTIFIED, intent, ending)
