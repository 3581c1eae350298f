"""A cloud outage end to end: the real cloud app (uvicorn, SQLite), a Mosquitto of this test's own,
and a printer agent on a simulated x1 with its LAN API on.

With the broker and the cloud stopped, the print the cloud started runs to completion, a LAN
print and an SD-card print from the printer's screen run too; a job submitted before the
outage, whose window passes meanwhile, is never started. When both come back, the cloud's
history holds both local prints (reported from the printer's journal until acknowledged), the
job it started is completed, the waiting one expired, and the outage's telemetry is summarised.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from tests.agent.test_lan_api import CODE, WAIT_S, off_loop, status_until
from tests.cloud.test_api import settings_for, sign_up
from tests.cloud.test_e2e_jobs import LONG, SHORT, Shop, _cloud, until

from printfleet.agent.runtime import PrinterAgent
from printfleet.agent.screen import PrinterScreen
from printfleet.client.lan import LanClient, lan_print
from printfleet.protocol.messages import JournalStatus
from printfleet.sim import SimulatedPrinter
from printfleet.testing import MosquittoBroker

WINDOW_S = 3
"""The waiting job's start window: it passes during the outage."""


@pytest.mark.asyncio
async def test_an_outage_loses_no_print_starts_no_stale_job_and_is_reported_on_return(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    settings = settings_for(tmp_path, database, fresh_mosquitto.url, probe_interval_s=0.5)
    async with contextlib.AsyncExitStack() as stack:  # the printer outlives both clouds
        async with _cloud(settings) as first:
            token = await sign_up(first.client, "maker@example.org")
            shop = Shop(first, token, tmp_path, stack)
            x1 = await shop.printer("x1", power_on=False)
            config = x1.config.model_copy(
                update={
                    "lan_listen": "127.0.0.1:0",
                    "lan_access_code": SecretStr(CODE),
                    "report_retry_s": 0.5,
                }
            )
            agent = PrinterAgent(config, x1.hardware)
            running = asyncio.create_task(agent.run(), name="agent")
            stack.push_async_callback(_stop, running)
            async with asyncio.timeout(WAIT_S):
                await agent.lan_ready.wait()
            await shop.online(x1.id)

            printing = await shop.submit(x1.id, LONG)
            await until(lambda: _state_is(shop, printing, "printing"), within=WAIT_S)
            submitted = time.monotonic()
            waiting = await shop.submit(x1.id, SHORT, start_within_s=WINDOW_S)
        # The cloud is gone; so is the broker.
        fresh_mosquitto.stop()
        assert x1.hardware.current_print() is not None

        assert agent.lan_address is not None
        with LanClient(f"127.0.0.1:{agent.lan_address[1]}", CODE) as client:
            # The cloud's print goes on without anyone to report to.
            done = await status_until(client, lambda s: s.status == "idle")
            assert done.broker_connected is False
            assert agent.core.journal.job_status(printing) is JournalStatus.COMPLETED
            lan_job_id = await print_offline(client, x1.hardware, tmp_path)

        # The waiting job's window passes while everything is down.
        await asyncio.sleep(max(0.0, submitted + WINDOW_S + 0.5 - time.monotonic()))
        fresh_mosquitto.start()
        async with _cloud(settings) as second:
            shop.cloud = second

            async def history() -> list[dict[str, Any]]:
                return list(await shop.call("GET", "/api/v1/audit", params={"printer_id": x1.id}))

            async def both_reported() -> bool:
                actions = {(e["job_id"], e["action"]) for e in await history()}
                return (lan_job_id, "local_job.completed") in actions and any(
                    action == "local_job.completed" and job_id != lan_job_id
                    for job_id, action in actions
                )

            await until(both_reported, within=WAIT_S)
            await until(lambda: _state_is(shop, printing, "completed"), within=WAIT_S)
            await until(lambda: _state_is(shop, waiting, "expired"), within=WAIT_S)
            # Acknowledged: the printer stops re-sending its reports.
            await until(
                lambda: _true(not agent.core.journal.unacknowledged_reports()), within=WAIT_S
            )
            local = [e for e in await history() if e["action"].startswith("local_job.")]
            # Re-sent until acknowledged, recorded once each.
            assert len(local) == 2, local
            sources = sorted(e["detail"]["source"] for e in local)
            assert sources == ["lan", "screen"]
            assert {e["detail"]["name"] for e in local} == {"lan-part.gcode", "sd-part.gcode"}
            await assert_outage_summarised(shop)
            # A few more planning rounds with the printer idle, clear and online.
            core = second.context.core
            assert core is not None
            async with asyncio.timeout(WAIT_S):
                await core.dispatcher.wait_ticks(3)
    # Nothing pending before the outage was started after it.
    assert agent.core.journal.job_status(waiting) is JournalStatus.UNKNOWN
    assert x1.hardware.plate.prints_on_occupied_plate == 0


async def print_offline(client: LanClient, printer: SimulatedPrinter, tmp_path: Path) -> str:
    """A LAN print, then an SD-card print from the screen, each onto a plate a person
    cleared; the LAN job's id."""
    # The x1's sensor checks the plate: clear it, as a person would.
    printer.remove_print()
    source = tmp_path / "lan-part.gcode"
    source.write_bytes(SHORT)
    lan_job = await off_loop(
        lambda: lan_print(client.base_url.removesuffix("/lan/v1"), CODE, source)
    )
    await status_until(client, lambda s: s.status == "idle")

    printer.remove_print()
    await printer.storage.write("sd-part.gcode", SHORT)
    names = [f.name for f in await off_loop(client.files)]
    answers = iter(["p", str(names.index("sd-part.gcode") + 1), "q"])
    shown: list[str] = []
    screen = PrinterScreen(client, read_line=lambda _: next(answers), write=shown.append)
    assert await off_loop(screen.run) == 0
    assert any(line.startswith("Printing sd-part.gcode") for line in shown), shown
    await status_until(client, lambda s: s.status == "idle")
    printer.remove_print()  # a clear plate: nothing but the job's window stops a start
    return lan_job.job_id


async def assert_outage_summarised(shop: Shop) -> None:
    """The telemetry not sent during the outage came back as one summary alert."""
    alerts = await shop.call("GET", "/api/v1/alerts")
    summaries = [a for a in alerts if a["kind"] == "offline_summary"]
    assert summaries, alerts
    assert "telemetry reports not sent" in summaries[0]["message"]


async def _state_is(shop: Shop, job_id: str, state: str) -> bool:
    return bool((await shop.job(job_id))["state"] == state)


async def _true(value: bool) -> bool:
    return value


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
