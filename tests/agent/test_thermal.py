"""Tests for the agent's thermal protection, driven by synthetic temperature traces.

Traces are first-order heating curves (with dead time, a holding wobble and sensor noise) made here.
The guard gets a reading of each heater every `READING_PERIOD` and is ticked either after every
reading or by a separate 1 s timer that fires late by a random amount, as an agent might do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printfleet.agent.hardware import HeaterId, HeaterReading
from printfleet.agent.thermal import (
    BED_LIMITS,
    DEFAULT_LIMITS,
    HOTEND_LIMITS,
    OUT_OF_RANGE_SAMPLES,
    READING_PERIOD,
    STALE_AFTER,
    STEP_SLACK,
    VERIFY_PERIOD,
    FaultKind,
    HeaterLimits,
    HeaterVerifier,
    RefusalReason,
    ThermalFault,
    ThermalGuard,
    VerifySettings,
    detection_bound,
)

HOTEND = HeaterId.HOTEND
BED = HeaterId.BED
HEATERS = (HOTEND, BED)
ROOM = 25.0
# Readings fall on sums of 0.3 s, which floats cannot hold exactly.
EPS = 1e-6

Temperature = Callable[[float], float | None]
"""A sensor trace: the reading at time t, or None when the sensor gives none."""
Target = Callable[[float], float]
"""A target trace: the target the board reports at time t."""


def off(_t: float) -> float:
    """A heater that is off."""
    return 0.0


def constant(value: float) -> Callable[[float], float]:
    """A trace that never changes."""
    return lambda _t: value


def switched(before: float, after: float, at: float) -> Target:
    """A target that changes from `before` to `after` at `at`."""
    return lambda t: after if t >= at else before


def noisy(trace: Callable[[float], float], rng: random.Random, amplitude: float) -> Temperature:
    """`trace` plus uniform sensor noise of at most `amplitude` degrees."""
    return lambda t: trace(t) + rng.uniform(-amplitude, amplitude)


@dataclass(frozen=True)
class Heatup:
    """A heater driven at full power from `start` (after a dead time) toward `target`, then held.

    First-order plant: at full power it would settle `headroom` times the needed rise above ambient,
    starting at `rate` degrees per second. Once at the target the controller holds it, with a slow
    wobble of `wobble` degrees.
    """

    ambient: float
    target: float
    rate: float
    headroom: float
    start: float = 0.0
    dead_time: float = 0.0
    wobble: float = 0.0

    @property
    def gain(self) -> float:
        """Degrees above ambient at which full power would settle."""
        return self.headroom * (self.target - self.ambient)

    @property
    def tau(self) -> float:
        """The plant's time constant, seconds."""
        return self.gain / self.rate

    @property
    def reached_at(self) -> float:
        """When the temperature reaches the target."""
        return self.time_at(self.target)

    def time_at(self, temperature: float) -> float:
        """When the full-power curve reaches `temperature`."""
        rise = temperature - self.ambient
        return self.start + self.dead_time - self.tau * math.log(1 - rise / self.gain)

    def temperature(self, t: float) -> float:
        """The true temperature at `t`."""
        heating = t - self.start - self.dead_time
        if heating <= 0:
            return self.ambient
        if t >= self.reached_at:
            return self.target + self.wobble * math.sin(2 * math.pi * (t - self.reached_at) / 23.0)
        return self.ambient + self.gain * (1 - math.exp(-heating / self.tau))

    def target_at(self, t: float) -> float:
        """The target the board reports at `t`."""
        return self.target if t >= self.start else 0.0


@dataclass(frozen=True)
class Cadence:
    """How the guard is ticked: after every reading, or by a timer of its own.

    A timer fires at `phase` + k * `period`, each time late by up to `jitter` seconds.
    """

    timer: bool
    period: float = VERIFY_PERIOD
    phase: float = 0.0
    jitter: float = 0.0
    seed: int = 0


AFTER_READINGS = Cadence(timer=False)
CADENCES = [
    AFTER_READINGS,
    Cadence(timer=True, phase=0.13),
    Cadence(timer=True, phase=0.71, jitter=0.3, seed=7),
    Cadence(timer=True, period=0.1, phase=0.05),
]
cadences = st.one_of(
    st.just(AFTER_READINGS),
    st.builds(
        Cadence,
        timer=st.just(True),
        phase=st.floats(0.0, 0.99),
        jitter=st.floats(0.0, 0.3),
        seed=st.integers(0, 2**16),
    ),
)


def run(
    guard: ThermalGuard,
    traces: Mapping[HeaterId, tuple[Temperature, Target]],
    until: float,
    cadence: Cadence = AFTER_READINGS,
    *,
    stop_at_first: bool = True,
) -> list[ThermalFault]:
    """Feed `guard` readings every `READING_PERIOD` and tick it; return the faults it reported.

    A heater missing from `traces` sits at room temperature, off.
    """
    full = {heater: traces.get(heater, (constant(ROOM), off)) for heater in HEATERS}
    reading_count = math.floor(until / READING_PERIOD) + 1
    # Events as (time, order): readings sort before a timer tick at the same instant.
    events = [(i * READING_PERIOD, 0) for i in range(reading_count)]
    if cadence.timer:
        rng = random.Random(cadence.seed)
        tick_count = math.floor(until / cadence.period) + 1
        events += [
            (cadence.phase + k * cadence.period + rng.uniform(0.0, cadence.jitter), 1)
            for k in range(tick_count)
        ]
        events.sort()
    faults: list[ThermalFault] = []
    for t, order in events:
        if order == 0:
            for heater, (temperature, target) in full.items():
                value = temperature(t)
                if value is None:
                    continue
                reading = HeaterReading(
                    heater=heater, temperature=value, target=target(t), power=0.0, read_at=t
                )
                fault = guard.observe(reading)
                if fault is not None:
                    faults.append(fault)
        if order == 1 or not cadence.timer:
            faults.extend(guard.tick(t))
        if faults and stop_at_first:
            break
    return faults


