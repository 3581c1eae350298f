"""Hypothesis drives a farm: the tenants' machine with loadouts, a pool, priorities and a cap.

The tenants' machine of ``test_stateful`` (users submit, owners share, revoke and set plate
checks, people tend plates, time passes), in a farm: printers loaded with different spools and
nozzles, a pool, a heat-up cap; jobs for the pool, with a priority, needing a material or nozzle;
people who swap spools as the day goes. After every step the checker must find nothing: no file
or start where a job does not fit, no start that took the printer of a waiting job of higher
priority, no more printers heating up than the cap; and once the network heals every job ends.
With the cloud planning blind to what jobs need, the same machine finds the unfit file or start.
"""

from hypothesis import HealthCheck, settings
from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.stateful import initialize, multiple, rule
from tests.protocol import test_stateful as tenants

from printfleet.chaos import schedules as actions
from printfleet.chaos.sim_link import LinkFaults
from printfleet.chaos.simulation import USERS, FleetSimulation
from printfleet.chaos.unsafe import plan_ignoring_requirements
from printfleet.protocol.dispatch import Requirements

PRINTERS = actions.PRINTER_IDS
LOADOUTS: st.SearchStrategy[tuple[str, ...]] = st.lists(
    st.sampled_from(actions.MATERIALS), max_size=2, unique=True
).map(tuple)
"""The spools a person loads (none, one or two)."""
LOADED = st.lists(st.sampled_from(("PLA", "PETG")), min_size=1, max_size=2, unique=True).map(tuple)
"""What a farm's printer has loaded when the day begins (one or two spools)."""
FITTED = st.sampled_from([400, 400, 600])
"""Its nozzle."""
NOZZLES: st.SearchStrategy[int | None] = st.sampled_from(actions.NOZZLES)


class FarmMachine(tenants.TenancyMachine):
    """Tenants of a farm: the tenancy machine's rules, and the farm's."""

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        max_delay_ms=st.integers(0, 3_000),
        drop=st.sampled_from([0.0, 0.02]),
        cap=st.sampled_from([None, 1, 2]),
        pool=st.frozensets(st.sampled_from(PRINTERS)),
        loadouts=st.tuples(
            *(st.tuples(LOADED, st.sampled_from([400, 400, 600])) for _ in PRINTERS)
        ),
    )
    def start_world(
        self,
        *,
        seed: int,
        max_delay_ms: int,
        drop: float,
        cap: int | None,
        pool: frozenset[str],
        loadouts: tuple[tuple[tuple[str, ...], int], ...],
    ) -> None:
        faults = LinkFaults(max_delay_ms=max_delay_ms, drop=drop)
        self.sim = FleetSimulation(
            seed, printers=len(PRINTERS), faults=faults, safeguards=self.safeguards, max_heating=cap
        )
        self.wrap(self.sim)
        self.world.tenancy.pools[actions.POOL] = pool
        for printer, (materials, nozzle) in zip(PRINTERS, loadouts, strict=True):
            self.world.load(printer, materials, nozzle)
        self.world.advance(12_000)
        actions.owner_submits(self.world, PRINTERS[0], 120)

    @rule(
        target=tenants.TenancyMachine.jobs,
        user=st.sampled_from(USERS),
        choice=st.integers(0, len(PRINTERS)),
        window_s=st.integers(5, 120),
        to_pool=st.booleans(),
        priority=st.sampled_from([-1, 0, 1, 5]),
        material=st.sampled_from([None, "PLA", "PETG"]),
        nozzle=st.sampled_from([None, None, 400]),
    )
    def farm_submit(
        self,
        *,
        user: str,
        choice: int,
        window_s: int,
        to_pool: bool,
        priority: int,
        material: str | None,
        nozzle: int | None,
    ) -> object:
        """``user`` asks for a printer they may operate, any x1 or any of the pool, with a
        priority and what the job needs."""
        mine = [p for p in PRINTERS if self.world.tenancy.may_operate(user, p)]
        targets = [*mine, None]
        target = targets[choice % len(targets)]
        job = actions.submit(
            self.world,
            user,
            target,
            window_s,
            pool_id=actions.POOL if target is None and to_pool else None,
            priority=priority,
            requirements=Requirements(material=material, nozzle_um=nozzle),
        )
        tally("farm submission", "refused by the API" if job is None else "accepted")
        return multiple() if job is None else job

    @rule(printer=st.sampled_from(PRINTERS), materials=LOADOUTS, nozzle=NOZZLES)
    def person_swaps_spools(
        self, printer: str, materials: tuple[str, ...], nozzle: int | None
    ) -> None:
        self.world.load(printer, materials, nozzle)

    def teardown(self) -> None:
        super().teardown()  # the day ends, the network heals, every job ends
        if self.sim is None:
            return
        asked = [
            start
            for start in self.world.history.starts
            if (ask := self.world.history.asks.get(start.job_id)) is not None
            and (ask.pool_id or ask.priority or ask.requirements != Requirements())
        ]
        tally("starts where a pool, priority or need mattered", min(len(asked), 3))


FarmMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFarm = FarmMachine.TestCase


class BlindToRequirements(FarmMachine):
    """The same farm, its cloud planning as if no job needed any material or nozzle."""

    def wrap(self, sim: FleetSimulation) -> None:
        sim.planner = plan_ignoring_requirements


def test_the_farm_machine_catches_a_planner_blind_to_requirements() -> None:
    found = tenants._hunt(BlindToRequirements)
    assert "lacks its material" in found, found
