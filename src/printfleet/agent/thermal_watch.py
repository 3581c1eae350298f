"""Thermal protection's loop: both heaters read every `READING_PERIOD`, power cut on a fault.

The checks are `ThermalGuard`'s (`printfleet.agent.thermal`). This loop never waits for the
agent's lock or the network: a fault cuts the heaters here and now, and is handed on to be
latched in the core, journaled and announced (S6).
"""

import asyncio
from collections import deque
from collections.abc import Callable, Iterator

from printfleet.agent.hardware import Hardware, HeaterId
from printfleet.agent.thermal import READING_PERIOD, ThermalFault, ThermalGuard


class ThermalWatch:
    """Watches one printer's heaters while ``run()`` runs.

    ``fault_latched`` says whether a fault is latched outside the guard (in the printer's core,
    say, from before a restart): while one is, nothing may heat, whoever set the target.
    """

    __slots__ = ("_fault_latched", "_guard", "_hardware", "_pending", "found")

    def __init__(
        self, hardware: Hardware, guard: ThermalGuard, *, fault_latched: Callable[[], bool]
    ) -> None:
        self._hardware = hardware
        self._guard = guard
        self._fault_latched = fault_latched
        self._pending: deque[ThermalFault] = deque()
        self.found = asyncio.Event()
        """Set when faults are waiting to be taken with `found_faults`."""

    def found_faults(self) -> Iterator[ThermalFault]:
        """The faults found and not yet taken, oldest first, including any found meanwhile."""
        self.found.clear()
        while self._pending:
            yield self._pending.popleft()

    async def run(self) -> None:
        """Refresh the watchdog, read both heaters and run the checks, every `READING_PERIOD`."""
        hardware, guard = self._hardware, self._guard
        clock = hardware.clock
        next_reading = clock.now()
        while True:
            await hardware.refresh_watchdog()
            # The checks run as of when the readings were asked for, not when they are judged:
            # time the host spends between the two (a pause, a busy machine) is the agent's, and
            # must not count as silence of a sensor that has just given a fresh reading.
            asked_at = clock.now()
            readings = [hardware.read_heater(heater) for heater in HeaterId]
            faults = [
                fault for reading in readings if (fault := guard.observe(reading)) is not None
            ]
            faults.extend(guard.tick(asked_at))
            latched = guard.latched is not None or self._fault_latched()
            if faults or (latched and any(reading.target > 0 for reading in readings)):
                # Cut power first. While a fault is latched nothing may heat, whoever set it.
                await hardware.heaters_off()
            if faults:
                self._pending.extend(faults)
                self.found.set()
            # A fixed rate, so the guard sees readings `READING_PERIOD` apart, as its detection
            # bounds assume, however long each round takes. After a stall, a new grid: readings
            # in a burst to catch up would count as consecutive samples of one instant.
            next_reading += READING_PERIOD
            now = clock.now()
            if next_reading < now:
                next_reading = now + READING_PERIOD
            await clock.sleep(next_reading - now)
