"""The seeded schedules judge a farm's queue: break the planner's routing, and they notice.

Half the seeded worlds are farms: printers loaded with different spools and nozzles, a pool, a
heat-up cap, jobs that need a material or nozzle, go to the pool and carry priorities, and people
who swap spools as the day goes. The checker judges every stage and start against the job's ask
and the printer's physical loadout (``UNFIT_FILE``, ``UNFIT_START``), every start against the
waiting jobs of higher priority (``PASSED_OVER``) and every landing against the cap
(``HEAT_UP_CAP``), from outside the code under test. Here the real planner holds them all, and a
planner blind to what jobs need, deaf to the cap or forgetful of priorities is caught.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from printfleet.chaos import simulation
from printfleet.chaos.checker import QUEUE_KINDS, ViolationKind
from printfleet.chaos.schedules import ScheduleResult, run_schedules
from printfleet.chaos.unsafe import plan_ignoring_requirements
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import DispatchPolicy, JobView, LinkEvidence, Planner, PrinterView

SEEDS = range(30)
"""Thirty seeds at fifteen steps: about half are farms, a few seconds in all."""


def _failing(results: list[ScheduleResult]) -> dict[int, set[ViolationKind]]:
    return {r.seed: {v.kind for v in r.violations} for r in results if not r.ok}


def test_the_real_planner_keeps_every_farm_promise_in_these_schedules() -> None:
    results = run_schedules(SEEDS, steps=15)
    assert _failing(results) == {}
    farms = [r for r in results if r.farm]
    assert len(farms) > len(SEEDS) // 4  # farms are drawn
    assert any(r.max_heating for r in farms)  # some with a cap
    assert sum(r.loadout_changes for r in farms) > len(farms)  # spools are swapped
    assert sum(r.queue_decisions for r in farms) > 0  # priorities, pools, needs decided starts


def plan_without_priorities(
    now: int,
    jobs: Iterable[JobView],
    printers: Mapping[str, PrinterView],
    link: LinkEvidence,
    policy: DispatchPolicy,
) -> list[dispatch.Decision]:
    """The real planner, first come first served: every job's priority forgotten."""
    return dispatch.plan(now, [replace(job, priority=0) for job in jobs], printers, link, policy)


def plan_without_the_cap(
    now: int,
    jobs: Iterable[JobView],
    printers: Mapping[str, PrinterView],
    link: LinkEvidence,
    policy: DispatchPolicy,
) -> list[dispatch.Decision]:
    """The real planner, deaf to the farm's heat-up cap."""
    return dispatch.plan(now, jobs, printers, link, replace(policy, max_heating=None))


def _planning_with(monkeypatch: pytest.MonkeyPatch, planner: Planner) -> None:
    original = simulation.FleetSimulation.__init__

    def swapped(self: simulation.FleetSimulation, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.planner = planner

    monkeypatch.setattr(simulation.FleetSimulation, "__init__", swapped)


def test_a_planner_blind_to_requirements_is_caught_by_the_same_schedules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _planning_with(monkeypatch, plan_ignoring_requirements)
    failing = _failing(run_schedules(SEEDS, steps=15))
    assert failing, "the schedules no longer notice a planner that ignores requirements"
    kinds = set().union(*failing.values())
    assert kinds & {ViolationKind.UNFIT_FILE, ViolationKind.UNFIT_START}, failing
    assert kinds <= QUEUE_KINDS | {ViolationKind.NO_TERMINAL_STATE}, failing


def test_a_planner_deaf_to_the_heat_up_cap_is_caught_by_the_same_schedules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _planning_with(monkeypatch, plan_without_the_cap)
    failing = _failing(run_schedules(SEEDS, steps=15))
    assert failing, "the schedules no longer notice a planner that ignores the heat-up cap"
    assert set().union(*failing.values()) == {ViolationKind.HEAT_UP_CAP}, failing


PRIORITY_SEEDS = (8, 75, 99)
"""Seeds (at thirty steps) whose farms put a job of higher priority behind a lower one's start
when priorities are forgotten: few schedules make a higher job wait for the very printer a
lower one is staged on, so these are kept."""


def test_a_planner_that_forgets_priorities_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _failing(run_schedules(PRIORITY_SEEDS, steps=30)) == {}
    _planning_with(monkeypatch, plan_without_priorities)
    failing = _failing(run_schedules(PRIORITY_SEEDS, steps=30))
    assert failing, "these seeds no longer put a job of higher priority behind a lower one"
    assert set().union(*failing.values()) == {ViolationKind.PASSED_OVER}, failing
