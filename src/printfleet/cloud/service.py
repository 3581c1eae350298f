"""``CloudService``: every use case of the cloud, defined once, reached from HTTP, CLI and demo.

The HTTP layer authenticates and maps errors to status codes; this layer decides who may do
what (owner, operator, viewer), writes the store, audits, and sends commands to printers through
the link supervisor — which refuses to send without fresh evidence (S8/S9).
"""

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError

from printfleet.cloud.broker_auth import hash_password, new_secret
from printfleet.cloud.core import CloudCore
from printfleet.cloud.link import PublishOutcome
from printfleet.cloud.store import (
    Actor,
    AlertRecord,
    AuditRecord,
    FileRecord,
    JobCreated,
    JobRecord,
    NotFound,
    PrinterAccess,
    PrinterRecord,
    Role,
    ShareRole,
    Store,
    TokenRecord,
    UserRecord,
)
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import PrinterView
from printfleet.protocol.identities import InvalidPrinterId, check_printer_id, printer_username
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobEvent, JobState
from printfleet.protocol.messages import CommandBase, Heater, PlateStatus, Telemetry, encode
from printfleet.protocol.signing import CommandSigner

log = logging.getLogger(__name__)

_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.OWNER: 2}

JobListener = Callable[[JobRecord, JobEvent | None], Awaitable[None]]
"""Told of each job a person created (event None) or ended (the event), to notify people."""
ALL_SCOPES = ("read", "write", "admin")
TOKEN_LIFETIME_S = 30 * 24 * 3_600
"""How long a token works unless its creator asks otherwise: a login's, or one from POST
/api/v1/tokens without ``expires_in_s``."""
MAX_TOKEN_LIFETIME_S = 365 * 24 * 3_600
"""The longest a created token may ask to work."""
MIN_TOKEN_LIFETIME_S = 60


class Scope(StrEnum):
    """What an API token may do."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class Forbidden(Exception):  # noqa: N818 - reads as the HTTP status it becomes
    """The user may see the thing but not do this to it (403)."""


class InvalidRequest(ValueError):  # noqa: N818 - reads as the HTTP status it becomes
    """The request makes no sense (422), with a message that says why."""


class TokenExpired(Exception):  # noqa: N818 - reads as the condition
    """A bearer token that worked once but has passed its expiry (401, saying so)."""


class PrinterUnreachable(Exception):  # noqa: N818 - reads as the condition
    """The command was not sent: no fresh evidence that the printer can be reached (503)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user: UserRecord
    scopes: frozenset[str]

    def require(self, scope: Scope) -> None:
        """Raise Forbidden unless the token carries ``scope``."""
        if scope.value not in self.scopes and Scope.ADMIN.value not in self.scopes:
            msg = f"this token lacks the {scope.value!r} scope"
            raise Forbidden(msg)


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


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Knobs of the service."""

    public_url: str = "http://127.0.0.1:8000"
    """Where printers fetch staged files."""
    broker_url_for_printers: str = "mqtt://127.0.0.1:1883"
    token_lifetime_s: int = TOKEN_LIFETIME_S
    """How long a login's token works, and a created one that does not say."""
    default_start_within_s: int = 3_600
    max_start_within_s: int = 7 * 24 * 3_600
    file_link_ttl_s: int = 3_600


