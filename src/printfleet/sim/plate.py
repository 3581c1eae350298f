"""The build plate: prints stay on it until someone removes them, and an optional plate sensor."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from printfleet.agent.hardware import PlateReading

__all__ = ["Plate", "PlateSensor", "check_eject_printers"]


@dataclass(frozen=True, slots=True)
class PlateSensor:
    """A plate sensor (an X1's LIDAR, say) and how often it is wrong, per reading.

    `false_clear_rate` is the chance it calls an occupied plate clear — the dangerous error;
    `false_occupied_rate` the chance it calls a clear plate occupied.
    """

    false_clear_rate: float = 0.0
    false_occupied_rate: float = 0.0

    def __post_init__(self) -> None:
        for rate in (self.false_clear_rate, self.false_occupied_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("error rates must be within 0..1")


class Plate:
    """What physically lies on the plate, and what the sensor (if any) makes of it.

    A print becomes an object on the plate with its first extrusion, and stays there — completed,
    failed or cancelled — until `remove_all` (a person or robot clearing the plate).
    `prints_on_occupied_plate` counts prints that started extruding onto an occupied plate: the
    physical evidence of a plate-gate failure, for chaos tests.
    """

    __slots__ = ("_random", "objects", "prints_on_occupied_plate", "sensor")

    def __init__(self, sensor: PlateSensor | None, *, seed: int = 0) -> None:
        self.sensor = sensor
        self.objects = 0
        self.prints_on_occupied_plate = 0
        # Sensor error draws only; nothing here protects anything.
        self._random = random.Random(seed)  # noqa: S311

    @property
    def occupied(self) -> bool:
        """Whether anything lies on the plate (the truth, not a reading)."""
        return self.objects > 0

    def add_print(self) -> None:
        """A print has started extruding onto the plate."""
        if self.objects:
            self.prints_on_occupied_plate += 1
        self.objects += 1

    def remove_all(self) -> int:
        """Clear the plate; returns how many objects were taken off."""
        removed, self.objects = self.objects, 0
        return removed

    def read(self) -> PlateReading:
        """A sensor reading, with the sensor's error rates applied; `UNKNOWN` without a sensor."""
        if self.sensor is None:
            return PlateReading.UNKNOWN
        draw = self._random.random()
        if self.occupied:
            wrong = draw < self.sensor.false_clear_rate
            return PlateReading.CLEAR if wrong else PlateReading.OCCUPIED
        wrong = draw < self.sensor.false_occupied_rate
        return PlateReading.OCCUPIED if wrong else PlateReading.CLEAR


def check_eject_printers(ejecting: Iterable[str], printer_ids: Iterable[str]) -> None:
    """ValueError if a printer asked to auto-eject is not simulated."""
    known = set(printer_ids)
    unknown = sorted(set(ejecting) - known)
    if unknown:
        names = ", ".join(sorted(known))
        msg = f"auto-eject for unknown printer(s) {', '.join(unknown)}; printers: {names}"
        raise ValueError(msg)
