"""``printfleet chaos run``: scenarios of faults injected into real processes, checked for S1-S9.

Each scenario starts a world (:mod:`printfleet.chaos.world`), plays users submitting prints,
injects its faults at seeded moments, then heals everything and lets people tend the printers
until every job has ended. The recorded history is judged by
:func:`printfleet.chaos.real_checker.check_recorded`. The scenarios themselves are in
:mod:`printfleet.chaos.scenarios`, the summary, JSON and timeline in :mod:`printfleet.chaos.report`.
"""

import asyncio
import random
import tempfile
import time
from pathlib import Path

from printfleet.chaos.real_checker import check_recorded
from printfleet.chaos.recorder import HistoryRecorder, Kind
from printfleet.chaos.report import ScenarioResult, write_json, write_timeline
from printfleet.chaos.scenarios import SCENARIOS, RunOptions
from printfleet.chaos.world import running_world
from printfleet.chaos.world_settings import WorldSettings

# The command line reaches the scenario list through this module.
__all__ = ["SCENARIOS", "RunOptions", "run_command", "run_scenario"]


async def run_scenario(
    name: str, options: RunOptions, *, history_path: Path | None = None
) -> ScenarioResult:
    """Run one scenario against real processes and judge its history."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        msg = f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}"
        raise ValueError(msg)
    rng = random.Random(options.seed)  # noqa: S311 - a replayable schedule, not a secret
    settings = WorldSettings(
        safeguards=options.safeguards,
        dispatch_window_ms=int(30_000 * options.scale),
        clock_skew=scenario.clock_skew,
        keepalive_s=scenario.keepalive_s,
        database=scenario.database,
        owners=scenario.owners,
    )
    began = time.monotonic()
    result = ScenarioResult(name, options.seed, options.safeguards, options.quick)
    with (
        tempfile.TemporaryDirectory(prefix="printfleet-chaos-") as home,
        HistoryRecorder(history_path) as recorder,
    ):
        async with running_world(settings, recorder, seed=options.seed, home=Path(home)) as world:
            await scenario.body(world, rng, options)
            result.settled = await world.settle(within=max(30.0, 240 * options.scale))
            for finish in world.on_finish:
                await finish()
            result.requests = world.requests
            result.job_states = await world.jobs.states()
            result.jobs = sum(result.job_states.values())
            result.faults_injected = world.faults_injected
        result.events = sorted(recorder.events, key=lambda event: event.at)
    result.starts = sum(1 for event in result.events if event.kind is Kind.PRINT_STARTED)
    result.violations = check_recorded(
        result.events, dispatch_window_ms=settings.dispatch_window_ms, require_terminal=True
    )
    result.seconds = time.monotonic() - began
    return result


def run_command(
    scenario: str,
    *,
    seed: int,
    seeds: int,
    safeguards: bool,
    quick: bool,
    json_output: bool,
    timeline: Path | None,
    history: Path | None,
) -> int:
    """``printfleet chaos run``: run, print the summary or JSON, write the timeline; exit code."""
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    if any(name not in SCENARIOS for name in names):
        msg = f"unknown scenario {scenario!r}; known: all, {', '.join(SCENARIOS)}"
        raise ValueError(msg)
    results = []
    for name in names:
        for number in range(seed, seed + seeds):
            path = None
            if history is not None:
                path = history if len(names) * seeds == 1 else _suffixed(history, name, number)
            options = RunOptions(seed=number, safeguards=safeguards, quick=quick)
            result = asyncio.run(run_scenario(name, options, history_path=path))
            results.append(result)
            if not json_output:
                print(result.summary(), flush=True)  # noqa: T201 - the command's output
            if timeline is not None:
                target = timeline if len(names) * seeds == 1 else _suffixed(timeline, name, number)
                write_timeline(result, target)
    if json_output:
        print(write_json(results))  # noqa: T201 - the command's output
    failed = any(result.violations or not result.settled for result in results)
    return 1 if failed and safeguards else 0


def _suffixed(path: Path, name: str, seed: int) -> Path:
    return path.with_name(f"{path.stem}-{name}-{seed}{path.suffix}")
