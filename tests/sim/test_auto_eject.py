"""Printers that clear their own plate, in the demo farm: the demo's cloud and agents through a
real Mosquitto, with nobody on the floor (no attendant).

An auto-eject printer prints job after job on its own; after a print that did not complete, or
an eject that failed, its next job waits for a person, and the job says it waits for the plate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.sim.test_attendant import submit, until

from printfleet.agent.hardware import PrintOutcomeKind
from printfleet.agent.runtime import AUTO_EJECT, PLATE_PROMPT_ID, LocalAction
from printfleet.cloud.store import AlertRecord
from printfleet.demo import DemoError, DemoOptions, RunningDemo, running_demo
from printfleet.protocol.lifecycle import JobState
from printfleet.sim import SimulatedPrinter
from printfleet.testing import MosquittoBroker

TIME_SCALE = 50.0
WAIT_S = 60.0


@asynccontextmanager
async def farm(
    broker: MosquittoBroker, data_dir: Path, auto_eject: tuple[str, ...]
) -> AsyncIterator[RunningDemo]:
    """Two demo printers (x1-01, p1-02) on ``broker``, online, nobody clearing plates."""
    options = DemoOptions(
        data_dir=data_dir,
        port=0,
        printers=2,
        broker_url=broker.url,
        time_scale=TIME_SCALE,
        telemetry_period_s=0.5,
        probe_interval_s=0.5,
        submit_sample=False,
        auto_eject=auto_eject,
    )
    async with running_demo(options) as demo:
        await demo.wait_until_online()
        yield demo


async def reach(demo: RunningDemo, job_id: str, state: JobState) -> None:
    """Until the job is in ``state`` (the store notifies nobody of a job's changes)."""
    async with asyncio.timeout(WAIT_S):
        while (await demo.context.store.jobs.load(job_id)).view.state is not state:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def waits_for_the_plate(demo: RunningDemo, job_id: str, printer_id: str) -> None:
    """Until the job waits, saying it waits for the printer's plate; it must not start."""
    async with asyncio.timeout(WAIT_S):
        while "plate" not in (job := await demo.context.store.jobs.load(job_id)).view.reason:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert job.view.state is JobState.STAGED, job.view
    assert printer_id in job.view.reason, job.view.reason


async def alerts_of(demo: RunningDemo, printer_id: str, kind: str) -> list[AlertRecord]:
    """The alerts of ``kind`` the cloud holds for the printer."""
    alerts = await demo.context.store.alerts.latest(printer_ids=[printer_id])
    return [alert for alert in alerts if alert.kind == kind]


async def ejects_audited(demo: RunningDemo, printer_id: str) -> list[str]:
    """The evidence of each plate the printer cleared itself, as its audit log holds it."""
    entries = await demo.context.store.audit.for_printer(printer_id, limit=1000)
    return [str(e.detail["evidence"]) for e in entries if e.action == "plate.cleared"]


async def first_print(demo: RunningDemo, printer_id: str) -> tuple[SimulatedPrinter, str]:
    """Submit a job; a fresh sensorless printer's first plate is confirmed by a person."""
    hardware = demo.printers[printer_id].hardware
    job = await submit(demo, printer_id, "first.gcode")
    if not hardware.has_plate_sensor:
        agent = demo.printers[printer_id].agent
        await agent.act_locally(LocalAction.CONFIRM_PLATE, "person at the printer")
    return hardware, job


@pytest.mark.asyncio
@pytest.mark.parametrize("printer_id", ["x1-01", "p1-02"])
async def test_an_auto_eject_printer_prints_two_jobs_in_a_row_with_nobody_there(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path, printer_id: str
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo", (printer_id,)) as demo:
        hardware, first = await first_print(demo, printer_id)
        await reach(demo, first, JobState.COMPLETED)
        second = await submit(demo, printer_id, "second.gcode")
        await reach(demo, second, JobState.COMPLETED)
        assert hardware.plate.prints_on_occupied_plate == 0
        # The second print ejected too, and the cloud heard each eject, named as the evidence.
        await until(lambda: not hardware.plate.occupied)
        async with asyncio.timeout(WAIT_S):
            while len(ejected := await ejects_audited(demo, printer_id)) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert len(ejected) == 2, ejected
        assert all(AUTO_EJECT in evidence for evidence in ejected), ejected
        # Evidence for the audit, not news for people: no alert, no channel.
        assert await alerts_of(demo, printer_id, "plate_ejected") == []
        assert PLATE_PROMPT_ID not in hardware.screen.open_prompts
        # The other printer was not told to eject.
        other = next(p for p in demo.printers.values() if p.id != printer_id)
        assert other.hardware.eject_s is None
        assert other.agent.config.plate_clearing == "person"


@pytest.mark.asyncio
async def test_after_a_failed_print_the_next_job_waits_for_a_person(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo", ("p1-02",)) as demo:
        hardware, first = await first_print(demo, "p1-02")
        await reach(demo, first, JobState.PRINTING)
        handle = hardware.current_print()
        assert handle is not None
        await handle.wait_until(lambda _: hardware.plate.occupied)
        handle.abort(PrintOutcomeKind.FAILED, "the part came loose")
        await reach(demo, first, JobState.FAILED)

        second = await submit(demo, "p1-02", "second.gcode")
        await waits_for_the_plate(demo, second, "p1-02")
        assert hardware.plate.occupied
        assert await ejects_audited(demo, "p1-02") == []
        # A person looks, clears the plate and confirms it: the job goes on.
        assert hardware.tend()
        await reach(demo, second, JobState.COMPLETED)
        assert hardware.plate.prints_on_occupied_plate == 0


@pytest.mark.asyncio
async def test_a_jammed_eject_raises_an_alert_and_the_next_job_waits(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo", ("p1-02",)) as demo:
        hardware, first = await first_print(demo, "p1-02")
        hardware.jam_ejector()
        await reach(demo, first, JobState.COMPLETED)
        async with asyncio.timeout(WAIT_S):
            while not (failed := await alerts_of(demo, "p1-02", "plate_eject_failed")):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert failed[0].message.startswith(
            "p1-02 could not eject its print: clear the plate and confirm it"
        )
        second = await submit(demo, "p1-02", "second.gcode")
        await waits_for_the_plate(demo, second, "p1-02")
        assert hardware.plate.occupied


@pytest.mark.asyncio
async def test_the_demo_refuses_auto_eject_for_a_printer_it_does_not_have(
    tmp_path: Path,
) -> None:
    options = DemoOptions(data_dir=tmp_path, port=0, printers=2, auto_eject=("p1-09",))
    with pytest.raises(DemoError, match=r"auto-eject for unknown printer\(s\) p1-09"):
        async with running_demo(options):
            pass


def test_an_eject_routine_takes_some_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eject_s"):
        SimulatedPrinter("p1", storage_dir=tmp_path, eject_s=0)