def first_reading_at_or_after(t: float) -> float:
    """The time of the first reading `run` feeds at or after `t`."""
    i = math.ceil(t / READING_PERIOD - 1e-9)
    while i * READING_PERIOD < t:
        i += 1
    return i * READING_PERIOD


def last_reading_before(t: float) -> float:
    """The time of the last reading `run` feeds strictly before `t`."""
    return first_reading_at_or_after(t) - READING_PERIOD


# --- strategies ---------------------------------------------------------------------------------


def heatups(heater: HeaterId) -> st.SearchStrategy[Heatup]:
    """Healthy, physically plausible heat-ups: hotends at 1.5-6 °C/s, beds at 0.1-0.5 °C/s.

    The headroom keeps the slope just below the target above what verify_heater asks for plus the
    sensor noise (a bed needs 2 °C per 60 s; headroom 2 gives it at least 3).
    """
    if heater is HOTEND:
        return st.builds(
            Heatup,
            ambient=st.floats(15.0, 35.0),
            target=st.floats(180.0, 250.0),
            rate=st.floats(1.5, 6.0),
            headroom=st.floats(1.4, 3.0),
            start=st.floats(0.0, 5.0),
            dead_time=st.floats(0.0, 6.0),
            wobble=st.floats(0.0, 1.7),
        )
    return st.builds(
        Heatup,
        ambient=st.floats(15.0, 35.0),
        target=st.floats(50.0, 80.0),
        rate=st.floats(0.1, 0.5),
        headroom=st.floats(2.0, 3.5),
        start=st.floats(0.0, 5.0),
        dead_time=st.floats(0.0, 12.0),
        wobble=st.floats(0.0, 1.7),
    )


heaters = st.sampled_from(HEATERS)
seeds = st.integers(0, 2**32 - 1)
# Sensor noise: with the wobble it keeps a held heater within ±2 °C of its target.
noise_levels = st.floats(0.0, 0.3)


# --- healthy heaters ----------------------------------------------------------------------------


@pytest.mark.parametrize("cadence", CADENCES)
def test_hotend_heats_25_to_210_in_about_90_s_and_holds_without_tripping(cadence: Cadence) -> None:
    rng = random.Random(1)
    # About Marlin's MPC hotend: 25 -> 200 °C in under 90 s at full power.
    heatup = Heatup(ambient=25.0, target=210.0, rate=3.1, headroom=340 / 185, wobble=1.5)
    assert 80 < heatup.reached_at < 100
    guard = ThermalGuard()
    traces = {HOTEND: (noisy(heatup.temperature, rng, 0.5), heatup.target_at)}
    faults = run(guard, traces, until=heatup.reached_at + 300, cadence=cadence)
    assert faults == []
    assert guard.latched is None


@settings(max_examples=60, deadline=None)
@given(data=st.data(), heater=heaters, noise=noise_levels, seed=seeds, cadence=cadences)
def test_healthy_heatup_and_hold_never_trips(
    data: st.DataObject, heater: HeaterId, noise: float, seed: int, cadence: Cadence
) -> None:
    heatup = data.draw(heatups(heater))
    rng = random.Random(seed)
    guard = ThermalGuard()
    until = heatup.reached_at + 120
    traces = {heater: (noisy(heatup.temperature, rng, noise), heatup.target_at)}
    faults = run(guard, traces, until=until, cadence=cadence)
    assert faults == []
    assert guard.latched is None
    assert abs(heatup.temperature(until) - heatup.target) <= 2.0


@settings(max_examples=40, deadline=None)
@given(
    hotend_from=st.floats(ROOM, 260.0),
    bed_from=st.floats(ROOM, 140.0),
    tau=st.floats(40.0, 700.0),
    target=st.sampled_from([0.0, 10.0, -5.0]),
    seed=seeds,
    cadence=cadences,
)
def test_heaters_off_or_below_ambient_never_trip(
    *, hotend_from: float, bed_from: float, tau: float, target: float, seed: int, cadence: Cadence
) -> None:
    rng = random.Random(seed)

    def cooling(start: float) -> Callable[[float], float]:
        return lambda t: ROOM + (start - ROOM) * math.exp(-t / tau)

    guard = ThermalGuard()
    traces = {
        HOTEND: (noisy(cooling(hotend_from), rng, 2.0), constant(target)),
        BED: (noisy(cooling(bed_from), rng, 2.0), constant(target)),
    }
    assert run(guard, traces, until=300.0, cadence=cadence) == []
    assert guard.latched is None


def test_cooling_down_to_a_lower_target_does_not_trip() -> None:
    guard = ThermalGuard()

    def temperature(t: float) -> float:
        # From 250 °C the hotend cools to a new 200 °C target and holds it.
        return max(200.0, 250.0 - 0.8 * t)

    assert run(guard, {HOTEND: (temperature, constant(200.0))}, until=200.0) == []


