"""Hypothesis drives the real dispatcher and real printer gates over a hostile simulated network.

Each run has tenants who submit jobs (for one printer, or any of a model), share and revoke
their printers and turn plate checks on and off, also while a printer is away; people move
plates; links break and heal (including the 2023 burst: a link that lies about being up while
it queues commands); heaters fault, printers restart and clocks skew. After every step the
checker must find no violation of S1 to S6, S8 and S9, and once the network heals every job
must end and every failure be reported (S7).
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace
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
    multiple,
    rule,
    run_state_machine_as_test,
)

from printfleet.chaos import schedules as actions
from printfleet.chaos.checker import (
    AUTHORITY_KINDS,
    Violation,
    ViolationKind,
    check,
)
from printfleet.chaos.sim_link import LinkFaults
from printfleet.chaos.sim_tenancy import Roster, ShareRole
from printfleet.chaos.simulation import USERS, FleetSimulation
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import (
    ApplySettings,
    DispatchPolicy,
    JobView,
    LinkEvidence,
    PrinterView,
    SafetySettings,
)

PRINTERS = actions.PRINTER_IDS
ROLES: st.SearchStrategy[ShareRole | None] = st.sampled_from(("operator", "viewer", None))
"""A share's role; None takes the share back."""


class TenancyMachine(RuleBasedStateMachine):
    """A fleet of several tenants: users submit, owners share, revoke and set plate checks (also
    while a printer is away), people tend plates, time passes. The fleet machine below adds
    every other fault; hunts for one of these kinds run here, where they take fewer steps."""

    safeguards: ClassVar[bool] = True
    watched: ClassVar[frozenset[ViolationKind]] = frozenset(ViolationKind)
    """The kinds this machine fails on (a teeth test narrows it to the one it is about)."""
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.sim: FleetSimulation | None = None

    @property
    def world(self) -> FleetSimulation:
        assert self.sim is not None
        return self.sim

    def wrap(self, sim: FleetSimulation) -> None:
        """Where a teeth test puts a misbehaving port between the cloud and the store."""

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        max_delay_ms=st.integers(0, 3_000),
        drop=st.sampled_from([0.0, 0.02, 0.1]),
        duplicate=st.sampled_from([0.0, 0.05, 0.2]),
        near=st.frozensets(st.sampled_from(PRINTERS)),
        shares=st.lists(st.tuples(st.sampled_from(PRINTERS), st.sampled_from(USERS), ROLES)),
        checks_off=st.sets(st.sampled_from(PRINTERS)),
    )
    def start_world(
        self,
        *,
        seed: int,
        max_delay_ms: int,
        drop: float,
        duplicate: float,
        near: frozenset[str],
        shares: list[tuple[str, str, ShareRole | None]],
        checks_off: set[str],
    ) -> None:
        faults = LinkFaults(max_delay_ms=max_delay_ms, drop=drop, duplicate=duplicate, near=near)
        self.sim = FleetSimulation(
            seed, printers=len(PRINTERS), faults=faults, safeguards=self.safeguards
        )
        self.wrap(self.sim)
        # Printers boot, sync their clocks and report before users arrive; owners have shared
        # some printers, and some turn their plate check off; a user is waiting.
        for printer, user, role in shares:
            actions.share(self.world, printer, user, role)
        self.world.advance(12_000)
        for printer in sorted(checks_off):
            self.world.set_plate_check(printer, enabled=False)
        self.world.advance(2_000)
        actions.owner_submits(self.world, PRINTERS[0], 120)

    @rule(
        target=jobs,
        user=st.sampled_from(USERS),
        choice=st.integers(0, len(PRINTERS)),
        window_s=st.integers(5, 180),
    )
    def submit(self, user: str, choice: int, window_s: int) -> object:
        """``user`` asks for one of the printers they may operate now, or for any x1 (the API
        refuses the rest, and that refusal is the API's own tests' business)."""
        mine = [p for p in PRINTERS if self.world.tenancy.may_operate(user, p)]
        targets = [*mine, None]
        job = actions.submit(self.world, user, targets[choice % len(targets)], window_s)
        tally("submission", "refused by the API" if job is None else "accepted")
        return multiple() if job is None else job

    @rule(printer=st.sampled_from(PRINTERS), user=st.sampled_from(USERS), role=ROLES)
    def owner_shares_or_revokes(self, printer: str, user: str, role: ShareRole | None) -> None:
        actions.share(self.world, printer, user, role)

    @rule(printer=st.sampled_from(PRINTERS), enabled=st.booleans())
    def owner_sets_plate_check(self, printer: str, enabled: bool) -> None:
        self.world.set_plate_check(printer, enabled=enabled)

    @rule(
        printer=st.sampled_from(PRINTERS),
        enabled=st.booleans(),
        away=st.sampled_from(actions.AWAYS),
        seconds=st.integers(3, 60),
    )
    def owner_sets_plate_check_while_printer_away(
        self, printer: str, enabled: bool, away: actions.Away, seconds: int
    ) -> None:
        actions.plate_check_set_while_away(
            self.world, printer, enabled=enabled, away=away, seconds=seconds
        )

    @rule(ms=st.integers(100, 25_000))
    def time_passes(self, ms: int) -> None:
        self.world.advance(ms)

    @rule(printer=st.sampled_from(PRINTERS), at_screen=st.booleans())
    def person_clears_plate(self, printer: str, at_screen: bool) -> None:
        actions.person_clears_plate(self.world, printer, at_screen=at_screen)

    @rule(printer=st.sampled_from(PRINTERS))
    def user_confirms_plate_remotely(self, printer: str) -> None:
        self.world.confirm_remotely(printer)

    @rule(job=jobs)
    def user_cancels(self, job: str) -> None:
        self.world.cancel(job)

    def _judge(self, *, require_terminal: bool) -> None:
        found = check(self.world.history, require_terminal=require_terminal)
        violations = [v for v in found if v.kind in self.watched]
        assert violations == [], _describe(violations)

    @invariant()
    def no_violation_so_far(self) -> None:
        if self.sim is None:
            return
        self._judge(require_terminal=False)

    def teardown(self) -> None:
        if self.sim is None:
            return
        sim = self.world
        # The day ends with every owner's last print; the network heals and people tend their
        # printers; every job must then end (S7).
        actions.last_prints(sim)
        actions.settle(sim)
        self._judge(require_terminal=True)
        # Statistics (pytest --hypothesis-show-statistics) show the runs really print and refuse.
        tally("physical starts", _bucket(len(sim.history.starts)))
        shared = [
            start
            for start in sim.history.starts
            if sim.history.submitters.get(start.job_id) != sim.tenancy.owners[start.printer_id]
        ]
        tally("starts on a shared printer", _bucket(len(shared)))
        tally("plate checks turned on while away", _bucket(sim.history.checks_on_while_away))
        ended = {state.value for state in sim.history.terminal.values()}
        tally("terminal states seen", ",".join(sorted(ended)) or "none")
        for job in sim.jobs.values():
            if job.state.value == "rejected":
                tally("rejected because", job.reason.split(":")[0])


