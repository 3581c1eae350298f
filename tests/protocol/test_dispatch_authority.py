"""The planner's S1 and S5 rules on their own: who may print where, and settings that must agree.

Each example builds the planner's inputs by hand and reads its decisions; the property at the end
draws whole fleets of owners, shares, settings and jobs and checks that no stage or start ever
goes to a printer its job's submitter may not operate, or that disagrees with its owner.
"""

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    ApplySettings,
    DispatchPolicy,
    JobView,
    LinkEvidence,
    PlateNeeded,
    PrinterView,
    SafetySettings,
    Stage,
    Start,
    Waiting,
    Withdraw,
)
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import PlateStatus, PrinterStatus

NOW = 1_000_000
POLICY = DispatchPolicy()
LINK = LinkEvidence(verified_at=NOW, probe_interval_ms=2_000)
ON, OFF = SafetySettings(plate_check=True), SafetySettings(plate_check=False)


def printer(
    printer_id: str,
    *operators: str,
    model: str = "p1",
    plate: PlateStatus = PlateStatus.CLEAR,
    desired: SafetySettings = ON,
    reported: SafetySettings | None = ON,
) -> PrinterView:
    return PrinterView(
        printer_id=printer_id,
        model=model,
        online=True,
        reported_at=NOW,
        status=PrinterStatus.IDLE,
        plate=plate,
        fault=None,
        clock_synced=True,
        operators=frozenset(operators),
        desired=desired,
        reported=reported,
    )


def job(
    submitter: str,
    *,
    printer_id: str | None = None,
    model: str | None = None,
    state: JobState = JobState.QUEUED,
    assigned: str | None = None,
) -> JobView:
    return JobView(
        id=f"job-of-{submitter}",
        created_at=NOW - 1_000,
        start_by=NOW + 600_000,
        state=state,
        sha256="ab" * 32,
        submitter=submitter,
        printer_id=printer_id,
        model=None if printer_id is not None else (model or "p1"),
        assigned_printer=assigned if assigned is not None else printer_id,
        stage_sent_at=NOW - 100 if state is JobState.QUEUED and assigned else None,
    )


def fleet(*printers: PrinterView) -> dict[str, PrinterView]:
    return {p.printer_id: p for p in printers}


def plan(jobs: list[JobView], printers: dict[str, PrinterView]) -> list[dispatch.Decision]:
    return dispatch.plan(NOW, jobs, printers, LINK, POLICY)


# -- S1: who may print where ---------------------------------------------------------------------


def test_a_model_wide_job_goes_to_the_submitters_printer_not_a_strangers_that_sorts_first() -> None:
    printers = fleet(printer("a-strangers-p1", "yvonne"), printer("z-my-p1", "xavier"))
    assert plan([job("xavier", model="p1")], printers) == [Stage("job-of-xavier", "z-my-p1")]


def test_a_model_wide_job_waits_when_only_strangers_printers_are_free() -> None:
    printers = fleet(printer("yvonnes-p1", "yvonne"))
    (decision,) = plan([job("xavier", model="p1")], printers)
    assert isinstance(decision, Waiting)
    assert "may operate" in decision.reason


def test_an_operator_share_lets_a_job_in_and_a_viewer_share_does_not() -> None:
    # The roster lists owners and operators only; a viewer is simply not among them.
    shared = fleet(printer("yvonnes-p1", "yvonne", "xavier"))
    assert plan([job("xavier", model="p1")], shared) == [Stage("job-of-xavier", "yvonnes-p1")]
    viewed = fleet(printer("yvonnes-p1", "yvonne"))
    assert not [d for d in plan([job("xavier", model="p1")], viewed) if isinstance(d, Stage)]


def test_a_share_revoked_while_a_model_wide_job_is_staged_sends_it_back_to_the_queue() -> None:
    staged = job("xavier", model="p1", state=JobState.STAGED, assigned="yvonnes-p1")
    printers = fleet(printer("yvonnes-p1", "yvonne"), printer("xaviers-p1", "xavier"))
    (decision,) = plan([staged], printers)
    assert decision == Withdraw(
        staged.id, "yvonnes-p1", "the submitter may no longer operate yvonnes-p1"
    )
    change = dispatch.withdraw(staged, decision.reason)
    assert change.job.state is JobState.QUEUED
    assert change.job.assigned_printer is None
    assert not change.notify
    # Next round, the job goes to a printer its submitter may still use.
    assert plan([change.job], printers) == [Stage(staged.id, "xaviers-p1")]


