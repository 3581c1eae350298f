"""What a simulated printer has loaded: its filament slots and nozzle, and who changed them.

A real printer learns its loadout from a person at its screen (or from an AMS reading its
spools' tags); the simulation keeps it here, and wakes whoever waits for the next change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType

from printfleet.agent.hardware import Loadout, MaterialSlot

__all__ = ["DEFAULT_NOZZLE_UM", "SLOTS_OF_MODEL", "SimLoadout", "default_loadout"]

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
            raise ValueError(f"a nozzle of {nozzle_um} µm: give 100 to 2000 (400 is 0.4 mm)")
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
