"""Thermal protection for one printer's heaters: a sans-IO core that the agent feeds with readings.

It implements Klipper's ``verify_heater`` check, firmware-style min/max and sensor sanity checks,
and a latch that holds the first fault until a person clears it (invariant S6). Nothing here reads a
clock or does I/O: every time is passed in, in seconds of the printer's monotonic hardware clock.

Two paths, because the checks run on different cadences:

* `ThermalGuard.observe` runs on every new sensor reading (boards sample about every 0.3 s). It does
  the checks that must not wait for a timer: a reading below ``min_temp``, above ``max_temp`` or not
  a number, each debounced over 4 consecutive readings as Klipper's MCU does ("ADC out of range").
* `ThermalGuard.tick` runs on a timer, at least once a second, whether or not readings arrive. It
  flags a silent sensor and runs ``verify_heater`` on a fixed 1 s schedule of its own, so calling it
  more often (say, after every reading) does not make the error sum grow faster than Klipper's.

`detection_bound` turns the algorithm into worst-case detection times that tests can assert against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from printfleet.agent.hardware import HeaterId, HeaterReading

__all__ = [
    "BED_LIMITS",
    "DEFAULT_LIMITS",
    "HOTEND_LIMITS",
    "OUT_OF_RANGE_SAMPLES",
    "READING_PERIOD",
    "STALE_AFTER",
    "STEP_SLACK",
    "VERIFY_PERIOD",
    "FaultKind",
    "HeaterLimits",
    "HeaterVerifier",
    "RefusalReason",
    "TargetRefusal",
    "ThermalFault",
    "ThermalGuard",
    "VerifySettings",
    "detection_bound",
]

VERIFY_PERIOD = 1.0
"""Seconds between two ``verify_heater`` steps, as in Klipper."""

READING_PERIOD = 0.3
"""Seconds between two sensor readings on a typical board; the bounds below assume it."""

OUT_OF_RANGE_SAMPLES = 4
"""Consecutive out-of-range readings that trip a fault.

One bad sample can be electrical noise; four in a row (about 1.2 s) is a broken sensor or a real
excursion. Klipper's MCU uses the same count.
"""

STALE_AFTER = 7.0
"""A heater whose sensor has given no new reading for longer than this many seconds trips.

Klipper reads such a sensor as 0 °C, below every ``min_temp``, so it trips whatever the target; here
it is a fault of its own kind so the message can say what actually happened.
"""

STEP_SLACK = 0.35
"""How far, in seconds, a verify step may land from its slot on the guard's 1 s grid.

A tick up to this early still runs the step that is due: a 1 s timer on another clock than the
hardware's can fire a little early, and without the allowance that tick would skip its step and the
next step would come almost 2 s later. A tick more than this late restarts the grid, so a drifting
``sleep(1)`` loop does not pile up lag. It is a little more than `READING_PERIOD`, so ticks driven
by readings always land within it.
"""


class FaultKind(StrEnum):
    """What tripped thermal protection."""

    NOT_HEATING = "not_heating"
    """``verify_heater``: a heater approaching a new target stopped gaining temperature."""
    RUNAWAY = "runaway"
    """``verify_heater``: a heater that had reached its target fell away from it and stayed away."""
    OVER_MAX = "over_max"
    """Readings above the heater's ``max_temp``."""
    UNDER_MIN = "under_min"
    """Readings below the heater's ``min_temp``: usually an open (disconnected) thermistor."""
    ADC_OUT_OF_RANGE = "adc_out_of_range"
    """Readings that are not temperatures (NaN, infinite) or out of range in both directions."""
    SENSOR_STALE = "sensor_stale"
    """No new reading for more than `STALE_AFTER` seconds."""


@dataclass(frozen=True, slots=True)
class ThermalFault:
    """A thermal fault, as a value the agent can show, send and audit.

    `temperature` is the reading that tripped it, or ``None`` when there is no meaningful one (a
    reading that is not a number, or a sensor that never reported). `detected_at` is in hardware
    seconds.
    """

    heater: HeaterId
    kind: FaultKind
    message: str
    temperature: float | None
    target: float
    detected_at: float


