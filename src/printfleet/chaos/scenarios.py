"""The chaos scenarios: named fault stories played against a world of real processes
(:mod:`printfleet.chaos.world`), with the users who submit prints and the people who tend the
printers meanwhile.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from printfleet.chaos.injectors import (
    BrokerFreeze,
    BrokerKill,
    CloudCrash,
    DatabaseRestart,
    FalseReconnect,
    Fault,
    PrinterAway,
    PrinterLinkBurst,
    PrinterRestart,
    StartHeldInFlight,
)
from printfleet.chaos.world import World
from printfleet.protocol.dispatch import SafetySettings
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import PlateStatus


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How long and how hard a scenario runs."""

    seed: int = 0
    safeguards: bool = True
    quick: bool = True
    """Time-scaled: a 60 s outage becomes 8 s, windows and deadlines shrink alike."""

    @property
    def scale(self) -> float:
        """Real seconds per scenario second."""
        return 8 / 60 if self.quick else 1.0


Body = Callable[[World, random.Random, RunOptions], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named fault story."""

    name: str
    summary: str
    body: Body
    clock_skew: bool = False
    keepalive_s: int = 2
    database: Literal["memory", "postgres"] = "memory"
    owners: tuple[str, ...] = ()
    """Who owns each printer (x1-0, x1-1, p1-2); empty: one user owns all three."""


# ---------------------------------------------------------------------------------------------
# The users.


async def users_submit(
    world: World,
    rng: random.Random,
    *,
    seconds: float,
    every: float,
    re_requests: int,
    window: float,
) -> None:
    """Users keep asking for prints for ``seconds``, one request every ``every`` s or so."""
    deadline = time.monotonic() + seconds
    printers = list(world.printers)
    while time.monotonic() < deadline:
        await world.submit(rng.choice(printers), window_s=window, re_requests=re_requests)
        await asyncio.sleep(rng.uniform(0.5, 1.5) * every)


async def people_tend(world: World, rng: random.Random, *, seconds: float) -> None:
    """People walk by and clear plates now and then."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        await world.tend(rng.choice(list(world.printers)))


async def fault_under_traffic(
    world: World,
    rng: random.Random,
    fault: Fault,
    *,
    scale: float,
    outage_s: Callable[[], float],
    seconds: float = 90,
    every: float = 6,
    re_requests: int = 1,
    onset: tuple[float, float] = (15, 30),
) -> None:
    """Users submit (one every ``every`` scenario seconds, each re-sent ``re_requests`` times)
    and people tend for ``seconds`` scenario seconds; ``onset`` scenario seconds in, ``fault``
    is injected, and healed ``outage_s()`` real seconds later (drawn once it is injected)."""
    users = asyncio.create_task(
        users_submit(
            world,
            rng,
            seconds=seconds * scale,
            every=every * scale,
            re_requests=re_requests,
            window=90 * scale,
        )
    )
    tend = asyncio.create_task(people_tend(world, rng, seconds=seconds * scale))
    await asyncio.sleep(rng.uniform(*onset) * scale)
    await fault.inject()
    await asyncio.sleep(outage_s())
    await fault.heal()
    await asyncio.gather(users, tend)


# ---------------------------------------------------------------------------------------------
# The scenarios.


async def incident_2023_08_15(world: World, rng: random.Random, options: RunOptions) -> None:
    """Replay of 15 Aug 2023: the command client times out and its adapter lies."""
    scale = options.scale
    # Morning: every printer prints something; nobody clears the plates afterwards.
    for printer_id in world.printers:
        await world.submit(printer_id, window_s=120 * scale, re_requests=1)
    await asyncio.sleep(20 * scale)
    # Next prints queue up behind the finished ones.
    for printer_id in world.printers:
        await world.submit(printer_id, window_s=240 * scale, re_requests=1)
    await asyncio.sleep(5 * scale)
    lie = FalseReconnect(world)
    await lie.inject()
    # Users keep submitting through the outage; the desktop app re-sends at once.
    await users_submit(
        world, rng, seconds=60 * scale, every=5 * scale, re_requests=2, window=120 * scale
    )
    await lie.heal()
    await asyncio.sleep(10 * scale)


async def broker_kill(world: World, rng: random.Random, options: RunOptions) -> None:
    """The broker is killed -9 mid-traffic and restarts on the same port."""
    scale = options.scale
    await fault_under_traffic(
        world, rng, BrokerKill(world), scale=scale, outage_s=lambda: rng.uniform(5, 20) * scale
    )


async def broker_freeze(world: World, rng: random.Random, options: RunOptions) -> None:
    """The broker is stopped (SIGSTOP) long enough for half-open links, then continued."""
    scale = options.scale
    await fault_under_traffic(
        world,
        rng,
        BrokerFreeze(world),
        scale=scale,
        outage_s=lambda: max(4.0, rng.uniform(10, 40) * scale),
    )


async def printer_restart(world: World, rng: random.Random, options: RunOptions) -> None:
    """A printer loses power mid-print and boots again: the job fails, nothing reruns."""
    scale = options.scale
    restart = PrinterRestart(world)
    for printer_id in world.printers:
        await world.submit(printer_id, window_s=60 * scale, re_requests=1)
    tend = asyncio.create_task(people_tend(world, rng, seconds=60 * scale))
    printing = await world.until(
        lambda: any(
            slot.hardware is not None and slot.hardware.current_print() is not None
            for slot in world.printers.values()
        ),
        within=30 * scale + 10,
    )
    if printing:
        await restart.inject()
    await tend


async def printer_link_burst(world: World, rng: random.Random, options: RunOptions) -> None:
    """A printer's link holds everything, then delivers the pile at once (late starts)."""
    scale = options.scale
    await fault_under_traffic(
        world,
        rng,
        PrinterLinkBurst(world, rng.choice(list(world.printers))),
        scale=scale,
        outage_s=lambda: max(5.0, 45 * scale),
        seconds=60,
        every=4,
        re_requests=0,
        onset=(5, 15),
    )


async def clock_skew(world: World, rng: random.Random, options: RunOptions) -> None:
    """Printer clocks hours off and drifting; prints must still start only on time."""
    scale = options.scale
    world.fault("printer clocks skewed by hours and drifting up to 500 ppm")
    await asyncio.gather(
        users_submit(
            world, rng, seconds=60 * scale, every=4 * scale, re_requests=1, window=60 * scale
        ),
        people_tend(world, rng, seconds=60 * scale),
    )


async def late_start(world: World, rng: random.Random, options: RunOptions) -> None:
    """A start is delayed in flight past its deadline, then delivered: the printer must refuse
    it."""
    scale = options.scale
    held = StartHeldInFlight(world)
    tend = asyncio.create_task(people_tend(world, rng, seconds=90 * scale))
    for printer_id in world.printers:
        await world.submit(printer_id, window_s=120 * scale)
    window_s = world.settings.dispatch_window_ms / 1000
    # Well past the start's deadline (the dispatch window) before the start arrives.
    if await held.inject(window_s + 2, within=30 * scale + 10):
        await asyncio.sleep(window_s + 3)
        await held.heal()
    await tend


async def cloud_crash(world: World, rng: random.Random, options: RunOptions) -> None:
    """The cloud process is killed -9 between recording a start and publishing it; a fresh one
    takes over from the store alone."""
    scale = options.scale
    crash = CloudCrash(world)
    world.on_finish.append(crash.finish)
    await crash.hand_over()
    tend = asyncio.create_task(people_tend(world, rng, seconds=60 * scale))
    for printer_id in world.printers:
        await world.submit(printer_id, window_s=90 * scale, re_requests=1)
    await crash.crash_and_reboot(within=30 * scale + 10)
    await users_submit(
        world, rng, seconds=30 * scale, every=5 * scale, re_requests=1, window=90 * scale
    )
    await tend


async def database_restart(world: World, rng: random.Random, options: RunOptions) -> None:
    """PostgreSQL is killed mid-traffic and restarted; the store is the only truth."""
    scale = options.scale
    await fault_under_traffic(
        world,
        rng,
        DatabaseRestart(world),
        scale=scale,
        outage_s=lambda: rng.uniform(5, 20) * scale,
    )


async def tenants_and_settings(world: World, rng: random.Random, options: RunOptions) -> None:
    """Two tenants: ana owns x1-0 and p1-2, ben owns x1-1. Model-wide jobs from both, a share
    revoked while a job waits on it, and plate checks turned back on while their printers are
    away (one stopped, one frozen) and come back with a print on the plate."""
    del rng  # the story is fixed; its timing is the real processes'
    scale = options.scale
    window = max(20.0, 150 * scale)
    within = 5 + 30 * scale
    # ben may print on ana's x1-0; ana may only watch ben's x1-1.
    world.share("x1-0", "ben", "operator")
    world.share("x1-1", "ana", "viewer")

    # S1: "any x1" means any x1 I may operate: ana's second job waits for x1-0, on the plate
    # her first one left there, and never goes to ben's idle x1-1.
    await world.submit(None, model="x1", user="ana", window_s=window)
    second = await world.submit(None, model="x1", user="ana", window_s=window)
    await world.submit(None, model="x1", user="ben", window_s=window)
    await _until_staged_on(world, second, "x1-0", within=within)
    # ben's next job goes to the first x1 he may use, ana's, and waits there on its plate; ana
    # takes the share back while it waits, and it moves to ben's own x1-1.
    moved = await world.submit(None, model="x1", user="ben", window_s=window)
    await _until_staged_on(world, moved, "x1-0", within=within)
    world.revoke("x1-0", "ben")
    await _until_staged_on(world, moved, "x1-1", within=within)
    await world.tend("x1-1")
    await _until_ended(world, moved, within=within)
    await world.tend("x1-0")
    await _until_ended(world, second, within=within)

    # S5, both at once: one printer stopped, one frozen.
    await asyncio.gather(
        _plate_check_turned_on_while_away(
            world, "x1-0", "stopped", scale=scale, window=window, within=within
        ),
        _plate_check_turned_on_while_away(
            world, "p1-2", "frozen", scale=scale, window=window, within=within
        ),
    )


async def _plate_check_turned_on_while_away(
    world: World,
    printer_id: str,
    how: Literal["stopped", "frozen"],
    *,
    scale: float,
    window: float,
    within: float,
) -> None:
    """Check off, a print ends and stays on the plate, the printer goes away, its owner turns
    the check back on and asks for a print, the printer returns: nothing may start onto the
    old print; the job waits until a person has cleared (and, without a sensor, confirmed)."""
    owner = world.owners[printer_id]
    model = world.printers[printer_id].model
    await world.tend(printer_id)
    world.set_plate_check(printer_id, enabled=False)
    await _until_reported(world, printer_id, check=False, within=within)
    first = await world.submit(printer_id, user=owner, window_s=window)
    await _until_ended(world, first, within=within)
    await _until_idle_with_a_print_on(world, printer_id, within=within)
    away = PrinterAway(world, printer_id, how)
    await away.inject()
    # Away as the cloud sees it: no fresh report, so nothing is sent there (and lost) now.
    await _until(world, lambda: not world.reachable(printer_id), within=within)
    world.set_plate_check(printer_id, enabled=True)
    # "Any printer of my model": the owner may operate no other, so it waits for this one.
    waiting = await world.submit(None, model=model, user=owner, window_s=window)
    await asyncio.sleep(max(1.0, 10 * scale))  # how long the printer stays away
    await away.heal()
    await _until_reported(world, printer_id, check=True, within=within)
    await _until_held_by_the_plate(world, waiting, printer_id, within=within)
    await world.tend(printer_id)
    slot = world.printers[printer_id]
    if slot.hardware is not None and not slot.hardware.has_plate_sensor:
        await world.confirm_remotely(printer_id)
    await _until_ended(world, waiting, within=within)


async def _until(world: World, condition: Callable[[], bool], *, within: float) -> bool:
    # A story step that does not happen in time is not a failure in itself: the checker judges
    # what did happen, and the settle ends every job.
    return await world.until(condition, within=within)


async def _until_idle_with_a_print_on(world: World, printer_id: str, *, within: float) -> bool:
    def idle_with_a_print() -> bool:
        hardware = world.printers[printer_id].hardware
        return (
            hardware is not None and hardware.current_print() is None and hardware.plate.objects > 0
        )

    return await _until(world, idle_with_a_print, within=within)


async def _until_staged_on(world: World, job_id: str, printer_id: str, *, within: float) -> bool:
    """Until the job's file is on ``printer_id`` and it waits to start there (or it went ahead:
    what the checker judges)."""

    async def staged() -> bool:
        job = await world.jobs.job(job_id)
        if job is None:
            return False
        waits = job.state is JobState.STAGED and job.assigned_printer == printer_id
        return waits or job.state not in {JobState.QUEUED, JobState.STAGED}

    return await world.eventually(staged, within=within)


async def _until_held_by_the_plate(
    world: World, job_id: str, printer_id: str, *, within: float
) -> bool:
    """Until the job waits on ``printer_id`` for its plate alone (staged there, the printer
    applying the owner's check and reporting a plate not known clear) for two planning rounds,
    or went ahead: what the checker judges."""

    async def held() -> bool:
        job = await world.jobs.job(job_id)
        if job is None:
            return False
        if job.state not in {JobState.QUEUED, JobState.STAGED}:
            return True
        view = world.cloud.fleet.view(printer_id)
        return (
            job.state is JobState.STAGED
            and job.assigned_printer == printer_id
            and view is not None
            and view.reported == SafetySettings(plate_check=True)
            and view.plate is not PlateStatus.CLEAR
        )

    if not await world.eventually(held, within=within):
        return False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await world.cloud.dispatcher.wait_ticks(2)
    return True


async def _until_ended(world: World, job_id: str, *, within: float) -> bool:
    async def ended() -> bool:
        job = await world.jobs.job(job_id)
        return job is not None and job.state.terminal

    return await world.eventually(ended, within=within)


async def _until_reported(world: World, printer_id: str, *, check: bool, within: float) -> bool:
    applied = SafetySettings(plate_check=check)
    return await _until(
        world, lambda: world.reported_settings(printer_id) == applied, within=within
    )


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "incident-2023-08-15",
            "one of two cloud MQTT clients times out and its adapter reports a reconnect that "
            "did not happen; users re-submit through a 60 s outage; then the link returns",
            incident_2023_08_15,
        ),
        Scenario("broker-kill", "kill -9 the broker mid-traffic, restart it", broker_kill),
        Scenario(
            "broker-freeze", "SIGSTOP the broker (half-open links), then SIGCONT", broker_freeze
        ),
        Scenario("printer-restart", "a printer loses power mid-print and boots", printer_restart),
        Scenario(
            "printer-link-burst",
            "a printer's link holds all traffic, then delivers it in one burst",
            printer_link_burst,
        ),
        Scenario(
            "clock-skew", "printer clocks hours off and drifting", clock_skew, clock_skew=True
        ),
        Scenario(
            "late-start",
            "a printer's link delays a start past its deadline, then delivers it",
            late_start,
            # The production keep-alive: a link this slow is not yet a dead one.
            keepalive_s=10,
        ),
        Scenario(
            "tenants-and-settings",
            "two tenants print on any printer of a model; a share is revoked while a job waits "
            "on it; plate checks are turned back on while their printers are away (one "
            "stopped, one frozen) and the printers return with a print on the plate",
            tenants_and_settings,
            owners=("ana", "ben", "ana"),
        ),
        Scenario(
            "cloud-crash",
            "the cloud process is killed -9 between recording a start and publishing it; a "
            "new one boots on the same PostgreSQL",
            cloud_crash,
            database="postgres",
        ),
        Scenario(
            "db-restart",
            "PostgreSQL (the job store) is killed -9 mid-traffic and restarted",
            database_restart,
            database="postgres",
        ),
    )
}
