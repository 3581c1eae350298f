"""Printers: provisioning, live state, shares, the remote actions a person takes, and the
audit log that says who did what to a printer.

A printer the caller may not see is 404 whatever the route, so its existence is not
disclosed; one the caller sees with too weak a role is 403 (the service decides both).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES, error_responses
from printfleet.cloud.api.schemas import (
    AuditOut,
    CommandSent,
    NewPrinter,
    NewShare,
    PlateCheck,
    PrinterOut,
    ProvisionedOut,
    ShareOut,
    TelemetryPointOut,
)
from printfleet.cloud.telemetry_history import HistoryPoint

CLOUD_MS_MAX = 2**53 - 1
"""The latest cloud time a query may name: far beyond any real one, within every client's
exact integers, and well inside the database's 64-bit columns."""

router = APIRouter(prefix="/api/v1", tags=["printers"], responses=ERROR_RESPONSES)


@router.get("/printers")
async def list_printers(principal: Reader, context: Context) -> list[PrinterOut]:
    """The printers the caller owns or has been shared, with their latest known state."""
    return [PrinterOut.of(view) for view in await context.service.printers.printers_for(principal)]


@router.post("/printers", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def provision_printer(
    body: NewPrinter, principal: Writer, context: Context
) -> ProvisionedOut:
    """Provision a printer the caller will own: its broker login and its agent's config file.

    The broker password is in this response only; provision again under a new id if it is lost.
    """
    provisioned = await context.service.printers.register_printer(
        principal, body.id, name=body.name, model=body.model
    )
    context.printer_registered(provisioned.printer)
    return ProvisionedOut.of(provisioned, context.service.signer.public_key)


@router.get("/printers/{printer_id}")
async def get_printer(printer_id: str, principal: Reader, context: Context) -> PrinterOut:
    """One printer and its latest known state."""
    return PrinterOut.of(await context.service.printers.printer_status(principal, printer_id))


@router.get("/printers/{printer_id}/telemetry")
async def printer_telemetry(
    printer_id: str,
    principal: Reader,
    context: Context,
    *,
    since: Annotated[
        int | None,
        Query(ge=0, le=CLOUD_MS_MAX, description="Only snapshots at or after (cloud ms)"),
    ] = None,
    last_s: Annotated[
        float | None,
        Query(gt=0, le=366 * 86_400, description="Only snapshots of the last this many seconds"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[TelemetryPointOut]:
    """A printer's telemetry history, oldest first (anyone who may see the printer).

    ``since`` (cloud ms) and ``last_s`` (seconds ago) each bound the start, and given both, the
    later bound counts; with neither, the last 10 minutes. History is kept at a bounded rate
    (one snapshot per printer every ``PRINTFLEET_TELEMETRY_HISTORY_INTERVAL_S``) for a bounded
    time; beyond ``limit`` snapshots, the newest are returned.
    """
    records = await context.service.printers.telemetry_history(
        principal, printer_id, since=since, last_s=last_s, limit=limit
    )
    return [TelemetryPointOut.of(HistoryPoint.of(record)) for record in records]


@router.post("/printers/{printer_id}/shares", status_code=status.HTTP_201_CREATED)
async def share_printer(
    printer_id: str, body: NewShare, principal: Writer, context: Context
) -> ShareOut:
    """The owner lets another user operate (print on) or view the printer; audited."""
    await context.service.printers.share_printer(principal, printer_id, body.email, body.role)
    return ShareOut(printer_id=printer_id, email=body.email.strip().lower(), role=body.role)


@router.get("/printers/{printer_id}/shares")
async def list_shares(printer_id: str, principal: Reader, context: Context) -> list[ShareOut]:
    """Who the printer is shared with (owner only)."""
    shares = await context.service.printers.shares_of(principal, printer_id)
    return [ShareOut(printer_id=printer_id, email=user.email, role=role) for user, role in shares]


@router.delete("/printers/{printer_id}/shares/{email}")
async def unshare_printer(
    printer_id: str, email: str, principal: Writer, context: Context
) -> ShareOut:
    """The owner takes a share away (audited); the share as it was. From the next dispatch
    round, a job of that user waiting on this printer leaves it (a job for this printer alone is
    rejected, one for any printer of its model goes back to the queue), and nothing of theirs
    starts there."""
    user, role = await context.service.printers.unshare_printer(principal, printer_id, email)
    return ShareOut(printer_id=printer_id, email=user.email, role=role)


@router.post("/printers/{printer_id}/confirm-plate", status_code=status.HTTP_202_ACCEPTED)
async def confirm_plate(printer_id: str, principal: Writer, context: Context) -> CommandSent:
    """Confirm that the plate is clear (owner or operator), for printers without a plate sensor.

    Sent now or not at all (503 if the broker link has no fresh evidence); audited.
    """
    await context.service.printers.confirm_plate(principal, printer_id)
    return CommandSent(printer_id=printer_id, action="confirm_plate")


@router.put("/printers/{printer_id}/plate-check")
async def set_plate_check(
    printer_id: str, body: PlateCheck, principal: Writer, context: Context
) -> PrinterOut:
    """Turn the printer's plate check on or off (owner only; audited).

    The setting is desired state: saved now, sent to the printer now if it can be reached and
    again whenever it reconnects, until it reports it back (``plate_check_reported``). Turning
    the check on counts at once; turning it off counts only once the printer reports it, and no
    print starts there while the two differ. Turning it off needs
    ``{"enabled": false, "confirm": true}``: prints may then start onto a plate nobody checked.
    """
    await context.service.printers.set_plate_check(
        principal, printer_id, enabled=body.enabled, confirmed=body.confirm
    )
    return PrinterOut.of(await context.service.printers.printer_status(principal, printer_id))


@router.post("/printers/{printer_id}/clear-fault", status_code=status.HTTP_202_ACCEPTED)
async def clear_fault(printer_id: str, principal: Writer, context: Context) -> CommandSent:
    """Clear a latched thermal fault remotely (owner or operator), once someone has looked."""
    await context.service.printers.clear_fault(principal, printer_id)
    return CommandSent(printer_id=printer_id, action="clear_fault")


@router.get("/audit", tags=["audit"])
async def printer_audit(
    principal: Reader,
    context: Context,
    printer_id: str,
    since: Annotated[
        int | None,
        Query(ge=0, le=CLOUD_MS_MAX, description="Only entries at or after (cloud ms)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """A printer's audit log, oldest first (owner only): who or what did each thing to it."""
    entries = await context.service.printers.printer_audit(
        principal, printer_id, since=since, limit=limit
    )
    return [AuditOut.of(entry) for entry in entries]
