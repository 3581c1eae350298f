"""Printers: provisioning, who may do what with one (owner, operator, viewer), its live state and
audit log, its safety settings, and the commands people send it (plate, fault, heaters)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import tomli_w

from printfleet.cloud.broker_auth import hash_password, new_secret
from printfleet.cloud.store import (
    Actor,
    AlreadyExists,
    AuditRecord,
    NotFound,
    PrinterRecord,
    Role,
    ShareRole,
    TelemetryRecord,
    UserRecord,
)
from printfleet.cloud.usecases.live import LiveFleet
from printfleet.cloud.usecases.ports import (
    AccountRecords,
    AuditTrail,
    PoolRecords,
    PrinterRecords,
    TelemetryRecords,
)
from printfleet.cloud.usecases.principal import (
    Forbidden,
    InvalidRequest,
    Principal,
    Scope,
    at_least,
)
from printfleet.protocol.dispatch import PrinterView
from printfleet.protocol.identities import InvalidPrinterId, check_printer_id, printer_username
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import Heater, PlateStatus, Telemetry

log = logging.getLogger(__name__)

PLATE_CHECK_OFF_UNCONFIRMED = (
    "turning the plate check off lets prints start onto an occupied plate; "
    'send {"enabled": false, "confirm": true} to do it anyway'
)
"""Why turning the plate check off without saying so is refused (S5)."""

HISTORY_DEFAULT_S = 600
"""Telemetry history returned when the caller names no start: the dashboard's chart window."""


@dataclass(frozen=True, slots=True)
class ProvisionedPrinter:
    """A new printer and what its agent needs; the broker password is shown only this once."""

    printer: PrinterRecord
    broker_username: str
    broker_password: str
    agent_config: str
    """A TOML config for ``printfleet agent --config``."""


@dataclass(frozen=True, slots=True)
class PrinterStatusView:
    """A printer as a user sees it."""

    printer: PrinterRecord
    role: Role
    view: PrinterView | None
    telemetry: Telemetry | None
    link_evidence_age_s: float | None
    pools: tuple[str, ...] = ()
    """The ids of the caller's pools the printer is in (other users' pools are theirs)."""


