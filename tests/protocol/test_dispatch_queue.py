"""The planner as a farm's queue: wait codes, requirements, pools, priorities, wear and the
heat-up cap.

Each example builds the planner's inputs by hand and reads its decisions; the property at the end
draws whole farms of loadouts, pools, priorities and a cap, and checks that every stage and start
goes where its job may go and fits, that the cap holds, and that no job starts on a printer a
job of higher priority could have used.
"""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    DispatchPolicy,
    Expire,
    JobView,
    LinkEvidence,
    PlateNeeded,
    PrinterView,
    Requirements,
    SafetySettings,
    Stage,
    Start,
    Unassign,
    WaitCode,
    Waiting,
)
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import MaterialSlot, PlateStatus, PrinterStatus

NOW = 1_000_000
POLICY = DispatchPolicy()
LINK = LinkEvidence(verified_at=NOW, probe_interval_ms=2_000)
NO_LINK = LinkEvidence(verified_at=None, probe_interval_ms=2_000)
PETG_04 = Requirements(material="PETG", nozzle_um=400)


def printer(
    printer_id: str,
    *,
    model: str = "p1",
    materials: tuple[str, ...] = ("PETG",),
    nozzle_um: int | None = 400,
    plate: PlateStatus = PlateStatus.CLEAR,
    status: PrinterStatus = PrinterStatus.IDLE,
    pools: frozenset[str] = frozenset(),
    print_hours: float = 0.0,
    heating: bool = False,
    operators: frozenset[str] = frozenset({"ann"}),
) -> PrinterView:
    slots = tuple(MaterialSlot(slot=i + 1, material=m) for i, m in enumerate(materials))
    return PrinterView(
        printer_id=printer_id,
        model=model,
        online=True,
        reported_at=NOW,
        status=status,
        plate=plate,
        fault=None,
        clock_synced=True,
        operators=operators,
        reported=SafetySettings(),
        slots=slots,
        materials=frozenset(materials),
        nozzle_um=nozzle_um,
        pools=pools,
        print_hours=print_hours,
        heating=heating,
    )


def job(
    job_id: str = "j",
    *,
    printer_id: str | None = None,
    model: str | None = None,
    pool_id: str | None = None,
    state: JobState = JobState.QUEUED,
    assigned: str | None = None,
    priority: int = 0,
    created_at: int = NOW - 1_000,
    requirements: Requirements = PETG_04,
) -> JobView:
    if printer_id is None and pool_id is None and model is None:
        model = "p1"
    return JobView(
        id=job_id,
        created_at=created_at,
        start_by=NOW + 600_000,
        state=state,
        sha256="ab" * 32,
        submitter="ann",
        printer_id=printer_id,
        model=model,
        pool_id=pool_id,
        assigned_printer=assigned or printer_id,
        priority=priority,
        requirements=requirements,
    )


def fleet(*printers: PrinterView) -> dict[str, PrinterView]:
    return {p.printer_id: p for p in printers}


def plan(
    jobs: list[JobView],
    printers: dict[str, PrinterView],
    *,
    policy: DispatchPolicy = POLICY,
    link: LinkEvidence = LINK,
) -> list[dispatch.Decision]:
    return dispatch.plan(NOW, jobs, printers, link, policy)


def waits(decisions: list[dispatch.Decision]) -> dict[str, tuple[WaitCode, str]]:
    return {d.job_id: (d.code, d.reason) for d in decisions if isinstance(d, Waiting)}


