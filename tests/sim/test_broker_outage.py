"""A broker outage in the demo (``--fault broker:outage[:DURATION]@WHEN``): read with clear errors,
refused on a broker the demo does not own, and on the demo's own embedded broker a real outage:
dispatch stops and says why, and everything comes back and prints once the broker returns.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from printfleet.demo import DemoError, DemoOptions, RunningDemo, running_demo
from printfleet.protocol.dispatch_views import WaitCode
from printfleet.protocol.lifecycle import JobState
from printfleet.sim import make_sample_gcode
from printfleet.sim.faults import BROKER_OUTAGE_S, FaultKind, FaultSpec, parse_fault

PRINTFLEET = Path(sys.executable).parent / "printfleet"
TIME_SCALE = 50.0


def test_a_broker_outage_is_read_with_its_duration_and_time() -> None:
    assert parse_fault("broker:outage:45s@2m") == FaultSpec(
        "broker", FaultKind.OUTAGE, 120.0, off_for_s=45.0
    )
    assert parse_fault("broker:outage@90s").off_for_s == BROKER_OUTAGE_S
    assert parse_fault("broker:outage@90s").on_broker
    assert not parse_fault("x1-01:power-loss@90s").on_broker


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("broker:outage:soon@90s", "bad time 'soon'"),
        ("broker:outage@90", "bad time '90'"),
        ("broker:outage@print+30s", "a broker outage comes at a time after the start"),
        ("broker:power-loss@90s", "the broker has one fault kind, outage, not 'power-loss'"),
        ("x1-01:outage@90s", "an outage is the broker's fault, not a printer's"),
        ("broker:meltdown@90s", "unknown fault kind 'meltdown'"),
    ],
)
def test_a_bad_broker_outage_says_what_is_wrong_with_an_example(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as raised:
        parse_fault(spec)
    if "unknown fault kind" not in says:
        assert "e.g. " in str(raised.value)


@pytest.mark.asyncio
async def test_the_demo_refuses_a_broker_outage_on_an_external_broker(tmp_path: Path) -> None:
    options = DemoOptions(
        data_dir=tmp_path,
        port=0,
        broker_url="mqtt://127.0.0.1:1",
        faults=("broker:outage:30s@60s",),
    )
    refused = "needs the demo's own embedded broker: this command connects to an external broker"
    with pytest.raises(DemoError, match=re.escape(refused)):
        async with running_demo(options):
            pass
    # Refused before anything started: no cloud state was made.
    assert not (tmp_path / "cloud").exists()


def test_the_sim_command_refuses_a_broker_outage() -> None:
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), "sim", "--printers", "1", "--fault", "broker:outage@5s"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    said = " ".join(result.stderr.replace("│", " ").split())
    assert "a broker outage needs the demo's own embedded broker" in said
    assert "not its to stop" in said


async def until(condition: Callable[[], object], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - nothing notifies of these changes
            await asyncio.sleep(0.05)


async def submit(demo: RunningDemo, printer_id: str) -> str:
    sample = make_sample_gcode(2).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield sample

    file = await demo.context.files.save(demo.principal.user.id, "cube.gcode", chunks())
    created = await demo.context.service.jobs.submit_job(
        demo.principal, file_id=file.id, printer_id=printer_id, start_within_s=600
    )
    return created.job.view.id


@pytest.mark.asyncio
async def test_a_broker_outage_holds_dispatch_and_everything_resumes_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="printfleet.sim.faults")
    # 100 simulated seconds in (2 real seconds), the broker goes for 250 (5 real seconds).
    options = DemoOptions(
        data_dir=tmp_path / "demo",
        port=0,
        printers=2,
        time_scale=TIME_SCALE,
        telemetry_period_s=0.5,
        probe_interval_s=0.5,
        submit_sample=False,
        attendant_after_s=None,
        faults=("broker:outage:250s@100s",),
    )
    async with running_demo(options) as demo:
        broker = demo.context.embedded_broker
        core = demo.context.core
        assert broker is not None
        assert core is not None
        await until(lambda: not broker.running)
        await until(lambda: not core.link.verified(), within=10)
        job_id = await submit(demo, "x1-01")

        async def wait_code() -> WaitCode | None:
            return (await demo.context.store.jobs.load(job_id)).view.wait

        async with asyncio.timeout(10):
            while await wait_code() is not WaitCode.NO_LINK:  # noqa: ASYNC110 - store polls
                await asyncio.sleep(0.05)
        waiting = (await demo.context.store.jobs.load(job_id)).view
        assert waiting.state is JobState.QUEUED
        assert "waiting for the broker link" in waiting.reason
        assert not broker.running  # all of that was during the outage
        assert any(
            "fault injected: broker outage" in record.getMessage() for record in caplog.records
        )

        await until(lambda: broker.running)
        await until(core.link.verified, within=30)
        async with asyncio.timeout(60):
            while not (job := await demo.context.store.jobs.load(job_id)).view.state.terminal:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert job.view.state is JobState.COMPLETED
        said = [record.getMessage() for record in caplog.records]
        assert sum("fault injected: broker outage" in line for line in said) == 1
        assert sum(line.startswith("broker back") for line in said) == 1
