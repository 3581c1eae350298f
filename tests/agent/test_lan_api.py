"""The agent's LAN API over real HTTP, with no broker at all: access codes and their rate limit,
uploads, and every action judged by the same gate as cloud commands (S4, S5, S6).

The agent runs in this test's event loop against a simulated printer; the synchronous
`LanClient` (what the CLI and the screen use) runs in a worker thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pydantic
import pytest

from printfleet.agent.config import AgentConfig, lan_address
from printfleet.agent.hardware import HeaterId
from printfleet.agent.lan import FailureLimiter
from printfleet.agent.runtime import PLATE_PROMPT_ID, PrinterAgent
from printfleet.client.lan import (
    LanAuthError,
    LanClient,
    LanRateLimitedError,
    LanRefusedError,
    LanStatus,
    lan_base_url,
    lan_print,
    lan_status,
)
from printfleet.protocol.journal import RecordKind
from printfleet.protocol.messages import JournalStatus, StartSource
from printfleet.sim import SimulatedPrinter, make_sample_gcode
from printfleet.sim.thermal import HeaterFault
from printfleet.testing.ports import free_port

CODE = "correct-horse-42"
WAIT_S = 20.0
TIME_SCALE = 40.0
_T = TypeVar("_T")


def gcode(layers: int = 3) -> bytes:
    """A small sliced file; with `TIME_SCALE` it prints in a few real seconds."""
    return make_sample_gcode(layers, heat=False).encode()


def lan_config(
    data_dir: Path, *, printer_id: str = "lan-p1", broker: str | None = None, **fields: object
) -> AgentConfig:
    """An agent with its LAN API on 127.0.0.1 (a free port) and, unless told, no broker at all."""
    return AgentConfig.model_validate(
        {
            "printer_id": printer_id,
            # Nothing listens there: the agent keeps trying, and the LAN must not care.
            "broker": broker or f"mqtt://127.0.0.1:{free_port()}",
            "data_dir": data_dir,
            "telemetry_period_s": 0.1,
            "lan_listen": "127.0.0.1:0",
            "lan_access_code": CODE,
            **fields,
        }
    )


@contextlib.asynccontextmanager
async def lan_agent(config: AgentConfig, printer: SimulatedPrinter) -> AsyncIterator[PrinterAgent]:
    """Run an agent until the block ends; yields once its LAN API accepts connections."""
    agent = PrinterAgent(config, printer)
    task = asyncio.create_task(agent.run(), name=f"agent:{config.printer_id}")
    try:
        ready = asyncio.create_task(agent.lan_ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=WAIT_S, return_when="FIRST_COMPLETED")
        ready.cancel()
        if task in done:
            await task
            raise AssertionError("the agent stopped before its LAN API started")
        assert ready in done, "the LAN API did not start"
        yield agent
        assert not task.done(), "the agent stopped by itself"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def host_of(agent: PrinterAgent) -> str:
    """``host:port`` of the agent's LAN API."""
    assert agent.lan_address is not None
    host, port = agent.lan_address
    return f"{host}:{port}"


async def off_loop(call: Callable[[], _T]) -> _T:
    """Run a blocking client call in a thread: the agent shares this event loop."""
    return await asyncio.to_thread(call)


async def status_until(
    client: LanClient, where: Callable[[LanStatus], bool], *, wait_s: float = WAIT_S
) -> LanStatus:
    """Poll the printer's status until `where` holds (another process's state: polled)."""
    deadline = time.monotonic() + wait_s
    while True:
        status = await off_loop(client.status)
        if where(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last status {status}")
        await asyncio.sleep(0.05)


# -- configuration --------------------------------------------------------------------------------


def test_the_lan_api_is_off_unless_configured_and_needs_a_real_access_code(tmp_path: Path) -> None:
    assert AgentConfig(printer_id="p").lan_listen is None
    with pytest.raises(pydantic.ValidationError, match="lan_access_code"):
        AgentConfig(printer_id="p", lan_listen="127.0.0.1:8090")
    with pytest.raises(pydantic.ValidationError, match="lan_access_code"):
        AgentConfig.model_validate({"printer_id": "p", "lan_listen": ":1", "lan_access_code": "x"})
    with pytest.raises(pydantic.ValidationError, match="host:port"):
        AgentConfig.model_validate(
            {"printer_id": "p", "lan_listen": "nowhere", "lan_access_code": CODE}
        )
    assert lan_address("[::1]:8090") == ("::1", 8090)
    assert lan_base_url("printer.local") == "http://printer.local:8090/lan/v1"
    assert lan_base_url("10.0.0.5:9000") == "http://10.0.0.5:9000/lan/v1"
    with pytest.raises(ValueError, match="host:port"):
        lan_base_url("printer:port")
    # The access code never shows in the config's repr (logs, tracebacks).
    config = lan_config(tmp_path)
    assert CODE not in repr(config)


@pytest.mark.asyncio
async def test_an_agent_without_lan_listen_opens_no_port(tmp_path: Path) -> None:
    config = AgentConfig(
        printer_id="quiet", broker=f"mqtt://127.0.0.1:{free_port()}", data_dir=tmp_path
    )
    async with SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim:
        agent = PrinterAgent(config, sim)
        task = asyncio.create_task(agent.run())
        try:
            # Every loop has started once the telemetry loop has.
            async with asyncio.timeout(WAIT_S):
                # The agent signals nothing when its loops start: its tasks are what to watch.
                while not _tasks_named("quiet:telemetry"):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert not _tasks_named(":lan")
            assert agent.lan_address is None
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _tasks_named(suffix: str) -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().endswith(suffix)]


