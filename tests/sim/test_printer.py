"""SimulatedPrinter through the Hardware port: prints, heating waits, pause/resume/cancel, plate."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from printfleet.agent.hardware import (
    FileNameError,
    Hardware,
    HardwareClock,
    HardwareError,
    HeaterId,
    PlateReading,
    PrinterBusyError,
    PrintHandle,
    PrintOutcomeKind,
    PrintState,
    Screen,
    Storage,
)
from printfleet.sim import SimulatedPrinter, make_sample_gcode
from printfleet.sim.plate import PlateSensor
from printfleet.sim.thermal import SENSOR_OPEN_READING, Board, HeaterFault

MakePrinter = Callable[..., SimulatedPrinter]


@pytest.fixture
def make_printer(tmp_path: Path) -> MakePrinter:
    """Printers with their own storage; no watchdog unless asked, as no agent refreshes it here."""
    count = 0

    def make(
        model: str = "x1",
        *,
        time_scale: float = 200.0,
        watchdog_timeout: float | None = None,
        seed: int = 0,
        plate_sensor: PlateSensor | None = None,
    ) -> SimulatedPrinter:
        nonlocal count
        count += 1
        return SimulatedPrinter(
            model,
            storage_dir=tmp_path / f"printer-{count}",
            time_scale=time_scale,
            watchdog_timeout=watchdog_timeout,
            seed=seed,
            plate_sensor=plate_sensor,
        )

    return make


def static_conformance(printer: SimulatedPrinter) -> None:
    """Never called: mypy checks that the simulator implements every port protocol."""
    hardware: Hardware = printer
    clock: HardwareClock = printer.clock
    screen: Screen = printer.screen
    storage: Storage = printer.storage
    del hardware, clock, screen, storage


async def static_handle_conformance(printer: SimulatedPrinter) -> None:
    """Never called: mypy checks that a simulated print is a `PrintHandle`."""
    handle: PrintHandle = await printer.start_print("x.gcode")
    del handle


@pytest.mark.asyncio
async def test_a_print_takes_the_time_of_its_moves(make_printer: MakePrinter) -> None:
    sample = make_sample_gcode(10, heat=False)
    async with make_printer() as printer:
        await printer.storage.write("cube.gcode", sample.encode())
        handle = await printer.start_print("cube.gcode")
        assert printer.current_print() is handle
        outcome = await handle.wait()
    assert outcome.kind is PrintOutcomeKind.COMPLETED
    assert outcome.elapsed == pytest.approx(sample.move_seconds, rel=1e-9)
    assert outcome.ended_at - handle.started_at >= sample.move_seconds - 1e-6
    final = handle.progress()
    assert (final.state, final.percent, final.layer, final.time_left) == (
        PrintState.COMPLETED,
        100.0,
        10,
        0.0,
    )
    assert printer.current_print() is None


@pytest.mark.asyncio
async def test_progress_follows_layers_and_m73(make_printer: MakePrinter) -> None:
    sample = make_sample_gcode(20, heat=False)
    async with make_printer(time_scale=100.0) as printer:
        await printer.storage.write("cube.gcode", sample.encode())
        handle = await printer.start_print("cube.gcode")
        seen = await handle.wait_until(lambda p: p.layer >= 8)
        await handle.wait()
    assert seen.state is PrintState.PRINTING
    assert seen.total_layers == 20
    # Each layer begins with the slicer's M73 P<percent of layers done>.
    assert seen.percent == 100 * (seen.layer - 1) // 20
    assert seen.time_left is not None
    assert 0.0 < seen.time_left <= 60.0
    assert 0.0 < seen.elapsed < sample.move_seconds


@pytest.mark.asyncio
async def test_time_left_counts_down_from_m73(make_printer: MakePrinter) -> None:
    text = "M73 P40 R12\n" + "G4 S10\n" * 60
    async with make_printer(time_scale=1000.0) as printer:
        await printer.storage.write("dwell.gcode", text.encode())
        handle = await printer.start_print("dwell.gcode")
        seen = await handle.wait_until(lambda p: p.elapsed >= 200.0)
        await handle.cancel()
    assert seen.percent == 40.0
    assert seen.time_left == pytest.approx(12 * 60.0 - seen.elapsed)


@pytest.mark.asyncio
async def test_time_left_from_the_slicer_estimate_without_m73(make_printer: MakePrinter) -> None:
    sample = make_sample_gcode(20, heat=False, m73=False)
    async with make_printer() as printer:
        await printer.storage.write("cube.gcode", sample.encode())
        handle = await printer.start_print("cube.gcode")
        seen = await handle.wait_until(lambda p: p.layer >= 10)
        await handle.wait()
    assert 30.0 < seen.percent < 70.0  # from the file position
    assert seen.time_left is not None
    assert seen.time_left == pytest.approx(round(sample.move_seconds) * (1 - seen.percent / 100))


@pytest.mark.asyncio
async def test_pause_holds_the_print_and_resume_finishes_it(make_printer: MakePrinter) -> None:
    sample = make_sample_gcode(20, heat=False)
    async with make_printer(time_scale=100.0) as printer:
        await printer.storage.write("cube.gcode", sample.encode())
        handle = await printer.start_print("cube.gcode")
        await handle.wait_until(lambda p: p.layer >= 3)
        await handle.pause()
        paused = await handle.wait_until(lambda p: p.state is PrintState.PAUSED)
        # Hardware time passes while paused; nothing in the print may move.
        await printer.clock.sleep(30.0)
        still = handle.progress()
        assert printer.current_print() is handle
        await handle.resume()
        outcome = await handle.wait()
    assert (still.layer, still.percent, still.elapsed) == (
        paused.layer,
        paused.percent,
        paused.elapsed,
    )
    assert paused.layer < 20
    assert outcome.kind is PrintOutcomeKind.COMPLETED
    # Paused time is not print time, but it did pass on the clock.
    assert outcome.elapsed == pytest.approx(sample.move_seconds, rel=1e-9)
    assert outcome.ended_at - handle.started_at >= sample.move_seconds + 30.0


@pytest.mark.asyncio
async def test_cancel_while_heating_turns_everything_off(make_printer: MakePrinter) -> None:
    sample = make_sample_gcode(5)
    async with make_printer(time_scale=100.0) as printer:
        await printer.storage.write("cube.gcode", sample.encode())
        handle = await printer.start_print("cube.gcode")
        await handle.wait_until(lambda p: p.state is PrintState.HEATING)
        assert printer.read_heater(HeaterId.BED).target == 60.0
        await handle.cancel()
        outcome = await handle.wait()
        assert outcome.kind is PrintOutcomeKind.CANCELLED
        for heater in HeaterId:
            assert printer.read_heater(heater).target == 0.0
        assert printer.board.fan == 0.0
        assert printer.current_print() is None
        # Nothing was extruded, so nothing was left on the plate.
        assert printer.read_plate() is PlateReading.CLEAR
        await handle.cancel()  # a no-op once ended
        assert (await handle.wait()).kind is PrintOutcomeKind.CANCELLED


@pytest.mark.asyncio
async def test_pause_during_a_heating_wait(make_printer: MakePrinter) -> None:
    async with make_printer(time_scale=20.0) as printer:
        await printer.storage.write("heat.gcode", b"M109 S200\nG1 X10 F600\n")
        handle = await printer.start_print("heat.gcode")
        await handle.wait_until(lambda p: p.state is PrintState.HEATING)
        await handle.pause()
        paused = await handle.wait_until(lambda p: p.state is PrintState.PAUSED)
        # Paused at once, not when the hotend got there (90 s away: 4.5 s real at this scale).
        assert paused.elapsed < 10.0
        assert printer.read_heater(HeaterId.HOTEND).temperature < 100.0
        await handle.resume()
        await handle.wait_until(lambda p: p.state is not PrintState.PAUSED)
        await handle.cancel()
        assert (await handle.wait()).kind is PrintOutcomeKind.CANCELLED


@pytest.mark.asyncio
async def test_cancel_while_paused(make_printer: MakePrinter) -> None:
    async with make_printer() as printer:
        await printer.storage.write("cube.gcode", make_sample_gcode(20, heat=False).encode())
        handle = await printer.start_print("cube.gcode")
        await handle.pause()
        await handle.wait_until(lambda p: p.state is PrintState.PAUSED)
        await handle.cancel()
        assert (await handle.wait()).kind is PrintOutcomeKind.CANCELLED


@pytest.mark.asyncio
async def test_m109_waits_for_the_hotend_to_heat(make_printer: MakePrinter) -> None:
    async with make_printer(time_scale=500.0) as printer:
        await printer.storage.write("heat.gcode", b"M109 S200\nG1 X10 F600\n")
        handle = await printer.start_print("heat.gcode")
        heating = await handle.wait_until(lambda p: p.state is PrintState.HEATING)
        outcome = await handle.wait()
        reading = printer.read_heater(HeaterId.HOTEND)
    assert heating.elapsed < 60.0
    assert outcome.kind is PrintOutcomeKind.COMPLETED
    # 60-120 s of heating (with a poll of at most a few seconds), then a 1 s move.
    assert 60.0 <= outcome.elapsed <= 125.0
    assert reading.temperature >= 199.0
    assert reading.target == 200.0


@pytest.mark.asyncio
async def test_a_heating_wait_lasts_as_long_as_the_physics_says(make_printer: MakePrinter) -> None:
    # Not as long as polling or the event loop happen to take: the same at any time scale.
    board = Board(watchdog_timeout=None)
    board.set_target(HeaterId.HOTEND, 200.0)
    expected = board.time_until(HeaterId.HOTEND, lambda r: r >= 199.0, horizon=300.0)
    assert expected is not None
    for time_scale in (100.0, 1000.0):
        async with make_printer(time_scale=time_scale) as printer:
            await printer.storage.write("heat.gcode", b"M109 S200\n")
            outcome = await (await printer.start_print("heat.gcode")).wait()
        assert outcome.elapsed == pytest.approx(expected, abs=0.5)


@pytest.mark.asyncio
async def test_m190_waits_minutes_for_the_bed(make_printer: MakePrinter) -> None:
    async with make_printer(time_scale=2000.0) as printer:
        await printer.storage.write("bed.gcode", b"M190 S60\n")
        handle = await printer.start_print("bed.gcode")
        outcome = await handle.wait()
        assert printer.read_heater(HeaterId.BED).temperature >= 59.0
    assert 4 * 60.0 <= outcome.elapsed <= 8 * 60.0


@pytest.mark.asyncio
async def test_a_target_beyond_the_firmware_limit_fails_the_print(
    make_printer: MakePrinter,
) -> None:
    async with make_printer() as printer:
        await printer.storage.write("hot.gcode", b"M104 S300\n")
        outcome = await (await printer.start_print("hot.gcode")).wait()
    assert outcome.kind is PrintOutcomeKind.FAILED
    assert "300" in outcome.reason


@pytest.mark.asyncio
async def test_the_watchdog_fails_a_print_no_host_keeps_alive(make_printer: MakePrinter) -> None:
    async with make_printer(time_scale=100.0, watchdog_timeout=3.0) as printer:
        await printer.storage.write("cube.gcode", make_sample_gcode(5).encode())
        outcome = await (await printer.start_print("cube.gcode")).wait()
        assert printer.watchdog_tripped
    assert outcome.kind is PrintOutcomeKind.FAILED
    assert "watchdog" in outcome.reason


@pytest.mark.asyncio
async def test_watchdog_through_the_port(make_printer: MakePrinter) -> None:
    # 1 hardware second = 100 ms here, so a loaded test machine cannot miss a 3 s deadline.
    printer = make_printer(time_scale=10.0, watchdog_timeout=3.0)
    await printer.set_heater_target(HeaterId.HOTEND, 200.0)
    for _ in range(3):
        await printer.clock.sleep(1.0)
        await printer.refresh_watchdog()
    assert printer.board.watchdog_tripped_at is None
    refreshed_at = printer.board.last_refresh
    await printer.clock.sleep(3.5)
    assert printer.watchdog_tripped
    assert printer.board.watchdog_tripped_at == pytest.approx(refreshed_at + 3.0)
    assert printer.read_heater(HeaterId.HOTEND).target == 0.0


@pytest.mark.asyncio
async def test_power_off_fails_a_running_print(make_printer: MakePrinter) -> None:
    async with make_printer() as printer:
        await printer.storage.write("cube.gcode", make_sample_gcode(50).encode())
        handle = await printer.start_print("cube.gcode")
        await handle.wait_until(lambda p: p.state is PrintState.HEATING)
    outcome = await handle.wait()
    assert outcome.kind is PrintOutcomeKind.FAILED
    assert outcome.reason == "power off"
    assert printer.read_heater(HeaterId.BED).target == 0.0


@pytest.mark.asyncio
async def test_start_print_refusals(make_printer: MakePrinter) -> None:
    printer = make_printer()
    await printer.storage.write("cube.gcode", make_sample_gcode(20, heat=False).encode())
    with pytest.raises(HardwareError, match="off"):
        await printer.start_print("cube.gcode")
    async with printer:
        with pytest.raises(FileNotFoundError):
            await printer.start_print("missing.gcode")
        with pytest.raises(FileNameError):
            await printer.start_print("../cube.gcode")
        handle = await printer.start_print("cube.gcode")
        with pytest.raises(PrinterBusyError):
            await printer.start_print("cube.gcode")
        await handle.cancel()
        await handle.wait()
        second = await printer.start_print("cube.gcode")  # idle again
        await second.cancel()


def _project_3mf(plates: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("3D/3dmodel.model", "<model/>")
        for name, gcode in plates.items():
            archive.writestr(name, gcode)
    return buffer.getvalue()


@pytest.mark.asyncio
async def test_a_sliced_3mf_prints_its_first_plate(make_printer: MakePrinter) -> None:
    first, second = make_sample_gcode(6, heat=False), make_sample_gcode(30, heat=False)
    plates = {"Metadata/plate_2.gcode": second.encode(), "Metadata/plate_1.gcode": first.encode()}
    project = _project_3mf(plates)
    async with make_printer() as printer:
        await printer.storage.write("job.gcode.3mf", project)
        outcome = await (await printer.start_print("job.gcode.3mf")).wait()
        listed = [stored.name for stored in await printer.storage.list_files()]
    assert outcome.kind is PrintOutcomeKind.COMPLETED
    assert outcome.elapsed == pytest.approx(first.move_seconds, rel=1e-9)
    assert listed == ["job.gcode.3mf"]  # the unpacked plate stays hidden


@pytest.mark.asyncio
async def test_a_3mf_without_a_plate_or_broken_is_refused(make_printer: MakePrinter) -> None:
    async with make_printer() as printer:
        await printer.storage.write("empty.gcode.3mf", _project_3mf({}))
        with pytest.raises(HardwareError, match=r"without Metadata/plate_N\.gcode"):
            await printer.start_print("empty.gcode.3mf")
        await printer.storage.write("torn.gcode.3mf", _project_3mf({})[:30])
        with pytest.raises(HardwareError, match="broken 3MF"):
            await printer.start_print("torn.gcode.3mf")
        assert printer.current_print() is None


# -- plate -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_finished_print_stays_on_the_plate_until_removed(make_printer: MakePrinter) -> None:
    async with make_printer("x1") as printer:
        assert printer.has_plate_sensor
        assert printer.read_plate() is PlateReading.CLEAR
        await printer.storage.write("cube.gcode", make_sample_gcode(3, heat=False).encode())
        await (await printer.start_print("cube.gcode")).wait()
        assert printer.read_plate() is PlateReading.OCCUPIED
        assert printer.read_plate() is PlateReading.OCCUPIED  # still: nobody removed it
        assert printer.remove_print() == 1
        assert printer.read_plate() is PlateReading.CLEAR
        assert printer.plate.prints_on_occupied_plate == 0


@pytest.mark.asyncio
async def test_printing_onto_an_occupied_plate_is_recorded(make_printer: MakePrinter) -> None:
    async with make_printer("x1") as printer:
        await printer.storage.write("cube.gcode", make_sample_gcode(3, heat=False).encode())
        await (await printer.start_print("cube.gcode")).wait()
        # The hardware obeys; judging the plate is the agent's gate. Physics keeps the evidence.
        second = await printer.start_print("cube.gcode")
        with pytest.raises(RuntimeError):
            printer.remove_print()
        await second.wait()
    assert printer.plate.objects == 2
    assert printer.plate.prints_on_occupied_plate == 1


@pytest.mark.asyncio
async def test_a_p1_has_no_plate_sensor(make_printer: MakePrinter) -> None:
    async with make_printer("p1") as printer:
        assert not printer.has_plate_sensor
        assert printer.read_plate() is PlateReading.UNKNOWN
        await printer.storage.write("cube.gcode", make_sample_gcode(3, heat=False).encode())
        await (await printer.start_print("cube.gcode")).wait()
        assert printer.read_plate() is PlateReading.UNKNOWN
        assert printer.plate.occupied


def test_unknown_models_are_refused(make_printer: MakePrinter) -> None:
    with pytest.raises(ValueError, match="x1"):
        make_printer("a1")


def test_a_p1_cannot_be_given_a_plate_sensor(make_printer: MakePrinter) -> None:
    with pytest.raises(ValueError, match="no plate sensor"):
        make_printer("p1", plate_sensor=PlateSensor())


def test_plate_sensor_errors_are_seeded_and_at_their_rate(make_printer: MakePrinter) -> None:
    sensor = PlateSensor(false_clear_rate=0.25, false_occupied_rate=0.1)
    first = make_printer("x1", plate_sensor=sensor, seed=7)
    second = make_printer("x1", plate_sensor=sensor, seed=7)
    first.plate.add_print()
    second.plate.add_print()
    readings = [first.read_plate() for _ in range(2000)]
    assert readings == [second.read_plate() for _ in range(2000)]
    assert 0.2 < readings.count(PlateReading.CLEAR) / 2000 < 0.3
    first.remove_print()
    clear = [first.read_plate() for _ in range(2000)]
    assert 0.07 < clear.count(PlateReading.OCCUPIED) / 2000 < 0.13


# -- faults and readings through the port ------------------------------------------------------


@pytest.mark.asyncio
async def test_faults_show_through_the_port(make_printer: MakePrinter) -> None:
    printer = make_printer()
    printer.inject_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
    assert printer.read_heater(HeaterId.HOTEND).temperature == SENSOR_OPEN_READING
    printer.clear_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
    assert printer.read_heater(HeaterId.HOTEND).temperature == pytest.approx(25.0)
    printer.inject_fault(HeaterId.BED, HeaterFault.HEATER_STUCK_ON)
    await printer.heaters_off()
    start = printer.body_temperature(HeaterId.BED)
    await printer.clock.sleep(30.0)
    assert printer.read_heater(HeaterId.BED).power == 0.0
    assert printer.body_temperature(HeaterId.BED) > start + 1.0


@pytest.mark.asyncio
async def test_reading_is_stamped_with_hardware_time(make_printer: MakePrinter) -> None:
    printer = make_printer(time_scale=50.0)
    before = printer.clock.now()
    reading = printer.read_heater(HeaterId.BED)
    assert before <= reading.read_at <= printer.clock.now()
    assert printer.max_target(HeaterId.HOTEND) == 260.0
    assert printer.max_target(HeaterId.BED) == 140.0
    await printer.set_fan(2.0)
    assert printer.board.fan == 1.0


@pytest.mark.asyncio
async def test_a_move_that_never_ends_fails_the_print(make_printer: MakePrinter) -> None:
    async with make_printer() as printer:
        await printer.storage.write("bad.gcode", ("G4 S" + "9" * 400 + "\n").encode())
        outcome = await (await printer.start_print("bad.gcode")).wait()
    assert outcome.kind is PrintOutcomeKind.FAILED
    assert "never ends" in outcome.reason