@pytest.mark.parametrize("cadence", CADENCES)
def test_slow_but_steady_heater_is_given_its_time(cadence: Cadence) -> None:
    # 2.2 °C every 20 s is barely enough for verify_heater: it must not trip, however long it takes.
    guard = ThermalGuard()

    def temperature(t: float) -> float:
        return min(200.0, ROOM + 0.11 * t)

    assert run(guard, {HOTEND: (temperature, constant(200.0))}, until=1700.0, cadence=cadence) == []


# --- not heating --------------------------------------------------------------------------------


@st.composite
def dead_heater_cases(draw: st.DrawFn) -> tuple[HeaterId, float, float]:
    """A heater, room temperature and a target at least 10 °C above it."""
    heater = draw(heaters)
    ambient = draw(st.floats(15.0, 35.0))
    target = draw(st.floats(ambient + 10.0, DEFAULT_LIMITS[heater].max_target))
    return heater, ambient, target


@settings(max_examples=60, deadline=None)
@given(
    case=dead_heater_cases(),
    # Less than half the heating gain either way, so noise never passes for progress.
    noise=st.floats(0.0, 0.9),
    set_at=st.floats(0.0, 5.0),
    seed=seeds,
    cadence=cadences,
)
def test_disconnected_heater_trips_not_heating_within_bound(
    case: tuple[HeaterId, float, float], noise: float, set_at: float, seed: int, cadence: Cadence
) -> None:
    heater, ambient, target = case
    bound = detection_bound(FaultKind.NOT_HEATING, heater, target, ambient + noise)
    rng = random.Random(seed)
    guard = ThermalGuard()
    traces = {heater: (noisy(constant(ambient), rng, noise), switched(0.0, target, set_at))}
    faults = run(guard, traces, until=set_at + bound + 5, cadence=cadence)

    assert [(f.heater, f.kind) for f in faults] == [(heater, FaultKind.NOT_HEATING)]
    fault = faults[0]
    # Klipper's grace period first: no verdict before check_gain_time.
    check_gain_time = DEFAULT_LIMITS[heater].verify.check_gain_time
    assert check_gain_time <= fault.detected_at - set_at <= bound + EPS
    assert fault.target == target
    assert guard.latched == fault


@pytest.mark.parametrize("cadence", CADENCES)
@pytest.mark.parametrize(
    ("heater", "heatup", "dies_at_temperature"),
    [
        (HOTEND, Heatup(ambient=ROOM, target=210.0, rate=3.0, headroom=2.0), 120.0),
        (HOTEND, Heatup(ambient=ROOM, target=210.0, rate=3.0, headroom=2.0), 203.0),
        (BED, Heatup(ambient=ROOM, target=60.0, rate=0.3, headroom=2.5), 45.0),
        (BED, Heatup(ambient=ROOM, target=100.0, rate=0.3, headroom=2.0), 93.0),
    ],
)
def test_heater_dying_on_the_way_up_trips_not_heating_within_bound(
    heater: HeaterId, heatup: Heatup, dies_at_temperature: float, cadence: Cadence
) -> None:
    died_at = heatup.time_at(dies_at_temperature)

    def temperature(t: float) -> float:
        if t < died_at:
            return heatup.temperature(t)
        # No power: it cools toward the room with the plant's own time constant.
        return ROOM + (dies_at_temperature - ROOM) * math.exp(-(t - died_at) / heatup.tau)

    bound = detection_bound(FaultKind.NOT_HEATING, heater, heatup.target, dies_at_temperature)
    guard = ThermalGuard()
    faults = run(guard, {heater: (temperature, heatup.target_at)}, died_at + bound + 5, cadence)
    assert [f.kind for f in faults] == [FaultKind.NOT_HEATING]
    assert died_at < faults[0].detected_at <= died_at + bound + EPS


def test_not_heating_message_says_what_happened_and_what_to_check() -> None:
    guard = ThermalGuard()
    (fault,) = run(guard, {HOTEND: (constant(31.2), constant(210.0))}, until=60.0)
    assert fault.message.startswith(
        "Hotend not heating at expected rate: 31.2 °C after 2"  # 20-something seconds
    )
    assert fault.message.endswith("aiming for 210 °C — check the heater and thermistor wiring")
    assert fault.temperature == 31.2


# --- runaway (a heater that had reached its target falls away) ----------------------------------


def holding_heatup(heater: HeaterId, ambient: float, target: float) -> Heatup:
    """A brisk, healthy heat-up, so that tests get to the holding phase quickly."""
    if heater is HOTEND:
        return Heatup(ambient=ambient, target=target, rate=4.0, headroom=2.0, wobble=1.5)
    return Heatup(ambient=ambient, target=target, rate=0.5, headroom=3.0, wobble=1.5)


@st.composite
def holding_cases(draw: st.DrawFn) -> tuple[HeaterId, float, float]:
    """A heater, room temperature and a target the heater reaches and holds.

    Targets stay well above what a fallen thermistor reads (room + 10 °C of warm air + noise), so
    that verify_heater has a shortfall to see.
    """
    heater = draw(heaters)
    ambient = draw(st.floats(15.0, 35.0))
    low = 150.0 if heater is HOTEND else 60.0
    target = draw(st.floats(low, DEFAULT_LIMITS[heater].max_target))
    return heater, ambient, target