class CloudService:
    """The cloud's use cases over the store, the link and the printers."""

    def __init__(
        self,
        store: Store,
        signer: CommandSigner,
        issuer: CommandIssuer,
        *,
        settings: ServiceSettings | None = None,
        core: CloudCore | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        file_secret: bytes | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.issuer = issuer
        self.settings = settings or ServiceSettings()
        self.core = core
        self._clock_ms = clock_ms
        self._hasher = PasswordHasher()
        self._file_secret = file_secret or secrets.token_bytes(32)
        self.job_listener: JobListener | None = None
        """The app's notifier hook; the dispatcher tells of the changes it makes itself."""

    # -- accounts --------------------------------------------------------------------------------

    async def register_user(self, email: str, password: str, display_name: str = "") -> UserRecord:
        """A new account (argon2-hashed password)."""
        if len(password) < 8:  # noqa: PLR2004 - the documented minimum
            raise InvalidRequest("a password needs at least 8 characters")
        # argon2 is slow on purpose (tens of ms of CPU): off the event loop, which also runs
        # the link's probes and the dispatcher. cffi releases the GIL while it hashes.
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        return await self.store.create_user(
            email, display_name=display_name or email, password_hash=password_hash
        )

    async def login(
        self,
        email: str,
        password: str,
        *,
        token_name: str = "login",  # noqa: S107 - a label
    ) -> tuple[TokenRecord, str] | None:
        """A new read/write token for the right credentials, else None (no hint which was wrong)."""
        user = await self.store.user_by_email(email)
        if user is None:
            # Spend the same time as a real check, so timing does not reveal known addresses.
            await asyncio.to_thread(self._hasher.hash, password)
            return None
        try:
            await asyncio.to_thread(self._hasher.verify, user.password_hash, password)
        except (VerifyMismatchError, VerificationError):
            return None
        return await self.create_token(user, token_name, (Scope.READ.value, Scope.WRITE.value))

    async def create_token(
        self,
        user: UserRecord,
        name: str,
        scopes: Iterable[str],
        *,
        lifetime_s: int | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new API token, working for ``lifetime_s`` (default ``settings.token_lifetime_s``;
        at most :data:`MAX_TOKEN_LIFETIME_S`); its value is returned only now."""
        wanted = set(scopes)
        unknown = wanted - set(ALL_SCOPES)
        if unknown or not wanted:
            raise InvalidRequest(f"scopes must be some of {ALL_SCOPES}, not {sorted(unknown)}")
        lifetime = self.settings.token_lifetime_s if lifetime_s is None else lifetime_s
        if not MIN_TOKEN_LIFETIME_S <= lifetime <= MAX_TOKEN_LIFETIME_S:
            msg = (
                f"a token may work for {MIN_TOKEN_LIFETIME_S} s to {MAX_TOKEN_LIFETIME_S} s "
                f"(365 days), not {lifetime} s"
            )
            raise InvalidRequest(msg)
        token = "pf_" + secrets.token_urlsafe(32)
        record = await self.store.create_token(
            user.id,
            name=name,
            token=token,
            scopes=wanted,
            expires_at=self._clock_ms() + lifetime * 1000,
        )
        return record, token

    async def issue_token(
        self,
        principal: Principal,
        name: str,
        scopes: Iterable[str],
        *,
        lifetime_s: int | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token for the caller, with no scope the caller's own token lacks."""
        principal.require(Scope.WRITE)
        wanted = set(scopes)
        if Scope.ADMIN.value not in principal.scopes and not wanted <= principal.scopes:
            # Otherwise a read-only token could mint itself a read/write one.
            extra = sorted(wanted - principal.scopes)
            raise Forbidden(f"this token cannot grant scopes it lacks: {extra}")
        return await self.create_token(principal.user, name, wanted, lifetime_s=lifetime_s)

    async def tokens_for(self, principal: Principal) -> list[TokenRecord]:
        """The caller's tokens, revoked ones included, oldest first."""
        return await self.store.tokens_for_user(principal.user.id)

    async def revoke_token(self, principal: Principal, token_id: str) -> TokenRecord:
        """Revoke one of the caller's tokens (its own included)."""
        principal.require(Scope.WRITE)
        if token_id not in {token.id for token in await self.tokens_for(principal)}:
            raise NotFound(f"no token {token_id}")
        return await self.store.revoke_token(token_id)

    async def authenticate(self, token: str) -> Principal | None:
        """The caller behind a bearer token, if the token is live; None for an unknown or
        revoked one. Raises :class:`TokenExpired` for one past its expiry."""
        record = await self.store.authenticate_token(token)
        if record is None:
            return None
        if record.expired(self._clock_ms()):
            expired = datetime.fromtimestamp(record.expires_at / 1000, UTC)
            msg = (
                f"the token expired at {expired:%Y-%m-%d %H:%M} UTC: log in again, or create "
                "a new token"
            )
            raise TokenExpired(msg)
        return Principal(await self.store.get_user(record.user_id), frozenset(record.scopes))

    # -- printers ----------------------------------------------------------------------------------

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
        record = await self.store.create_printer(
            printer_id,
            owner_id=principal.user.id,
            name=name,
            model=model,
            broker_username=username,
            broker_password_hash=hash_password(password),
        )
        # JSON string literals are TOML basic strings: quoted so no value can add a key.
        settings = {
            "printer_id": printer_id,
            "model": model,
            "broker": self.settings.broker_url_for_printers,
            "username": username,
            "password": password,
            "cloud_public_key": self.signer.public_key,
        }
        config = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
        return ProvisionedPrinter(record, username, password, config)

    async def access(self, principal: Principal, printer_id: str, minimum: Role) -> PrinterRecord:
        """The printer if the caller holds at least ``minimum`` on it.

        A printer the caller may not see at all is NotFound, not Forbidden: its existence is
        not disclosed.
        """
        role = await self.store.printer_role(printer_id, principal.user.id)
        if role is None:
            raise NotFound(f"no printer {printer_id}")
        if _RANK[role] < _RANK[minimum]:
            raise Forbidden(f"this needs the {minimum.value} role on {printer_id}")
        return await self.store.get_printer(printer_id)

    async def share_printer(
        self, principal: Principal, printer_id: str, email: str, role: ShareRole
    ) -> None:
        """The owner shares a printer with another user as operator or viewer.

        An address without an account is answered as if shared, and nothing is stored: anyone
        may own a printer, so any other answer would tell them which addresses have accounts.
        """
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OWNER)
        other = await self.store.user_by_email(email)
        if other is None:
            log.info("printer %s: no account to share with at the address given", printer_id)
            return
        if other.id == principal.user.id:
            raise InvalidRequest("you own this printer; a share is for someone else")
        await self.store.share_printer(
            printer_id, other.id, role, actor=Actor.user(principal.user.id)
        )

    async def shares_of(
        self, principal: Principal, printer_id: str
    ) -> list[tuple[UserRecord, ShareRole]]:
        """The owner reads who else may operate or view the printer."""
        await self.access(principal, printer_id, Role.OWNER)
        return await self.store.shares_of(printer_id)

    async def unshare_printer(
        self, principal: Principal, printer_id: str, email: str
    ) -> tuple[UserRecord, ShareRole]:
        """The owner takes a share away (audited); the share as it was. It counts from the next
        dispatch round: a job of that user waiting on this printer leaves it, and nothing of
        theirs starts there (S1)."""
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OWNER)
        other = await self.store.user_by_email(email)
        role = None
        if other is not None:
            actor = Actor.user(principal.user.id)
            role = await self.store.unshare_printer(printer_id, other.id, actor=actor)
        if other is None or role is None:
            raise NotFound(f"{printer_id} is not shared with {email}")
        if self.core is not None:
            self.core.dispatcher.wake()
        return other, role

    async def printers_for(self, principal: Principal) -> list[PrinterStatusView]:
        """The caller's printers with their live state."""
        accesses: list[PrinterAccess] = await self.store.printers_for_user(principal.user.id)
        fleet = self.core.fleet if self.core is not None else None
        age = self.core.link.evidence_age() if self.core is not None else None
        return [
            PrinterStatusView(
                access.printer,
                access.role,
                fleet.view(access.printer.id) if fleet is not None else None,
                fleet.telemetry(access.printer.id) if fleet is not None else None,
                age,
            )
            for access in accesses
        ]

    async def printer_status(self, principal: Principal, printer_id: str) -> PrinterStatusView:
        """One printer the caller may see, with its live state."""
        role = await self.store.printer_role(printer_id, principal.user.id)
        if role is None:
            raise NotFound(f"no printer {printer_id}")
        fleet = self.core.fleet if self.core is not None else None
        return PrinterStatusView(
            await self.store.get_printer(printer_id),
            role,
            fleet.view(printer_id) if fleet is not None else None,
            fleet.telemetry(printer_id) if fleet is not None else None,
            self.core.link.evidence_age() if self.core is not None else None,
        )

    async def printer_audit(
        self, principal: Principal, printer_id: str, *, since: int | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """A printer's audit log: the owner's to read, as it names who did what."""
        await self.access(principal, printer_id, Role.OWNER)
        return await self.store.audit_for_printer(printer_id, since=since, limit=limit)

    async def set_plate_check(
        self, principal: Principal, printer_id: str, *, enabled: bool
    ) -> None:
        """The owner turns the plate check on or off (S5): audited, and desired state.

        The choice is saved first and counts from there: the dispatcher sends it now if the
        printer can be reached, and again on every reconnect until the printer reports it, and
        starts nothing there meanwhile. A printer that is away therefore gets it when it is
        back; nothing is refused for the link being down.
        """
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OWNER)
        await self.store.update_printer(
            printer_id, plate_check=enabled, actor=Actor.user(principal.user.id)
        )
        await self.store.append_audit(
            Actor.user(principal.user.id),
            f"plate_check.{'on' if enabled else 'off'}",
            printer_id=printer_id,
            job_id=None,
            command_id=None,
            detail={"desired": enabled},
        )
        if self.core is not None:
            self.core.dispatcher.wake()

    async def confirm_plate(self, principal: Principal, printer_id: str) -> None:
        """A person confirms remotely that the plate is clear (owner or operator; audited).

        On a printer whose plate sensor sees something, a person's word changes nothing (the
        sensor decides, S5): say so, and what to do, rather than pretend it helped.
        """
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OPERATOR)
        view = self.core.fleet.view(printer_id) if self.core is not None else None
        if view is not None and view.plate is PlateStatus.OCCUPIED:
            raise InvalidRequest(
                f"the plate sensor of {printer_id} sees something on the plate: take the print "
                "off; on this printer the sensor, not a confirmation, says when it is clear"
            )
        command = self.issuer.confirm_plate(
            printer_id, now=self._clock_ms(), by=principal.user.email
        )
        await self._send(principal, printer_id, command, "plate.confirmed")

    async def clear_fault(self, principal: Principal, printer_id: str) -> None:
        """A person clears a latched thermal fault remotely (owner or operator; audited)."""
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OPERATOR)
        command = self.issuer.clear_fault(printer_id, now=self._clock_ms(), by=principal.user.email)
        await self._send(principal, printer_id, command, "fault.cleared")

    async def set_temperature(
        self, principal: Principal, printer_id: str, heater: Heater, target: int
    ) -> None:
        """Preheat or cool a heater (owner or operator)."""
        principal.require(Scope.WRITE)
        await self.access(principal, printer_id, Role.OPERATOR)
        command = self.issuer.set_temperature(
            printer_id, now=self._clock_ms(), heater=heater, target=target
        )
        await self._send(principal, printer_id, command, "temperature.set")

    async def _send(
        self, principal: Principal, printer_id: str, command: CommandBase, action: str
    ) -> None:
        """Audit, then publish now or fail now (S9)."""
        outcome = PublishOutcome.NOT_SENT
        if self.core is not None:
            topic = self.core.topics.commands(printer_id)
            outcome = await self.core.link.publish(topic, encode(command))
        await self.store.append_audit(
            Actor.user(principal.user.id),
            action,
            printer_id=printer_id,
            job_id=command.job_id,
            command_id=command.id,
            detail={"outcome": outcome.value},
        )
        if outcome is PublishOutcome.NOT_SENT:
            raise PrinterUnreachable(
                "not sent: the link to the printers has no fresh round-trip evidence; try again"
            )

    # -- files -------------------------------------------------------------------------------------

    def file_link(self, file: FileRecord) -> str:
        """A capability URL a printer can fetch a file from, valid for a while."""
        return self.file_link_for(file.id)

    def file_link_for(self, file_id: str) -> str:
        """:meth:`file_link` by file id, for the dispatcher, which holds only the job's."""
        expires = self._clock_ms() // 1000 + self.settings.file_link_ttl_s
        token = self._file_token(file_id, expires)
        return f"{self.settings.public_url}/printer-files/{file_id}?expires={expires}&token={token}"

    async def files_for(self, principal: Principal) -> list[FileRecord]:
        """The caller's uploaded files, newest first."""
        return await self.store.files_for_owner(principal.user.id)

    async def file(self, principal: Principal, file_id: str) -> FileRecord:
        """One of the caller's files; anyone else's is NotFound, as a missing one is."""
        try:
            file = await self.store.get_file(file_id)
        except NotFound:
            file = None
        if file is None or file.owner_id != principal.user.id:
            raise NotFound(f"no file {file_id}")
        return file

    def check_file_link(self, file_id: str, expires: int, token: str) -> bool:
        """Whether a printer's file URL is genuine and unexpired."""
        if expires < self._clock_ms() // 1000:
            return False
        # Bytes, not str: compare_digest refuses non-ASCII text, and a forged link may hold any.
        expected = self._file_token(file_id, expires).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogatepass"))

    def _file_token(self, file_id: str, expires: int) -> str:
        message = f"{file_id}:{expires}".encode()
        return hmac.new(self._file_secret, message, hashlib.sha256).hexdigest()

    # -- jobs --------------------------------------------------------------------------------------

    async def submit_job(
        self,
        principal: Principal,
        *,
        file_id: str,
        printer_id: str | None = None,
        model: str | None = None,
        start_within_s: int | None = None,
        idempotency_key: str | None = None,
        notify_completion: bool = False,
    ) -> JobCreated:
        """Queue a print of an uploaded file on a printer, or on any printer of a model."""
        principal.require(Scope.WRITE)
        if (printer_id is None) == (model is None):
            raise InvalidRequest("give exactly one of printer_id and model")
        window = start_within_s or self.settings.default_start_within_s
        if not 0 < window <= self.settings.max_start_within_s:
            raise InvalidRequest(
                f"start_within_s must be between 1 and {self.settings.max_start_within_s}"
            )
        file = await self.store.get_file(file_id)
        if file.owner_id != principal.user.id:
            raise NotFound(f"no file {file_id}")
        if printer_id is not None:
            await self.access(principal, printer_id, Role.OPERATOR)
        elif not [
            a
            for a in await self.store.printers_for_user(principal.user.id)
            if a.printer.model == model and _RANK[a.role] >= _RANK[Role.OPERATOR]
        ]:
            raise InvalidRequest(f"you operate no printer of model {model!r}")
        created = await self.store.create_job(
            principal.user.id,
            sha256=file.sha256,
            start_by=self._clock_ms() + window * 1000,
            printer_id=printer_id,
            model=model,
            file_id=file.id,
            name=file.name,
            notify_completion=notify_completion,
            idempotency_key=idempotency_key,
        )
        if self.core is not None:
            self.core.dispatcher.wake()
        if created.created and self.job_listener is not None:
            await self.job_listener(created.job, None)
        return created

    async def job(self, principal: Principal, job_id: str) -> JobRecord:
        """A job the caller submitted, or one for or on a printer the caller owns.

        A printer's owner answers for everything on it: they see, cancel, pause and resume
        any job there, whoever submitted it. Anyone else's job is NotFound, as a missing one is.
        """
        try:
            record = await self.store.load_job(job_id)
        except NotFound:
            record = None
        if record is None or not (
            record.owner_id == principal.user.id or await self._owns_printer_of(principal, record)
        ):
            raise NotFound(f"no job {job_id}")
        return record

    async def _owns_printer_of(self, principal: Principal, record: JobRecord) -> bool:
        printer_id = record.view.assigned_printer or record.view.printer_id
        if printer_id is None:
            return False
        return await self.store.printer_role(printer_id, principal.user.id) is Role.OWNER

    async def _may_act_on(self, principal: Principal, record: JobRecord, printer_id: str) -> None:
        """S1 for commands to a running job: the submitter must still operate its printer now
        (a share revoked or turned into a viewer's takes the power away at once); the printer's
        owner always may."""
        role = await self.store.printer_role(printer_id, principal.user.id)
        if role is Role.OWNER or (
            record.owner_id == principal.user.id
            and role is not None
            and _RANK[role] >= _RANK[Role.OPERATOR]
        ):
            return
        raise Forbidden(f"you may no longer operate {printer_id}")

    async def jobs_for(
        self,
        principal: Principal,
        *,
        states: Collection[JobState] | None = None,
        printer_id: str | None = None,
        older_than: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """The caller's jobs, newest first, a page at a time (see ``Store.jobs_for_owner``)."""
        return await self.store.jobs_for_owner(
            principal.user.id,
            states=states,
            printer_id=printer_id,
            older_than=older_than,
            limit=limit,
        )

    async def job_audit(self, principal: Principal, job_id: str) -> list[AuditRecord]:
        """Everything logged about one of the caller's jobs: who or what caused each command."""
        await self.job(principal, job_id)
        return await self.store.audit_for_job(job_id)

    async def cancel_job(self, principal: Principal, job_id: str) -> JobRecord:
        """Cancel a job; a printer it was sent to is told (now, and again if it still runs it)."""
        principal.require(Scope.WRITE)
        record = await self.job(principal, job_id)
        change = dispatch.cancel(record.view)
        if change.event is None:
            raise InvalidRequest(f"the job is already {record.view.state.value}")
        view = change.job
        if record.owner_id != principal.user.id:
            # The printer's owner stopped someone else's job: its submitter is told who.
            printer = record.view.assigned_printer or record.view.printer_id
            view = replace(view, reason=f"cancelled by the owner of {printer}")
        ended = await self.store.record_terminal(
            view,
            expected_version=record.version,
            actor=Actor.user(principal.user.id),
            detail={"reason": view.reason},
        )
        if self.job_listener is not None:
            await self.job_listener(ended, JobEvent.CANCELLED)
        printer_id = record.view.assigned_printer
        if printer_id is not None and self.core is not None:
            command = self.issuer.cancel(printer_id, job_id, now=self._clock_ms())
            outcome = await self.core.link.publish(
                self.core.topics.commands(printer_id), encode(command)
            )
            if outcome is not PublishOutcome.NOT_SENT:
                await self.store.save_job(
                    dispatch.cancel_sent(ended.view, self._clock_ms()),
                    expected_version=ended.version,
                )
        return ended

    async def pause_or_resume(self, principal: Principal, job_id: str, *, pause: bool) -> None:
        """Pause or resume a running job (owner or operator of its printer)."""
        principal.require(Scope.WRITE)
        record = await self.job(principal, job_id)
        wanted = JobState.PRINTING if pause else JobState.PAUSED
        printer_id = record.view.assigned_printer
        if printer_id is not None:
            await self._may_act_on(principal, record, printer_id)
        if record.view.state is not wanted or printer_id is None:
            raise InvalidRequest(f"the job is {record.view.state.value}")
        now = self._clock_ms()
        command = (
            self.issuer.pause(printer_id, job_id, now=now)
            if pause
            else self.issuer.resume(printer_id, job_id, now=now)
        )
        await self._send(principal, printer_id, command, "job.pause" if pause else "job.resume")

    # -- alerts ------------------------------------------------------------------------------------

    async def alerts_for(
        self, principal: Principal, *, unacked_only: bool = False
    ) -> list[AlertRecord]:
        """Alerts of the caller's printers, newest first."""
        printers = [a.printer.id for a in await self.store.printers_for_user(principal.user.id)]
        return await self.store.list_alerts(printer_ids=printers, unacked_only=unacked_only)

    async def ack_alert(self, principal: Principal, alert_id: str) -> AlertRecord:
        """Acknowledge an alert of one of the caller's printers."""
        principal.require(Scope.WRITE)
        visible = {alert.id for alert in await self.alerts_for(principal)}
        if alert_id not in visible:
            raise NotFound(f"no alert {alert_id}")
        return await self.store.ack_alert(alert_id, user_id=principal.user.id)