def test_a_share_revoked_while_a_pinned_job_waits_rejects_it_and_tells_the_submitter() -> None:
    waiting = job("xavier", printer_id="yvonnes-p1", state=JobState.STAGED)
    (decision,) = plan([waiting], fleet(printer("yvonnes-p1", "yvonne")))
    assert isinstance(decision, Withdraw)
    change = dispatch.withdraw(waiting, decision.reason)
    assert change.job.state is JobState.REJECTED
    assert change.notify
    assert "may no longer operate yvonnes-p1" in change.job.reason


def test_a_start_is_never_planned_where_the_submitter_lost_the_printer_even_off_link() -> None:
    staged = job("xavier", printer_id="p", state=JobState.STAGED)
    offline = LinkEvidence(verified_at=None, probe_interval_ms=2_000)
    decisions = dispatch.plan(NOW, [staged], fleet(printer("p", "yvonne")), offline, POLICY)
    assert [type(d) for d in decisions] == [Withdraw]


def test_a_job_already_dispatched_is_not_withdrawn() -> None:
    dispatched = replace(
        job("xavier", printer_id="p", state=JobState.DISPATCHED),
        command_id="c",
        not_after=NOW + 10_000,
    )
    assert plan([dispatched], fleet(printer("p", "yvonne"))) == []


# -- S5: settings as desired and reported state ----------------------------------------------------


def staged_on(view: PrinterView) -> list[dispatch.Decision]:
    return plan([job("o", printer_id=view.printer_id, state=JobState.STAGED)], fleet(view))


def test_nothing_starts_before_the_printer_reports_its_settings() -> None:
    decisions = staged_on(printer("p", "o", reported=None))
    assert ApplySettings("p", ON) in decisions
    assert not [d for d in decisions if isinstance(d, Start)]
    (wait,) = [d for d in decisions if isinstance(d, Waiting)]
    assert wait.reason == "waiting for p to report its safety settings"


def test_a_check_turned_back_on_counts_before_the_printer_confirms_it() -> None:
    # The printer still runs with the check off and reports its plate unchecked: not ready.
    view = printer("p", "o", desired=ON, reported=OFF, plate=PlateStatus.UNCHECKED)
    decisions = staged_on(view)
    assert ApplySettings("p", ON) in decisions
    assert not [d for d in decisions if isinstance(d, Start)]
    (wait,) = [d for d in decisions if isinstance(d, Waiting)]
    assert "apply its plate check setting (on)" in wait.reason


def test_a_check_turned_off_counts_only_once_the_printer_reports_it() -> None:
    pending = printer("p", "o", desired=OFF, reported=ON, plate=PlateStatus.NEEDS_CONFIRMATION)
    decisions = staged_on(pending)
    assert ApplySettings("p", OFF) in decisions
    assert not [d for d in decisions if isinstance(d, Start | PlateNeeded)]
    applied = replace(pending, reported=OFF, plate=PlateStatus.UNCHECKED)
    (start,) = staged_on(applied)
    assert isinstance(start, Start)
    assert start.plate_check is False


def test_a_start_carries_the_desired_plate_check() -> None:
    (start,) = staged_on(printer("p", "o"))
    assert isinstance(start, Start)
    assert start.plate_check is True


def test_a_plate_not_known_clear_is_never_ready_under_the_check() -> None:
    for plate in (PlateStatus.UNCHECKED, PlateStatus.OCCUPIED, PlateStatus.NEEDS_CONFIRMATION):
        decisions = staged_on(printer("p", "o", plate=plate))
        assert not [d for d in decisions if isinstance(d, Start)], plate
        (wait,) = [d for d in decisions if isinstance(d, Waiting)]
        assert "plate" in wait.reason


