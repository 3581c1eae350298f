"""Every chaos scenario, short (time-scaled), against real Mosquitto, cloud links and agents.

With the safeguards on, no scenario may break a promise and every job must end. The incident
replay with them off must show phantom prints, proving the checker sees what they prevent.
Longer and more seeds: ``printfleet chaos run all --seeds N [--full]``.
"""

import json
from pathlib import Path

import pytest

from printfleet.chaos.checker import ViolationKind
from printfleet.chaos.recorder import Kind
from printfleet.chaos.run import SCENARIOS, RunOptions, run_scenario, write_json, write_timeline

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(150)]

INCIDENT = "incident-2023-08-15"
LATE_START = "late-start"
OTHERS = [
    pytest.param(name, marks=pytest.mark.postgres)
    if SCENARIOS[name].database == "postgres"
    else name
    for name in SCENARIOS
    if name not in {INCIDENT, LATE_START}
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
