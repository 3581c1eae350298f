"""Every chaos scenario, short (time-scaled), against real Mosquitto, cloud links and agents.

With the safeguards on, no scenario may break a promise and every job must end. The incident
replay with them off must show phantom prints, and the tenants scenario with them off starts on
strangers' printers and onto old prints, proving the checker sees what they prevent.
Longer and more seeds: ``printfleet chaos run all --seeds N [--full]``.
"""

import json
from pathlib import Path

import pytest

from printfleet.chaos.checker import AUTHORITY_KINDS, PLATE_KINDS, ViolationKind
from printfleet.chaos.recorder import Kind
from printfleet.chaos.report import write_json, write_timeline
from printfleet.chaos.run import run_scenario
from printfleet.chaos.scenarios import SCENARIOS, RunOptions

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(150)]

INCIDENT = "incident-2023-08-15"
LATE_START = "late-start"
TENANTS = "tenants-and-settings"
OTHERS = [
    pytest.param(name, marks=pytest.mark.postgres)
    if SCENARIOS[name].database == "postgres"
    else name
    for name in SCENARIOS
    if name not in {INCIDENT, LATE_START, TENANTS}
]


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", [1, 2])
async def test_the_2023_incident_breaks_no_promise_with_safeguards_on(seed: int) -> None:
    result = await run_scenario(INCIDENT, RunOptions(seed=seed, safeguards=True))
    assert result.settled, result.summary()
    assert result.violations == [], result.summary()
    assert result.faults_injected == 1
    assert result.starts > 0
    # Re-requests made no second job: one job per request.
    assert result.jobs == result.requests
    assert (
        result.job_states.get("expired", 0) + result.job_states.get("completed", 0) == result.jobs
    )


@pytest.mark.asyncio
async def test_the_2023_incident_with_safeguards_off_shows_phantom_prints() -> None:
    result = await run_scenario(INCIDENT, RunOptions(seed=1, safeguards=False))
    found = {violation.kind for violation in result.violations}
    assert ViolationKind.OCCUPIED_PLATE in found, result.summary()
    assert ViolationKind.DUPLICATE_START in found, result.summary()
    document = json.loads(write_json([result]))
    assert document["safeguards"] == "off"
    assert len(document["violations"]) == len(result.violations)
    assert {"kind", "invariant", "evidence"} <= set(document["violations"][0])


@pytest.mark.asyncio
async def test_a_start_delivered_after_its_deadline_is_refused_and_the_job_still_ends() -> None:
    result = await run_scenario(LATE_START, RunOptions(seed=4, safeguards=True))
    assert result.settled, result.summary()
    assert result.violations == [], result.summary()
    refused = [
        event
        for event in result.events
        if event.kind is Kind.COMMAND_RECEIVED
        and event.text("type") == "start"
        and event.text("reason") == "STALE"
    ]
    assert refused, "the delayed start never arrived: the fault was not injected"


@pytest.mark.asyncio
async def test_without_the_printers_deadline_check_the_late_start_prints() -> None:
    result = await run_scenario(LATE_START, RunOptions(seed=4, safeguards=False))
    assert ViolationKind.STALE_START in {v.kind for v in result.violations}, result.summary()


@pytest.mark.asyncio
async def test_tenants_print_only_where_they_may_and_a_check_turned_on_while_away_holds() -> None:
    result = await run_scenario(TENANTS, RunOptions(seed=0, safeguards=True))
    assert result.settled, result.summary()
    assert result.violations == [], result.summary()
    assert result.seconds < 40, result.summary()
    events = result.events
    submitters = {
        e.text("job_id"): e.text("submitter") for e in events if e.kind is Kind.INTENT_CREATED
    }
    starts = {e.text("job_id"): e for e in events if e.kind is Kind.PRINT_STARTED}
    assert len(starts) == result.jobs  # every job printed: nothing was simply refused
    # ana may only watch ben's x1-1: none of her jobs printed there.
    assert {s.text("printer_id") for j, s in starts.items() if submitters[j] == "ana"} == {
        "x1-0",
        "p1-2",
    }
    # ben's job that waited on ana's x1-0 when she revoked his share printed on his own x1-1.
    staged_on_x1_0 = {
        e.text("job_id")
        for e in events
        if e.kind is Kind.COMMAND_PUBLISHED
        and e.text("type") == "stage"
        and e.text("printer_id") == "x1-0"
        and submitters.get(e.text("job_id")) == "ben"
    }
    assert staged_on_x1_0, "ben's job never waited on x1-0: the revocation tested nothing"
    assert {starts[j].text("printer_id") for j in staged_on_x1_0} == {"x1-1"}
    # Both printers came back with the check off and the old print on the plate; the starts
    # after that found it cleared and checked.
    faults = [e.text("fault") for e in events if e.kind is Kind.FAULT_INJECTED]
    assert faults.count("printer stopped") == faults.count("printer frozen") == 1
    after_away = {
        e.text("printer_id"): e
        for e in events
        if e.kind is Kind.PRINT_STARTED and e.text("printer_id") in {"x1-0", "p1-2"}
    }
    assert {e.get("plate_check") for e in after_away.values()} == {True}
    assert {e.number("plate_objects") for e in after_away.values()} == {0}


@pytest.mark.asyncio
async def test_without_safeguards_tenants_print_on_strangers_printers_and_old_prints() -> None:
    result = await run_scenario(TENANTS, RunOptions(seed=0, safeguards=False))
    found = {violation.kind for violation in result.violations}
    assert found & AUTHORITY_KINDS, result.summary()
    assert found & PLATE_KINDS, result.summary()
    # ana's second job for "any x1" went to ben's x1-1, where she may only watch.
    foreign = [v for v in result.violations if v.kind is ViolationKind.FOREIGN_START]
    assert any("by ana" in v.evidence and "x1-1" in v.evidence for v in foreign), result.summary()


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.parametrize("name", OTHERS)
async def test_every_other_scenario_breaks_no_promise(name: str, tmp_path: Path) -> None:
    result = await run_scenario(name, RunOptions(seed=2, safeguards=True))
    assert result.settled, result.summary()
    assert result.violations == [], result.summary()
    assert result.faults_injected >= 1
    assert result.jobs > 0

    page = tmp_path / "timeline.html"
    write_timeline(result, page)
    assert "<svg" in page.read_text()
