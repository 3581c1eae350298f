"""Alerts as people see them: those of the printers they can see, and acknowledging one."""

from __future__ import annotations

from printfleet.cloud.store import AlertRecord, NotFound
from printfleet.cloud.usecases.ports import AlertRecords, PrinterRecords
from printfleet.cloud.usecases.principal import Principal, Scope


class AlertActions:
    """What people do with alerts."""

    def __init__(self, alerts: AlertRecords, printers: PrinterRecords) -> None:
        self.alerts = alerts
        self.printers = printers

    async def alerts_for(
        self, principal: Principal, *, unacked_only: bool = False
    ) -> list[AlertRecord]:
        """Alerts of the caller's printers, newest first; with ``unacked_only`` only those that
        need attention (neither acknowledged nor resolved)."""
        printers = [a.printer.id for a in await self.printers.for_user(principal.user.id)]
        return await self.alerts.latest(printer_ids=printers, unacked_only=unacked_only)

    async def ack_alert(self, principal: Principal, alert_id: str) -> AlertRecord:
        """Acknowledge an alert of one of the caller's printers."""
        principal.require(Scope.WRITE)
        visible = {alert.id for alert in await self.alerts_for(principal)}
        if alert_id not in visible:
            raise NotFound(f"no alert {alert_id}")
        return await self.alerts.ack(alert_id, user_id=principal.user.id)
