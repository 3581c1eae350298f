"""Seeded fault schedules over the deterministic fleet: thousands a minute, each exactly replayable.

One schedule is a world (link faults drawn from the seed) and a sequence of steps — tenants
submitting and cancelling, for one printer or any of a model, owners sharing and revoking their
printers and turning plate checks on and off (also while a printer is away), people clearing
plates, links that queue and burst, lie or die, heaters failing, printers restarting — followed
by a settle phase in which the network heals and every job must end. Half the worlds are farms:
printers loaded with different materials and nozzles, a pool, wear, a heat-up cap, jobs that need
a material or nozzle, go to the pool and carry priorities, and people who swap spools and nozzles
as the day goes (drawn from a second generator, so the rest of a seed's schedule stays as it
was). The checker judges the history after every step and at the end. The Hypothesis state
machines in the test suite drive the same actions.
"""

import concurrent.futures
import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from printfleet.chaos.checker import Violation, check
from printfleet.chaos.sim_link import LinkFaults
from printfleet.chaos.sim_tenancy import ShareRole
from printfleet.chaos.simulation import USERS, FleetSimulation
from printfleet.protocol.dispatch import Requirements

PRINTER_IDS = ("x1-0", "p1-1", "x1-2")
SETTLE_LIMIT_MS = 600_000

MATERIALS = ("PLA", "PETG", "PA-CF")
NOZZLES = (None, 400, 400, 600)
POOL = "farm"
FARM_SEED = 0x5EED
"""Farm worlds draw from ``random.Random(FARM_SEED + seed)``, apart from the schedule's own."""

Away = Literal["link dies", "link queues", "power off"]
AWAYS: tuple[Away, ...] = ("link dies", "link queues", "power off")


# -- the actions, shared with the Hypothesis state machines ------------------------------------


def submit(
    sim: FleetSimulation,
    user: str,
    printer_id: str | None,
    window_s: int,
    *,
    pool_id: str | None = None,
    priority: int = 0,
    requirements: Requirements | None = None,
) -> str | None:
    """``user`` submits a job for one printer, for any x1 or any printer of a pool they may
    operate; None if the API refuses it (a printer, model or pool they may not print on)."""
    model = None if printer_id is not None or pool_id is not None else "x1"
    return sim.submit(
        user=user,
        printer_id=printer_id,
        model=model,
        window_ms=window_s * 1_000,
        pool_id=pool_id,
        priority=priority,
        requirements=requirements,
    )


def swap_loadout(sim: FleetSimulation, printer_id: str, farm: random.Random) -> str:
    """A person at the printer swaps its spools (and maybe its nozzle)."""
    materials = tuple(farm.sample(MATERIALS, farm.randint(0, 2)))
    nozzle = farm.choice(NOZZLES)
    sim.load(printer_id, materials, nozzle)
    return f"{printer_id} loaded with {' and '.join(materials) or 'nothing'}, nozzle {nozzle}"


def farm_ask(farm: random.Random) -> tuple[bool, int, Requirements]:
    """What a farm's job asks beyond its printer: the pool instead of a model, its priority,
    and the material and nozzle it needs."""
    to_pool = farm.random() < 0.4  # noqa: PLR2004
    priority = farm.choice((-1, 0, 0, 0, 1, 5))
    requirements = Requirements(
        material=farm.choice((None, *MATERIALS)), nozzle_um=farm.choice((None, None, 400, 600))
    )
    return to_pool, priority, requirements


def owner_submits(sim: FleetSimulation, printer_id: str, window_s: int) -> str:
    """The printer's owner submits a job for it (never refused)."""
    job = submit(sim, sim.tenancy.owners[printer_id], printer_id, window_s)
    assert job is not None  # noqa: S101 - an owner may always print on their printer
    return job


def share(sim: FleetSimulation, printer_id: str, user: str, role: ShareRole | None) -> None:
    """The owner shares the printer with ``user`` (``None``: takes the share back)."""
    if role is None:
        sim.revoke(printer_id, user)
    else:
        sim.share(printer_id, user, role)


