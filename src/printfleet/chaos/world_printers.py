"""The printers of a chaos world: the real agent over a simulated printer whose physics the harness
witnesses, and the slot that holds each one's proxy, hardware and running agent.
"""

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from printfleet.agent.hardware import HeaterId
from printfleet.agent.runtime import PrinterAgent, monotonic_ms
from printfleet.chaos.proxy import FaultProxy
from printfleet.chaos.recorder import HistoryRecorder, Kind
from printfleet.sim.gcode import SimulatedPrint
from printfleet.sim.printer import SimulatedPrinter


class WitnessedPrinter(SimulatedPrinter):
    """A simulated printer that tells the history what physically happened."""

    def __init__(
        self, model: str, *, printer_id: str, recorder: HistoryRecorder, **kwargs: object
    ) -> None:
        super().__init__(model, **kwargs)  # type: ignore[arg-type]
        self.printer_id = printer_id
        self.recorder = recorder
        self.own_plate_check: Callable[[], bool] = lambda: True
        """The printer's own plate-check setting now (the harness points it at the agent)."""

    async def start_print(self, file_name: str) -> SimulatedPrint:
        """Start, and record the truth at that instant."""
        objects, busy = self.plate.objects, self.current_print() is not None
        handle = await super().start_print(file_name)
        job_id = file_name.removeprefix("job-").removesuffix(".gcode")
        self.recorder.record(
            Kind.PRINT_STARTED,
            printer_id=self.printer_id,
            job_id=job_id,
            plate_objects=objects,
            busy=busy,
            has_plate_sensor=self.has_plate_sensor,
            plate_check=self.own_plate_check(),
        )
        return handle

    async def set_heater_target(self, heater: HeaterId, celsius: float) -> None:
        """Heat, and record that it was asked."""
        if celsius > 0:
            self.recorder.record(
                Kind.HEATER_TARGET,
                printer_id=self.printer_id,
                heater=heater.value,
                target_c=round(celsius),
            )
        await super().set_heater_target(heater, celsius)


@dataclass(slots=True)
class PrinterSlot:
    """One printer: its proxy to the broker, its hardware, its running agent."""

    printer_id: str
    model: str
    home: Path
    proxy: FaultProxy
    clock_ms: Callable[[], int]
    hardware: WitnessedPrinter | None = None
    agent: PrinterAgent | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0


def skewed_clock(rng: random.Random) -> Callable[[], int]:
    """A printer clock hours off the cloud's and drifting by up to 500 ppm."""
    # Ahead only: a printer's local clock never reads below zero.
    offset = rng.randint(3_600_000, 6 * 3_600_000)
    ppm = rng.randint(-500, 500)
    origin = monotonic_ms()
    return lambda: (now := monotonic_ms()) + offset + ((now - origin) * ppm) // 1_000_000
