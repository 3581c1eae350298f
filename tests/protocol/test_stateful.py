"""Hypothesis drives the real dispatcher and real printer gates over a hostile simulated network.

Each run submits jobs, moves people and plates, breaks and heals links (including the 2023
burst: a link that lies about being up while it queues commands), faults heaters, restarts
printers and skews clocks; after every step the checker must find no violation of S1 to S6,
and once the network heals every job must end and every failure be reported (S7).
"""

from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from printfleet.chaos import schedules as actions
from printfleet.chaos.checker import Violation, ViolationKind, check
from printfleet.chaos.simulation import FleetSimulation, LinkFaults

PRINTERS = actions.PRINTER_IDS


class FleetMachine(RuleBasedStateMachine):
    """A fleet under a random schedule of users, people and faults."""

    safeguards: ClassVar[bool] = True
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.sim: FleetSimulation | None = None

    @property
    def world(self) -> FleetSimulation:
        assert self.sim is not None
        return self.sim

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        max_delay_ms=st.integers(0, 3_000),
        drop=st.sampled_from([0.0, 0.02, 0.1]),
        duplicate=st.sampled_from([0.0, 0.05, 0.2]),
    )
    def start_world(self, seed: int, max_delay_ms: int, drop: float, duplicate: float) -> None:
        faults = LinkFaults(max_delay_ms=max_delay_ms, drop=drop, duplicate=duplicate)
        self.sim = FleetSimulation(
            seed, printers=len(PRINTERS), faults=faults, safeguards=self.safeguards
        )
        # Printers boot, sync their clocks and report before users arrive; a user is waiting.
        self.world.advance(12_000)
        actions.submit(self.world, PRINTERS[0], 120)

    @rule(
        target=jobs,
        printer=st.sampled_from((*PRINTERS, None)),
        window_s=st.integers(5, 180),
    )
    def submit(self, printer: str | None, window_s: int) -> str:
        return actions.submit(self.world, printer, window_s)

    @rule(ms=st.integers(100, 25_000))
    def time_passes(self, ms: int) -> None:
        self.world.advance(ms)

    @rule(printer=st.sampled_from(PRINTERS), at_screen=st.booleans())
    def person_clears_plate(self, printer: str, at_screen: bool) -> None:
        actions.person_clears_plate(self.world, printer, at_screen=at_screen)

    @rule(printer=st.sampled_from(PRINTERS))
    def user_confirms_plate_remotely(self, printer: str) -> None:
        self.world.confirm_remotely(printer)

    @rule(printer=st.sampled_from(PRINTERS), seconds=st.integers(1, 120))
    def link_queues_then_bursts(self, printer: str, seconds: int) -> None:
        self.world.partition_with_burst(printer, seconds * 1_000)

    @rule(lies=st.booleans())
    def link_lies_about_being_up(self, lies: bool) -> None:
        self.world.link_lies = lies

    @rule(printer=st.sampled_from(PRINTERS), down=st.booleans())
    def link_dies(self, printer: str, down: bool) -> None:
        self.world.link.cut(printer, down=down)

    @rule(job=jobs)
    def user_cancels(self, job: str) -> None:
        self.world.cancel(job)

    @rule(printer=st.sampled_from(PRINTERS))
    def heater_fails(self, printer: str) -> None:
        actions.heater_fails(self.world, printer)

    @rule(printer=st.sampled_from(PRINTERS))
    def person_clears_fault(self, printer: str) -> None:
        actions.person_clears_fault(self.world, printer)

    @rule(printer=st.sampled_from(PRINTERS))
    def printer_restarts(self, printer: str) -> None:
        actions.printer_restarts(self.world, printer)

    @invariant()
    def no_violation_so_far(self) -> None:
        if self.sim is None:
            return
        violations = check(self.world.history)
        assert violations == [], _describe(violations)

    def teardown(self) -> None:
        if self.sim is None:
            return
        sim = self.world
        # The network heals and people tend their printers; every job must then end (S7).
        actions.settle(sim)
        violations = check(sim.history, require_terminal=True)
        assert violations == [], _describe(violations)
        # Statistics (pytest --hypothesis-show-statistics) show the runs really print and refuse.
        tally("physical starts", _bucket(len(sim.history.starts)))
        ended = {state.value for state in sim.history.terminal.values()}
        tally("terminal states seen", ",".join(sorted(ended)) or "none")
        for job in sim.jobs.values():
            if job.state.value == "rejected":
                tally("rejected because", job.reason.split(":")[0])


def _bucket(count: int) -> str:
    return "0" if count == 0 else "1-2" if count <= 2 else "3+"


def _describe(violations: list[Violation]) -> str:
    return "\n".join(f"{v.kind.value}: {v.evidence}" for v in violations)


class UnsafeFleetMachine(FleetMachine):
    """The same fleet with every safeguard off: the checker must catch it."""

    safeguards = False


FleetMachine.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFleet = FleetMachine.TestCase


@pytest.mark.slow
def test_the_property_test_has_teeth() -> None:
    """With the safeguards off, the same machine must find a violation quickly."""
    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(
            UnsafeFleetMachine,
            settings=settings(
                max_examples=300,
                stateful_step_count=25,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
                report_multiple_bugs=False,
                # Finding one is the point; shrinking it would only cost time.
                phases=[Phase.generate],
            ),
        )
    assert any(kind.value in str(failure.value) for kind in ViolationKind)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_an_honest_fleet_prints_every_job(seed: int) -> None:
    """Without faults every job completes: the safeguards do not simply refuse everything."""
    sim = FleetSimulation(seed, printers=len(PRINTERS))
    sim.advance(12_000)
    jobs = [actions.submit(sim, printer_id, 300) for printer_id in PRINTERS]
    actions.settle(sim)
    assert [sim.jobs[j].state.value for j in jobs] == ["completed"] * len(jobs)
    assert check(sim.history, require_terminal=True) == []


def test_seeded_schedules_hold_every_invariant() -> None:
    """The same actions from plain seeds (what `printfleet chaos sim` runs), a few hundred."""
    results = [actions.run_schedule(seed) for seed in range(150)]
    failing = [(r.seed, [v.kind.value for v in r.violations]) for r in results if not r.ok]
    assert failing == []
    assert sum(r.starts for r in results) > 100  # the schedules really print


def test_seeded_schedules_catch_a_fleet_without_safeguards() -> None:
    results = [actions.run_schedule(seed, safeguards=False) for seed in range(20)]
    assert sum(not r.ok for r in results) >= 10