@settings(max_examples=60, deadline=None)
@given(
    case=holding_cases(),
    held_for=st.floats(5.0, 60.0),
    warm_air=st.floats(0.0, 10.0),
    noise=noise_levels,
    seed=seeds,
    cadence=cadences,
)
def test_thermistor_falling_off_while_holding_trips_runaway_within_bound(
    *,
    case: tuple[HeaterId, float, float],
    held_for: float,
    warm_air: float,
    noise: float,
    seed: int,
    cadence: Cadence,
) -> None:
    heater, ambient, target = case
    heatup = holding_heatup(heater, ambient, target)
    fell_at = heatup.reached_at + held_for
    # Out of its block the thermistor reads the warm air around it.
    fallen = ambient + warm_air

    def true(t: float) -> float:
        return heatup.temperature(t) if t < fell_at else fallen

    bound = detection_bound(FaultKind.RUNAWAY, heater, target, fallen + noise)
    guard = ThermalGuard()
    rng = random.Random(seed)
    faults = run(guard, {heater: (noisy(true, rng, noise), heatup.target_at)}, fell_at + bound + 5)

    assert [(f.heater, f.kind) for f in faults] == [(heater, FaultKind.RUNAWAY)]
    assert fell_at < faults[0].detected_at <= fell_at + bound + EPS
    assert "could not hold" in faults[0].message


@pytest.mark.parametrize("cadence", CADENCES)
def test_verify_cadence_does_not_follow_the_tick_rate(cadence: Cadence) -> None:
    # A bed holding 60 °C whose reading drops to 50 °C adds 5 to the error sum per step, so it takes
    # 24 steps to reach 120. Ticking 10 times a second must not make that 2.4 s.
    heatup = holding_heatup(BED, ROOM, 60.0)
    fell_at = heatup.reached_at + 10

    def temperature(t: float) -> float:
        return heatup.temperature(t) if t < fell_at else 50.0

    bound = detection_bound(FaultKind.RUNAWAY, BED, 60.0, 50.0)
    guard = ThermalGuard()
    faults = run(guard, {BED: (temperature, heatup.target_at)}, fell_at + bound + 5, cadence)
    assert [f.kind for f in faults] == [FaultKind.RUNAWAY]
    elapsed = faults[0].detected_at - fell_at
    assert 23 * VERIFY_PERIOD - 2 * STEP_SLACK <= elapsed <= bound + EPS


def test_slipping_thermistor_trips_runaway() -> None:
    # A thermistor working loose reads lower and lower (time constant 5 s), not a clean step.
    heatup = holding_heatup(HOTEND, ROOM, 220.0)
    slip_at = heatup.reached_at + 30

    def temperature(t: float) -> float:
        if t < slip_at:
            return heatup.temperature(t)
        return 40.0 + (220.0 - 40.0) * math.exp(-(t - slip_at) / 5.0)

    guard = ThermalGuard()
    faults = run(guard, {HOTEND: (temperature, heatup.target_at)}, until=slip_at + 60)
    assert [f.kind for f in faults] == [FaultKind.RUNAWAY]
    assert faults[0].detected_at - slip_at < 15


# --- target changes -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    first=st.floats(100.0, 250.0),
    second=st.floats(100.0, 250.0),
    fraction=st.floats(0.1, 0.9),
    seed=seeds,
    cadence=cadences,
)
def test_target_change_mid_heat_does_not_trip_a_healthy_heater(
    first: float, second: float, fraction: float, seed: int, cadence: Cadence
) -> None:
    # Full power until the second target: the curve is the same whichever target the firmware has.
    heatup = Heatup(ambient=ROOM, target=second, rate=2.5, headroom=1.8, wobble=1.5)
    changed_at = fraction * heatup.time_at(min(first, second) - 5)
    rng = random.Random(seed)
    guard = ThermalGuard()
    traces = {HOTEND: (noisy(heatup.temperature, rng, 0.3), switched(first, second, changed_at))}
    assert run(guard, traces, until=heatup.reached_at + 60, cadence=cadence) == []


@pytest.mark.parametrize("cadence", CADENCES)
def test_new_target_while_holding_rearms_the_heat_up_check(cadence: Cadence) -> None:
    # Holding 150 °C, then asked for 240 °C, but the heater has died: a fresh approach with its
    # grace period, then "not heating" (not "runaway"), within the bound counted from the change.
    changed_at = 30.0
    rng = random.Random(3)
    guard = ThermalGuard()
    traces = {HOTEND: (noisy(constant(150.0), rng, 0.5), switched(150.0, 240.0, changed_at))}
    bound = detection_bound(FaultKind.NOT_HEATING, HOTEND, 240.0, 150.5)
    faults = run(guard, traces, until=changed_at + bound + 5, cadence=cadence)
    assert [f.kind for f in faults] == [FaultKind.NOT_HEATING]
    elapsed = faults[0].detected_at - changed_at
    assert HOTEND_LIMITS.verify.check_gain_time <= elapsed <= bound + EPS
    assert "aiming for 240 °C" in faults[0].message


# --- out of range readings ----------------------------------------------------------------------