# -- wait codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"plate": PlateStatus.OCCUPIED}, WaitCode.PLATE_OCCUPIED, "remove the print"),
        (
            {"plate": PlateStatus.NEEDS_CONFIRMATION},
            WaitCode.PLATE_UNCONFIRMED,
            "`printfleet confirm-plate x1-01`",
        ),
        ({"online": False}, WaitCode.OFFLINE, "x1-01 is offline"),
        ({"reported_at": NOW - 60_000}, WaitCode.REPORT_STALE, "no fresh report from x1-01"),
        ({"cloud_enabled": False}, WaitCode.LAN_ONLY, "LAN only"),
        ({"fault": "heater runaway"}, WaitCode.THERMAL_FAULT, "heater runaway"),
        ({"status": PrinterStatus.PRINTING}, WaitCode.BUSY, "x1-01 is busy (printing)"),
        ({"clock_synced": False}, WaitCode.CLOCK_UNSYNCED, "clock"),
        ({"reported": None}, WaitCode.SETTINGS_PENDING, "report its safety settings"),
    ],
)
def test_a_staged_job_says_in_code_and_words_what_holds_it(
    change: dict[str, object], code: WaitCode, words: str
) -> None:
    view = replace(printer("x1-01"), **change)  # type: ignore[arg-type]
    staged = job(printer_id="x1-01", state=JobState.STAGED)
    ((got_code, sentence),) = waits(plan([staged], fleet(view))).values()
    assert got_code is code
    assert words in sentence


def test_a_plate_needing_a_person_asks_for_one_and_says_how() -> None:
    view = printer("p1-02", plate=PlateStatus.NEEDS_CONFIRMATION)
    decisions = plan([job(printer_id="p1-02", state=JobState.STAGED)], fleet(view))
    assert decisions[0] == PlateNeeded("j", "p1-02")
    assert waits(decisions)["j"] == (
        WaitCode.PLATE_UNCONFIRMED,
        (
            "the plate of p1-02 needs a person to confirm it is clear: "
            "`printfleet confirm-plate p1-02`"
        ),
    )


def test_a_wait_is_recorded_once_and_cleared_when_the_job_starts() -> None:
    view = printer("p", plate=PlateStatus.OCCUPIED)
    staged = job(printer_id="p", state=JobState.STAGED)
    (wait,) = plan([staged], fleet(view))
    assert isinstance(wait, Waiting)
    held = dispatch.waiting(staged, wait)
    assert (held.wait, held.reason) == (WaitCode.PLATE_OCCUPIED, wait.reason)
    assert plan([held], fleet(view)) == []
    (start,) = plan([held], fleet(printer("p")))
    assert isinstance(start, Start)
    started = dispatch.dispatched(held, "c", start.not_after)
    assert (started.wait, started.reason) == (None, "")


def test_an_expired_job_keeps_its_last_code_and_says_what_held_it() -> None:
    view = printer("p", plate=PlateStatus.OCCUPIED)
    staged = job(printer_id="p", state=JobState.STAGED)
    (wait,) = plan([staged], fleet(view))
    assert isinstance(wait, Waiting)
    late = replace(dispatch.waiting(staged, wait), start_by=NOW)
    assert plan([late], fleet(view)) == [Expire("j")]
    expired = dispatch.expire(late).job
    assert expired.state is JobState.EXPIRED
    assert expired.wait is WaitCode.PLATE_OCCUPIED
    assert expired.reason == f"start window closed while waiting: {wait.reason}"


def test_a_job_that_stops_waiting_for_a_printer_event_forgets_its_wait() -> None:
    held = replace(job(printer_id="p", state=JobState.STAGED), wait=WaitCode.BUSY, reason="x")
    cancelled = dispatch.cancel(held).job
    assert cancelled.wait is None


def test_without_a_proven_link_a_waiting_job_says_so_once() -> None:
    queued = job()
    (wait,) = plan([queued], fleet(printer("p")), link=NO_LINK)
    assert isinstance(wait, Waiting)
    assert wait.code is WaitCode.NO_LINK
    assert plan([dispatch.waiting(queued, wait)], fleet(printer("p")), link=NO_LINK) == []


def test_a_job_for_a_printer_never_heard_from_says_so() -> None:
    assert waits(plan([job(printer_id="gone")], {})) == {
        "j": (WaitCode.NEVER_REPORTED, "gone has never reported")
    }


# -- requirements ----------------------------------------------------------------------------------


def test_a_pinned_printer_with_the_wrong_material_is_not_handed_the_file() -> None:
    view = printer("x1-02", materials=("PLA",))
    assert waits(plan([job(printer_id="x1-02")], fleet(view))) == {
        "j": (
            WaitCode.MATERIAL_MISMATCH,
            "x1-02 has PLA loaded, this job needs PETG; load PETG or submit elsewhere",
        )
    }


