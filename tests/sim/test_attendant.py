"""The plate attendant: a simulated person who clears plates, so a simulated farm keeps printing.

End to end on real parts: the demo's cloud and agents through a real Mosquitto, two jobs in a row
on an x1-like printer (the sensor must see the plate cleared) and on a p1-like one (a person must
also confirm at the screen), and without the attendant the second job is held by the plate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from printfleet.agent.runtime import PLATE_PROMPT_ID, LocalAction
from printfleet.demo import DemoOptions, RunningDemo, running_demo
from printfleet.protocol.lifecycle import JobState
from printfleet.sim import SimulatedPrinter, make_sample_gcode
from printfleet.testing import MosquittoBroker

ATTENDANT_AFTER_S = 50.0
"""Simulated seconds: one real second at the tests' time scale."""
TIME_SCALE = 50.0


@asynccontextmanager
async def farm(
    broker: MosquittoBroker,
    data_dir: Path,
    attendant_after_s: float | None,
    faults: tuple[str, ...] = (),
) -> AsyncIterator[RunningDemo]:
    """Two demo printers on ``broker``, online, with the attendant and faults asked for."""
    options = DemoOptions(
        data_dir=data_dir,
        port=0,
        printers=2,
        broker_url=broker.url,
        time_scale=TIME_SCALE,
        telemetry_period_s=0.5,
        probe_interval_s=0.5,
        submit_sample=False,
        attendant_after_s=attendant_after_s,
        faults=faults,
    )
    async with running_demo(options) as demo:
        await demo.wait_until_online()
        yield demo


async def submit(demo: RunningDemo, printer_id: str, name: str) -> str:
    sample = make_sample_gcode(2).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield sample

    file = await demo.context.files.save(demo.principal.user.id, name, chunks())
    created = await demo.context.service.jobs.submit_job(
        demo.principal, file_id=file.id, printer_id=printer_id, start_within_s=600
    )
    return created.job.view.id


async def until(condition: Callable[[], object], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the simulation notifies nobody of this
            await asyncio.sleep(0.05)


async def wait_for_state(demo: RunningDemo, job_id: str, state: JobState) -> None:
    async with asyncio.timeout(60):
        while (job := await demo.context.store.jobs.load(job_id)).view.state is not state:
            assert job.view.state not in {JobState.FAILED, JobState.EXPIRED}, job.view
            await asyncio.sleep(0.1)


@pytest.mark.asyncio
@pytest.mark.parametrize("printer_id", ["x1-01", "p1-02"])
async def test_the_attendant_lets_a_printer_print_two_jobs_in_a_row_untouched(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path, printer_id: str
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo", ATTENDANT_AFTER_S) as demo:
        hardware = demo.printers[printer_id].hardware
        first = await submit(demo, printer_id, "first.gcode")
        if not hardware.has_plate_sensor:
            # A fresh p1-like printer knows nothing of its plate: its first print needs a person
            # too, and the attendant comes only after a print.
            agent = demo.printers[printer_id].agent
            await agent.act_locally(LocalAction.CONFIRM_PLATE, "person at the printer")
        await wait_for_state(demo, first, JobState.COMPLETED)
        assert hardware.plate.occupied
        if not hardware.has_plate_sensor:
            assert PLATE_PROMPT_ID in hardware.screen.open_prompts
        second = await submit(demo, printer_id, "second.gcode")
        await wait_for_state(demo, second, JobState.COMPLETED)
        assert hardware.plate.prints_on_occupied_plate == 0
        # And the attendant cleared up after the second print too.
        await until(lambda: not hardware.plate.occupied)


@pytest.mark.asyncio
async def test_without_the_attendant_the_second_job_waits_for_the_plate(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo", None) as demo:
        hardware = demo.printers["x1-01"].hardware
        first = await submit(demo, "x1-01", "first.gcode")
        await wait_for_state(demo, first, JobState.COMPLETED)
        second = await submit(demo, "x1-01", "second.gcode")
        # The sensor still sees the first print, and the job says so while it waits.
        async with asyncio.timeout(60):
            # The store notifies nobody of a job's reason.
            while "plate" not in (job := await demo.context.store.jobs.load(second)).view.reason:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert job.view.state is JobState.STAGED, job.view
        assert "x1-01" in job.view.reason
        assert hardware.plate.occupied
        assert hardware.current_print() is None


def test_an_attendant_needs_a_delay_of_zero_or_more(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="attendant_after_s"):
        SimulatedPrinter("x1", storage_dir=tmp_path, attendant_after_s=-1)


@pytest.mark.asyncio
async def test_a_printer_powers_off_at_once_while_its_attendant_is_still_to_come(
    tmp_path: Path,
) -> None:
    printer = SimulatedPrinter(
        "p1", storage_dir=tmp_path, time_scale=1.0, watchdog_timeout=None, attendant_after_s=3600
    )
    await printer.storage.write("cube.gcode", make_sample_gcode(1).encode())
    # An hour of simulated time at 1x: power-off must not wait for the attendant to come.
    async with asyncio.timeout(10):
        async with printer:
            handle = await printer.start_print("cube.gcode")
            await handle.cancel()
            await handle.wait()
