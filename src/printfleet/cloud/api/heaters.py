"""``POST /api/v1/printers/{id}/temperature``: preheat or cool a heater (owner or operator).

Sent now or not at all (S9), signed like every command; the printer's gate refuses it while a
thermal fault is latched, and its thermal protection watches the heater as always.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from printfleet.cloud.api.auth import Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.api.schemas import CommandSent, NewTemperature

router = APIRouter(prefix="/api/v1", tags=["printers"], responses=ERROR_RESPONSES)


@router.post("/printers/{printer_id}/temperature", status_code=status.HTTP_202_ACCEPTED)
async def set_temperature(
    printer_id: str, body: NewTemperature, principal: Writer, context: Context
) -> CommandSent:
    """Set a heater's target in °C (0 turns it off); audited, 503 if it cannot be sent now."""
    await context.service.printers.set_temperature(
        principal, printer_id, body.heater, body.target_c
    )
    return CommandSent(printer_id=printer_id, action=f"temperature.{body.heater.value}")