class RefusalReason(StrEnum):
    """Why `ThermalGuard.check_target` refused a target."""

    NOT_A_NUMBER = "not_a_number"
    NEGATIVE = "negative"
    ABOVE_MAX = "above_max"
    LATCHED = "latched"


@dataclass(frozen=True, slots=True)
class TargetRefusal:
    """A heater target the agent must not set, and a message a person can act on."""

    heater: HeaterId
    target: float
    reason: RefusalReason
    message: str


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """The parameters of ``verify_heater``; the defaults are Klipper's for a hotend."""

    hysteresis: float = 5.0
    """Degrees below the target within which a heater counts as holding it."""
    max_error: float = 120.0
    """Shortfall summed over steps (degrees) that trips once the heater is no longer gaining."""
    heating_gain: float = 2.0
    """Degrees a heater must gain within `check_gain_time` while approaching a target."""
    check_gain_time: float = 20.0
    """Seconds a heater gets to gain `heating_gain` degrees; Klipper uses 60 s for beds."""

    def __post_init__(self) -> None:
        if self.hysteresis < 0:
            raise ValueError("hysteresis must not be negative")
        if self.max_error <= 0 or self.heating_gain <= 0 or self.check_gain_time <= 0:
            raise ValueError("max_error, heating_gain and check_gain_time must be positive")


@dataclass(frozen=True, slots=True)
class HeaterLimits:
    """The safety limits of one heater.

    Readings outside [`min_temp`, `max_temp`] trip; targets above `max_target` (``max_temp`` minus
    ``overshoot``, Marlin's rule) are refused, because a controller overshoots its target on the way
    up and the overshoot must not reach ``max_temp``.
    """

    min_temp: float
    max_temp: float
    overshoot: float
    verify: VerifySettings

    def __post_init__(self) -> None:
        if self.overshoot < 0:
            raise ValueError("overshoot must not be negative")
        if not self.min_temp < self.max_target:
            raise ValueError("min_temp must be below max_temp - overshoot")

    @property
    def max_target(self) -> float:
        """The highest target the guard accepts, °C."""
        return self.max_temp - self.overshoot


HOTEND_LIMITS = HeaterLimits(
    min_temp=5.0, max_temp=275.0, overshoot=15.0, verify=VerifySettings(check_gain_time=20.0)
)
"""Marlin's MINTEMP/MAXTEMP/HOTEND_OVERSHOOT and Klipper's hotend ``verify_heater`` defaults."""

BED_LIMITS = HeaterLimits(
    min_temp=5.0, max_temp=150.0, overshoot=10.0, verify=VerifySettings(check_gain_time=60.0)
)
"""Marlin's bed MINTEMP/MAXTEMP/BED_OVERSHOOT and Klipper's bed ``verify_heater`` defaults."""

DEFAULT_LIMITS: Mapping[HeaterId, HeaterLimits] = MappingProxyType(
    {HeaterId.HOTEND: HOTEND_LIMITS, HeaterId.BED: BED_LIMITS}
)
"""The limits `ThermalGuard` and `detection_bound` use unless told otherwise."""


def _label(heater: HeaterId) -> str:
    return heater.value.capitalize()


