"""The pure thermal board: heat-up times, control, each fault's signature, and the watchdog."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printfleet.agent.hardware import HeaterId, TargetOutOfRangeError
from printfleet.sim import thermal
from printfleet.sim.thermal import (
    AMBIENT_C,
    SENSOR_OPEN_READING,
    SENSOR_SHORT_READING,
    Board,
    ControlMode,
    HeaterFault,
    HeaterModel,
)

HOTEND = HeaterId.HOTEND
BED = HeaterId.BED


def time_to_reach(board: Board, heater: HeaterId, celsius: float, limit: float) -> float:
    """Hardware seconds until `heater` reads at least `celsius`, stepping 0.1 s at a time."""
    start = board.time
    while board.read(heater).temperature < celsius:
        if board.time - start > limit:
            pytest.fail(f"{heater} did not reach {celsius} °C within {limit} s")
        board.step(0.1)
    return board.time - start


def run_for(board: Board, seconds: float, dt: float = 0.5) -> None:
    """Step `board` forward by `seconds` in steps of `dt`."""
    end = board.time + seconds
    while board.time < end - 1e-9:
        board.step(min(dt, end - board.time))


def is_settled(heater: HeaterModel) -> bool:
    """Whether the board may skip `heater` (a function, so mypy does not narrow the field)."""
    return heater.settled_on is not None


def heated(heater: HeaterId, celsius: float, settle_s: float) -> Board:
    """A board whose `heater` has been held at `celsius` for `settle_s` seconds."""
    board = Board(watchdog_timeout=None)
    board.set_target(heater, celsius)
    run_for(board, settle_s)
    return board


def test_hotend_heats_from_ambient_to_200_within_60_to_120_s() -> None:
    board = Board(watchdog_timeout=None)
    board.set_target(HOTEND, 200.0)
    seconds = time_to_reach(board, HOTEND, 199.0, limit=300.0)
    assert 60.0 <= seconds <= 120.0


def test_bed_reaches_60_within_minutes_as_the_fopdt_model_predicts() -> None:
    # RepRapFirmware's bed model (gain 90 K, 700 s, dead time 10 s) takes about 6 minutes.
    board = Board(watchdog_timeout=None)
    board.set_target(BED, 60.0)
    seconds = time_to_reach(board, BED, 59.0, limit=1200.0)
    assert 4 * 60.0 <= seconds <= 8 * 60.0


def test_bed_dead_time_delays_the_first_rise() -> None:
    board = Board(watchdog_timeout=None)
    board.set_target(BED, 60.0)
    run_for(board, 5.0, dt=0.1)
    # At full power the body could rise 5 s * 0.13 K/s; the element's lag lets through a fraction.
    assert board.read(BED).temperature < AMBIENT_C + 0.2
    assert board.read(BED).power == 1.0


@pytest.mark.parametrize(("heater", "target", "band"), [(HOTEND, 200.0, 2.0), (BED, 60.0, 2.0)])
def test_control_holds_the_target_within_the_runaway_hysteresis(
    heater: HeaterId, target: float, band: float
) -> None:
    board = heated(heater, target, settle_s=900.0)
    readings = []
    for _ in range(600):
        board.step(1.0)
        readings.append(board.read(heater).temperature)
    assert max(readings) - target <= band
    assert target - min(readings) <= band


def test_hotend_overshoots_by_less_than_3_k() -> None:
    board = Board(watchdog_timeout=None)
    board.set_target(HOTEND, 220.0)
    peak = 0.0
    for _ in range(3000):
        board.step(0.1)
        peak = max(peak, board.read(HOTEND).temperature)
    assert 219.0 < peak < 223.0


def test_sensor_lags_the_block_while_heating() -> None:
    board = Board(watchdog_timeout=None)
    board.set_target(HOTEND, 200.0)
    run_for(board, 30.0, dt=0.1)
    assert board.hotend.body_temp > board.read(HOTEND).temperature + 5.0


def test_heaters_off_cools_toward_ambient_and_settles_exactly() -> None:
    board = heated(HOTEND, 200.0, settle_s=200.0)
    board.heaters_off()
    assert board.read(HOTEND).power == 0.0
    run_for(board, 600.0, dt=5.0)
    assert board.read(HOTEND).temperature < 60.0
    board.step(100_000.0)
    assert board.read(HOTEND).temperature == AMBIENT_C
    assert board.hotend.is_quiescent()


def test_a_quiescent_board_steps_any_span_in_one_go() -> None:
    board = Board()
    board.step(3.0e7)  # a year at ambient, nothing armed: no watchdog, no change
    assert board.time == 3.0e7
    assert board.read(HOTEND).temperature == AMBIENT_C
    assert not board.watchdog_tripped


def test_targets_outside_firmware_limits_are_refused() -> None:
    board = Board()
    with pytest.raises(TargetOutOfRangeError):
        board.set_target(HOTEND, 261.0)
    with pytest.raises(TargetOutOfRangeError):
        board.set_target(BED, 141.0)
    with pytest.raises(TargetOutOfRangeError):
        board.set_target(HOTEND, -1.0)
    assert board.read(HOTEND).target == 0.0


def test_fan_raises_the_power_needed_to_hold_temperature() -> None:
    still = heated(HOTEND, 200.0, settle_s=400.0)
    blown = Board(watchdog_timeout=None)
    blown.set_fan(1.0)
    blown.set_target(HOTEND, 200.0)
    run_for(blown, 400.0)
    # Loss 0.068 -> 0.097 W/K at 175 K over ambient: 11.9 W -> 17.0 W of 40 W.
    assert still.read(HOTEND).power == pytest.approx(0.298, abs=0.02)
    assert blown.read(HOTEND).power == pytest.approx(0.424, abs=0.02)


def test_extrusion_draws_heat_from_the_hotend() -> None:
    board = heated(HOTEND, 200.0, settle_s=400.0)
    idle_power = board.read(HOTEND).power
    board.extrusion_rate = 5.0  # mm/s of filament
    run_for(board, 120.0)
    assert board.read(HOTEND).power > idle_power + 0.05
    assert abs(board.read(HOTEND).temperature - 200.0) < 2.0


# -- faults ------------------------------------------------------------------------------------


def test_disconnected_heater_does_not_heat_though_full_power_is_commanded() -> None:
    board = Board(watchdog_timeout=None)
    board.hotend.add_fault(HeaterFault.HEATER_DISCONNECTED)
    board.set_target(HOTEND, 200.0)
    run_for(board, 120.0)
    reading = board.read(HOTEND)
    assert reading.power == 1.0
    assert reading.temperature < AMBIENT_C + 0.5
    assert board.hotend.body_temp < AMBIENT_C + 0.5


def test_reconnected_heater_heats_again() -> None:
    board = Board(watchdog_timeout=None)
    board.hotend.add_fault(HeaterFault.HEATER_DISCONNECTED)
    board.set_target(HOTEND, 200.0)
    run_for(board, 30.0)
    board.hotend.clear_fault(HeaterFault.HEATER_DISCONNECTED)
    run_for(board, 60.0)
    assert board.read(HOTEND).temperature > 120.0


def test_detached_thermistor_reads_about_ambient_while_the_block_overheats() -> None:
    board = heated(HOTEND, 200.0, settle_s=300.0)
    board.hotend.add_fault(HeaterFault.THERMISTOR_DETACHED)
    run_for(board, 300.0)
    assert board.read(HOTEND).temperature < AMBIENT_C + 15.0
    assert board.read(HOTEND).power == 1.0  # the controller believes it is cold
    assert board.hotend.body_temp > 300.0


def test_open_sensor_reads_far_below_any_min_temp_and_the_controller_heats_blindly() -> None:
    board = Board(watchdog_timeout=None)
    board.hotend.add_fault(HeaterFault.SENSOR_OPEN)
    assert board.read(HOTEND).temperature == SENSOR_OPEN_READING
    board.set_target(HOTEND, 200.0)
    run_for(board, 150.0)
    assert board.read(HOTEND).temperature == SENSOR_OPEN_READING < 5.0
    assert board.hotend.body_temp > 250.0


def test_shorted_sensor_reads_far_above_any_max_temp() -> None:
    board = heated(BED, 60.0, settle_s=600.0)
    board.bed.add_fault(HeaterFault.SENSOR_SHORT)
    run_for(board, 60.0)
    reading = board.read(BED)
    assert reading.temperature == SENSOR_SHORT_READING > 275.0
    assert reading.power == 0.0  # the controller thinks it is far too hot


def test_stuck_on_heater_keeps_heating_after_heaters_off() -> None:
    board = heated(HOTEND, 200.0, settle_s=300.0)
    board.hotend.add_fault(HeaterFault.HEATER_STUCK_ON)
    board.heaters_off()
    before = board.read(HOTEND)
    run_for(board, 60.0)
    after = board.read(HOTEND)
    assert before.target == after.target == 0.0
    assert after.power == 0.0  # software has cut it...
    assert after.temperature > before.temperature + 50.0  # ...and it heats regardless


def test_failed_fan_needs_less_power_than_a_working_one() -> None:
    working = Board(watchdog_timeout=None)
    failed = Board(watchdog_timeout=None, fan_failed=True)
    for board in (working, failed):
        board.set_fan(1.0)
        board.set_target(HOTEND, 200.0)
        run_for(board, 400.0)
    assert failed.read(HOTEND).power < working.read(HOTEND).power - 0.08


# -- watchdog ----------------------------------------------------------------------------------


def test_watchdog_cuts_power_3_s_after_the_last_refresh_and_not_before() -> None:
    board = Board()
    board.set_target(HOTEND, 200.0)
    board.set_target(BED, 60.0)
    run_for(board, 1.5, dt=0.1)
    board.refresh_watchdog()
    refreshed_at = board.time
    board.step(2.99)
    # (A tuple, so that mypy does not narrow the flag to False for the rest of the test.)
    assert (board.watchdog_tripped, board.read(HOTEND).target) == (False, 200.0)
    board.step(0.02)
    assert board.watchdog_tripped
    assert board.watchdog_tripped_at == pytest.approx(refreshed_at + 3.0)
    for heater in (HOTEND, BED):
        assert board.read(heater).target == 0.0
        assert board.read(heater).power == 0.0


def test_watchdog_trip_time_does_not_depend_on_step_size() -> None:
    board = Board()
    board.set_target(HOTEND, 200.0)
    board.step(100.0)  # one long step overshooting the deadline
    assert board.watchdog_tripped_at == pytest.approx(3.0)
    # Heat stopped at 3 s, so the block is far below what 100 s of heating would give.
    assert board.hotend.body_temp < 40.0


def test_regular_refreshes_keep_the_heaters_on() -> None:
    board = Board()
    board.set_target(HOTEND, 200.0)
    for _ in range(100):
        board.step(2.5)
        board.refresh_watchdog()
    assert not board.watchdog_tripped
    assert board.read(HOTEND).temperature > 190.0


def test_watchdog_is_disarmed_while_no_heater_has_a_target() -> None:
    board = Board()
    board.step(60.0)  # the host never refreshed, but nothing was heating
    board.set_target(HOTEND, 200.0)  # arming starts a fresh period
    board.step(2.9)
    assert board.watchdog_tripped_at is None
    board.set_target(HOTEND, 210.0)  # other commands do not refresh it
    board.step(0.2)
    assert board.watchdog_tripped_at == pytest.approx(63.0)


def test_watchdog_cuts_a_settled_heater_on_time() -> None:
    # A settled heater is skipped while time passes: the watchdog must still fire.
    board = Board()
    board.set_target(HOTEND, 200.0)
    while board.time < 900.0:
        board.step(2.0)
        board.refresh_watchdog()
    assert is_settled(board.hotend)
    board.step(3600.0)
    assert board.watchdog_tripped_at == pytest.approx(903.0)
    assert board.read(HOTEND).temperature < 60.0


def test_watchdog_cannot_cut_a_stuck_on_heater() -> None:
    board = Board()
    board.hotend.add_fault(HeaterFault.HEATER_STUCK_ON)
    board.set_target(HOTEND, 200.0)
    board.step(3.5)
    assert board.watchdog_tripped
    at_trip = board.hotend.body_temp
    board.step(30.0)
    assert board.hotend.body_temp > at_trip + 30.0


def test_heat_does_not_come_back_after_a_trip() -> None:
    board = Board()
    board.set_target(HOTEND, 200.0)
    board.step(5.0)
    assert board.watchdog_tripped
    board.refresh_watchdog()
    board.step(60.0)
    assert board.read(HOTEND).target == 0.0
    assert board.watchdog_tripped  # latched
    board.clear_watchdog_trip()
    assert not board.watchdog_tripped


@settings(max_examples=40, deadline=None)
@given(pieces=st.lists(st.floats(min_value=0.01, max_value=7.0), min_size=1, max_size=40))
def test_splitting_time_into_steps_does_not_change_the_result(pieces: list[float]) -> None:
    whole = Board(watchdog_timeout=None)
    split = Board(watchdog_timeout=None)
    for board in (whole, split):
        board.set_target(HOTEND, 200.0)
        board.set_target(BED, 60.0)
    whole.step(sum(pieces))
    for piece in pieces:
        split.step(piece)
    assert split.time == pytest.approx(whole.time)
    for heater in (HOTEND, BED):
        assert split.read(heater).temperature == pytest.approx(
            whole.read(heater).temperature, abs=0.02
        )


def test_bang_bang_control_holds_a_bed_within_its_hysteresis() -> None:
    # Marlin's default for beds; the simulated models use PID, but the mode is there to model.
    params = dataclasses.replace(thermal.BED, control=ControlMode.BANG_BANG, hysteresis_k=0.5)
    board = Board(bed=HeaterModel(params), watchdog_timeout=None)
    board.set_target(BED, 60.0)
    run_for(board, 900.0)
    readings, duties = [], set()
    for _ in range(900):
        board.step(1.0)
        readings.append(board.read(BED).temperature)
        duties.add(board.read(BED).power)
    assert duties == {0.0, 1.0}  # it switches, never modulates
    assert 58.0 < min(readings) < 60.0 < max(readings) < 62.0


def test_a_settled_heater_is_left_alone_until_something_changes() -> None:
    board = heated(HOTEND, 200.0, settle_s=900.0)
    assert is_settled(board.hotend)
    before = board.read(HOTEND)
    board.step(1.0e6)
    after = board.read(HOTEND)
    assert (after.temperature, after.power) == (before.temperature, before.power)
    # The firmware knows its fan speed: feed-forward raises the power at once, with no upset.
    board.set_fan(1.0)
    board.step(5.0)
    fanned = board.read(HOTEND)
    assert fanned.power > before.power + 0.1
    assert abs(fanned.temperature - 200.0) < 0.05
    # It does not know the fan has failed: the block runs hot until the integral catches up.
    board.fan_failed = True
    run_for(board, 15.0)
    assert board.read(HOTEND).temperature > 200.5
    assert not is_settled(board.hotend)
    run_for(board, 1800.0)
    assert abs(board.read(HOTEND).temperature - 200.0) < 0.05
    assert board.read(HOTEND).power < fanned.power - 0.05


def test_time_until_predicts_what_stepping_finds() -> None:
    board = Board(watchdog_timeout=None)
    board.set_target(HOTEND, 200.0)
    predicted = board.time_until(HOTEND, lambda reading: reading >= 199.0, horizon=300.0)
    assert board.time == 0.0  # the board itself did not move
    assert predicted is not None
    assert predicted == pytest.approx(time_to_reach(board, HOTEND, 199.0, limit=300.0), abs=0.1)
    assert board.time_until(HOTEND, lambda reading: reading >= 300.0, horizon=600.0) is None


def test_long_strides_match_fine_steps() -> None:
    strides = Board(watchdog_timeout=None)
    fine = Board(watchdog_timeout=None)
    for board in (strides, fine):
        board.set_target(HOTEND, 210.0)
        board.set_target(BED, 70.0)
    for until in (20.0, 60.0, 200.0, 700.0):
        strides.advance_to(until)
        while fine.time < until - 1e-9:
            fine.step(min(0.01, until - fine.time))
        for heater in (HOTEND, BED):
            assert strides.read(heater).temperature == pytest.approx(
                fine.read(heater).temperature, abs=0.02
            )