def test_a_pinned_printer_with_the_wrong_nozzle_says_which_it_has() -> None:
    view = printer("x1-02", nozzle_um=600)
    ((code, sentence),) = waits(plan([job(printer_id="x1-02")], fleet(view))).values()
    assert code is WaitCode.MATERIAL_MISMATCH
    assert sentence.startswith("x1-02 has a 0.6 mm nozzle, this job needs a 0.4 mm nozzle")


def test_a_printer_that_reports_no_materials_takes_no_job_that_needs_one() -> None:
    view = printer("old", materials=())
    ((code, sentence),) = waits(plan([job(printer_id="old")], fleet(view))).values()
    assert code is WaitCode.MATERIAL_MISMATCH
    assert "old reports no loaded material" in sentence
    anything = job(printer_id="old", requirements=Requirements())
    assert plan([anything], fleet(view)) == [Stage("j", "old")]


def test_a_model_job_goes_only_to_a_printer_that_fits_it() -> None:
    printers = fleet(
        printer("p1-01", materials=("PLA",)),
        printer("p1-02", nozzle_um=600),
        printer("p1-03", materials=("PLA", "PETG")),
    )
    assert plan([job()], printers) == [Stage("j", "p1-03")]


def test_a_model_job_nothing_fits_says_what_it_needs() -> None:
    printers = fleet(printer("p1-01", materials=("PLA",)))
    assert waits(plan([job()], printers)) == {
        "j": (
            WaitCode.MATERIAL_MISMATCH,
            "no p1 with PETG and a 0.4 mm nozzle that you may use",
        )
    }


def test_a_model_job_whose_printers_are_all_held_names_the_one_soonest_released() -> None:
    printers = fleet(
        replace(printer("p1-01"), fault="heater runaway"),
        replace(printer("p1-02"), online=False),
    )
    ((code, sentence),) = waits(plan([job()], printers)).values()
    assert code is WaitCode.NO_PRINTER_FREE
    assert sentence.startswith("no p1 with PETG and a 0.4 mm nozzle that you may operate is free")
    assert sentence.endswith("heater runaway: fix it and clear the fault there")
    # A printer that is merely busy is released sooner than a fault.
    printers["p1-02"] = printer("p1-02")
    busy = job("busy", printer_id="p1-02", state=JobState.PRINTING)
    ((code, sentence),) = waits(plan([busy, job()], printers)).values()
    assert code is WaitCode.NO_PRINTER_FREE
    assert sentence.endswith("p1-02 is running another job")


def test_a_model_job_with_no_printer_at_all_says_so() -> None:
    ((code, sentence),) = waits(plan([job(model="x1")], fleet(printer("p1-01")))).values()
    assert code is WaitCode.NO_PRINTER
    assert "no printer of model x1 that you may operate" in sentence


def test_a_loadout_changed_after_staging_sends_a_model_job_back_and_holds_a_pinned_one() -> None:
    swapped = fleet(printer("p1-01", materials=("PLA",)))
    anywhere = job(state=JobState.STAGED, assigned="p1-01")
    (decision,) = plan([anywhere], swapped)
    assert isinstance(decision, Unassign)
    assert decision.code is WaitCode.MATERIAL_MISMATCH
    change = dispatch.unassign(anywhere, decision)
    assert change.job.state is JobState.QUEUED
    assert change.job.assigned_printer is None
    assert change.job.wait is WaitCode.MATERIAL_MISMATCH
    pinned = job(printer_id="p1-01", state=JobState.STAGED)
    assert waits(plan([pinned], swapped))["j"][0] is WaitCode.MATERIAL_MISMATCH


# -- pools, priorities, wear -----------------------------------------------------------------------


def test_a_pool_job_goes_only_to_the_pools_printers() -> None:
    printers = fleet(
        printer("a", print_hours=1),
        printer("b", pools=frozenset({"farm"}), print_hours=50),
    )
    assert plan([job(pool_id="farm")], printers) == [Stage("j", "b")]
    assert waits(plan([job(pool_id="other")], printers))["j"][0] is WaitCode.NO_PRINTER