class HeaterVerifier:
    """Klipper's ``verify_heater`` for one heater; call `check` once per `VERIFY_PERIOD`.

    While a heater is below ``target - hysteresis`` every step adds its shortfall to an error sum.
    After a target change the heater is "approaching": as long as it gains ``heating_gain`` degrees
    within ``check_gain_time`` seconds, the sum is reset at each gain and never checked. Once it
    stops gaining, or once it has reached the target and then fallen away, the sum is checked at
    each step and trips at ``max_error``. The sum counts steps, not seconds, which is why the caller
    must keep the cadence.
    """

    def __init__(self, heater: HeaterId, settings: VerifySettings | None = None) -> None:
        self.heater = heater
        self.settings = settings if settings is not None else VerifySettings()
        self._last_target = 0.0
        self._approaching = False
        # Until the first gain, the goal follows the lowest reading: a noisy first reading must not
        # set the bar 2 degrees above where the heater really started.
        self._starting = False
        self._error = 0.0
        self._goal_temp = 0.0
        self._goal_time = 0.0
        self._approach_started = 0.0
        # Whether the heater reached the current target: tells a runaway from a failed heat-up.
        self._held = False

    def check(self, now: float, temperature: float, target: float) -> ThermalFault | None:
        """Run one step; return the fault if the heater is failing, else ``None``.

        The fault keeps being returned at every step while its condition lasts. A target of 0 or
        below means the heater is off, which never trips.
        """
        if not (math.isfinite(temperature) and math.isfinite(target)):
            raise ValueError("verify_heater needs finite temperature and target")
        hysteresis = self.settings.hysteresis
        if temperature >= target - hysteresis or target <= 0.0:
            self._approaching = self._starting = False
            # Above the band the sum is kept, as Klipper does: an overshoot is no excuse for an
            # earlier shortfall, but neither does it add to it.
            if temperature <= target + hysteresis:
                self._error = 0.0
            self._held = target > 0.0
            self._last_target = target
            return None

        self._error += (target - hysteresis) - temperature
        fault = None
        if not self._approaching:
            if target != self._last_target:
                self._start_approach(now, temperature)
            elif self._error >= self.settings.max_error:
                fault = self._fault(now, temperature, target)
        elif temperature >= self._goal_temp:
            self._starting = False
            self._error = 0.0
            self._goal_temp = temperature + self.settings.heating_gain
            self._goal_time = now + self.settings.check_gain_time
        elif now >= self._goal_time:
            # Stalled: from the next step on, the sum (which kept growing) is checked.
            self._approaching = False
        elif self._starting:
            self._goal_temp = min(self._goal_temp, temperature + self.settings.heating_gain)
        self._last_target = target
        return fault

    def _start_approach(self, now: float, temperature: float) -> None:
        self._approaching = self._starting = True
        self._held = False
        self._approach_started = now
        self._goal_temp = temperature + self.settings.heating_gain
        self._goal_time = now + self.settings.check_gain_time

    def _fault(self, now: float, temperature: float, target: float) -> ThermalFault:
        label = _label(self.heater)
        if self._held:
            kind = FaultKind.RUNAWAY
            message = (
                f"{label} could not hold {target:g} °C: it reads {temperature:.1f} °C, more than "
                f"{self.settings.hysteresis:g} °C below target for too long — check that the "
                "thermistor is seated in the heater block and that the heater is wired"
            )
        else:
            kind = FaultKind.NOT_HEATING
            message = (
                f"{label} not heating at expected rate: {temperature:.1f} °C after "
                f"{now - self._approach_started:.0f} s aiming for {target:g} °C — check the heater "
                "and thermistor wiring"
            )
        return ThermalFault(
            heater=self.heater,
            kind=kind,
            message=message,
            temperature=temperature,
            target=target,
            detected_at=now,
        )


@dataclass(slots=True)
class _HeaterState:
    limits: HeaterLimits
    verifier: HeaterVerifier
    temperature: float = math.nan
    # The last reading within [min_temp, max_temp]: the only kind verify_heater sees. Readings out
    # of range are the debounce's to judge, so that an open sensor is reported as such within
    # 1.2 s instead of as a heater that cannot hold its target.
    verify_temperature: float | None = None
    target: float = 0.0
    read_at: float | None = None
    # The current run of consecutive out-of-range readings, and which kinds of bad they were.
    bad_run: int = 0
    bad_kinds: frozenset[FaultKind] = frozenset()


