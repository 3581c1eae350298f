"""The real-process checker names each broken promise, with the events that prove it."""

from pathlib import Path

import pytest

from printfleet.agent.observer import CommandJudged
from printfleet.chaos.checker import ViolationKind
from printfleet.chaos.real_checker import check_recorded
from printfleet.chaos.recorder import (
    AgentHistory,
    HistoryRecorder,
    Kind,
    RecordedEvent,
    load_history,
)
from printfleet.protocol.gate import PrinterState, Refusal, accept, refuse
from printfleet.protocol.messages import CancelCommand
from printfleet.protocol.reasons import Reason

T = 1_800_000_000_000


def ev(at: int, kind: Kind, **fields: object) -> RecordedEvent:
    return RecordedEvent(T + at, kind, fields)


def owned(printer: str = "x1-0", owner: str = "ana", *, at: int = -10_000) -> RecordedEvent:
    """The roster as the world starts: ``owner`` owns ``printer``, plate check on."""
    return ev(at, Kind.ROSTER_CHANGED, printer_id=printer, operators=[owner], plate_check=True)


def good_print(
    job: str = "j1", printer: str = "x1-0", at: int = 0, *, by: str = "ana"
) -> list[RecordedEvent]:
    """ana's job on her own printer published on fresh evidence, accepted in time, printed,
    completed."""
    return [
        owned(printer, at=at - 10_000),
        ev(
            at,
            Kind.INTENT_CREATED,
            job_id=job,
            request_id=f"r-{job}",
            submitter=by,
            printer_id=printer,
        ),
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
            plate_check=True,
        ),
        ev(at + 900, Kind.JOB_TERMINAL, job_id=job, state="completed", notify=False),
    ]


START = 4
"""The index of the physical start in :func:`good_print`."""


def changed(event: RecordedEvent, **fields: object) -> RecordedEvent:
    return RecordedEvent(event.at, event.kind, {**event.fields, **fields})


def kinds(events: list[RecordedEvent], *, require_terminal: bool = True) -> list[ViolationKind]:
    return [v.kind for v in check_recorded(events, require_terminal=require_terminal)]


def test_a_clean_history_has_no_violation() -> None:
    assert kinds(good_print("a") + good_print("b", at=1_000)) == []


def test_a_start_nobody_asked_for() -> None:
    events = [e for e in good_print() if e.kind is not Kind.INTENT_CREATED]
    assert kinds(events) == [ViolationKind.UNINTENDED_START]


def test_a_start_accepted_after_its_deadline() -> None:
    events = good_print()
    for index in (3, 4):  # accepted, then printed, a second after the deadline
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
    twin[1] = changed(twin[1], request_id="r-j1")
    found = check_recorded(events + twin)
    assert [v.kind for v in found] == [ViolationKind.DUPLICATE_START]
    assert "one request (r-j1) printed twice" in found[0].evidence


def test_starts_on_an_occupied_plate_a_busy_printer_and_an_unconfirmed_plate() -> None:
    events = good_print(printer="p1-2")
    start = events[START]
    events[START] = changed(start, plate_objects=2, busy=True, has_plate_sensor=False)
    assert sorted(kinds(events)) == sorted(
        [
            ViolationKind.OCCUPIED_PLATE,
            ViolationKind.BUSY_START,
            ViolationKind.UNCONFIRMED_PLATE,
        ]
    )
    confirmed = ev(5, Kind.PLATE_CONFIRMED, printer_id="p1-2")
    clear = changed(start, has_plate_sensor=False)
    assert kinds([*events[:START], confirmed, clear, events[START + 1]]) == []


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
    published = events[2]
    for age in (None, 4_000):
        events[2] = changed(published, evidence_age_ms=age)
        assert kinds(events) == [ViolationKind.UNVERIFIED_DISPATCH]


def test_a_command_delivered_after_its_publish_was_refused() -> None:
    events = good_print()
    events[2] = changed(events[2], outcome="not_sent")
    assert ViolationKind.DELIVERED_AFTER_FAILED_PUBLISH in kinds(events)


# -- S1: who may print where, as of each command's issue -----------------------------------------


def staged(job: str, printer: str, at: int) -> RecordedEvent:
    """The cloud hands ``printer`` a link to ``job``'s file."""
    return ev(
        at,
        Kind.COMMAND_PUBLISHED,
        command_id=f"s-{job}",
        type="stage",
        job_id=job,
        printer_id=printer,
        issued_at=T + at,
        not_after=T + at + 30_000,
        outcome="sent",
        evidence_age_ms=300,
        probe_interval_ms=1_000,
    )


def test_a_file_and_a_start_on_a_printer_the_submitter_may_not_operate() -> None:
    """ben asked for any x1; the cloud chose ana's (issue 11, case 1)."""
    events = [*good_print(by="ben"), staged("j1", "x1-0", -5)]
    found = check_recorded(events)
    assert sorted(v.kind for v in found) == sorted(
        [ViolationKind.FOREIGN_FILE, ViolationKind.FOREIGN_START]
    )
    assert all("ben" in v.evidence for v in found)
    viewer = changed(owned(at=-5_000), viewers=["ben"])
    assert len(check_recorded([*events, viewer])) == 2  # a viewer may not print either
    shared = ev(-5_000, Kind.ROSTER_CHANGED, printer_id="x1-0", operators=["ana", "ben"])
    assert kinds([*events, shared]) == []