def test_the_least_worn_printer_goes_first() -> None:
    printers = fleet(printer("a", print_hours=300), printer("b", print_hours=12.5))
    assert plan([job()], printers) == [Stage("j", "b")]


def test_the_higher_priority_job_is_planned_first_then_the_older() -> None:
    printers = fleet(printer("a"))
    old = job("old", created_at=NOW - 9_000)
    urgent = job("urgent", priority=5)
    newer = job("newer", created_at=NOW - 10)
    decisions = plan([old, newer, urgent], printers)
    assert decisions[0] == Stage("urgent", "a")
    assert dispatch.planning_order(urgent) < dispatch.planning_order(old)
    assert dispatch.planning_order(old) < dispatch.planning_order(newer)


def test_a_lower_priority_job_staged_first_does_not_take_the_printer() -> None:
    printers = fleet(printer("a"))
    low = job("low", state=JobState.STAGED, assigned="a", created_at=NOW - 50_000)
    high = job("high", priority=1)
    decisions = plan([low, high], printers)
    assert Stage("high", "a") in decisions
    assert not [d for d in decisions if isinstance(d, Start)]
    assert waits(decisions)["low"][0] is WaitCode.BUSY
    # While the file goes to the printer, and once it is there, the printer stays the high's.
    on_the_way = replace(high, assigned_printer="a", stage_sent_at=NOW)
    assert not [d for d in plan([low, on_the_way], printers) if isinstance(d, Start)]
    staged = replace(on_the_way, state=JobState.STAGED)
    (start,) = [d for d in plan([low, staged], printers) if isinstance(d, Start)]
    assert start.job_id == "high"


# -- the heat-up cap -------------------------------------------------------------------------------


def test_at_the_heat_up_cap_no_start_is_issued() -> None:
    capped = DispatchPolicy(max_heating=2)
    printers = fleet(
        printer("a"),
        printer("b", status=PrinterStatus.PRINTING, heating=True),
        printer("c"),
    )
    in_flight = replace(
        job("flying", printer_id="c", state=JobState.DISPATCHED), not_after=NOW + 10_000
    )
    staged = job(printer_id="a", state=JobState.STAGED)
    assert waits(plan([in_flight, staged], printers, policy=capped)) == {
        "j": (WaitCode.HEAT_UP_SLOT, "waiting for a heat-up slot (2 of 2 printers heating)")
    }
    # Without the cap, or below it, it starts.
    assert isinstance(plan([in_flight, staged], printers)[0], Start)
    assert isinstance(plan([staged], printers, policy=capped)[0], Start)


def test_starts_of_one_round_count_against_the_cap() -> None:
    printers = fleet(printer("a"), printer("b"), printer("c"))
    jobs = [job(p, printer_id=p, state=JobState.STAGED) for p in printers]
    decisions = plan(jobs, printers, policy=DispatchPolicy(max_heating=2))
    assert [d.job_id for d in decisions if isinstance(d, Start)] == ["a", "b"]
    assert waits(decisions)["c"][0] is WaitCode.HEAT_UP_SLOT


def test_a_print_not_yet_reported_counts_as_heating() -> None:
    printers = fleet(printer("a"), printer("b"))
    printing = job("printing", printer_id="b", state=JobState.PRINTING)
    staged = job(printer_id="a", state=JobState.STAGED)
    capped = DispatchPolicy(max_heating=1)
    assert waits(plan([printing, staged], printers, policy=capped))["j"][0] is (
        WaitCode.HEAT_UP_SLOT
    )
    heated = fleet(printer("a"), printer("b", status=PrinterStatus.PRINTING))
    heated["b"] = replace(heated["b"], job_id="printing")
    assert isinstance(plan([printing, staged], heated, policy=capped)[0], Start)


# -- the property ----------------------------------------------------------------------------------

PRINTER_IDS = ("p-0", "p-1", "p-2", "p-3")
MATERIALS = ("PLA", "PETG")


