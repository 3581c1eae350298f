"""Many printers in one process: idle printers must cost little memory and no CPU."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from printfleet.agent.hardware import HeaterId, PrintOutcomeKind
from printfleet.sim import SimClock, SimulatedPrinter, make_sample_gcode

FLEET = 1000
MEMORY_BUDGET = 200 * 1024  # bytes per printer
CPU_BUDGET = 0.0005  # fraction of a core per idle printer


@pytest.mark.asyncio
async def test_a_thousand_idle_printers_fit_the_budget(tmp_path: Path) -> None:
    clock = SimClock(60.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        printers = [
            SimulatedPrinter(
                "x1" if n % 2 else "p1", storage_dir=tmp_path / f"p{n}", clock=clock, seed=n
            )
            for n in range(FLEET)
        ]
        async with AsyncExitStack() as stack:
            for printer in printers:
                await stack.enter_async_context(printer)
                printer.read_heater(HeaterId.HOTEND)
                printer.read_plate()
            per_printer = (tracemalloc.get_traced_memory()[0] - before) / FLEET
            tracemalloc.stop()
            assert per_printer < MEMORY_BUDGET
            # Nothing ticks: powered-on idle printers run no task at all.
            assert asyncio.all_tasks() == {asyncio.current_task()}
            idle_real_s = 0.5
            cpu_before = time.process_time()
            await asyncio.sleep(idle_real_s)  # idle time is what is being measured
            cpu = time.process_time() - cpu_before
            assert cpu < idle_real_s * CPU_BUDGET * FLEET
            # Catching up after idle time is cheap and right: everything is still at ambient.
            assert all(p.read_heater(HeaterId.BED).temperature == 25.0 for p in printers)
    finally:
        tracemalloc.stop()


@pytest.mark.asyncio
async def test_two_hundred_printers_print_at_once(tmp_path: Path) -> None:
    clock = SimClock(200.0)
    sample = make_sample_gcode(3, heat=False).encode()
    async with AsyncExitStack() as stack:
        printers = []
        for n in range(200):
            printer = SimulatedPrinter(
                "x1", storage_dir=tmp_path / f"p{n}", clock=clock, watchdog_timeout=None
            )
            printers.append(await stack.enter_async_context(printer))
            await printer.storage.write("cube.gcode", sample)
        handles = [await p.start_print("cube.gcode") for p in printers]
        outcomes = await asyncio.gather(*(h.wait() for h in handles))
    assert {o.kind for o in outcomes} == {PrintOutcomeKind.COMPLETED}
    assert all(p.plate.occupied for p in printers)