# -- access codes ---------------------------------------------------------------------------------


def test_the_failure_limiter_counts_per_address_in_a_sliding_window() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, 10.0, clock=lambda: now[0], max_addresses=2)
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
        now[0] += 1
    assert limiter.retry_after("a") == pytest.approx(7.0)
    assert limiter.retry_after("b") is None
    now[0] = 10.5  # the first failure left the window
    assert limiter.retry_after("a") is None
    # Bounded memory: a third address pushes out the least recently failing one.
    limiter.failed("b")
    limiter.failed("c")
    limiter.failed("a")
    assert set(limiter._failures) == {"c", "a"}


@pytest.mark.asyncio
async def test_wrong_access_codes_are_refused_then_rate_limited_per_address(
    tmp_path: Path,
) -> None:
    config = lan_config(tmp_path, lan_max_failures=3, lan_lockout_s=1.5)
    async with (
        SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim,
        lan_agent(config, sim) as agent,
    ):
        host = host_of(agent)
        for _ in range(3):
            with pytest.raises(LanAuthError):
                await off_loop(lambda: lan_status(host, "wrong-code-123"))
        # Locked out: even the right code is refused now, before it is compared.
        with pytest.raises(LanRateLimitedError) as limited:
            await off_loop(lambda: lan_status(host, CODE))
        assert limited.value.status == 429
        assert 1 <= limited.value.retry_after <= 2
        # Another address on this host is not affected.
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        status = await off_loop(lambda: lan_status(host, CODE, transport=other))
        assert status.printer_id == "lan-p1"
        assert status.broker_connected is False
        # A missing code counts as a wrong one.
        raw = await off_loop(lambda: httpx.get(f"http://{host}/lan/v1/status"))
        assert raw.status_code == 429
        await asyncio.sleep(limited.value.retry_after)  # the lockout is a time window
        assert (await off_loop(lambda: lan_status(host, CODE))).status == "idle"


# -- the gate judges LAN actions -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_lan_print_needs_a_confirmed_plate_and_runs_to_completion(tmp_path: Path) -> None:
    source = tmp_path / "cube.gcode"
    source.write_bytes(gcode())
    async with (
        SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim,
        lan_agent(lan_config(tmp_path / "agent"), sim) as agent,
    ):
        host = host_of(agent)
        # S5: a printer without a plate sensor has nobody's word that the plate is clear.
        with pytest.raises(LanRefusedError) as refused:
            await off_loop(lambda: lan_print(host, CODE, source))
        assert refused.value.reason == "PLATE_UNCONFIRMED"
        assert refused.value.detail == "confirm the plate is clear before the next print"
        assert str(refused.value).startswith("409: PLATE_UNCONFIRMED: confirm")
        assert sim.current_print() is None
        client = LanClient(host, CODE)
        try:
            assert [f.name for f in await off_loop(client.files)] == ["cube.gcode"]
            job = await off_loop(lambda: lan_print(host, CODE, source, confirm_plate=True))
            assert job.started_by == "lan"
            printing = await off_loop(client.status)
            assert printing.status == "printing"
            assert printing.job_id == job.job_id
            # S4: one print at a time, whoever asks.
            with pytest.raises(LanRefusedError) as busy:
                await off_loop(lambda: client.print_file("cube.gcode"))
            assert busy.value.reason == "BUSY"
            # The plate holds the running print: no confirmation now.
            with pytest.raises(LanRefusedError) as holding:
                await off_loop(client.confirm_plate)
            assert holding.value.reason == "BUSY"
            await off_loop(client.pause)
            assert (await off_loop(client.status)).status == "paused"
            await off_loop(client.resume)
            done = await status_until(client, lambda s: s.status == "idle")
            assert done.plate == "needs_confirmation"
            assert PLATE_PROMPT_ID in sim.screen.open_prompts
            # The confirmation was used up by that print.
            with pytest.raises(LanRefusedError) as again:
                await off_loop(lambda: client.print_file("cube.gcode"))
            assert again.value.reason == "PLATE_UNCONFIRMED"
            # A LAN confirmation answers the question on the printer's screen too.
            await off_loop(lambda: client.confirm_plate("ada at the bench"))
            assert PLATE_PROMPT_ID not in sim.screen.open_prompts
        finally:
            client.close()
        journal = agent.core.journal
        assert journal.job_status(job.job_id) is JournalStatus.COMPLETED
        report = journal.unacknowledged_reports()[job.job_id]
        assert report.source is StartSource.LAN
        assert report.outcome.value == "completed"
        assert report.duration_s is not None
    assert sim.plate.prints_on_occupied_plate == 0