def plate_check_set_while_away(
    sim: FleetSimulation, printer_id: str, *, enabled: bool, away: Away, seconds: int
) -> None:
    """The printer goes away, its owner turns the plate check on or off, and ``seconds`` later
    the printer is back (whatever lay on its plate is still there)."""
    ms = seconds * 1_000
    match away:
        case "link dies":
            sim.link.cut(printer_id, down=True)
        case "link queues":
            sim.partition_with_burst(printer_id, ms)
        case "power off":
            sim.power_off(printer_id)
    sim.advance(min(ms, 2_000))
    sim.set_plate_check(printer_id, enabled=enabled)
    sim.advance(max(0, ms - 2_000))
    match away:
        case "link dies":
            sim.link.cut(printer_id, down=False)
        case "power off":
            sim.power_on(printer_id)
        case "link queues":
            pass  # the held pile is delivered by itself


def person_clears_plate(sim: FleetSimulation, printer_id: str, *, at_screen: bool) -> None:
    """Someone removes the print (and maybe confirms at the screen)."""
    events = sim.printers[printer_id].person_clears_plate(sim.now, confirm_locally=at_screen)
    for event in events:
        sim.printer_sends(printer_id, event)


def heater_fails(sim: FleetSimulation, printer_id: str) -> None:
    """A heater misbehaves; the printer's thermal protection latches a fault."""
    if not sim.printers[printer_id].powered:
        return
    for event in sim.printers[printer_id].thermal_fault(sim.now, sim.history):
        sim.printer_sends(printer_id, event)


def person_clears_fault(sim: FleetSimulation, printer_id: str) -> None:
    """Someone fixes the heater and clears the fault at the printer."""
    if not sim.printers[printer_id].powered:
        return
    for event in sim.printers[printer_id].clear_fault(sim.now):
        sim.printer_sends(printer_id, event)


def printer_restarts(sim: FleetSimulation, printer_id: str) -> None:
    """Power cycle mid-whatever (a printer that was off simply boots)."""
    for event in sim.printers[printer_id].restart(sim.now, sim.history):
        sim.printer_sends(printer_id, event)


def last_prints(sim: FleetSimulation) -> list[str]:
    """The day ends with every owner's last print, onto whatever the day left behind: a plate
    nobody cleared, a setting that changed while the printer was away."""
    return [owner_submits(sim, printer_id, 300) for printer_id in sim.printers]


def settle(sim: FleetSimulation) -> None:
    """Heal the network, tend the printers, and run until every job has ended (or a limit)."""
    sim.heal()
    for printer_id, printer in sim.printers.items():
        if printer.fault:
            person_clears_fault(sim, printer_id)
    deadline = sim.now + SETTLE_LIMIT_MS
    while not sim.all_jobs_terminal() and sim.now < deadline:
        sim.advance(5_000, step_ms=500)
        for printer_id in sim.printers:
            person_clears_plate(sim, printer_id, at_screen=True)


# -- seeded schedules ----------------------------------------------------------------------------


@dataclass(slots=True)
class ScheduleResult:
    """What one seed did and whether any promise broke."""

    seed: int
    steps: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    jobs: int = 0
    starts: int = 0
    faults_injected: int = 0
    starts_on_shares: int = 0
    """Starts on a printer its submitter does not own (an operator share)."""
    tenancy_changes: int = 0
    """Shares granted or revoked and plate checks turned on or off."""
    checks_on_while_away: int = 0
    """Plate checks turned back on while the printer, its own check off, could not hear it."""
    farm: bool = False
    """A farm world: loadouts, a pool, priorities, requirements (and maybe a heat-up cap)."""
    max_heating: int | None = None
    loadout_changes: int = 0
    """Spools and nozzles swapped at printers."""
    queue_decisions: int = 0
    """Starts where a priority, pool or requirement mattered: a farm's queue at work."""

    @property
    def ok(self) -> bool:
        """No violation at any point."""
        return not self.violations