BAD_READINGS: list[tuple[float, FaultKind]] = [
    (-15.0, FaultKind.UNDER_MIN),  # open thermistor
    (4.9, FaultKind.UNDER_MIN),
    (999.0, FaultKind.OVER_MAX),  # shorted thermistor
    (math.nan, FaultKind.ADC_OUT_OF_RANGE),
    (math.inf, FaultKind.ADC_OUT_OF_RANGE),
    (-math.inf, FaultKind.ADC_OUT_OF_RANGE),
]


@st.composite
def bad_readings(draw: st.DrawFn, heater: HeaterId) -> tuple[float, FaultKind]:
    """A reading out of `heater`'s range and the fault kind it must produce."""
    limits = DEFAULT_LIMITS[heater]
    return draw(
        st.one_of(
            st.floats(-300.0, limits.min_temp, exclude_max=True).map(
                lambda v: (v, FaultKind.UNDER_MIN)
            ),
            st.floats(limits.max_temp, 2000.0, exclude_min=True).map(
                lambda v: (v, FaultKind.OVER_MAX)
            ),
            st.sampled_from([math.nan, math.inf, -math.inf]).map(
                lambda v: (v, FaultKind.ADC_OUT_OF_RANGE)
            ),
        )
    )


@settings(max_examples=80, deadline=None)
@given(data=st.data(), heater=heaters, onset=st.floats(1.0, 30.0), cadence=cadences)
def test_out_of_range_readings_trip_within_bound(
    data: st.DataObject, heater: HeaterId, onset: float, cadence: Cadence
) -> None:
    bad, kind = data.draw(bad_readings(heater))
    # Off, or holding a target it already had: nothing else may trip first.
    target = data.draw(st.sampled_from([0.0, DEFAULT_LIMITS[heater].max_target]))
    before = target if target > 0 else ROOM
    guard = ThermalGuard()
    traces = {heater: (lambda t: bad if t >= onset else before, constant(target))}
    faults = run(guard, traces, until=onset + 10, cadence=cadence)

    assert [(f.heater, f.kind) for f in faults] == [(heater, kind)]
    fault = faults[0]
    bound = detection_bound(kind, heater, target, ROOM)
    assert fault.detected_at - onset <= bound + EPS
    # The debounce: not before the fourth bad reading.
    first_bad = first_reading_at_or_after(onset)
    assert fault.detected_at >= first_bad + (OUT_OF_RANGE_SAMPLES - 1) * READING_PERIOD - EPS
    if math.isfinite(bad):
        assert fault.temperature == bad
    else:
        assert fault.temperature is None


@pytest.mark.parametrize(("heater", "rate"), [(HOTEND, 2.0), (BED, 0.5)])
@pytest.mark.parametrize("target", [0.0, 60.0])
def test_heater_stuck_on_trips_over_max_whatever_the_target(
    heater: HeaterId, rate: float, target: float
) -> None:
    max_temp = DEFAULT_LIMITS[heater].max_temp
    crossed_at = 100.0
    guard = ThermalGuard()

    def temperature(t: float) -> float:
        return max_temp + rate * (t - crossed_at)

    start = temperature(0.0)
    assert start > target + 5  # so verify_heater has nothing to say
    faults = run(guard, {heater: (temperature, constant(target))}, until=crossed_at + 10)
    assert [f.kind for f in faults] == [FaultKind.OVER_MAX]
    assert crossed_at < faults[0].detected_at <= crossed_at + 4 * READING_PERIOD + EPS
    assert "stuck on" in faults[0].message


@pytest.mark.parametrize(("bad", "kind"), BAD_READINGS)
def test_three_bad_readings_in_a_row_are_tolerated_four_are_not(
    bad: float, kind: FaultKind
) -> None:
    guard = ThermalGuard()
    t = 0.0
    for _ in range(20):
        # Three glitches, then one good reading resets the count.
        for value in (bad, bad, bad, 200.0):
            assert guard.observe(HeaterReading(HOTEND, value, 200.0, 0.5, t)) is None
            assert guard.observe(HeaterReading(BED, ROOM, 0.0, 0.0, t)) is None
            t += READING_PERIOD
        assert guard.tick(t) == ()
    for _ in range(OUT_OF_RANGE_SAMPLES - 1):
        assert guard.observe(HeaterReading(HOTEND, bad, 200.0, 0.5, t)) is None
        t += READING_PERIOD
    fault = guard.observe(HeaterReading(HOTEND, bad, 200.0, 0.5, t))
    assert fault is not None
    assert fault.kind is kind
    assert guard.latched == fault


def test_readings_bad_in_both_directions_are_an_adc_fault() -> None:
    guard = ThermalGuard()
    values = [-15.0, 999.0, -15.0, 999.0]
    faults = [guard.observe(HeaterReading(BED, v, 0.0, 0.0, i * 0.3)) for i, v in enumerate(values)]
    assert faults[:3] == [None, None, None]
    fault = faults[3]
    assert fault is not None
    assert fault.kind is FaultKind.ADC_OUT_OF_RANGE
    assert fault.message.startswith("Bed sensor out of range for 4 readings in a row")


def test_open_sensor_while_holding_is_reported_as_a_sensor_fault() -> None:
    # An open thermistor (-15 °C) on a hot heater also looks like a heater that cannot hold its
    # target; the diagnosis that latches must name the sensor.
    heatup = holding_heatup(HOTEND, ROOM, 210.0)
    opened_at = heatup.reached_at + 10

    def temperature(t: float) -> float:
        return heatup.temperature(t) if t < opened_at else -15.0

    for cadence in CADENCES:
        guard = ThermalGuard()
        faults = run(guard, {HOTEND: (temperature, heatup.target_at)}, opened_at + 10, cadence)
        assert [f.kind for f in faults] == [FaultKind.UNDER_MIN]
        assert "thermistor is probably disconnected" in faults[0].message


