"""``printfleet agent screen``: the printer's screen as a real process, over the agent's LAN API,
with no broker: SD-card files listed and printed, refusals shown with their reason."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from tests.agent.test_lan_api import (
    CODE,
    WAIT_S,
    gcode,
    lan_agent,
    lan_config,
    off_loop,
    status_until,
)

from printfleet.agent.screen import PrinterScreen
from printfleet.client.lan import LanClient
from printfleet.protocol.messages import JournalStatus
from printfleet.sim import SimulatedPrinter

PRINTFLEET = Path(sys.executable).parent / "printfleet"


async def run_screen(*args: str, keys: str) -> tuple[int, str]:
    """Run ``printfleet agent screen ARGS`` with ``keys`` typed in; its status and output."""
    process = await asyncio.create_subprocess_exec(
        PRINTFLEET,
        "agent",
        "screen",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(WAIT_S * 2):
        output, _ = await process.communicate(keys.encode())
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.asyncio
async def test_the_screen_prints_a_file_from_the_sd_card_with_no_broker(tmp_path: Path) -> None:
    async with (
        SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=40.0) as sim,
        lan_agent(lan_config(tmp_path / "agent", printer_id="screen-p1"), sim) as agent,
    ):
        await sim.storage.write("benchy.gcode", gcode())
        assert agent.lan_address is not None
        port = agent.lan_address[1]
        config = tmp_path / "agent.toml"
        config.write_text(
            f'printer_id = "screen-p1"\nlan_listen = "0.0.0.0:{port}"\nlan_access_code = "{CODE}"\n'
        )
        # A p1 without a confirmed plate: the screen says why it will not print.
        status, shown = await run_screen("--config", str(config), keys="p\n1\nq\n")
        assert status == 0, shown
        assert "screen-p1 (p1): idle" in shown
        assert "1. benchy.gcode" in shown
        assert "Refused by the printer (PLATE_UNCONFIRMED)" in shown
        assert sim.current_print() is None
        # Confirm the plate, then print: the same gate, now satisfied.
        status, shown = await run_screen("--config", str(config), keys="c\np\n1\n")
        assert status == 0, shown  # input ended: the screen closes
        assert "Plate confirmed clear." in shown
        assert "Printing benchy.gcode" in shown
        journal = agent.core.journal
        with LanClient(f"127.0.0.1:{port}", CODE) as client:
            # The print ends on its own; its report is what it leaves behind.
            await status_until(client, lambda _: bool(journal.unacknowledged_reports()))
        reports = journal.unacknowledged_reports()
        assert [r.source.value for r in reports.values()] == ["screen"]
        (job_id,) = reports
        assert agent.core.journal.job_status(job_id) is JournalStatus.COMPLETED

        wrong, shown = await run_screen(
            "--host", f"127.0.0.1:{port}", "--access-code", "not-the-code", keys="q\n"
        )
        assert wrong == 1
        assert "Access refused" in shown


@pytest.mark.asyncio
async def test_the_screen_explains_bad_choices_and_an_empty_card(tmp_path: Path) -> None:
    async with (
        SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=40.0) as sim,
        lan_agent(lan_config(tmp_path / "agent", printer_id="screen-x1"), sim) as agent,
    ):
        assert agent.lan_address is not None
        keys = iter(["p", "z", "?", "f"])
        shown: list[str] = []

        def read(prompt: str) -> str:
            try:
                return next(keys)
            except StopIteration:
                raise EOFError from None

        with LanClient(f"127.0.0.1:{agent.lan_address[1]}", CODE) as client:
            screen = PrinterScreen(client, read_line=read, write=shown.append)
            assert await off_loop(screen.run) == 0
        assert "The SD card holds no files." in shown
        assert any("Refused by the printer (NO_SUCH_JOB)" in line for line in shown), shown
        assert "Unknown choice '?'." in shown
        assert "Fault cleared." in shown  # nothing latched: clearing is harmless