def test_a_share_counts_as_of_the_commands_issue() -> None:
    """Revoked before the start was issued: a violation. Revoked after it was issued, while it
    was in flight: not one (S1 asks for authority at the moment of dispatch). Revoked in the
    very millisecond of the issue: the benefit of the doubt."""
    shared = ev(-5_000, Kind.ROSTER_CHANGED, printer_id="x1-0", operators=["ana", "ben"])
    events = [*good_print(by="ben"), shared]
    issued = events[2].number("issued_at")
    assert issued is not None
    for revoked_at, expected in (
        (5, [ViolationKind.FOREIGN_START]),
        (10, []),
        (15, []),
    ):
        revoked = RecordedEvent(issued - 10 + revoked_at, Kind.ROSTER_CHANGED, owned().fields)
        assert kinds([*events, revoked]) == expected, revoked_at


def test_a_printer_nobody_provisioned_is_nobodys() -> None:
    events = [e for e in good_print() if e.kind is not Kind.ROSTER_CHANGED]
    assert kinds(events) == [ViolationKind.FOREIGN_START]


# -- S5: the stricter of the owner's wish at issue and the printer's own setting ---------------


def test_a_plate_check_the_owner_turned_on_that_the_printer_never_applied() -> None:
    """Check off, a print ends, the printer goes away, the owner turns the check back on, the
    printer returns with the print on its plate and starts the next job (issue 11, case 3)."""
    events = good_print()
    events[START] = changed(events[START], plate_objects=1, plate_check=False)
    off = changed(owned(at=-9_000), plate_check=False)
    on_again = changed(owned(at=-3_000), plate_check=True)
    found = check_recorded([*events, off, on_again])
    assert [v.kind for v in found] == [ViolationKind.PLATE_CHECK_NOT_APPLIED]
    assert "1 object(s)" in found[0].evidence
    # Off as the start was issued: the owner's choice, audited; nothing to judge.
    assert kinds([*events, off]) == []
    # Turned on only after the start was issued: the start was issued under "off".
    later = changed(owned(at=100), plate_check=True)
    assert kinds([*events, off, later]) == []


def test_an_unconfirmed_plate_the_owner_wanted_checked() -> None:
    events = good_print(printer="p1-2")
    events[START] = changed(events[START], has_plate_sensor=False, plate_check=False)
    assert kinds(events) == [ViolationKind.PLATE_CHECK_NOT_APPLIED]
    confirmed = ev(5, Kind.PLATE_CONFIRMED, printer_id="p1-2")
    assert kinds([*events, confirmed]) == []


def test_an_agents_reports_go_into_the_recorder_and_the_history_file_reads_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.jsonl"
    job = "01900000-0000-7000-8000-000000000001"
    command = CancelCommand(
        id="01900000-0000-7000-8000-000000000002",
        printer_id="x1-0",
        job_id=job,
        issued_at=T,
        not_after=T + 30_000,
    )
    state = PrinterState(printer_id="x1-0", has_plate_sensor=False)
    with HistoryRecorder(path) as recorder:
        observer = AgentHistory(recorder)
        observer.command_judged(
            CommandJudged(
                "x1-0",
                command,
                refuse(state, Refusal(Reason.NO_SUCH_JOB, "not this job"), command_type="cancel"),
            )
        )
        observer.command_judged(CommandJudged("x1-0", None, accept(state)))
        observer.thermal_fault("x1-0", "hotend runaway")
        observer.fault_cleared("x1-0")
        recorder.record(Kind.FAULT_INJECTED, fault="broker killed")
    back = load_history(path)
    assert [e.kind for e in back] == [
        Kind.COMMAND_RECEIVED,
        Kind.COMMAND_RECEIVED,
        Kind.THERMAL_FAULT,
        Kind.FAULT_CLEARED,
        Kind.FAULT_INJECTED,
    ]
    assert back[0].fields == {
        "printer_id": "x1-0",
        "command_id": command.id,
        "type": "cancel",
        "job_id": job,
        "issued_at": T,
        "not_after": T + 30_000,
        "accepted": False,
        "reason": Reason.NO_SUCH_JOB.value,
    }
    assert back[1].fields == {
        "printer_id": "x1-0",
        "command_id": None,
        "type": "unknown",
        "job_id": None,
        "issued_at": None,
        "not_after": None,
        "accepted": True,
        "reason": None,
    }
    assert back[2].fields == {"printer_id": "x1-0", "fault": "hotend runaway"}
    assert back[3].fields == {"printer_id": "x1-0"}
    assert back == recorder.events


def test_a_history_line_that_is_not_an_event_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"at": "soon", "kind": "print_started"}\n')
    with pytest.raises(ValueError, match="event time must be an integer"):
        load_history(path)
