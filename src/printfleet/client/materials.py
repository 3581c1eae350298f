"""The SDK's calls for what is loaded at a printer: a filament slot's material, the nozzle.

Described once, as every call in :mod:`printfleet.client.calls` is, for the sync and the async
client; the printer records what it is told and reports it back in its state.
"""

from __future__ import annotations

import httpx

from printfleet.client.calls import API, Call
from printfleet.client.models import CommandSent

__all__ = ["set_material", "set_nozzle"]


def _sent(response: httpx.Response) -> CommandSent:
    return CommandSent.model_validate_json(response.content)


def set_material(
    printer_id: str, slot: int, material: str | None, colour: str | None
) -> Call[CommandSent]:
    """Say what filament ``slot`` holds (``material`` None: the slot is empty)."""
    return Call(
        "PUT",
        f"{API}/printers/{printer_id}/materials/{slot}",
        _sent,
        json={"material": material, "colour": colour},
    )


def set_nozzle(printer_id: str, nozzle_um: int) -> Call[CommandSent]:
    """Say which nozzle is fitted, in micrometres (400 is 0.4 mm)."""
    return Call("PUT", f"{API}/printers/{printer_id}/nozzle", _sent, json={"nozzle_um": nozzle_um})
