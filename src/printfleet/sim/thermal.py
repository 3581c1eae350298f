"""Lumped thermal models of a hotend and a bed, their firmware control, faults, board watchdog.

Everything here is a pure step function over hardware seconds: no clock, no asyncio, so tests can
run minutes of heating in microseconds and get the same numbers every time. Lags are solved exactly
between controller samples, and heaters that are idle, settled on target or saturated are stepped
in long strides, so a thousand boards cost little however far apart their reads are.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from printfleet.agent.hardware import (
    WATCHDOG_TIMEOUT_S,
    HeaterId,
    HeaterReading,
    TargetOutOfRangeError,
)

__all__ = [
    "AMBIENT_C",
    "BED",
    "DETACHED_SENSOR_COUPLING",
    "EXTRUSION_LOSS_PER_MM_S",
    "HOTEND",
    "SENSOR_OPEN_READING",
    "SENSOR_SHORT_READING",
    "Board",
    "ControlMode",
    "HeaterFault",
    "HeaterModel",
    "HeaterParams",
    "Loss",
]

AMBIENT_C = 25.0
"""Room temperature, °C."""

SENSOR_OPEN_READING = -15.0
"""What an open (disconnected) thermistor reads, °C.

An open NTC thermistor has near-infinite resistance, which firmware tables map to their coldest
entry; -15 °C is below every firmware's minimum-temperature check (Marlin MINTEMP 5 °C,
RepRapFirmware -5 °C), so an agent must treat it as a sensor fault, not as a cold printer.
"""

SENSOR_SHORT_READING = 999.0
"""What a shorted thermistor reads, °C: far above any MAXTEMP (hotend 275 °C, bed 150 °C)."""

DETACHED_SENSOR_COUPLING = 0.02
"""How much of the block's excess over ambient a thermistor that fell out of its block still sees.

