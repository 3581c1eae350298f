"""A printer agent and its simulated printer in a process of their own, for tests that freeze it.

Usage: ``python agent_process.py BROKER_URL PRINTER_ID DATA_DIR TIME_SCALE HOTEND_TARGET``

Once connected it sets the hotend target on the board and writes ``{"ready": true}``; then, after
every watchdog refresh the agent makes, one JSON line with the board's last refresh, its watchdog
trip time (or null) and the hotend target, all in hardware seconds. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import HeaterId
from printfleet.agent.runtime import PrinterAgent
from printfleet.sim import SimulatedPrinter


def _emit(fields: dict[str, object]) -> None:
    # Unbuffered and whole lines: the test reads them as they come, and a SIGSTOP must not
    # strand a refresh in a buffer.
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class ReportingPrinter(SimulatedPrinter):
    """A simulated printer that reports every watchdog refresh on standard output."""

    async def refresh_watchdog(self) -> None:
        """Refresh, then say when the board saw it and whether its watchdog had tripped."""
        await super().refresh_watchdog()
        board = self.board
        _emit(
            {
                "refreshed": board.last_refresh,
                "tripped_at": board.watchdog_tripped_at,
                "target": board.hotend.target,
            }
        )


async def main(
    broker: str, printer_id: str, data_dir: Path, time_scale: float, target: float
) -> None:
    """Run until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    config = AgentConfig(
        printer_id=printer_id,
        broker=broker,
        data_dir=data_dir / "agent",
        telemetry_period_s=0.1,
    )
    printer = ReportingPrinter("x1", storage_dir=data_dir / "sd", time_scale=time_scale)
    async with printer:
        agent = PrinterAgent(config, printer)
        task = asyncio.create_task(agent.run(), name="agent")
        await agent.ready.wait()
        await printer.set_heater_target(HeaterId.HOTEND, target)
        _emit({"ready": True})
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


if __name__ == "__main__":
    url, pid, directory, scale, hotend = sys.argv[1:6]
    asyncio.run(main(url, pid, Path(directory), float(scale), float(hotend)))