class ThermalGuard:
    """Thermal protection for one printer: a hotend and a bed.

    Feed it every new reading with `observe`, call `tick` at least once per `VERIFY_PERIOD`, and ask
    `check_target` before setting any target. Both `observe` and `tick` return the faults they just
    detected; the agent must turn every heater off as soon as it gets one. The first fault latches
    (`latched`) until a person calls `clear`; while latched only a target of 0 is allowed. Later
    faults are still returned, once per heater and kind, so alerts can say what else went wrong.
    """

    def __init__(
        self, *, hotend: HeaterLimits = HOTEND_LIMITS, bed: HeaterLimits = BED_LIMITS
    ) -> None:
        self._heaters = {
            HeaterId.HOTEND: _HeaterState(hotend, HeaterVerifier(HeaterId.HOTEND, hotend.verify)),
            HeaterId.BED: _HeaterState(bed, HeaterVerifier(HeaterId.BED, bed.verify)),
        }
        self._latched: ThermalFault | None = None
        self._reported: set[tuple[HeaterId, FaultKind]] = set()
        # The staleness clock of a sensor that has never reported starts at the first call.
        self._started_at: float | None = None
        self._next_step: float | None = None

    @property
    def limits(self) -> Mapping[HeaterId, HeaterLimits]:
        """The limits in force for each heater."""
        return MappingProxyType({heater: state.limits for heater, state in self._heaters.items()})

    @property
    def latched(self) -> ThermalFault | None:
        """The fault that latched first and has not been cleared, or ``None``."""
        return self._latched

    def check_target(self, heater: HeaterId, target: float) -> TargetRefusal | None:
        """Return why `target` must not be set on `heater`, or ``None`` if it may be.

        0 (off) is always allowed. Otherwise the target must lie in [0, ``max_target``] and no fault
        may be latched.
        """
        limits = self._heaters[heater].limits
        label = _label(heater)
        if math.isnan(target):
            return TargetRefusal(
                heater, target, RefusalReason.NOT_A_NUMBER, f"{label} target is not a number"
            )
        if target == 0:
            return None
        if target < 0:
            return TargetRefusal(
                heater,
                target,
                RefusalReason.NEGATIVE,
                f"{label} target {target:g} °C is below 0 °C; use 0 to turn the heater off",
            )
        if target > limits.max_target:
            return TargetRefusal(
                heater,
                target,
                RefusalReason.ABOVE_MAX,
                f"{label} target {target:g} °C is above its limit of {limits.max_target:g} °C "
                f"(maximum {limits.max_temp:g} °C less {limits.overshoot:g} °C for overshoot)",
            )
        if self._latched is not None:
            return TargetRefusal(
                heater,
                target,
                RefusalReason.LATCHED,
                f"{label} target {target:g} °C refused: a thermal fault is latched until a person "
                f"clears it ({self._latched.message})",
            )
        return None

    def observe(self, reading: HeaterReading) -> ThermalFault | None:
        """Take one reading (its ``read_at`` is the time); return a fault if it completes one.

        A reading whose ``read_at`` is not later than the last one is the same sample polled again:
        it neither counts toward the out-of-range debounce nor proves the sensor alive. (A board
        whose clock restarts therefore needs a new guard.)
        """
        if not math.isfinite(reading.target):
            raise ValueError(f"{reading.heater} target must be a finite number")
        if self._started_at is None:
            self._started_at = reading.read_at
        state = self._heaters[reading.heater]
        if state.read_at is not None and reading.read_at <= state.read_at:
            return None
        state.read_at = reading.read_at
        state.temperature = reading.temperature
        state.target = reading.target

        limits = state.limits
        if not math.isfinite(reading.temperature):
            bad = FaultKind.ADC_OUT_OF_RANGE
        elif reading.temperature < limits.min_temp:
            bad = FaultKind.UNDER_MIN
        elif reading.temperature > limits.max_temp:
            bad = FaultKind.OVER_MAX
        else:
            state.verify_temperature = reading.temperature
            state.bad_run = 0
            state.bad_kinds = frozenset()
            return None
        state.bad_run += 1
        state.bad_kinds |= {bad}
        if state.bad_run < OUT_OF_RANGE_SAMPLES:
            return None
        # A run that mixes low, high and invalid readings is a sensor fault, not a temperature.
        kind = FaultKind.ADC_OUT_OF_RANGE
        if len(state.bad_kinds) == 1:
            (kind,) = state.bad_kinds
        fault = ThermalFault(
            heater=reading.heater,
            kind=kind,
            message=_range_message(reading.heater, kind, reading.temperature, limits),
            temperature=reading.temperature if math.isfinite(reading.temperature) else None,
            target=reading.target,
            detected_at=reading.read_at,
        )
        return fault if self._record(fault) else None

    def tick(self, now: float) -> tuple[ThermalFault, ...]:
        """Run the timed checks; return the faults detected now.

        Call it from a timer at least once per `VERIFY_PERIOD`: a silent sensor produces no
        readings to hang it on. Calling it more often, say also after every reading, is harmless:
        the staleness check runs on every call, the verify step only when its 1 s slot is due.

        `now` is when the agent asked for the readings it has just observed, read from the
        hardware clock *before* reading them. A time read after them would charge the sensor with
        any stall of the host between reading and checking: at a high simulated time scale a
        tenth of a second of a busy machine is many seconds of "silence" from a sensor whose
        reading is fresh.
        """
        if self._started_at is None:
            self._started_at = now
        faults: list[ThermalFault] = []
        fresh: list[tuple[HeaterVerifier, float, float]] = []
        for heater, state in self._heaters.items():
            since = state.read_at if state.read_at is not None else self._started_at
            if now - since > STALE_AFTER:
                faults.append(self._stale_fault(heater, state, now, now - since))
            elif state.verify_temperature is not None:
                fresh.append((state.verifier, state.verify_temperature, state.target))
        if self._step_due(now):
            for verifier, temperature, target in fresh:
                fault = verifier.check(now, temperature, target)
                if fault is not None:
                    faults.append(fault)
        return tuple(fault for fault in faults if self._record(fault))

    def clear(self, by_whom: str) -> ThermalFault | None:
        """Clear the latch on a person's explicit request; return the fault that was latched.

        Only the latch is cleared. Detectors keep their state, so a cause that is still present
        (an open sensor, a silent one, a heater still failing with a target set) latches again at
        the next reading or tick.
        """
        if not by_whom.strip():
            raise ValueError("a thermal fault is cleared by a named person")
        fault, self._latched = self._latched, None
        self._reported.clear()
        return fault

    def _step_due(self, now: float) -> bool:
        if self._next_step is not None and now < self._next_step - STEP_SLACK:
            return False
        # Keep a 1 s grid, so that steps average one per second even when ticks come every 0.3 s
        # (steps then fall 0.9 or 1.2 s apart); a tick later than the slack restarts the grid
        # instead of running a burst of catch-up steps.
        if self._next_step is None or now > self._next_step + STEP_SLACK:
            self._next_step = now + VERIFY_PERIOD
        else:
            self._next_step += VERIFY_PERIOD
        return True

    def _stale_fault(
        self, heater: HeaterId, state: _HeaterState, now: float, silent_for: float
    ) -> ThermalFault:
        if state.read_at is None:
            last = "it has never reported"
        elif math.isfinite(state.temperature):
            last = f"last reading {state.temperature:.1f} °C"
        else:
            last = "last reading was not a number"
        return ThermalFault(
            heater=heater,
            kind=FaultKind.SENSOR_STALE,
            message=(
                f"{_label(heater)} sensor silent: no new reading for {silent_for:.1f} s ({last}) — "
                "check the sensor wiring and the link to the printer's board"
            ),
            temperature=state.temperature if math.isfinite(state.temperature) else None,
            target=state.target,
            detected_at=now,
        )

    def _record(self, fault: ThermalFault) -> bool:
        """Latch the first fault; report each heater and kind once until the next `clear`."""
        key = (fault.heater, fault.kind)
        if key in self._reported:
            return False
        self._reported.add(key)
        if self._latched is None:
            self._latched = fault
        return True