# --- stale sensor -------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(heater=heaters, stops_at=st.floats(1.0, 60.0), hot=st.booleans(), cadence=cadences)
def test_silent_sensor_trips_within_bound(
    heater: HeaterId, stops_at: float, hot: bool, cadence: Cadence
) -> None:
    target = DEFAULT_LIMITS[heater].max_target if hot else 0.0
    level = target if hot else ROOM
    guard = ThermalGuard()
    traces = {heater: (lambda t: level if t < stops_at else None, constant(target))}
    faults = run(guard, traces, until=stops_at + 20, cadence=cadence)

    assert [(f.heater, f.kind) for f in faults] == [(heater, FaultKind.SENSOR_STALE)]
    silent_for = faults[0].detected_at - last_reading_before(stops_at)
    bound = detection_bound(FaultKind.SENSOR_STALE, heater, target, ROOM)
    assert STALE_AFTER < silent_for <= bound + EPS
    assert faults[0].temperature == level


def test_sensor_that_never_reports_goes_stale_from_the_first_call() -> None:
    guard = ThermalGuard()
    faults: list[ThermalFault] = []
    for i in range(40):
        t = 100.0 + i * READING_PERIOD
        assert guard.observe(HeaterReading(HOTEND, ROOM, 0.0, 0.0, t)) is None
        faults.extend(guard.tick(t))
    assert [(f.heater, f.kind) for f in faults] == [(BED, FaultKind.SENSOR_STALE)]
    assert 107.0 < faults[0].detected_at <= 107.0 + READING_PERIOD + EPS
    assert faults[0].temperature is None
    assert "never reported" in faults[0].message


def test_same_sample_polled_again_does_not_keep_a_sensor_alive() -> None:
    # Hardware.read_heater returns the latest reading; if the board stops sampling, polling keeps
    # returning the same one, with the same read_at.
    guard = ThermalGuard()
    frozen = HeaterReading(HOTEND, 205.0, 210.0, 0.4, read_at=3.0)
    bed = HeaterReading(BED, ROOM, 0.0, 0.0, read_at=3.0)
    faults: list[ThermalFault] = []
    for i in range(31):
        now = 3.0 + i * 0.5
        assert guard.observe(frozen) is None
        assert guard.observe(bed) is None
        faults.extend(guard.tick(now))
    assert [(f.heater, f.kind) for f in faults] == [
        (HOTEND, FaultKind.SENSOR_STALE),
        (BED, FaultKind.SENSOR_STALE),
    ]
    assert faults[0].detected_at == 10.5
    assert "last reading 205.0 °C" in faults[0].message


def test_same_bad_sample_polled_again_counts_once_toward_the_debounce() -> None:
    guard = ThermalGuard()
    glitch = HeaterReading(HOTEND, 999.0, 0.0, 0.0, read_at=1.0)
    for _ in range(10):
        assert guard.observe(glitch) is None
    assert guard.latched is None


# --- latching and clearing ----------------------------------------------------------------------


def open_hotend(guard: ThermalGuard, start: float) -> ThermalFault:
    """Feed readings of an open hotend thermistor until the guard trips; return the fault."""
    for i in range(OUT_OF_RANGE_SAMPLES):
        fault = guard.observe(HeaterReading(HOTEND, -15.0, 0.0, 0.0, start + i * READING_PERIOD))
    assert fault is not None
    return fault


def latched(guard: ThermalGuard) -> ThermalFault | None:
    """The guard's latch, read through a call: mypy would carry a narrowed type across `clear`."""
    return guard.latched


def test_fault_latches_refuses_targets_and_clears_only_on_request() -> None:
    guard = ThermalGuard()
    fault = open_hotend(guard, 0.0)
    assert guard.latched == fault
    assert fault.kind is FaultKind.UNDER_MIN
    assert fault.heater is HOTEND
    assert fault.detected_at == pytest.approx(0.9)

    # Latched: every target but 0, on every heater, is refused.
    for heater, target in [(HOTEND, 200.0), (BED, 60.0), (BED, 0.1)]:
        refusal = guard.check_target(heater, target)
        assert refusal is not None
        assert refusal.reason is RefusalReason.LATCHED
        assert "until a person clears it" in refusal.message
    assert guard.check_target(HOTEND, 0.0) is None
    assert guard.check_target(BED, 0.0) is None

    # Time and good readings alone do not clear it.
    for i in range(100):
        t = 1.2 + i * READING_PERIOD
        assert guard.observe(HeaterReading(HOTEND, ROOM, 0.0, 0.0, t)) is None
        assert guard.observe(HeaterReading(BED, ROOM, 0.0, 0.0, t)) is None
        assert guard.tick(t) == ()
    assert guard.latched == fault

    with pytest.raises(ValueError, match="named person"):
        guard.clear("  ")
    assert guard.latched == fault

    assert guard.clear("alice") == fault
    assert latched(guard) is None
    assert guard.check_target(HOTEND, 200.0) is None
    assert guard.clear("alice") is None


