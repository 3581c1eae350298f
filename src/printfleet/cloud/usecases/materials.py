"""What is loaded at a printer, said remotely: a filament slot's material and colour, the nozzle;
and, on simulated printers only, what a person or a fault would do to the hardware.

A person who loaded a spool or swapped a nozzle tells the printer so from anywhere, as they
would at its screen (operator role; audited). The command has no physical effect: the printer
records it and reports it back in its state, which is what dispatch matches jobs against. Like
every person's command it goes now or not at all (S9).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.cloud.store import Actor, Role, StateConflict
from printfleet.cloud.usecases.principal import Principal, PrinterUnreachable, Scope
from printfleet.cloud.usecases.printers import PrinterActions
from printfleet.protocol.messages import CommandBase, SimulateAction

__all__ = ["MaterialActions"]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class MaterialActions:
    """Sending what is loaded to a printer, through the printers' access rules and link."""

    def __init__(
        self, printers: PrinterActions, *, clock_ms: Callable[[], int] = _wall_clock_ms
    ) -> None:
        self.printers = printers
        self._clock_ms = clock_ms

    async def set_material(
        self,
        principal: Principal,
        printer_id: str,
        *,
        slot: int,
        material: str | None,
        colour: str | None,
    ) -> str:
        """Tell the printer that ``slot`` holds ``material`` in ``colour`` (None: empty); the
        command's id. A slot the printer does not have is refused by the printer."""
        await self._operator(principal, printer_id)
        command = self.printers.issuer.set_material(
            printer_id, now=self._clock_ms(), slot=slot, material=material, colour=colour
        )
        detail = {"slot": slot, "material": material, "colour": colour}
        await self._send(principal, command, "material.set", detail)
        return command.id

    async def set_nozzle(self, principal: Principal, printer_id: str, *, nozzle_um: int) -> str:
        """Tell the printer which nozzle is fitted; the command's id."""
        await self._operator(principal, printer_id)
        command = self.printers.issuer.set_nozzle(
            printer_id, now=self._clock_ms(), nozzle_um=nozzle_um
        )
        await self._send(principal, command, "nozzle.set", {"nozzle_um": nozzle_um})
        return command.id

    async def simulate(
        self, principal: Principal, printer_id: str, *, action: SimulateAction, fault: str | None
    ) -> str:
        """Act something out on a simulated printer (take the print off, a fault, its repair);
        the command's id. :class:`StateConflict` (409) for a printer whose last state report
        does not say it is simulated (the printer itself refuses too)."""
        await self._operator(principal, printer_id)
        view = self.printers.live.view(printer_id)
        if view is None or not view.simulated:
            msg = (
                f"{printer_id} is not a simulated printer: only printers of printfleet sim or "
                "the demo take simulated faults"
            )
            raise StateConflict(msg)
        command = self.printers.issuer.simulate(
            printer_id, now=self._clock_ms(), action=action, fault=fault
        )
        detail = {"action": action.value, "fault": fault}
        await self._send(principal, command, f"simulate.{action.value}", detail)
        return command.id

    async def _operator(self, principal: Principal, printer_id: str) -> None:
        principal.require(Scope.WRITE)
        await self.printers.access(principal, printer_id, Role.OPERATOR)

    async def _send(
        self,
        principal: Principal,
        command: CommandBase,
        action: str,
        detail: Mapping[str, str | int | None],
    ) -> None:
        """Publish now or fail now (S9); audited with what was said and the outcome."""
        live = self.printers.live
        outcome = await live.publish(command)
        await live.audit.append(
            Actor.user(principal.user.id),
            action,
            printer_id=command.printer_id,
            job_id=None,
            command_id=command.id,
            detail={**detail, "outcome": outcome.value},
        )
        if outcome is PublishOutcome.NOT_SENT:
            raise PrinterUnreachable(
                "not sent: the link to the printers has no fresh round-trip evidence; try again"
            )