class FleetMachine(TenancyMachine):
    """Tenants under a random schedule of users, owners, people and every fault there is."""

    @rule(printer=st.sampled_from(PRINTERS), seconds=st.integers(1, 120))
    def link_queues_then_bursts(self, printer: str, seconds: int) -> None:
        self.world.partition_with_burst(printer, seconds * 1_000)

    @rule(lies=st.booleans())
    def link_lies_about_being_up(self, lies: bool) -> None:
        self.world.link_lies = lies

    @rule(printer=st.sampled_from(PRINTERS), down=st.booleans())
    def link_dies(self, printer: str, down: bool) -> None:
        self.world.link.cut(printer, down=down)

    @rule(printer=st.sampled_from(PRINTERS))
    def heater_fails(self, printer: str) -> None:
        actions.heater_fails(self.world, printer)

    @rule(printer=st.sampled_from(PRINTERS))
    def person_clears_fault(self, printer: str) -> None:
        actions.person_clears_fault(self.world, printer)

    @rule(printer=st.sampled_from(PRINTERS))
    def printer_restarts(self, printer: str) -> None:
        actions.printer_restarts(self.world, printer)


def _bucket(count: int) -> str:
    return "0" if count == 0 else "1-2" if count <= 2 else "3+"


def _describe(violations: list[Violation]) -> str:
    return "\n".join(f"{v.kind.value}: {v.evidence}" for v in violations)


FleetMachine.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFleet = FleetMachine.TestCase


# ---------------------------------------------------------------------------------------------
# Teeth: the same machine, with one remedy taken away from outside, must find its violation.


def _hunt(machine: type[TenancyMachine], *, examples: int = 300) -> str:
    """Run ``machine`` until it fails; the failure's text (the test fails if it never does)."""
    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
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
    return str(failure.value)


class UnsafeFleetMachine(FleetMachine):
    """The same fleet with every safeguard off: the checker must catch it."""

    safeguards = False