def test_later_faults_are_reported_once_but_the_first_stays_latched() -> None:
    guard = ThermalGuard()
    first = open_hotend(guard, 0.0)
    # The open sensor keeps reading -15 °C: not reported again.
    assert guard.observe(HeaterReading(HOTEND, -15.0, 0.0, 0.0, 1.2)) is None
    # The bed shorts as well: reported, but the hotend fault stays the latched one.
    bed_faults = [guard.observe(HeaterReading(BED, 999.0, 0.0, 0.0, i * 0.3)) for i in range(4)]
    assert bed_faults[:3] == [None, None, None]
    assert bed_faults[3] is not None
    assert bed_faults[3].kind is FaultKind.OVER_MAX
    assert guard.latched == first


def test_clearing_while_the_cause_persists_latches_again() -> None:
    guard = ThermalGuard()
    fault = open_hotend(guard, 0.0)
    assert guard.clear("bob") == fault
    again = guard.observe(HeaterReading(HOTEND, -15.0, 0.0, 0.0, 1.2))
    assert again is not None
    assert again.kind is FaultKind.UNDER_MIN
    assert guard.latched == again


# --- targets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heater", "target", "reason", "words"),
    [
        (HOTEND, 260.5, RefusalReason.ABOVE_MAX, "above its limit of 260 °C"),
        (HOTEND, 275.0, RefusalReason.ABOVE_MAX, "maximum 275 °C less 15 °C for overshoot"),
        (HOTEND, math.inf, RefusalReason.ABOVE_MAX, "above its limit"),
        (BED, 140.5, RefusalReason.ABOVE_MAX, "above its limit of 140 °C"),
        (BED, -1.0, RefusalReason.NEGATIVE, "use 0 to turn the heater off"),
        (HOTEND, math.nan, RefusalReason.NOT_A_NUMBER, "not a number"),
    ],
)
def test_out_of_range_targets_are_refused_with_a_reason(
    heater: HeaterId, target: float, reason: RefusalReason, words: str
) -> None:
    refusal = ThermalGuard().check_target(heater, target)
    assert refusal is not None
    assert refusal.reason is reason
    assert refusal.heater is heater
    assert words in refusal.message


@settings(max_examples=100, deadline=None)
@given(heater=heaters, fraction=st.floats(0.0, 1.0))
def test_targets_within_limits_are_accepted(heater: HeaterId, fraction: float) -> None:
    target = fraction * DEFAULT_LIMITS[heater].max_target
    assert ThermalGuard().check_target(heater, target) is None


def test_custom_limits_are_used() -> None:
    hot = HeaterLimits(min_temp=0.0, max_temp=320.0, overshoot=20.0, verify=VerifySettings())
    guard = ThermalGuard(hotend=hot)
    assert guard.limits[HOTEND] == hot
    assert guard.limits[BED] == BED_LIMITS
    assert guard.check_target(HOTEND, 300.0) is None
    assert guard.check_target(HOTEND, 301.0) is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda: VerifySettings(hysteresis=-1.0),
        lambda: VerifySettings(max_error=0.0),
        lambda: VerifySettings(check_gain_time=0.0),
        lambda: HeaterLimits(5.0, 100.0, -1.0, VerifySettings()),
        lambda: HeaterLimits(95.0, 100.0, 10.0, VerifySettings()),
    ],
)
def test_nonsense_settings_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must"):
        make()


def test_reading_with_a_target_that_is_not_a_number_is_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        ThermalGuard().observe(HeaterReading(HOTEND, ROOM, math.nan, 0.0, 0.0))


# --- HeaterVerifier on its own: Klipper's step counts ---------------------------------------------


def steps_until_fault(
    verifier: HeaterVerifier, temperature: Callable[[int], float], target: float, limit: int
) -> tuple[int, ThermalFault] | None:
    """Step `verifier` once a second; return the step and fault of the first fault, if any."""
    for step in range(limit):
        fault = verifier.check(float(step), temperature(step), target)
        if fault is not None:
            return step, fault
    return None


@pytest.mark.parametrize(
    ("settings_", "target", "expected_step"),
    [
        # Large shortfall: the sum is past max_error as soon as it is checked, one step after the
        # step at which check_gain_time runs out.
        (VerifySettings(check_gain_time=20.0), 210.0, 21),
        (VerifySettings(check_gain_time=60.0), 60.0, 61),
        # Shortfall 2 per step: the sum reaches 120 at the 60th step (index 59).
        (VerifySettings(check_gain_time=20.0), 32.0, 59),
    ],
)
def test_verifier_trips_a_dead_heater_at_klippers_step(
    settings_: VerifySettings, target: float, expected_step: int
) -> None:
    verifier = HeaterVerifier(HOTEND, settings_)
    found = steps_until_fault(verifier, lambda _s: ROOM, target, 200)
    assert found is not None
    step, fault = found
    assert step == expected_step
    assert fault.kind is FaultKind.NOT_HEATING
    assert f"after {expected_step} s" in fault.message
    # The fault holds while its condition does.
    assert verifier.check(step + 1.0, ROOM, target) is not None


def test_verifier_runaway_counts_steps_from_the_drop() -> None:
    verifier = HeaterVerifier(BED, VerifySettings(check_gain_time=60.0))
    # Held at 60, then reads 50: 5 per step, max_error 120 reached on the 24th step after the drop.
    found = steps_until_fault(verifier, lambda s: 60.0 if s < 100 else 50.0, 60.0, 300)
    assert found is not None
    step, fault = found
    assert step == 100 + 23
    assert fault.kind is FaultKind.RUNAWAY