def run_schedule(seed: int, *, steps: int = 30, safeguards: bool = True) -> ScheduleResult:
    """Run the schedule the seed describes; stops at the first violation."""
    rng = random.Random(seed)  # noqa: S311 - a replayable schedule, not a secret
    faults = LinkFaults(
        max_delay_ms=rng.choice([0, 200, 1_000, 3_000]),
        drop=rng.choice([0.0, 0.02, 0.1]),
        duplicate=rng.choice([0.0, 0.05, 0.2]),
        near=frozenset(p for p in PRINTER_IDS if rng.random() < 0.25),  # noqa: PLR2004
    )
    farm_rng = random.Random(FARM_SEED + seed)  # noqa: S311 - replayable, not a secret
    farm = farm_rng if farm_rng.random() < 0.5 else None  # noqa: PLR2004 - half are farms
    cap = farm.choice((None, 1, 2)) if farm is not None else None
    sim = FleetSimulation(
        seed,
        printers=len(PRINTER_IDS),
        faults=faults,
        safeguards=safeguards,
        max_heating=cap,
    )
    result = ScheduleResult(seed, farm=farm is not None, max_heating=cap)
    if farm is not None:
        result.steps.extend(_farm_world(sim, farm))
    # Before the day: owners have shared some printers (and turned some plate checks off).
    for _ in range(rng.randrange(3)):
        user, printer_id = rng.choice(USERS), rng.choice(PRINTER_IDS)
        role: ShareRole = rng.choice(("operator", "viewer"))
        share(sim, printer_id, user, role)
        result.steps.append(
            f"{sim.tenancy.owners[printer_id]} shares {printer_id} with {user} as {role}"
        )
    sim.advance(12_000)
    for printer_id in PRINTER_IDS:
        if rng.random() < 0.25:  # noqa: PLR2004 - one owner in four prints unchecked
            sim.set_plate_check(printer_id, enabled=False)
            result.steps.append(f"plate check off for {printer_id}")
    sim.advance(2_000)
    jobs = [owner_submits(sim, PRINTER_IDS[0], 120)]
    for _ in range(steps):
        if farm is not None and farm.random() < 0.15:  # noqa: PLR2004
            result.steps.append(swap_loadout(sim, rng_printer(farm), farm))
        result.steps.append(_random_step(sim, rng, jobs, result, farm))
        result.violations = check(sim.history)
        if result.violations:
            break
    else:
        jobs.extend(last_prints(sim))
        result.steps.append("every owner's last print")
        settle(sim)
        result.violations = check(sim.history, require_terminal=True)
    result.jobs = len(jobs)
    result.starts = len(sim.history.starts)
    result.starts_on_shares = sum(
        1
        for start in sim.history.starts
        if sim.history.submitters.get(start.job_id)
        not in {None, sim.tenancy.owners[start.printer_id]}
    )
    result.tenancy_changes = sim.history.tenancy_changes
    result.checks_on_while_away = sim.history.checks_on_while_away
    result.loadout_changes = sim.history.loadout_changes
    result.queue_decisions = sum(
        1
        for start in sim.history.starts
        if (ask := sim.history.asks.get(start.job_id)) is not None
        and (ask.pool_id is not None or ask.priority != 0 or ask.requirements != Requirements())
    )
    return result


def rng_printer(farm: random.Random) -> str:
    """A printer, drawn by the farm's generator."""
    return farm.choice(PRINTER_IDS)


def _farm_world(sim: FleetSimulation, farm: random.Random) -> list[str]:
    """Loadouts, a pool and wear for a farm world, before the day."""
    steps = [swap_loadout(sim, printer_id, farm) for printer_id in PRINTER_IDS]
    members = frozenset(p for p in PRINTER_IDS if farm.random() < 0.6)  # noqa: PLR2004
    sim.tenancy.pools[POOL] = members
    sim.tenancy.print_hours = {p: farm.choice((0.0, 5.0, 120.0)) for p in PRINTER_IDS}
    steps.append(f"pool {POOL}: {', '.join(sorted(members)) or 'empty'}")
    steps.append(f"heat-up cap: {sim.policy.max_heating}")
    return steps


