"""The pure G-code interpreter: move timing, positioning modes, dwells, heaters, fan, progress."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.agent.hardware import HeaterId
from printfleet.sim.gcode import (
    DEFAULT_FEED_MM_MIN,
    Dwell,
    GcodeEffect,
    GcodeInterpreter,
    Move,
    SetFan,
    SetTemperature,
    TemperatureWait,
)


def run(lines: list[str]) -> tuple[GcodeInterpreter, list[GcodeEffect]]:
    interpreter = GcodeInterpreter()
    effects = [e for line in lines if (e := interpreter.feed(line)) is not None]
    return interpreter, effects


def seconds(effects: list[GcodeEffect]) -> float:
    return sum(e.duration_s for e in effects if isinstance(e, Move | Dwell))


def test_move_time_is_distance_over_feed_rate() -> None:
    _, effects = run(["G1 X30 Y40 F600"])  # 50 mm at 10 mm/s
    assert effects == [Move(5.0, 0.0)]


def test_feed_rate_is_modal_and_starts_at_the_default() -> None:
    _, effects = run(["G1 X25", "G1 X85 F1200", "G1 X105"])
    assert [e.duration_s for e in effects if isinstance(e, Move)] == pytest.approx(
        [25.0 / (DEFAULT_FEED_MM_MIN / 60.0), 3.0, 1.0]
    )


def test_relative_and_absolute_positioning() -> None:
    interpreter, effects = run(["G91", "G1 X10 F600", "G1 X10", "G90", "G1 X5"])
    assert seconds(effects) == pytest.approx(1.0 + 1.0 + 1.5)
    assert interpreter.position["X"] == 5.0


def test_g92_sets_the_position_without_moving() -> None:
    interpreter, effects = run(["G1 X100 F6000", "G92 X0", "G1 X10"])
    assert [e.duration_s for e in effects if isinstance(e, Move)] == pytest.approx([1.0, 0.1])
    assert interpreter.position["X"] == 10.0


def test_extrusion_modes_and_extruder_only_moves() -> None:
    _, effects = run(
        ["M83", "G1 X10 E1.5 F600", "G1 E-2 F1200", "M82", "G92 E0", "G1 X20 E3", "G1 E2.5"]
    )
    assert effects == [
        Move(1.0, 1.5),
        Move(0.1, -2.0),  # a retraction: E distance at the feed rate
        Move(0.5, 3.0),
        Move(0.025, -0.5),
    ]


def test_quarter_circle_arc_length() -> None:
    # From (10, 0) counter-clockwise around the origin to (0, 10): a quarter of a 10 mm circle.
    _, effects = run(["G1 X10 Y0 F6000", "G3 X0 Y10 I-10 J0 F600"])
    arc = effects[-1]
    assert isinstance(arc, Move)
    assert arc.duration_s == pytest.approx(10.0 * math.pi / 2.0 / 10.0)


def test_clockwise_arc_the_long_way_round() -> None:
    _, effects = run(["G1 X10 Y0 F6000", "G2 X0 Y10 I-10 J0 F600"])
    assert seconds(effects[-1:]) == pytest.approx(10.0 * 3.0 * math.pi / 2.0 / 10.0)


def test_dwell_in_milliseconds_or_seconds() -> None:
    _, effects = run(["G4 P1500", "G4 S2", "G4"])
    assert effects == [Dwell(1.5), Dwell(2.0), Dwell(0.0)]


def test_homing_and_unknown_commands_take_no_time() -> None:
    interpreter, effects = run(["G1 X50 F3000", "G28", "M84", "T0", "M117 Hello world"])
    assert len(effects) == 1
    assert interpreter.position["X"] == 0.0


def test_temperature_commands() -> None:
    _, effects = run(["M104 S215", "M109 S200", "M109 R180", "M140 S60", "M190 S65", "M104"])
    assert effects == [
        SetTemperature(HeaterId.HOTEND, 215.0, TemperatureWait.NONE),
        SetTemperature(HeaterId.HOTEND, 200.0, TemperatureWait.HEATING),
        SetTemperature(HeaterId.HOTEND, 180.0, TemperatureWait.EITHER_WAY),
        SetTemperature(HeaterId.BED, 60.0, TemperatureWait.NONE),
        SetTemperature(HeaterId.BED, 65.0, TemperatureWait.HEATING),
    ]


def test_fan_commands() -> None:
    _, effects = run(["M106 S127.5", "M106", "M106 P1 S0", "M107"])
    assert effects == [SetFan(0.5), SetFan(1.0), SetFan(0.0)]


def test_line_numbers_checksums_comments_and_case() -> None:
    _, effects = run(["N10 G1 X30 Y40 F600*85", "g1 x0 y0 ; back home", "; G1 X1000"])
    assert seconds(effects) == pytest.approx(10.0)


def test_m73_progress_and_time_left() -> None:
    interpreter, _ = run(["M73 P25 R30", "M73 Q20 S40"])  # Q/S: silent mode, not ours
    assert interpreter.m73_percent == 25.0
    assert interpreter.m73_minutes_left == 30.0
    assert interpreter.m73_updates == 1
    interpreter.feed("M73 P150")
    assert interpreter.m73_percent == 100.0


def test_layers_from_prusaslicer_markers() -> None:
    interpreter, _ = run(["; total layer number: 3", ";LAYER_CHANGE", "G1 Z0.2", ";LAYER_CHANGE"])
    assert (interpreter.layer, interpreter.total_layers) == (2, 3)


def test_layers_from_cura_markers() -> None:
    interpreter, _ = run([";LAYER_COUNT:10", ";LAYER:0", ";LAYER:1", ";LAYER:2"])
    assert (interpreter.layer, interpreter.total_layers) == (3, 10)


def test_bambu_m73_layer() -> None:
    interpreter, _ = run(["M73 L7"])
    assert interpreter.layer == 7


# G-code has no exponent notation (E is an axis), so coordinates are written to 3 decimals.
coordinate = st.integers(min_value=-200_000, max_value=200_000).map(lambda um: um / 1000.0)


@given(
    points=st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=1, max_size=30),
    feed=st.integers(min_value=60, max_value=30000).map(float),
)
def test_total_time_is_path_length_over_feed(
    points: list[tuple[float, float, float]], feed: float
) -> None:
    lines = [f"G1 F{feed:g}"] + [f"G1 X{x:.3f} Y{y:.3f} Z{z:.3f}" for x, y, z in points]
    _, effects = run(lines)
    path = [(0.0, 0.0, 0.0), *points]
    length = sum(math.dist(a, b) for a, b in itertools.pairwise(path))
    assert seconds(effects) == pytest.approx(length / (feed / 60.0), rel=1e-9, abs=1e-9)