@pytest.mark.asyncio
async def test_a_lan_cancel_stops_the_print_and_the_job_never_runs_again(tmp_path: Path) -> None:
    async with (
        SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=2.0) as sim,
        lan_agent(lan_config(tmp_path / "agent", printer_id="lan-x1"), sim) as agent,
    ):
        await sim.storage.write("long.gcode", gcode(40))
        with LanClient(host_of(agent), CODE) as client:
            # An x1 checks its plate with its sensor: no confirmation needed on a clear plate.
            job = await off_loop(lambda: client.print_file("long.gcode"))
            await off_loop(client.cancel)
            await status_until(client, lambda s: s.status == "idle")
            with pytest.raises(LanRefusedError) as nothing:
                await off_loop(client.cancel)
            assert nothing.value.reason == "NO_SUCH_JOB"
            # The cancelled print left something on the plate; the sensor sees it.
            assert sim.plate.occupied
            with pytest.raises(LanRefusedError) as occupied:
                await off_loop(lambda: client.print_file("long.gcode"))
            assert occupied.value.reason == "PLATE_NOT_CLEAR"
        journal = agent.core.journal
        assert journal.job_status(job.job_id) is JournalStatus.CANCELLED
        assert journal.unacknowledged_reports()[job.job_id].outcome.value == "cancelled"


@pytest.mark.asyncio
async def test_a_latched_thermal_fault_refuses_lan_starts_until_a_person_clears_it(
    tmp_path: Path,
) -> None:
    async with (
        SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim,
        lan_agent(lan_config(tmp_path / "agent", printer_id="lan-hot"), sim) as agent,
    ):
        await sim.storage.write("cube.gcode", gcode())
        with LanClient(host_of(agent), CODE) as client:
            sim.inject_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
            faulted = await status_until(client, lambda s: s.fault is not None)
            assert faulted.status == "error"
            # S6: no start while a fault is latched.
            with pytest.raises(LanRefusedError) as refused:
                await off_loop(lambda: client.print_file("cube.gcode"))
            assert refused.value.reason == "THERMAL_FAULT"
            sim.clear_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
            # Repaired hardware is not enough: the latch holds until a person clears it.
            with pytest.raises(LanRefusedError):
                await off_loop(lambda: client.print_file("cube.gcode"))
            await off_loop(lambda: client.clear_fault("ada"))
            assert (await off_loop(client.status)).fault is None
            job = await off_loop(lambda: client.print_file("cube.gcode"))
            await status_until(client, lambda s: s.status == "idle")
        cleared = [r for r in agent.journal.load() if r.kind is RecordKind.FAULT_CLEARED]
        assert [r.detail for r in cleared] == ["ada"]
        assert agent.core.journal.job_status(job.job_id) is JournalStatus.COMPLETED


@pytest.mark.asyncio
async def test_uploads_are_checked_for_name_size_and_checksum(tmp_path: Path) -> None:
    config = lan_config(tmp_path / "agent", lan_max_upload_bytes=4096)
    async with (
        SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim,
        lan_agent(config, sim) as agent,
    ):
        base = f"http://{host_of(agent)}/lan/v1"
        headers = {"X-Access-Code": CODE}

        def put(name: str, data: bytes, digest: str | None = None) -> httpx.Response:
            extra = {} if digest is None else {"X-Sha256": digest}
            return httpx.put(f"{base}/files/{name}", content=data, headers=headers | extra)

        small = b"G28\nG1 X10\n"
        good = await off_loop(lambda: put("a.gcode", small, hashlib.sha256(small).hexdigest()))
        assert good.status_code == 201
        assert good.json()["sha256"] == hashlib.sha256(small).hexdigest()
        damaged = await off_loop(lambda: put("b.gcode", small, "0" * 64))
        assert damaged.status_code == 422
        assert (await off_loop(lambda: put("c.gcode", b"x" * 5000))).status_code == 413

        def streamed() -> httpx.Response:
            # No Content-Length: the limit holds for a body that never announced its size.
            chunks = iter([b"x" * 3000, b"x" * 3000])
            return httpx.put(f"{base}/files/d.gcode", content=chunks, headers=headers)

        assert (await off_loop(streamed)).status_code == 413
        assert (await off_loop(lambda: put(".hidden", small))).status_code == 400
        # The cloud's staged files keep the checksum they were staged with: not replaceable.
        assert (await off_loop(lambda: put("job-1234.gcode", small))).status_code == 403
        assert [f.name for f in await sim.storage.list_files()] == ["a.gcode"]
        missing = await off_loop(
            lambda: httpx.post(f"{base}/print", json={"file": "nope.gcode"}, headers=headers)
        )
        assert missing.status_code == 404
        bad = await off_loop(lambda: httpx.post(f"{base}/print", json={"file": 3}, headers=headers))
        assert bad.status_code == 422
        huge = await off_loop(
            lambda: httpx.post(f"{base}/confirm-plate", content=b" " * 20_000, headers=headers)
        )
        assert huge.status_code == 413
        garbled = await off_loop(
            lambda: httpx.post(f"{base}/confirm-plate", content=b"{by", headers=headers)
        )
        assert garbled.status_code == 400
        assert sim.current_print() is None
