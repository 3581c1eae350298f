"""Alerts raised by printers (thermal faults, a plate to confirm, ...), their acknowledgement and
their resolution."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.api.schemas import AlertOut

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=ERROR_RESPONSES)


@router.get("/alerts")
async def list_alerts(
    *,
    principal: Reader,
    context: Context,
    unacked: Annotated[
        bool,
        Query(
            description="Only alerts that need attention: nobody acknowledged them and their "
            "condition has not cleared"
        ),
    ] = False,
) -> list[AlertOut]:
    """Alerts of the printers the caller can see, newest first."""
    alerts = await context.service.alerts.alerts_for(principal, unacked_only=unacked)
    return [AlertOut.of(alert) for alert in alerts]


@router.post("/alerts/{alert_id}/ack")
async def ack_alert(alert_id: str, principal: Writer, context: Context) -> AlertOut:
    """Acknowledge an alert; the first acknowledgement stands."""
    return AlertOut.of(await context.service.alerts.ack_alert(principal, alert_id))