@pytest.mark.slow
def test_the_property_test_has_teeth() -> None:
    """With the safeguards off, the same machine must find a violation quickly."""
    found = _hunt(UnsafeFleetMachine)
    assert any(kind.value in found for kind in ViolationKind)


class StrangersPrintWithoutSafeguards(TenancyMachine):
    """Safeguards off, watching only S1's tenant half: who may print where."""

    safeguards = False
    watched = AUTHORITY_KINDS


@pytest.mark.slow
def test_without_safeguards_the_machine_finds_a_start_on_a_strangers_printer() -> None:
    found = _hunt(StrangersPrintWithoutSafeguards)
    assert any(kind.value in found for kind in AUTHORITY_KINDS), found


class EveryoneOperates:
    """A roster that says every user may operate every printer: the store's shares misread."""

    def __init__(self, inner: Roster) -> None:
        self.inner = inner

    def operators(self, printer_id: str) -> frozenset[str]:
        return frozenset(USERS)

    def settings(self, printer_id: str) -> SafetySettings:
        return self.inner.settings(printer_id)


class StrangersPrintThroughAMisreadRoster(TenancyMachine):
    """Every other safeguard on; only the cloud's reading of who may operate is wrong."""

    watched = AUTHORITY_KINDS

    def wrap(self, sim: FleetSimulation) -> None:
        sim.roster = EveryoneOperates(sim.roster)


@pytest.mark.slow
def test_a_cloud_that_misreads_shares_is_caught_sending_files_and_starts_to_strangers() -> None:
    """The printers' gates cannot know who may print on them: only the planner's authority
    filter stands between a model-wide job and a stranger's printer (issue 11, case 1)."""
    found = _hunt(StrangersPrintThroughAMisreadRoster)
    assert ViolationKind.FOREIGN_FILE.value in found or ViolationKind.FOREIGN_START.value in found


class SettingsSentOnce:
    """The cloud before the fix of issue 11, case 3, as a wrapped planner: an owner's change of a
    setting is sent once, at the moment it is made, and afterwards the printer's own report is
    taken for the owner's choice (nothing re-sent, nothing held back, nothing carried in a
    start)."""

    def __init__(self) -> None:
        self.seen: dict[str, SafetySettings] = {}

    def __call__(
        self,
        now: int,
        jobs: Iterable[JobView],
        printers: Mapping[str, PrinterView],
        link: LinkEvidence,
        policy: DispatchPolicy,
    ) -> list[dispatch.Decision]:
        once: list[dispatch.Decision] = []
        believed = {}
        for printer_id, view in printers.items():
            if self.seen.get(printer_id, SafetySettings()) != view.desired:
                self.seen[printer_id] = view.desired
                once.append(ApplySettings(printer_id, view.desired))
            believed[printer_id] = replace(view, desired=view.reported or view.desired)
        decisions = dispatch.plan(now, jobs, believed, link, policy)
        return once + [d for d in decisions if not isinstance(d, ApplySettings)]


class SettingsDriftMachine(TenancyMachine):
    """Every safeguard on; only the cloud's handling of desired settings is the old one."""

    watched = frozenset({ViolationKind.PLATE_CHECK_NOT_APPLIED})

    def wrap(self, sim: FleetSimulation) -> None:
        sim.planner = SettingsSentOnce()


@pytest.mark.slow
def test_a_plate_check_turned_on_while_the_printer_was_away_must_reach_it() -> None:
    """Check off, a print ends, the printer goes away, the owner turns the check back on, the
    printer returns with the print on its plate: sent once and then trusting the printer, the
    cloud starts the next job onto that print (issue 11, case 3)."""
    found = _hunt(SettingsDriftMachine)
    assert ViolationKind.PLATE_CHECK_NOT_APPLIED.value in found, found


# ---------------------------------------------------------------------------------------------
# Plain runs.


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_an_honest_fleet_prints_every_job(seed: int) -> None:
    """Without faults every job completes: the safeguards do not simply refuse everything."""
    sim = FleetSimulation(seed, printers=len(PRINTERS))
    sim.advance(12_000)
    jobs = [actions.owner_submits(sim, printer_id, 300) for printer_id in PRINTERS]
    actions.settle(sim)
    assert [sim.jobs[j].state.value for j in jobs] == ["completed"] * len(jobs)
    assert check(sim.history, require_terminal=True) == []