def test_settings_are_resent_at_a_measured_pace_and_only_over_a_proven_link() -> None:
    view = printer("p", "o", reported=OFF)
    assert dispatch.plan_settings(NOW, fleet(view), LINK, POLICY) == [ApplySettings("p", ON)]
    just_sent = replace(view, settings_sent_at=NOW - 1_000)
    assert dispatch.plan_settings(NOW, fleet(just_sent), LINK, POLICY) == []
    long_ago = replace(view, settings_sent_at=NOW - POLICY.settings_retry_ms)
    assert dispatch.plan_settings(NOW, fleet(long_ago), LINK, POLICY) == [ApplySettings("p", ON)]
    unproven = LinkEvidence(verified_at=NOW - 10_000, probe_interval_ms=2_000)
    assert dispatch.plan_settings(NOW, fleet(view), unproven, POLICY) == []
    stale = replace(view, reported_at=NOW - POLICY.report_max_age_ms - 1)
    assert dispatch.plan_settings(NOW, fleet(stale), LINK, POLICY) == []
    agreeing = replace(view, reported=ON)
    assert dispatch.plan_settings(NOW, fleet(agreeing), LINK, POLICY) == []
    unsynced = replace(view, clock_synced=False)  # it would refuse the command anyway
    assert dispatch.plan_settings(NOW, fleet(unsynced), LINK, POLICY) == []


def test_a_wait_reason_is_recorded_once_not_every_round() -> None:
    view = printer("p", "o", plate=PlateStatus.OCCUPIED)
    staged = job("o", printer_id="p", state=JobState.STAGED)
    (wait,) = plan([staged], fleet(view))
    assert isinstance(wait, Waiting)
    assert plan([dispatch.waiting(staged, wait)], fleet(view)) == []


# -- the property ----------------------------------------------------------------------------------

USERS = ("ann", "bob", "cem")
PRINTER_IDS = ("p-0", "p-1", "p-2", "p-3")


@st.composite
def printers_and_jobs(draw: st.DrawFn) -> tuple[dict[str, PrinterView], list[JobView]]:
    printers = {}
    for printer_id in PRINTER_IDS:
        owner = draw(st.sampled_from(USERS))
        operators = draw(st.frozensets(st.sampled_from(USERS))) | {owner}
        desired = SafetySettings(draw(st.booleans()))
        reported = draw(st.sampled_from([None, ON, OFF]))
        plate = draw(st.sampled_from(list(PlateStatus)))
        printers[printer_id] = replace(
            printer(printer_id, model=draw(st.sampled_from(["p1", "x1"])), plate=plate),
            operators=operators,
            desired=desired,
            reported=reported,
        )
    jobs = []
    for index in range(draw(st.integers(1, 6))):
        pinned = draw(st.sampled_from((None, *PRINTER_IDS)))
        state = draw(st.sampled_from([JobState.QUEUED, JobState.STAGED]))
        assigned = pinned or draw(st.sampled_from((None, *PRINTER_IDS)))
        if state is JobState.STAGED and assigned is None:
            assigned = PRINTER_IDS[index % len(PRINTER_IDS)]
        jobs.append(
            replace(
                job(draw(st.sampled_from(USERS)), printer_id=pinned, state=state),
                id=f"job-{index}",
                model=None if pinned else draw(st.sampled_from(["p1", "x1"])),
                assigned_printer=assigned,
                stage_sent_at=NOW - POLICY.stage_retry_ms if assigned else None,
            )
        )
    return printers, jobs


@given(printers_and_jobs())
def test_no_stage_or_start_outside_the_submitters_printers_or_against_the_owners_settings(
    drawn: tuple[dict[str, PrinterView], list[JobView]],
) -> None:
    printers, jobs = drawn
    by_id = {j.id: j for j in jobs}
    for decision in plan(jobs, printers):
        if isinstance(decision, Stage | Start):
            target = printers[decision.printer_id]
            assert by_id[decision.job_id].submitter in target.operators
        if isinstance(decision, Start):
            target = printers[decision.printer_id]
            assert target.reported == target.desired
            assert decision.plate_check is target.desired.plate_check
            assert not target.desired.plate_check or target.plate is PlateStatus.CLEAR
