"""`ThermalWatch`, thermal protection's loop, on the simulated printer: a host that stalls is not a
silent sensor, and a sensor that falls silent is still caught in time.

The stall is made without sleeping: the printer's clock skips forward, as it does for an agent
whose process was paused (a garbage collection, a busy machine) while the hardware ran on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from printfleet.agent.hardware import HeaterId, HeaterReading
from printfleet.agent.thermal import (
    STALE_AFTER,
    FaultKind,
    ThermalFault,
    ThermalGuard,
    detection_bound,
)
from printfleet.agent.thermal_watch import ThermalWatch
from printfleet.sim.clock import SimClock
from printfleet.sim.printer import SimulatedPrinter

pytestmark = pytest.mark.asyncio

TIME_SCALE = 20.0
"""Hardware seconds per real second: a silent sensor is caught in under half a real second."""
LOOP_LATENCY_S = 0.02
"""Real seconds an asyncio timer may fire late on a loaded machine (as in test_runtime)."""
STALL_S = 2 * STALE_AFTER
"""Hardware seconds the host stalls for: longer than a sensor may stay silent."""
WAIT_S = 10.0


class SkippingClock(SimClock):
    """A `SimClock` that can jump forward, as the hardware's time does past a stalled host."""

    __slots__ = ("_skipped",)

    def __init__(self, time_scale: float) -> None:
        super().__init__(time_scale)
        self._skipped = 0.0

    def skip(self, seconds: float) -> None:
        """Move the clock `seconds` of hardware time forward at once."""
        self._skipped += seconds

    def now(self) -> float:
        """Hardware seconds, including every skip."""
        return super().now() + self._skipped


class ProbedPrinter(SimulatedPrinter):
    """A simulated printer that can stall its host after a reading, or silence a sensor.

    `stall_after_reading` (a heater) stalls the host for `STALL_S` right after the next reading
    of that heater: the reading is fresh, then time passes before the agent goes on. `silence`
    freezes a sensor: every later reading is the last one it gave, with the same ``read_at``.
    `rounds` counts readings of the bed, one per round of the watch.
    """

    def __init__(self, storage_dir: Path) -> None:
        self.skipping_clock = SkippingClock(TIME_SCALE)
        super().__init__("x1", storage_dir=storage_dir, clock=self.skipping_clock)
        self.stall_after_reading: HeaterId | None = None
        self.stalled = asyncio.Event()
        self.silent: dict[HeaterId, HeaterReading] = {}
        self.rounds = 0
        self._round = asyncio.Event()

    def read_heater(self, heater: HeaterId) -> HeaterReading:
        """The reading now, or the frozen one of a silenced sensor; a stall after it if asked."""
        reading = self.silent.get(heater) or super().read_heater(heater)
        if heater is self.stall_after_reading:
            self.stall_after_reading = None
            self.skipping_clock.skip(STALL_S)
            self.stalled.set()
        if heater is HeaterId.BED:
            self.rounds += 1
            self._round.set()
        return reading

    def silence(self, heater: HeaterId) -> HeaterReading:
        """Freeze `heater`'s sensor at its reading now; return that reading."""
        reading = self.silent[heater] = super().read_heater(heater)
        return reading

    async def rounds_done(self, count: int) -> None:
        """Wait until the watch has read the bed `count` times in all."""
        async with asyncio.timeout(WAIT_S):
            while self.rounds < count:
                self._round.clear()
                await self._round.wait()


@pytest_asyncio.fixture
async def watched(
    tmp_path: Path,
) -> AsyncIterator[tuple[ProbedPrinter, ThermalGuard, ThermalWatch]]:
    """A printer, its guard, and the watch running over them."""
    printer = ProbedPrinter(tmp_path / "sd")
    guard = ThermalGuard()
    watch = ThermalWatch(printer, guard, fault_latched=lambda: False)
    async with printer:
        task = asyncio.create_task(watch.run())
        try:
            yield printer, guard, watch
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("heater", list(HeaterId))
async def test_a_host_stall_right_after_a_reading_is_not_a_silent_sensor(
    heater: HeaterId, watched: tuple[ProbedPrinter, ThermalGuard, ThermalWatch]
) -> None:
    printer, guard, watch = watched
    await printer.rounds_done(3)
    printer.stall_after_reading = heater
    async with asyncio.timeout(WAIT_S):
        await printer.stalled.wait()
    stalled_at = printer.rounds
    await printer.rounds_done(stalled_at + 5)

    assert list(watch.found_faults()) == []
    assert guard.latched is None


@pytest.mark.parametrize("heater", list(HeaterId))
async def test_a_silent_sensor_is_caught_within_its_bound_even_after_a_stall(
    heater: HeaterId, watched: tuple[ProbedPrinter, ThermalGuard, ThermalWatch]
) -> None:
    printer, guard, watch = watched
    await printer.rounds_done(3)
    printer.stall_after_reading = heater
    async with asyncio.timeout(WAIT_S):
        await printer.stalled.wait()
    await printer.rounds_done(printer.rounds + 2)
    last = printer.silence(heater)

    async with asyncio.timeout(WAIT_S):
        await watch.found.wait()
    faults: list[ThermalFault] = list(watch.found_faults())
    assert [(f.heater, f.kind) for f in faults] == [(heater, FaultKind.SENSOR_STALE)]
    assert guard.latched == faults[0]
    silent_for = faults[0].detected_at - last.read_at
    bound = detection_bound(FaultKind.SENSOR_STALE, heater, 0.0, 25.0)
    assert STALE_AFTER < silent_for <= bound + LOOP_LATENCY_S * TIME_SCALE, silent_for
    assert faults[0].temperature == last.temperature