def test_a_model_wide_job_never_goes_to_a_strangers_printer() -> None:
    """ben's x1 is busy and ana's is idle: ben's job for any x1 waits for his own (issue 11)."""
    sim = FleetSimulation(7, printers=len(PRINTERS))
    sim.advance(12_000)
    first = actions.owner_submits(sim, "x1-2", 300)
    sim.advance(3_000)
    assert sim.jobs[first].state.value in {"dispatched", "printing"}
    waiting = actions.submit(sim, "ben", None, 300)
    assert waiting is not None
    sim.advance(10_000)
    assert sim.jobs[waiting].state.value == "queued"
    assert sim.jobs[waiting].assigned_printer is None
    assert "may operate" in sim.jobs[waiting].reason
    sim.share("x1-0", "ben", "operator")
    sim.advance(10_000)
    assert sim.jobs[waiting].assigned_printer == "x1-0"
    actions.settle(sim)
    assert check(sim.history, require_terminal=True) == []
    assert {start.printer_id for start in sim.history.starts} == {"x1-0", "x1-2"}


def _print_with_the_check_off_then_go_away(sim: FleetSimulation, away: actions.Away) -> str:
    """Issue 11, case 3: check off, a print ends on x1-0 and stays on its plate, the printer
    goes away, its owner turns the check back on, the printer returns; a job waits for it."""
    sim.advance(12_000)
    sim.set_plate_check("x1-0", enabled=False)
    sim.advance(2_000)
    first = actions.owner_submits(sim, "x1-0", 120)
    sim.advance(25_000)
    assert sim.jobs[first].state.value == "completed"
    assert sim.printers["x1-0"].plate_occupied
    assert not sim.printers["x1-0"].core.state.plate_check
    actions.plate_check_set_while_away(sim, "x1-0", enabled=True, away=away, seconds=10)
    second = actions.owner_submits(sim, "x1-0", 120)
    sim.advance(10_000)
    return second


@pytest.mark.parametrize("away", actions.AWAYS)
def test_a_check_turned_on_while_away_holds_the_next_start_until_the_plate_is_clear(
    away: actions.Away,
) -> None:
    sim = FleetSimulation(3, printers=len(PRINTERS))
    waiting = _print_with_the_check_off_then_go_away(sim, away)
    assert sim.printers["x1-0"].core.state.plate_check  # the cloud re-sent it
    assert sim.jobs[waiting].state.value in {"queued", "staged"}
    assert "sees something on the plate" in sim.jobs[waiting].reason
    actions.person_clears_plate(sim, "x1-0", at_screen=False)
    sim.advance(5_000)
    assert sim.jobs[waiting].state.value == "printing"
    assert check(sim.history) == []


@pytest.mark.parametrize("away", ["link dies", "power off"])
def test_the_same_story_with_the_setting_sent_only_once_prints_onto_the_old_print(
    away: actions.Away,
) -> None:
    sim = FleetSimulation(3, printers=len(PRINTERS))
    sim.planner = SettingsSentOnce()
    waiting = _print_with_the_check_off_then_go_away(sim, away)
    assert sim.jobs[waiting].state.value == "printing"
    assert [v.kind for v in check(sim.history)] == [ViolationKind.PLATE_CHECK_NOT_APPLIED]


def test_seeded_schedules_hold_every_invariant() -> None:
    """The same actions from plain seeds (what `printfleet chaos sim` runs), a hundred."""
    results = [actions.run_schedule(seed) for seed in range(100)]
    failing = [(r.seed, [v.kind.value for v in r.violations]) for r in results if not r.ok]
    assert failing == []
    assert sum(r.starts for r in results) > 100  # the schedules really print
    # ... also on printers shared with the submitter, under owners who change their minds.
    assert sum(r.starts_on_shares for r in results) > 0
    assert sum(r.tenancy_changes for r in results) > 100
    assert sum(r.checks_on_while_away for r in results) > 0


def test_seeded_schedules_catch_a_fleet_without_safeguards() -> None:
    results = [actions.run_schedule(seed, safeguards=False) for seed in range(20)]
    assert sum(not r.ok for r in results) >= 10


def test_every_violation_kind_names_its_invariant() -> None:
    """Reports read S1-S9 the same way everywhere (S10 is checked where names are made), and
    the farm's queue rules as Q1 (priority) and Q2 (heat-up cap)."""
    named = {kind.invariant for kind in ViolationKind}
    assert named == {f"S{n}" for n in range(1, 10)} | {"Q1", "Q2"}
    assert all(kind.value.startswith(f"{kind.invariant} ") for kind in ViolationKind)