@st.composite
def farms(
    draw: st.DrawFn,
) -> tuple[dict[str, PrinterView], list[JobView], DispatchPolicy]:
    printers = {}
    for printer_id in PRINTER_IDS:
        printers[printer_id] = printer(
            printer_id,
            model=draw(st.sampled_from(["p1", "x1"])),
            materials=tuple(draw(st.sets(st.sampled_from(MATERIALS)))),
            nozzle_um=draw(st.sampled_from([None, 400, 600])),
            plate=draw(st.sampled_from([PlateStatus.CLEAR, PlateStatus.OCCUPIED])),
            status=draw(st.sampled_from([PrinterStatus.IDLE, PrinterStatus.PRINTING])),
            pools=draw(st.frozensets(st.sampled_from(["a", "b"]))),
            print_hours=draw(st.sampled_from([0.0, 10.0, 99.5])),
            heating=draw(st.booleans()),
            operators=frozenset({"ann", *draw(st.sets(st.sampled_from(["bob"])))}),
        )
    jobs = []
    for index in range(draw(st.integers(1, 6))):
        target = draw(st.sampled_from(("pinned", "model", "pool")))
        pinned = draw(st.sampled_from(PRINTER_IDS)) if target == "pinned" else None
        state = draw(st.sampled_from([JobState.QUEUED, JobState.STAGED]))
        assigned = pinned or draw(st.sampled_from((None, *PRINTER_IDS)))
        if state is JobState.STAGED and assigned is None:
            assigned = PRINTER_IDS[index % len(PRINTER_IDS)]
        drawn = job(
            f"job-{index}",
            printer_id=pinned,
            model=draw(st.sampled_from(["p1", "x1"])) if target == "model" else None,
            pool_id=draw(st.sampled_from(["a", "b"])) if target == "pool" else None,
            state=state,
            assigned=assigned,
            priority=draw(st.integers(-1, 1)),
            created_at=NOW - draw(st.integers(1, 5)),
            requirements=Requirements(
                material=draw(st.sampled_from((None, *MATERIALS))),
                nozzle_um=draw(st.sampled_from([None, 400])),
            ),
        )
        submitter = draw(st.sampled_from(["ann", "bob"]))
        jobs.append(
            replace(
                drawn,
                submitter=submitter,
                stage_sent_at=NOW - POLICY.stage_retry_ms if assigned else None,
            )
        )
    cap = draw(st.sampled_from([None, 1, 2]))
    return printers, jobs, DispatchPolicy(max_heating=cap)


def _may_use(job_view: JobView, view: PrinterView) -> bool:
    """Judged here from the job and printer alone, not with the planner's helpers."""
    if job_view.printer_id is not None:
        target = view.printer_id == job_view.printer_id
    elif job_view.pool_id is not None:
        target = job_view.pool_id in view.pools
    else:
        target = view.model == job_view.model
    needs = job_view.requirements
    return (
        target
        and job_view.submitter in view.operators
        and (needs.material is None or needs.material in view.materials)
        and (needs.nozzle_um is None or needs.nozzle_um == view.nozzle_um)
    )


@given(farms())
def test_every_start_fits_its_job_keeps_the_cap_and_passes_no_higher_job_over(
    drawn: tuple[dict[str, PrinterView], list[JobView], DispatchPolicy],
) -> None:
    printers, jobs, policy = drawn
    by_id = {j.id: j for j in jobs}
    decisions = plan(jobs, printers, policy=policy)
    staged = {d.job_id for d in decisions if isinstance(d, Stage)}
    starts = [d for d in decisions if isinstance(d, Start)]
    for decision in decisions:
        if isinstance(decision, Stage | Start):
            assert _may_use(by_id[decision.job_id], printers[decision.printer_id]), decision
    if policy.max_heating is not None and starts:
        heating = {p for p, view in printers.items() if view.heating}
        assert len(heating | {s.printer_id for s in starts}) <= policy.max_heating
    for start in starts:
        started = by_id[start.job_id]
        for other in jobs:
            if other.priority <= started.priority or not _may_use(
                other, printers[start.printer_id]
            ):
                continue
            # A higher job that could use the printer either was sent to another one this round,
            # or waits on another one already.
            assert other.assigned_printer != start.printer_id, (start, other)
            assert other.assigned_printer is not None or other.id in staged, (start, other)
