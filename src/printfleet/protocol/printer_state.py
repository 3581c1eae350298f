"""What the printer-side gate (:mod:`printfleet.protocol.gate`) judges by: the printer's state,
its plate sensor readings and confirmations, and the limits it applies.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from printfleet.protocol.messages import MaterialSlot, PlateStatus, PrinterStatus


class PlateReading(StrEnum):
    """What a plate sensor reports."""

    CLEAR = "clear"
    OCCUPIED = "occupied"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Limits a printer applies; the defaults are the safe ones."""

    max_clock_bound_ms: int = 1_000
    """A printer that cannot place cloud time within ±1 s refuses anything time-bound."""
    max_command_lifetime_ms: int = 60_000
    """No command may be valid for longer, whatever the cloud says (S2's outer bound)."""
    future_tolerance_ms: int = 2_000
    """How far in the future ``issued_at`` may lie before the command is suspect."""
    sensor_reading_max_age_ms: int = 2_000
    """A plate sensor reading older than this does not count as checked at start."""
    confirmation_max_age_ms: int = 30 * 60_000
    """A plate confirmation older than this is no longer fresh (S5)."""


@dataclass(frozen=True, slots=True)
class SensorReading:
    """One plate sensor reading and when it was taken (local ms)."""

    value: PlateReading
    at_local: int


@dataclass(frozen=True, slots=True)
class PlateConfirmation:
    """A person's word that the plate is clear; consumed by the next start."""

    at_local: int
    by: str
    remote: bool


@dataclass(frozen=True, slots=True)
class PrinterState:
    """Everything the gate needs to know about the printer; replaced, never mutated."""

    printer_id: str
    has_plate_sensor: bool
    status: PrinterStatus = PrinterStatus.IDLE
    job_id: str | None = None
    plate_check: bool = True
    cloud_enabled: bool = True
    fault: str | None = None
    last_print_ended_local: int | None = None
    confirmation: PlateConfirmation | None = None
    sensor: SensorReading | None = None
    staged: Mapping[str, str] = field(default_factory=dict)
    """Files ready to print: job id -> sha256."""
    material_slots: int = 0
    """How many filament slots the printer has (0: it does not say what is loaded)."""
    materials: tuple[MaterialSlot, ...] = ()
    """The filled slots, by slot number."""
    nozzle_um: int | None = None
    simulated: bool = False

    def plate_status(self) -> PlateStatus:
        """How the plate should be shown; the gate re-checks freshness at start."""
        if not self.plate_check:
            return PlateStatus.UNCHECKED
        if self.has_plate_sensor and self.sensor is not None:
            if self.sensor.value is PlateReading.CLEAR:
                return PlateStatus.CLEAR
            if self.sensor.value is PlateReading.OCCUPIED:
                return PlateStatus.OCCUPIED
        if self.confirmation is not None:
            return PlateStatus.CLEAR
        return PlateStatus.NEEDS_CONFIRMATION


def missing_slot(slot: int, slot_count: int) -> str | None:
    """Why a printer with `slot_count` filament slots has no slot `slot`; None if it has."""
    if 1 <= slot <= slot_count:
        return None
    if slot_count == 0:
        return f"no material slot {slot}: this printer reports no material slots"
    if slot_count == 1:
        return f"no material slot {slot}: this printer has a single spool, slot 1"
    return f"no material slot {slot}: this printer has slots 1 to {slot_count}"


def with_material(
    materials: tuple[MaterialSlot, ...], slot: int, material: str | None, colour: str | None
) -> tuple[MaterialSlot, ...]:
    """`materials` with `slot` holding `material` (None: emptied), ordered by slot."""
    kept = [held for held in materials if held.slot != slot]
    if material is not None:
        kept.append(MaterialSlot(slot=slot, material=material, colour=colour))
    return tuple(sorted(kept, key=lambda held: held.slot))
