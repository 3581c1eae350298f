"""Maintenance counters of a printer's parts (nozzle, belts): print hours since each was serviced,
its interval, whether it is due; marking one serviced and changing its interval.

A printer the caller may not see is 404; one seen with too weak a role is 403; a part printfleet
keeps no counter for is 422, naming those it does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.store.maintenance import PARTS
from printfleet.cloud.usecases.maintenance import MAX_INTERVAL_H, PartStatus

router = APIRouter(prefix="/api/v1", tags=["maintenance"], responses=ERROR_RESPONSES)

# The schema names the parts; the route itself still answers any other name with a 422 that
# lists them, rather than a bare enum error.
Part = Annotated[
    str,
    Path(
        description=f"The part: {', '.join(PARTS)}",
        examples=["nozzle"],
        json_schema_extra={"enum": list(PARTS)},
    ),
]


class PartOut(BaseModel):
    """One part of a printer: its print hours since service against its interval."""

    part: str
    interval_h: float
    """Print hours between services: the printer's own, else the cloud's default."""
    default_interval: bool
    """Whether ``interval_h`` is the cloud's default (the printer has none of its own)."""
    hours_since_service: float
    due: bool
    """Whether ``hours_since_service`` has reached ``interval_h``."""
    serviced_at: int | None
    """When it was last marked serviced (cloud ms); null: never, so its hours count from the
    printer's first print."""

    @classmethod
    def of(cls, status: PartStatus) -> PartOut:
        """The answer for one part."""
        return cls(
            part=status.part,
            interval_h=status.interval_h,
            default_interval=status.default_interval,
            hours_since_service=round(status.hours_since_service, 4),
            due=status.due,
            serviced_at=status.serviced_at,
        )


class MaintenanceInterval(BaseModel):
    """How many print hours a part runs between services; null: the cloud's default."""

    model_config = ConfigDict(extra="forbid")

    # Strict: true is no number of hours, nor is "300".
    interval_h: StrictFloat | None = Field(
        description=f"More than 0, at most {MAX_INTERVAL_H:g}; null for the default",
        examples=[300],
        # Said in the schema; checked, with a sentence, where intervals are set.
        json_schema_extra={"exclusiveMinimum": 0, "maximum": MAX_INTERVAL_H},
    )


@router.get("/printers/{printer_id}/maintenance")
async def maintenance(printer_id: str, principal: Reader, context: Context) -> list[PartOut]:
    """The printer's parts: print hours since service, interval, and whether each is due
    (anyone who may see the printer)."""
    parts = await context.service.maintenance.maintenance(principal, printer_id)
    return [PartOut.of(part) for part in parts]


@router.post("/printers/{printer_id}/maintenance/{part}/serviced")
async def mark_serviced(
    printer_id: str, part: Part, principal: Writer, context: Context
) -> list[PartOut]:
    """Say the part was serviced now (owner or operator; audited): its hours start again from 0
    and its ``maintenance_due`` alert, if raised, is resolved. The printer's parts after it."""
    parts = await context.service.maintenance.mark_serviced(principal, printer_id, part)
    return [PartOut.of(status) for status in parts]


@router.put("/printers/{printer_id}/maintenance/{part}")
async def set_interval(
    printer_id: str, part: Part, body: MaintenanceInterval, principal: Writer, context: Context
) -> list[PartOut]:
    """Set how many print hours the part runs between services (owner; audited). The
    printer's parts after it."""
    parts = await context.service.maintenance.set_interval(
        principal, printer_id, part, body.interval_h
    )
    return [PartOut.of(status) for status in parts]
