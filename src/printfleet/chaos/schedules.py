"""Seeded fault schedules over the deterministic fleet: thousands a minute, each exactly replayable.

One schedule is a world (link faults drawn from the seed) and a sequence of steps — users
submitting and cancelling, people clearing plates, links that queue and burst, lie or die,
heaters failing, printers restarting — followed by a settle phase in which the network heals and
every job must end. The checker judges the history after every step and at the end.
The Hypothesis state machines in the test suite drive the same actions.
"""

import concurrent.futures
import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from printfleet.chaos.checker import Violation, check
from printfleet.chaos.simulation import FleetSimulation, LinkFaults

PRINTER_IDS = ("x1-0", "p1-1", "x1-2")
SETTLE_LIMIT_MS = 600_000


# -- the actions, shared with the Hypothesis state machines ------------------------------------


def submit(sim: FleetSimulation, printer_id: str | None, window_s: int) -> str:
    """A user submits a job for one printer, or for any x1."""
    model = None if printer_id is not None else "x1"
    return sim.submit(printer_id=printer_id, model=model, window_ms=window_s * 1_000)


def person_clears_plate(sim: FleetSimulation, printer_id: str, *, at_screen: bool) -> None:
    """Someone removes the print (and maybe confirms at the screen)."""
    events = sim.printers[printer_id].person_clears_plate(sim.now, confirm_locally=at_screen)
    for event in events:
        sim.printer_sends(printer_id, event)


def heater_fails(sim: FleetSimulation, printer_id: str) -> None:
    """A heater misbehaves; the printer's thermal protection latches a fault."""
    for event in sim.printers[printer_id].thermal_fault(sim.now, sim.history):
        sim.printer_sends(printer_id, event)


def person_clears_fault(sim: FleetSimulation, printer_id: str) -> None:
    """Someone fixes the heater and clears the fault at the printer."""
    for event in sim.printers[printer_id].clear_fault(sim.now):
        sim.printer_sends(printer_id, event)


def printer_restarts(sim: FleetSimulation, printer_id: str) -> None:
    """Power cycle mid-whatever."""
    for event in sim.printers[printer_id].restart(sim.now, sim.history):
        sim.printer_sends(printer_id, event)


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
    )
    sim = FleetSimulation(seed, printers=len(PRINTER_IDS), faults=faults, safeguards=safeguards)
    result = ScheduleResult(seed)
    sim.advance(12_000)
    jobs = [submit(sim, PRINTER_IDS[0], 120)]
    for _ in range(steps):
        result.steps.append(_random_step(sim, rng, jobs, result))
        result.violations = check(sim.history)
        if result.violations:
            break
    else:
        settle(sim)
        result.violations = check(sim.history, require_terminal=True)
    result.jobs = len(jobs)
    result.starts = len(sim.history.starts)
    return result


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
    sim: FleetSimulation, rng: random.Random, jobs: list[str], result: ScheduleResult
) -> str:
    printer_id = rng.choice(PRINTER_IDS)
    match rng.randrange(11):
        case 0 | 1:
            target = rng.choice((*PRINTER_IDS, None))
            window = rng.randint(5, 180)
            jobs.append(submit(sim, target, window))
            return f"submit {target or 'any x1'} within {window}s"
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
        case _:
            if _coin(rng) and jobs:
                job = rng.choice(jobs)
                sim.cancel(job)
                return f"cancel {job[:8]}"
            printer_restarts(sim, printer_id)
            result.faults_injected += 1
            return f"{printer_id} restarts"