def test_verifier_progress_resets_the_clock() -> None:
    # 2 °C every 19 s, in steps: always just in time.
    verifier = HeaterVerifier(HOTEND)
    assert steps_until_fault(verifier, lambda s: ROOM + 2.0 * (s // 19), 250.0, 1500) is None


def test_verifier_stall_after_progress_counts_error_from_the_last_gain() -> None:
    # 1 °C/s up to 200 °C, then stuck, aiming for 210: the last gain is at step 174 (199 °C reaches
    # the goal of 199), the clock runs out at step 194, and the sum of 5 per step since step 175
    # reaches 120 at step 198. Shortfall from before the last gain must not count.
    verifier = HeaterVerifier(HOTEND)
    found = steps_until_fault(verifier, lambda s: min(200.0, ROOM + s), 210.0, 400)
    assert found is not None
    assert found[0] == 198
    assert found[1].kind is FaultKind.NOT_HEATING


def test_verifier_goal_follows_the_lowest_reading_until_the_first_gain() -> None:
    # A first reading 5 °C too high must not set the bar for the first gain at 32 °C.
    verifier = HeaterVerifier(HOTEND)

    def readings(step: int) -> float:
        return 30.0 if step == 0 else ROOM + 0.12 * step

    assert steps_until_fault(verifier, readings, 200.0, 1500) is None


def test_verifier_keeps_the_error_sum_through_a_reading_above_the_band() -> None:
    # Klipper resets the sum only within the band: a spike above it is no proof of recovery.
    verifier = HeaterVerifier(BED, VerifySettings(check_gain_time=60.0))
    for step in range(10):
        assert verifier.check(float(step), 60.0, 60.0) is None
    for step in range(10, 30):  # 20 steps 5 °C short: 100
        assert verifier.check(float(step), 50.0, 60.0) is None
    assert verifier.check(30.0, 70.0, 60.0) is None
    for step in range(31, 34):  # 105, 110, 115
        assert verifier.check(float(step), 50.0, 60.0) is None
    fault = verifier.check(34.0, 50.0, 60.0)
    assert fault is not None
    assert fault.kind is FaultKind.RUNAWAY


def test_verifier_never_trips_when_off() -> None:
    verifier = HeaterVerifier(HOTEND)
    assert steps_until_fault(verifier, lambda _s: ROOM, 0.0, 500) is None
    assert steps_until_fault(verifier, lambda _s: ROOM, -10.0, 500) is None


@pytest.mark.parametrize(("temperature", "target"), [(math.nan, 200.0), (ROOM, math.inf)])
def test_verifier_rejects_non_finite_input(temperature: float, target: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        HeaterVerifier(HOTEND).check(0.0, temperature, target)


# --- detection bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "heater", "target", "ambient", "expected"),
    [
        # r + (max(k + 1, n - 1) + 1) * p + 2s with k = ceil(20.7) = 21, n = 1.
        (FaultKind.NOT_HEATING, HOTEND, 210.0, 25.0, 0.3 + 23.0 + 0.7),
        # Bed: k = ceil(60.7) = 61.
        (FaultKind.NOT_HEATING, BED, 60.0, 25.0, 0.3 + 63.0 + 0.7),
        # Shortfall 2: n - 1 = 59 dominates.
        (FaultKind.NOT_HEATING, HOTEND, 32.0, 25.0, 0.3 + 60.0 + 0.7),
        # r + n * p + 2s: n = 1 for a hot hotend, n = ceil(120 / 30) = 4 for a bed at 60 °C.
        (FaultKind.RUNAWAY, HOTEND, 210.0, 25.0, 0.3 + 1.0 + 0.7),
        (FaultKind.RUNAWAY, BED, 60.0, 25.0, 0.3 + 4.0 + 0.7),
        (FaultKind.SENSOR_STALE, HOTEND, 0.0, 25.0, 7.0 + 1.0 + 0.35),
        (FaultKind.OVER_MAX, BED, 60.0, 25.0, 1.2),
        (FaultKind.UNDER_MIN, HOTEND, 0.0, 25.0, 1.2),
        (FaultKind.ADC_OUT_OF_RANGE, HOTEND, 0.0, 25.0, 1.2),
        # Never more than hysteresis below target: verify_heater cannot see it.
        (FaultKind.NOT_HEATING, HOTEND, 30.0, 25.0, math.inf),
        (FaultKind.RUNAWAY, BED, 60.0, 55.0, math.inf),
    ],
)
def test_detection_bound_values(
    kind: FaultKind, heater: HeaterId, target: float, ambient: float, expected: float
) -> None:
    assert detection_bound(kind, heater, target, ambient) == pytest.approx(expected)


def test_detection_bound_follows_custom_limits() -> None:
    slow = HeaterLimits(5.0, 150.0, 10.0, VerifySettings(check_gain_time=90.0))
    assert detection_bound(FaultKind.NOT_HEATING, BED, 60.0, 25.0, limits=slow) == pytest.approx(
        0.3 + 93.0 + 0.7
    )
    assert detection_bound(FaultKind.NOT_HEATING, BED, 60.0, 25.0) < 90.0