def _range_message(heater: HeaterId, kind: FaultKind, temperature: float, lim: HeaterLimits) -> str:
    label = _label(heater)
    in_a_row = f"for {OUT_OF_RANGE_SAMPLES} readings in a row"
    if kind is FaultKind.OVER_MAX:
        return (
            f"{label} above its maximum of {lim.max_temp:g} °C: {temperature:.1f} °C {in_a_row} — "
            "if it keeps rising with the heaters off, the heater is stuck on: cut mains power"
        )
    if kind is FaultKind.UNDER_MIN:
        return (
            f"{label} below its minimum of {lim.min_temp:g} °C: {temperature:.1f} °C {in_a_row} — "
            "the thermistor is probably disconnected or broken; check its wiring"
        )
    shown = f"{temperature:.1f} °C" if math.isfinite(temperature) else "not a number"
    return (
        f"{label} sensor out of range {in_a_row} (last reading: {shown}) — check the thermistor "
        "wiring and connector"
    )


def detection_bound(
    kind: FaultKind,
    heater: HeaterId,
    target: float,
    ambient: float,
    *,
    limits: HeaterLimits | None = None,
) -> float:
    """Worst-case seconds from a fault's onset to its detection by `ThermalGuard`.

    Assumes new readings every `READING_PERIOD`, and `ThermalGuard.tick` calls no more than
    `VERIFY_PERIOD` + `STEP_SLACK` apart whose verify steps land within `STEP_SLACK` of their
    slot on the guard's 1 s grid: true of a fixed-rate 1 s timer that jitters less than that, and
    of ticks after every reading. Let p = `VERIFY_PERIOD`, r = `READING_PERIOD`, s = `STEP_SLACK`,
    d = (target - hysteresis) - ambient, the error one step adds, and n = ceil(max_error / d), the
    steps whose error sum reaches ``max_error``. Count as step 0 after an instant t the step of the
    first slot at or after t + s, which is sure to see what happened by t; then step K lands
    between t + K * p and t + (K + 1) * p + 2s, and at least K * p - 2s after step 0. Returns
    ``math.inf`` when d <= 0: a heater that never falls ``hysteresis`` below its target is never
    flagged by ``verify_heater``.

    * OVER_MAX, UNDER_MIN, ADC_OUT_OF_RANGE, onset = the sensor starts reading out of range: the
      first bad reading comes within r and the debounce needs 3 more, so 4 * r.
    * SENSOR_STALE, onset = the last reading: the first tick after `STALE_AFTER`, so
      `STALE_AFTER` + p + s.
    * RUNAWAY, onset = readings of a heater holding `target` drop to `ambient` or below and stay
      there (a thermistor fallen out of its block): the first such reading comes within r, and the
      fault at step n - 1 after it: r + n * p + 2s.
    * NOT_HEATING, onset = `target` is set while readings stay at `ambient` or below and move by
      less than ``heating_gain`` (a disconnected heater; `ambient` is room temperature, or where a
      heater that died on the way up stands). The reading with the new target comes within r and
      step 0 starts the approach. Step k = ceil((check_gain_time + 2s) / p) is at least
      ``check_gain_time`` after step 0, so the heater has stalled by then; the error sum is checked
      from step k + 1 on and has reached ``max_error`` by step n - 1, so the fault comes at step
      max(k + 1, n - 1) = K: r + (K + 1) * p + 2s.
    """
    lim = limits if limits is not None else DEFAULT_LIMITS[heater]
    if kind in (FaultKind.OVER_MAX, FaultKind.UNDER_MIN, FaultKind.ADC_OUT_OF_RANGE):
        return OUT_OF_RANGE_SAMPLES * READING_PERIOD
    if kind is FaultKind.SENSOR_STALE:
        return STALE_AFTER + VERIFY_PERIOD + STEP_SLACK
    verify = lim.verify
    shortfall = (target - verify.hysteresis) - ambient
    if shortfall <= 0:
        return math.inf
    steps_to_max_error = math.ceil(verify.max_error / shortfall)
    if kind is FaultKind.RUNAWAY:
        fault_step = steps_to_max_error - 1
    else:
        stall_step = math.ceil((verify.check_gain_time + 2 * STEP_SLACK) / VERIFY_PERIOD)
        fault_step = max(stall_step + 1, steps_to_max_error - 1)
    return READING_PERIOD + (fault_step + 1) * VERIFY_PERIOD + 2 * STEP_SLACK