def run_schedules(
    seeds: Iterable[int], *, steps: int = 30, safeguards: bool = True, workers: int = 1
) -> list[ScheduleResult]:
    """Run many seeds, over ``workers`` processes; results in seed order."""
    run = functools.partial(run_schedule, steps=steps, safeguards=safeguards)
    seed_list = list(seeds)
    if workers <= 1:
        return [run(seed) for seed in seed_list]
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, seed_list, chunksize=max(1, len(seed_list) // (workers * 8))))


def _coin(rng: random.Random) -> bool:
    return bool(rng.getrandbits(1))


def _random_step(
    sim: FleetSimulation,
    rng: random.Random,
    jobs: list[str],
    result: ScheduleResult,
    farm: random.Random | None = None,
) -> str:
    printer_id = rng.choice(PRINTER_IDS)
    match step := rng.randrange(14):
        case 0 | 1:
            # Users ask for what the API lets them: a printer they operate, or any x1.
            user = rng.choice(USERS)
            mine = [p for p in PRINTER_IDS if sim.tenancy.may_operate(user, p)]
            target = rng.choice((*mine, None))
            window = rng.randint(5, 180)
            if farm is not None:
                return _farm_submit(sim, farm, jobs, user=user, target=target, window=window)
            job = submit(sim, user, target, window)
            if job is None:
                return f"{user} may not print on any x1: refused"
            jobs.append(job)
            return f"{user} submits for {target or 'any x1'} within {window}s"
        case 2 | 3:
            ms = rng.randint(100, 25_000)
            sim.advance(ms)
            return f"wait {ms}ms"
        case 4:
            at_screen = _coin(rng)
            person_clears_plate(sim, printer_id, at_screen=at_screen)
            return f"clear plate {printer_id} (confirm at screen: {at_screen})"
        case 5:
            sim.confirm_remotely(printer_id)
            return f"confirm plate remotely {printer_id}"
        case 6:
            seconds = rng.randint(1, 120)
            sim.partition_with_burst(printer_id, seconds * 1_000)
            result.faults_injected += 1
            return f"link to {printer_id} queues for {seconds}s then bursts"
        case 7:
            sim.link_lies = _coin(rng)
            result.faults_injected += int(sim.link_lies)
            return f"link lies about being up: {sim.link_lies}"
        case 8:
            down = _coin(rng)
            sim.link.cut(printer_id, down=down)
            result.faults_injected += int(down)
            return f"link to {printer_id} {'dies' if down else 'returns'}"
        case 9:
            if _coin(rng):
                heater_fails(sim, printer_id)
                result.faults_injected += 1
                return f"heater fails on {printer_id}"
            person_clears_fault(sim, printer_id)
            return f"fault cleared on {printer_id}"
        case 10:
            if _coin(rng) and jobs:
                job = rng.choice(jobs)
                sim.cancel(job)
                return f"cancel {job[:8]}"
            printer_restarts(sim, printer_id)
            result.faults_injected += 1
            return f"{printer_id} restarts"
        case 11 | 12 | 13 as owner_step:
            return _owner_step(sim, rng, printer_id, owner_step, result)
        case _:
            raise AssertionError(step)


def _farm_submit(
    sim: FleetSimulation,
    farm: random.Random,
    jobs: list[str],
    *,
    user: str,
    target: str | None,
    window: int,
) -> str:
    """A tenant of a farm submits: maybe to the pool, with a priority and requirements."""
    to_pool, priority, needs = farm_ask(farm)
    pool = POOL if target is None and to_pool else None
    job = submit(sim, user, target, window, pool_id=pool, priority=priority, requirements=needs)
    where = target or (f"pool {pool}" if pool else "any x1")
    if job is None:
        return f"{user} may not print on {where}: refused"
    jobs.append(job)
    return f"{user} submits for {where} within {window}s, priority {priority}, needs {needs}"


def _owner_step(
    sim: FleetSimulation, rng: random.Random, printer_id: str, step: int, result: ScheduleResult
) -> str:
    owner = sim.tenancy.owners[printer_id]
    if step == 11:  # noqa: PLR2004 - the step numbers of _random_step
        user = rng.choice(USERS)
        role: ShareRole | None = rng.choice(("operator", "viewer", None))
        share(sim, printer_id, user, role)
        if role is None:
            return f"{owner} revokes {user}'s share of {printer_id}"
        return f"{owner} shares {printer_id} with {user} as {role}"
    enabled = _coin(rng)
    word = "on" if enabled else "off"
    if step == 12:  # noqa: PLR2004 - the step numbers of _random_step
        sim.set_plate_check(printer_id, enabled=enabled)
        return f"{owner} turns the plate check {word} for {printer_id}"
    away, seconds = rng.choice(AWAYS), rng.randint(3, 60)
    plate_check_set_while_away(sim, printer_id, enabled=enabled, away=away, seconds=seconds)
    result.faults_injected += 1
    return f"{printer_id} away ({away}, {seconds}s): {owner} turns the plate check {word}"