class PrinterActions:
    """What people do with printers."""

    def __init__(
        self,
        *,
        printers: PrinterRecords,
        pools: PoolRecords,
        accounts: AccountRecords,
        audit: AuditTrail,
        telemetry: TelemetryRecords,
        live: LiveFleet,
        issuer: CommandIssuer,
        cloud_public_key: str,
        broker_url_for_printers: str,
        clock_ms: Callable[[], int],
    ) -> None:
        self.printers = printers
        self.pools = pools
        self.accounts = accounts
        self.audit = audit
        self.telemetry_log = telemetry
        self.live = live
        self.issuer = issuer
        self.cloud_public_key = cloud_public_key
        self.broker_url_for_printers = broker_url_for_printers
        self._clock_ms = clock_ms

    async def register_printer(
        self, principal: Principal, printer_id: str, *, name: str, model: str
    ) -> ProvisionedPrinter:
        """Provision a printer owned by the caller: broker credentials and an agent config.

        The id must match ``PRINTER_ID_PATTERN`` and not be reserved (S10; checked here, as the
        CLI and the demo call this too); its broker username is derived from it, never chosen.
        An id another user already has is :class:`AlreadyExists`.
        """
        principal.require(Scope.WRITE)
        try:
            check_printer_id(printer_id)
        except InvalidPrinterId as error:
            raise InvalidRequest(str(error)) from None
        username = printer_username(printer_id)
        password = new_secret()
        try:
            record = await self.printers.create(
                printer_id,
                owner_id=principal.user.id,
                name=name,
                model=model,
                broker_username=username,
                broker_password_hash=hash_password(password),
            )
        except AlreadyExists:
            raise AlreadyExists(
                f"a printer with id {printer_id!r} exists; choose another id"
            ) from None
        # Written by a TOML library, not by hand: every value is quoted by the spec, so no
        # name or model a person chose can add a key to the agent's settings.
        config = tomli_w.dumps(
            {
                "printer_id": printer_id,
                "model": model,
                "broker": self.broker_url_for_printers,
                "username": username,
                "password": password,
                "cloud_public_key": self.cloud_public_key,
            }
        )
        return ProvisionedPrinter(record, username, password, config)

    async def access(self, principal: Principal, printer_id: str, minimum: Role) -> PrinterRecord:
        """The printer if the caller holds at least ``minimum`` on it.

        A printer the caller may not see at all is NotFound, not Forbidden: its existence is
        not disclosed.
        """
        role = await self.printers.role_of(printer_id, principal.user.id)
        if role is None:
            raise NotFound(f"no printer {printer_id}")
        if not at_least(role, minimum):
            raise Forbidden(f"this needs the {minimum.value} role on {printer_id}")
        return await self.printers.get(printer_id)

    async def share_printer(
        self, principal: Principal, printer_id: str, email: str, role: ShareRole
    ) -> None:
        """The owner shares a printer with another user as operator or viewer.

        An address without an account is answered as if shared, and nothing is stored: anyone
        may own a printer, so any other answer would tell them which addresses have accounts.
        """
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OWNER)
        other = await self.accounts.user_by_email(email)
        if other is None:
            log.info("printer %s: no account to share with at the address given", printer_id)
            return
        if other.id == principal.user.id:
            raise InvalidRequest("you own this printer; a share is for someone else")
        await self.printers.share(printer_id, other.id, role, actor=Actor.user(principal.user.id))

    async def shares_of(
        self, principal: Principal, printer_id: str
    ) -> list[tuple[UserRecord, ShareRole]]:
        """The owner reads who else may operate or view the printer."""
        await self.access(principal, printer_id, Role.OWNER)
        return await self.printers.shares_of(printer_id)

    async def unshare_printer(
        self, principal: Principal, printer_id: str, email: str
    ) -> tuple[UserRecord, ShareRole]:
        """The owner takes a share away (audited); the share as it was. It counts from the next
        dispatch round: a job of that user waiting on this printer leaves it, and nothing of
        theirs starts there (S1)."""
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OWNER)
        other = await self.accounts.user_by_email(email)
        role = None
        if other is not None:
            actor = Actor.user(principal.user.id)
            role = await self.printers.unshare(printer_id, other.id, actor=actor)
        if other is None or role is None:
            raise NotFound(f"{printer_id} is not shared with {email}")
        self.live.wake_dispatcher()
        return other, role

    async def printers_for(self, principal: Principal) -> list[PrinterStatusView]:
        """The caller's printers with their live state."""
        age = self.live.evidence_age()
        pools = await self.pools.of_printers(principal.user.id)
        return [
            PrinterStatusView(
                access.printer,
                access.role,
                self.live.view(access.printer.id),
                self.live.telemetry(access.printer.id),
                age,
                pools.get(access.printer.id, ()),
            )
            for access in await self.printers.for_user(principal.user.id)
        ]

    async def printer_status(self, principal: Principal, printer_id: str) -> PrinterStatusView:
        """One printer the caller can see, with its live state."""
        role = await self.printers.role_of(printer_id, principal.user.id)
        if role is None:
            raise NotFound(f"no printer {printer_id}")
        pools = await self.pools.of_printers(principal.user.id)
        return PrinterStatusView(
            await self.printers.get(printer_id),
            role,
            self.live.view(printer_id),
            self.live.telemetry(printer_id),
            self.live.evidence_age(),
            pools.get(printer_id, ()),
        )

    async def telemetry_history(
        self,
        principal: Principal,
        printer_id: str,
        *,
        since: int | None = None,
        last_s: float | None = None,
        limit: int = 1000,
    ) -> list[TelemetryRecord]:
        """A printer's telemetry snapshots, oldest first (anyone who may see the printer).

        ``since`` (cloud ms) and ``last_s`` (seconds ago) each bound the start, and given both,
        the later bound counts; with neither, the last :data:`HISTORY_DEFAULT_S`. Beyond
        ``limit`` snapshots, the newest are returned.
        """
        await self.access(principal, printer_id, Role.VIEWER)
        if last_s is not None or since is None:
            recent = self._clock_ms() - int((last_s or HISTORY_DEFAULT_S) * 1000)
            since = recent if since is None else max(since, recent)
        return await self.telemetry_log.for_printer(printer_id, since=since, limit=limit)

    async def printer_audit(
        self, principal: Principal, printer_id: str, *, since: int | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """A printer's audit log: the owner's to read, as it names who did what."""
        await self.access(principal, printer_id, Role.OWNER)
        return await self.audit.for_printer(printer_id, since=since, limit=limit)

    async def set_plate_check(
        self, principal: Principal, printer_id: str, *, enabled: bool, confirmed: bool = False
    ) -> None:
        """The owner turns the plate check on or off (S5): audited, and desired state.

        Turning it off needs ``confirmed``: prints may then start onto a plate nobody checked.
        The choice is saved first and counts from there: the dispatcher sends it now if the
        printer can be reached, and again on every reconnect until the printer reports it, and
        starts nothing there meanwhile. A printer that is away therefore gets it when it is
        back; nothing is refused for the link being down.
        """
        if not enabled and not confirmed:
            raise InvalidRequest(PLATE_CHECK_OFF_UNCONFIRMED)
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OWNER)
        actor = Actor.user(principal.user.id)
        await self.printers.update(printer_id, plate_check=enabled, actor=actor)
        await self.audit.append(
            actor,
            f"plate_check.{'on' if enabled else 'off'}",
            printer_id=printer_id,
            job_id=None,
            command_id=None,
            detail={"desired": enabled},
        )
        self.live.wake_dispatcher()

    async def confirm_plate(self, principal: Principal, printer_id: str) -> None:
        """A person confirms remotely that the plate is clear (owner or operator; audited).

        On a printer whose plate sensor sees something, a person's word changes nothing (the
        sensor decides, S5): say so, and what to do, rather than pretend it helped.
        """
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OPERATOR)
        view = self.live.view(printer_id)
        if view is not None and view.plate is PlateStatus.OCCUPIED:
            raise InvalidRequest(
                f"the plate sensor of {printer_id} sees something on the plate: take the print "
                "off; on this printer the sensor, not a confirmation, says when it is clear"
            )
        command = self.issuer.confirm_plate(
            printer_id, now=self._clock_ms(), by=principal.user.email
        )
        await self.live.send(principal.user.id, command, "plate.confirmed")

    async def clear_fault(self, principal: Principal, printer_id: str) -> None:
        """A person clears a latched thermal fault remotely (owner or operator; audited)."""
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OPERATOR)
        command = self.issuer.clear_fault(printer_id, now=self._clock_ms(), by=principal.user.email)
        await self.live.send(principal.user.id, command, "fault.cleared")

    async def set_temperature(
        self, principal: Principal, printer_id: str, heater: Heater, target: int
    ) -> None:
        """Preheat or cool a heater (owner or operator)."""
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OPERATOR)
        command = self.issuer.set_temperature(
            printer_id, now=self._clock_ms(), heater=heater, target=target
        )
        await self.live.send(principal.user.id, command, "temperature.set")
