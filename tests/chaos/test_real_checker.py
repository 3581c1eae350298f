"""The real-process checker names each broken promise, with the events that prove it."""

import logging
from pathlib import Path

import pytest

from printfleet.chaos.checker import ViolationKind
from printfleet.chaos.real_checker import check_recorded
from printfleet.chaos.recorder import (
    HISTORY_LOGGER,
    HistoryRecorder,
    Kind,
    RecordedEvent,
    load_history,
)

T = 1_800_000_000_000


def ev(at: int, kind: Kind, **fields: object) -> RecordedEvent:
    return RecordedEvent(T + at, kind, fields)


def good_print(job: str = "j1", printer: str = "x1-0", at: int = 0) -> list[RecordedEvent]:
    """A user's job published on fresh evidence, accepted in time, printed, completed."""
    return [
        ev(at, Kind.INTENT_CREATED, job_id=job, request_id=f"r-{job}", printer_id=printer),
        ev(
            at + 10,
            Kind.COMMAND_PUBLISHED,
            command_id=f"c-{job}",
            type="start",
            job_id=job,
            printer_id=printer,
            issued_at=T + at + 10,
            not_after=T + at + 5_000,
            outcome="sent",
            evidence_age_ms=300,
            probe_interval_ms=1_000,
        ),
        ev(
            at + 20,
            Kind.COMMAND_RECEIVED,
            command_id=f"c-{job}",
            type="start",
            job_id=job,
            printer_id=printer,
            issued_at=T + at + 10,
            not_after=T + at + 5_000,
            accepted=True,
        ),
        ev(
            at + 25,
            Kind.PRINT_STARTED,
            printer_id=printer,
            job_id=job,
            plate_objects=0,
            busy=False,
            has_plate_sensor=True,
        ),
        ev(at + 900, Kind.JOB_TERMINAL, job_id=job, state="completed", notify=False),
    ]


def kinds(events: list[RecordedEvent], *, require_terminal: bool = True) -> list[ViolationKind]:
    return [v.kind for v in check_recorded(events, require_terminal=require_terminal)]


def test_a_clean_history_has_no_violation() -> None:
    assert kinds(good_print("a") + good_print("b", at=1_000)) == []


def test_a_start_nobody_asked_for() -> None:
    events = [e for e in good_print() if e.kind is not Kind.INTENT_CREATED]
    assert kinds(events) == [ViolationKind.UNINTENDED_START]


def test_a_start_accepted_after_its_deadline() -> None:
    events = good_print()
    for index in (2, 3):  # accepted, then printed, a second after the deadline
        late = events[index]
        events[index] = RecordedEvent(late.at + 6_000, late.kind, late.fields)
    found = check_recorded(events)
    assert [v.kind for v in found] == [ViolationKind.STALE_START]
    assert "after its deadline" in found[0].evidence
    assert "c-j1" in found[0].evidence


def test_the_same_job_twice_and_one_request_printed_as_two_jobs() -> None:
    events = good_print()
    again = ev(2_000, Kind.PRINT_STARTED, printer_id="x1-0", job_id="j1", plate_objects=0)
    assert ViolationKind.DUPLICATE_START in kinds([*events, again])
    twin = good_print("j2", at=3_000)
    twin[0] = ev(3_000, Kind.INTENT_CREATED, job_id="j2", request_id="r-j1", printer_id="x1-0")
    found = check_recorded(events + twin)
    assert [v.kind for v in found] == [ViolationKind.DUPLICATE_START]
    assert "one request (r-j1) printed twice" in found[0].evidence


def test_starts_on_an_occupied_plate_a_busy_printer_and_an_unconfirmed_plate() -> None:
    events = good_print(printer="p1-2")
    start = events[3]
    events[3] = RecordedEvent(
        start.at,
        start.kind,
        {**start.fields, "plate_objects": 2, "busy": True, "has_plate_sensor": False},
    )
    assert sorted(kinds(events)) == sorted(
        [
            ViolationKind.OCCUPIED_PLATE,
            ViolationKind.BUSY_START,
            ViolationKind.UNCONFIRMED_PLATE,
        ]
    )
    confirmed = ev(5, Kind.PLATE_CONFIRMED, printer_id="p1-2")
    clear = RecordedEvent(start.at, start.kind, {**start.fields, "has_plate_sensor": False})
    assert kinds([*events[:3], confirmed, clear, events[4]]) == []


def test_heating_and_starting_with_a_latched_fault() -> None:
    fault = ev(-100, Kind.THERMAL_FAULT, printer_id="x1-0", fault="runaway")
    heat = ev(-50, Kind.HEATER_TARGET, printer_id="x1-0", target_c=210)
    assert kinds([fault, heat, *good_print()]) == [
        ViolationKind.HEAT_WHILE_FAULTED,
        ViolationKind.BUSY_START,
    ]
    cleared = ev(-10, Kind.FAULT_CLEARED, printer_id="x1-0")
    assert kinds([fault, cleared, *good_print()]) == []


def test_jobs_that_never_end_or_end_untold() -> None:
    intent = ev(0, Kind.INTENT_CREATED, job_id="j9", request_id="r9", printer_id="x1-0")
    assert kinds([intent]) == [ViolationKind.NO_TERMINAL_STATE]
    assert kinds([intent], require_terminal=False) == []
    expired = ev(100, Kind.JOB_TERMINAL, job_id="j9", state="expired", notify=True)
    assert kinds([intent, expired]) == [ViolationKind.NOT_NOTIFIED]
    told = ev(101, Kind.NOTIFICATION_SENT, job_id="j9", state="expired")
    assert kinds([intent, expired, told]) == []


def test_a_start_sent_without_link_evidence() -> None:
    events = good_print()
    published = events[1]
    for age in (None, 4_000):
        events[1] = RecordedEvent(
            published.at, published.kind, {**published.fields, "evidence_age_ms": age}
        )
        assert kinds(events) == [ViolationKind.UNVERIFIED_DISPATCH]


def test_a_command_delivered_after_its_publish_was_refused() -> None:
    events = good_print()
    published = events[1]
    events[1] = RecordedEvent(
        published.at, published.kind, {**published.fields, "outcome": "not_sent"}
    )
    assert ViolationKind.DELIVERED_AFTER_FAILED_PUBLISH in kinds(events)


def test_components_log_into_the_recorder_and_the_history_file_reads_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.jsonl"
    logger = logging.getLogger(HISTORY_LOGGER)
    with HistoryRecorder(path) as recorder:
        logger.debug("print_started", extra={"history": {"printer_id": "x1-0", "job_id": "j"}})
        logger.debug("not a kind", extra={"history": {}})
        recorder.record(Kind.FAULT_INJECTED, fault="broker killed")
    assert not logger.isEnabledFor(logging.DEBUG) or logger.handlers
    back = load_history(path)
    assert [e.kind for e in back] == [Kind.PRINT_STARTED, Kind.FAULT_INJECTED]
    assert back[0].fields == {"printer_id": "x1-0", "job_id": "j"}
    assert back == recorder.events


def test_a_history_line_that_is_not_an_event_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"at": "soon", "kind": "print_started"}\n')
    with pytest.raises(ValueError, match="event time must be an integer"):
        load_history(path)
