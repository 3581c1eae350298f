"""What a simulated printer has loaded: its filament slots and nozzle, and who changed them.

A real printer learns its loadout from a person at its screen (or from an AMS reading its
spools' tags); the simulation keeps it here, and wakes whoever waits for the next change.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import ValidationError

from printfleet.agent.hardware import Loadout, LoadoutError, MaterialSlot

__all__ = [
    "DEFAULT_NOZZLE_UM",
    "MATERIAL_SYNTAX",
    "SLOTS_OF_MODEL",
    "MaterialSpec",
    "SimLoadout",
    "check_material_printers",
    "default_loadout",
    "parse_material",
    "with_materials",
]

DEFAULT_NOZZLE_UM = 400
"""A 0.4 mm nozzle, what most printers ship with."""

SLOTS_OF_MODEL: Mapping[str, int] = MappingProxyType({"x1": 4, "p1": 1})
"""Filament slots per model: an x1-like printer has a 4-slot material system, a p1-like one a
single spool. A model not named here has one."""


def default_loadout(slot_count: int) -> Loadout:
    """A printer as it usually stands: PLA in slot 1 and a 0.4 mm nozzle."""
    materials = (MaterialSlot(slot=1, material="PLA"),) if slot_count >= 1 else ()
    return Loadout(slot_count, materials, DEFAULT_NOZZLE_UM)


class SimLoadout:
    """The loadout now, and an event for each change to it."""

    __slots__ = ("_changed", "_current")

    def __init__(self, initial: Loadout) -> None:
        self._current = initial
        self._changed = asyncio.Event()

    @property
    def current(self) -> Loadout:
        """What is loaded now."""
        return self._current

    def set_material(self, slot: int, material: str | None, colour: str | None = None) -> Loadout:
        """Put `material` in `slot` (None: take the spool out); raises `LoadoutError` for a slot
        the printer does not have and `ValueError` for a material or colour it cannot name."""
        return self._become(self._current.with_material(slot, material, colour))

    def set_nozzle(self, nozzle_um: int) -> Loadout:
        """Fit a nozzle of `nozzle_um` micrometres."""
        if not 100 <= nozzle_um <= 2000:  # noqa: PLR2004 - the protocol's NozzleUm bounds
            msg = f"a nozzle of {nozzle_um} µm: give 100 to 2000, e.g. 400 for a 0.4 mm nozzle"
            raise ValueError(msg)
        return self._become(self._current.with_nozzle(nozzle_um))

    async def next_change(self) -> Loadout:
        """Wait for the next change; the loadout as it is then."""
        await self._changed.wait()
        return self._current

    def _become(self, loadout: Loadout) -> Loadout:
        if loadout != self._current:
            self._current = loadout
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
        return loadout


MATERIAL_SYNTAX = (
    "PRINTER:SLOT=MATERIAL[:#rrggbb], e.g. x1-01:2=PETG or p1-02:1=PLA:#ff0000 "
    "(no MATERIAL: the slot is empty, e.g. x1-01:1=)"
)
"""How ``printfleet sim --material`` and ``printfleet demo --material`` are written."""

_MATERIAL = re.compile(
    r"(?P<printer>[^:=\s]+):(?P<slot>\d+)=(?P<material>[^:]*)(?::(?P<colour>.*))?"
)


@dataclass(frozen=True, slots=True)
class MaterialSpec:
    """What one slot of one simulated printer holds at power-on (``material`` None: empty)."""

    printer_id: str
    slot: int
    material: str | None
    colour: str | None


def parse_material(spec: str) -> MaterialSpec:
    """Parse :data:`MATERIAL_SYNTAX`; ValueError says what is wrong, with an example."""
    match = _MATERIAL.fullmatch(spec.strip())
    if match is None:
        raise ValueError(f"cannot read material {spec!r}: write {MATERIAL_SYNTAX}")
    material = match.group("material").strip().upper() or None
    colour = match.group("colour")
    colour = colour.strip().lower() if colour is not None else None
    slot = int(match.group("slot"))
    if material is None and colour is not None:
        raise ValueError(f"material {spec!r}: an empty slot has no colour; write {MATERIAL_SYNTAX}")
    if material is not None:
        try:
            MaterialSlot(slot=slot, material=material, colour=colour)
        except ValidationError:
            msg = (
                f"cannot read material {spec!r}: SLOT is 1 to 16, MATERIAL upper-case letters, "
                f"digits, + and - (PLA, PETG, PA-CF), the colour #rrggbb; write {MATERIAL_SYNTAX}"
            )
            raise ValueError(msg) from None
    return MaterialSpec(match.group("printer"), slot, material, colour)


def check_material_printers(specs: Iterable[MaterialSpec], printer_ids: Iterable[str]) -> None:
    """ValueError if a material names a printer that is not simulated."""
    known = set(printer_ids)
    unknown = sorted({spec.printer_id for spec in specs} - known)
    if unknown:
        names = ", ".join(sorted(known))
        msg = f"material for unknown printer(s) {', '.join(unknown)}; printers: {names}"
        raise ValueError(msg)


def with_materials(loadout: Loadout, printer_id: str, specs: Iterable[MaterialSpec]) -> Loadout:
    """``loadout`` with the specs for ``printer_id`` applied in order; ValueError (a
    `LoadoutError`) names the printer and its slots when a slot is beyond them."""
    for spec in specs:
        if spec.printer_id != printer_id:
            continue
        try:
            loadout = loadout.with_material(spec.slot, spec.material, spec.colour)
        except LoadoutError as error:
            raise LoadoutError(f"{printer_id}: {error}") from None
    return loadout