It lies next to the block in warm air, so it reads ambient plus a sliver of the block's heat.
"""

EXTRUSION_LOSS_PER_MM_S = 5.6e-3
"""Heat drawn by melting filament, W/K per mm/s of filament speed (Marlin MPC's 5.6e-3 J/K/mm)."""

# Body and sensor are solved exactly for any step; the bed's element lag is not (it is taken at its
# mean over the step), so this cap bounds steps that no controller sample limits (cooling, or a
# saturated heat-up) to keep that approximation within a few hundredths of a kelvin.
_MAX_STEP_S = 2.0
# Below this difference (1/s) the sensor and body lags are one rate, and the exact solution takes
# its limiting form.
_EQUAL_RATES = 1e-9
# A PID-controlled heater within this of its equilibrium (K, K/s) is settled: it can be left alone.
_SETTLED_K = 0.02
# Within this distance of ambient a heater that is off is snapped to ambient and costs nothing to
# step again: the case of almost every idle printer in a 1,000-printer simulation.
_QUIESCENT_K = 0.01


class ControlMode(StrEnum):
    """How the firmware drives a heater toward its target."""

    PID = "pid"
    BANG_BANG = "bang_bang"


class HeaterFault(StrEnum):
    """Faults a heater can suffer; several may be active at once."""

    HEATER_DISCONNECTED = "heater_disconnected"
    """No power reaches the heater, whatever the firmware commands."""
    THERMISTOR_DETACHED = "thermistor_detached"
    """The sensor fell out of the block: it reads about ambient while the block heats freely."""
    SENSOR_OPEN = "sensor_open"
    """The sensor circuit is open: it reads `SENSOR_OPEN_READING`."""
    SENSOR_SHORT = "sensor_short"
    """The sensor is shorted: it reads `SENSOR_SHORT_READING`."""
    HEATER_STUCK_ON = "heater_stuck_on"
    """The heater switch failed closed: full power flows whatever software or watchdog do."""


@dataclass(frozen=True, slots=True)
class HeaterParams:
    """Physical constants of one heater and the firmware settings that control it.

    The body is one lumped mass heated by `power_w` through an element that lags by
    `element_lag_s` (the bed's dead time; 0 for a hotend, whose cartridge sits in the block),
    losing heat to ambient through a coefficient that the part-cooling fan raises from
    `loss_fan_off` to `loss_fan_full`. The sensor follows the body at `sensor_rate` per second.
    """

    power_w: float
    capacity_j_per_k: float
    loss_fan_off: float
    loss_fan_full: float
    sensor_rate: float
    element_lag_s: float
    max_target: float
    control: ControlMode
    control_period_s: float
    kp: float = 0.0
    ki: float = 0.0
    kd: float = 0.0
    pid_range_k: float = 10.0
    hysteresis_k: float = 0.5

    def loss(self, fan: float) -> float:
        """Loss coefficient to ambient, W/K, at fan speed `fan` (0..1)."""
        return self.loss_fan_off + (self.loss_fan_full - self.loss_fan_off) * fan


HOTEND = HeaterParams(
    # Marlin MPC defaults (REFERENCE.md): 40 W cartridge, 16.7 J/K block, 0.068-0.097 W/K to
    # ambient by fan, sensor responsiveness 0.22/s. 25 -> 200 °C takes about 90 s at full power.
    power_w=40.0,
    capacity_j_per_k=16.7,
    loss_fan_off=0.068,
    loss_fan_full=0.097,
    sensor_rate=0.22,
    element_lag_s=0.0,
    # Marlin: MAXTEMP 275 °C less HOTEND_OVERSHOOT 15.
    max_target=260.0,
    control=ControlMode.PID,
    # Klipper samples its sensors every 0.3 s and updates the PWM with each sample.
    control_period_s=0.3,
    # Tuned on this model: fastest heat-up with under 1 K of overshoot, and no hunting.
    kp=0.15,
    ki=0.003,
    kd=0.35,
)

# RepRapFirmware's bed defaults as a first-order-plus-dead-time model: gain 90 K, time constant
# 700 s, dead time 10 s. A lumped body with loss L and capacity C gives gain P/L and time constant
# C/L; the dead time becomes a 10 s lag in the heating element.
_BED_POWER_W = 220.0
_BED_LOSS = _BED_POWER_W / 90.0
BED = HeaterParams(
    power_w=_BED_POWER_W,
    capacity_j_per_k=700.0 * _BED_LOSS,
    loss_fan_off=_BED_LOSS,
    # The part-cooling fan blows at the nozzle; its effect on a bed is small enough to ignore.
    loss_fan_full=_BED_LOSS,
    sensor_rate=0.5,
    element_lag_s=10.0,
    # Marlin: BED_MAXTEMP 150 °C less BED_OVERSHOOT 10.
    max_target=140.0,
    # PID, as Klipper and Marlin's PIDTEMPBED drive beds (Marlin's default is bang-bang, which
    # `ControlMode.BANG_BANG` models); a bed changes slowly, so one sample a second is plenty.
    control=ControlMode.PID,
    control_period_s=1.0,
    # Tuned on this model: under 0.5 K of overshoot, settled within 10 minutes.
    kp=0.5,
    ki=0.002,
    kd=0.5,
)


class Loss(NamedTuple):
    """A heater's loss coefficient to ambient, W/K, fan and extrusion included.

    `actual` drives the physics; `believed` is what the firmware's feed-forward assumes from the
    fan speed it commanded, which differs when the fan has failed without the firmware knowing.
    """

    actual: float
    believed: float


@dataclass(slots=True)
class HeaterModel:
    """One heater: its physics, firmware controller and faults. Mutable; `Board` drives it.

    `Board` works out the heater's `Loss` once per step and passes it in.
    """

    params: HeaterParams
    ambient: float = AMBIENT_C
    body_temp: float = AMBIENT_C
    sensor_temp: float = AMBIENT_C
    """The thermistor's own physical temperature; the reading may differ under a sensor fault."""
    element_power: float = 0.0
    """Fraction of full power the element currently passes on to the body (it lags the switch)."""
    target: float = 0.0
    duty: float = 0.0
    """What the firmware commands, 0..1."""
    faults: frozenset[HeaterFault] = frozenset()
    next_sample_at: float = 0.0
    settled_on: tuple[float, Loss, frozenset[HeaterFault]] | None = None
    """(target, loss, faults) under which the heater sits at equilibrium, so stepping it would
    change nothing until one of them changes. `None` while anything is still moving."""
    _integral: float = 0.0
    _last_reading: float | None = None
    _heating: bool = False

    def reading(self) -> float:
        """What the sensor reports, °C."""
        if HeaterFault.SENSOR_OPEN in self.faults:
            return SENSOR_OPEN_READING
        if HeaterFault.SENSOR_SHORT in self.faults:
            return SENSOR_SHORT_READING
        return self.sensor_temp

    def delivered_duty(self) -> float:
        """The fraction of full power that actually flows, given faults."""
        if HeaterFault.HEATER_DISCONNECTED in self.faults:
            return 0.0
        if HeaterFault.HEATER_STUCK_ON in self.faults:
            return 1.0
        return self.duty

    def add_fault(self, fault: HeaterFault) -> None:
        """Make `fault` happen from now on."""
        self.faults = self.faults | {fault}

    def clear_fault(self, fault: HeaterFault) -> None:
        """Repair `fault`."""
        self.faults = self.faults - {fault}

    def is_quiescent(self) -> bool:
        """Off, powerless and at ambient: stepping it would change nothing."""
        return (
            self.target <= 0.0
            and self.delivered_duty() == 0.0
            and self.element_power < _QUIESCENT_K
            and abs(self.body_temp - self.ambient) < _QUIESCENT_K
            and abs(self.sensor_temp - self.ambient) < _QUIESCENT_K
        )

    def is_frozen(self, loss: Loss) -> bool:
        """Whether stepping would change nothing: quiescent, or settled under these same inputs."""
        if self.settled_on is not None:
            if self.settled_on == (self.target, loss, self.faults):
                return True
            self.settled_on = None
        return self.is_quiescent()

    def controlled(self) -> bool:
        """Whether the controller has anything to do (a target is set)."""
        return self.target > 0.0

    def set_target(self, celsius: float, now: float) -> None:
        """Set the target and let the controller react at once, as firmware does."""
        if not 0.0 <= celsius <= self.params.max_target:
            raise TargetOutOfRangeError(
                f"target {celsius} °C outside 0..{self.params.max_target} °C"
            )
        self.target = celsius
        self._integral = 0.0
        self._last_reading = None
        self.next_sample_at = now
        self.settled_on = None
        if celsius <= 0.0:
            self.duty = 0.0

    def next_event(self, now: float, loss: Loss) -> float:
        """The furthest time this heater can be integrated to with its switch held as it is.

        Normally the next controller sample. But while the controller is saturated (full power
        far below target, or off far above it) its output cannot change until the reading nears
        the target, so the step may jump ahead by as long as the reading provably stays away:
        a heat-up then costs a few dozen steps instead of hundreds.
        """
        p = self.params
        if not self.controlled():
            return now + _MAX_STEP_S
        reading = self.reading()
        lag = self.body_temp - self.sensor_temp
        if p.control is ControlMode.PID:
            low, high = self.target - p.pid_range_k, self.target + p.pid_range_k
        else:
            low = high = self.target + (p.hysteresis_k if self._heating else -p.hysteresis_k)
        safe = 0.0
        if self.duty == 1.0 and reading < low:
            # The reading can rise by at most the sensor's lag behind the body plus the body's
            # own rise at full power.
            safe = (low - reading - max(0.0, lag)) / (p.power_w / p.capacity_j_per_k)
        elif self.duty == 0.0 and reading > high:
            excess = max(0.0, self.body_temp - self.ambient)
            fastest_cooling = loss.actual * excess / p.capacity_j_per_k
            margin = reading - high - max(0.0, -lag)
            safe = margin / fastest_cooling if fastest_cooling > 0.0 else _MAX_STEP_S
        if safe > p.control_period_s:
            # The sample due in the meantime would change nothing; the next one runs at the end.
            return now + min(safe, _MAX_STEP_S)
        return max(self.next_sample_at, now)

    def sample(self, loss: Loss, now: float) -> None:
        """Run the controller once on the current reading and schedule the next sample."""
        self.next_sample_at = now + self.params.control_period_s
        if not self.controlled():
            self.duty = 0.0
            return
        reading = self.reading()
        p = self.params
        if p.control is ControlMode.BANG_BANG:
            if reading < self.target - p.hysteresis_k:
                self._heating = True
            elif reading > self.target + p.hysteresis_k:
                self._heating = False
            self.duty = 1.0 if self._heating else 0.0
            return
        error = self.target - reading
        rate = 0.0
        if self._last_reading is not None:
            rate = (reading - self._last_reading) / p.control_period_s
        self._last_reading = reading
        if error > p.pid_range_k:
            # Far below target: full power, and no integral wind-up while it is saturated.
            self.duty = 1.0
            self._integral = 0.0
            return
        if error < -p.pid_range_k:
            self.duty = 0.0
            self._integral = 0.0
            return
        # Feed-forward of the steady-state loss (as Marlin's MPC does) lets a small integral
        # term do the rest; the derivative acts on the reading so target changes cause no kick.
        feed_forward = loss.believed * (self.target - self.ambient) / p.power_w
        self._integral += error * p.control_period_s
        unclamped = feed_forward + p.kp * error + p.ki * self._integral - p.kd * rate
        self.duty = min(1.0, max(0.0, unclamped))
        if unclamped != self.duty:
            # Anti-wind-up: undo this sample's integration while the output is saturated.
            self._integral -= error * p.control_period_s
        elif self._at_equilibrium(error, rate, loss):
            self.settled_on = (self.target, loss, self.faults)

    def _at_equilibrium(self, error: float, rate: float, loss: Loss) -> bool:
        # Settled means every state variable sits where the current inputs keep it: the body at
        # the temperature its delivered power holds, the sensor on the body, the element caught
        # up with the switch, and the controller on target. Then time can pass for free.
        drive = self.delivered_duty()
        body_hold = self.ambient + drive * self.params.power_w / loss.actual
        return (
            abs(error) < _SETTLED_K
            and abs(rate) < _SETTLED_K
            and abs(self.body_temp - body_hold) < _SETTLED_K
            and abs(self.sensor_temp - self.body_temp) < _SETTLED_K
            and abs(self.element_power - drive) < _SETTLED_K / 100.0
        )

    def integrate(self, dt: float, loss: Loss) -> None:
        """Advance the physics by `dt` seconds with the switch held where it is.

        Each lag is solved exactly for a held input (exponential decay toward its equilibrium), so
        any `dt` is stable; the caller keeps `dt` short enough for the chain to stay accurate.
        """
        p = self.params
        drive = self.delivered_duty()
        if p.element_lag_s > 0.0:
            decay = math.exp(-dt / p.element_lag_s)
            mean_power = drive + (self.element_power - drive) * p.element_lag_s / dt * (1 - decay)
            self.element_power = drive + (self.element_power - drive) * decay
        else:
            mean_power = drive
            self.element_power = drive
        equilibrium = self.ambient + mean_power * p.power_w / loss.actual
        body_rate = loss.actual / p.capacity_j_per_k
        body_decay = math.exp(-body_rate * dt)
        old_body = self.body_temp
        self.body_temp = equilibrium + (old_body - equilibrium) * body_decay
        # The sensor sees `offset + gain * body` (all of it, or a sliver once detached) and
        # follows it as a first-order lag. With the body decaying exponentially toward its
        # equilibrium, the lag has an exact solution, so long steps stay accurate.
        gain = 1.0
        if HeaterFault.THERMISTOR_DETACHED in self.faults:
            gain = DETACHED_SENSOR_COUPLING
        seen_at_rest = self.ambient + gain * (equilibrium - self.ambient)
        seen_excess = gain * (old_body - equilibrium)
        rate = p.sensor_rate
        sensor_decay = math.exp(-rate * dt)
        if abs(rate - body_rate) > _EQUAL_RATES:
            forced = seen_excess * rate / (rate - body_rate) * (body_decay - sensor_decay)
        else:
            forced = seen_excess * rate * dt * sensor_decay
        self.sensor_temp = seen_at_rest + (self.sensor_temp - seen_at_rest) * sensor_decay + forced

    def snap_to_ambient(self) -> None:
        """Put a quiescent heater exactly at ambient, so later steps can skip it."""
        self.body_temp = self.sensor_temp = self.ambient
        self.element_power = 0.0


@dataclass(slots=True)
class Board:
    """A printer's controller board: both heaters, the part fan, and the host watchdog.

    `step(dt)` and `advance_to(t)` are the only ways time passes. The watchdog cuts heater power
    `watchdog_timeout` seconds after the last `refresh_watchdog` while any heater has a target (an
    idle board has nothing to cut), latches `watchdog_tripped`, and leaves targets at 0 so heat
    never comes back on its own. `watchdog_timeout=None` disables it, for tests with no host.
    """

    hotend: HeaterModel = field(default_factory=lambda: HeaterModel(HOTEND))
    bed: HeaterModel = field(default_factory=lambda: HeaterModel(BED))
    time: float = 0.0
    fan: float = 0.0
    fan_failed: bool = False
    extrusion_rate: float = 0.0
    """Filament speed through the hotend, mm/s; melting it draws heat from the block."""
    watchdog_timeout: float | None = WATCHDOG_TIMEOUT_S
    last_refresh: float = 0.0
    watchdog_tripped: bool = False
    watchdog_tripped_at: float | None = None

    def heater(self, heater: HeaterId) -> HeaterModel:
        """The model behind `heater`."""
        return self.hotend if heater is HeaterId.HOTEND else self.bed

    def effective_fan(self) -> float:
        """The fan speed that actually moves air."""
        return 0.0 if self.fan_failed else self.fan

    def loss(self, heater: HeaterModel) -> Loss:
        """`heater`'s loss to ambient now, as it is and as the firmware believes it to be."""
        extrusion = EXTRUSION_LOSS_PER_MM_S * self.extrusion_rate if heater is self.hotend else 0.0
        return Loss(
            actual=heater.params.loss(self.effective_fan()) + extrusion,
            believed=heater.params.loss(self.fan) + extrusion,
        )

    def read(self, heater: HeaterId) -> HeaterReading:
        """A reading of `heater` at the board's current time."""
        model = self.heater(heater)
        return HeaterReading(
            heater=heater,
            temperature=model.reading(),
            target=model.target,
            power=model.duty,
            read_at=self.time,
        )

    def set_target(self, heater: HeaterId, celsius: float) -> None:
        """Set a heater's target now.

        Only `refresh_watchdog` refreshes the watchdog, but arming it (the first target on an idle
        board) starts its period afresh, so an idle host that never refreshed gets its full period.
        """
        if self.watchdog_deadline() is None:
            self.last_refresh = self.time
        model = self.heater(heater)
        model.set_target(celsius, self.time)
        model.sample(self.loss(model), self.time)

    def heaters_off(self) -> None:
        """Set both targets to 0; a stuck-on heater keeps heating regardless."""
        for model in (self.hotend, self.bed):
            model.set_target(0.0, self.time)

    def set_fan(self, fraction: float) -> None:
        """Set the part-cooling fan, clamped to 0..1."""
        self.fan = min(1.0, max(0.0, fraction))

    def refresh_watchdog(self) -> None:
        """Restart the watchdog period from now."""
        self.last_refresh = self.time

    def clear_watchdog_trip(self) -> None:
        """Clear the latched trip flag (as a firmware restart would)."""
        self.watchdog_tripped = False
        self.watchdog_tripped_at = None
        self.last_refresh = self.time

    def watchdog_deadline(self) -> float | None:
        """When the watchdog will cut power unless refreshed, if it is armed."""
        if self.watchdog_timeout is None:
            return None
        if not (self.hotend.controlled() or self.bed.controlled()):
            return None
        return self.last_refresh + self.watchdog_timeout

    def advance_to(self, when: float) -> None:
        """Step forward to hardware time `when`; earlier times are ignored."""
        if when > self.time:
            self.step(when - self.time)

    def step(self, dt: float) -> None:
        """Advance every model by `dt` seconds.

        Time is cut at each controller sample and at the watchdog deadline, so results do not
        depend on how callers split a period into steps. Heaters that are quiescent or settled
        are skipped, so an idle or steadily heated board crosses any span in one go.
        """
        if dt < 0.0:
            raise ValueError("dt must not be negative")
        end = self.time + dt
        while self.time < end:
            moving: list[tuple[HeaterModel, Loss]] = []
            stop = end
            for heater in (self.hotend, self.bed):
                loss = self.loss(heater)
                if heater.is_frozen(loss):
                    continue
                moving.append((heater, loss))
                stop = min(stop, heater.next_event(self.time, loss))
            deadline = self.watchdog_deadline()
            if deadline is not None:
                stop = min(stop, max(deadline, self.time))
            if not moving:
                for heater in (self.hotend, self.bed):
                    if heater.is_quiescent():
                        heater.snap_to_ambient()
                # Nothing changes until the watchdog (if armed) cuts power, or until `end`.
                self.time = stop
                if deadline is not None and self.time >= deadline:
                    self._trip_watchdog()
                continue
            if stop > self.time:
                for heater, loss in moving:
                    heater.integrate(stop - self.time, loss)
                self.time = stop
            if deadline is not None and self.time >= deadline:
                self._trip_watchdog()
            for heater, loss in moving:
                if heater.controlled() and self.time >= heater.next_sample_at:
                    heater.sample(loss, self.time)

    def clone(self) -> Board:
        """An independent copy, to look ahead without disturbing this board."""
        twin = copy.copy(self)
        twin.hotend = copy.copy(self.hotend)
        twin.bed = copy.copy(self.bed)
        return twin

    def look_ahead(self) -> Board:
        """A copy to step into the future, assuming the host keeps refreshing the watchdog."""
        probe = self.clone()
        probe.watchdog_timeout = None
        return probe

    def advance_until(
        self, heater: HeaterId, reached: Callable[[float], bool], until: float
    ) -> float | None:
        """Step forward until `heater`'s reading satisfies `reached`, or to time `until`.

        Returns when it was first satisfied (within 0.05 s; the board may then stand up to a
        second past that), or `None` with the board at `until` if it never was.
        """
        if reached(self.read(heater).temperature):
            return self.time
        while self.time < until:
            before = self.clone()
            self.step(min(1.0, until - self.time))
            if reached(self.read(heater).temperature):
                # Found within the last stride: walk it again in fine steps.
                while not reached(before.read(heater).temperature):
                    before.step(0.05)
                return before.time
        return None

    def time_until(
        self, heater: HeaterId, reached: Callable[[float], bool], horizon: float
    ) -> float | None:
        """When `heater`'s reading will first satisfy `reached`, if within `horizon` seconds.

        Looks ahead on a copy (see `look_ahead`), so this board does not move.
        """
        probe = self.look_ahead()
        return probe.advance_until(heater, reached, probe.time + horizon)

    def _trip_watchdog(self) -> None:
        self.heaters_off()
        self.watchdog_tripped = True
        self.watchdog_tripped_at = self.time
