"""Accounts and API tokens: sign-up, login, the tokens a user makes and revokes, and who a
bearer token is."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError

from printfleet.cloud.store import AlreadyExists, NotFound, TokenRecord, UserRecord
from printfleet.cloud.usecases.ports import AccountRecords
from printfleet.cloud.usecases.principal import (
    ALL_SCOPES,
    Forbidden,
    InvalidRequest,
    Principal,
    RegistrationClosed,
    Scope,
    TokenExpired,
)

TOKEN_LIFETIME_S = 30 * 24 * 3_600
"""How long a token works unless its creator asks otherwise: a login's, or one from POST
/api/v1/tokens without ``expires_in_s``."""
MAX_TOKEN_LIFETIME_S = 365 * 24 * 3_600
"""The longest a created token may ask to work."""
MIN_TOKEN_LIFETIME_S = 60
MIN_PASSWORD_LENGTH = 8


class AccountActions:
    """What people do with accounts and tokens."""

    def __init__(
        self,
        accounts: AccountRecords,
        *,
        clock_ms: Callable[[], int],
        token_lifetime_s: int = TOKEN_LIFETIME_S,
    ) -> None:
        self.accounts = accounts
        self.token_lifetime_s = token_lifetime_s
        self._clock_ms = clock_ms
        self.hasher = PasswordHasher()

    async def sign_up(
        self, email: str, password: str, display_name: str = "", *, open_registration: bool
    ) -> UserRecord:
        """Create an account over the API: always the first one, others only if registration is
        open (``PRINTFLEET_OPEN_REGISTRATION``); an address in use is :class:`AlreadyExists`."""
        if not open_registration and await self.accounts.has_users():
            raise RegistrationClosed(
                "registration is closed on this server; ask its operator for an account"
            )
        try:
            return await self.register_user(email, password, display_name)
        except AlreadyExists:
            raise AlreadyExists("an account with this e-mail address exists") from None

    async def register_user(self, email: str, password: str, display_name: str = "") -> UserRecord:
        """A new account (argon2-hashed password), whoever else has one."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequest(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        # argon2 is slow on purpose (tens of ms of CPU): off the event loop, which also runs
        # the link's probes and the dispatcher. cffi releases the GIL while it hashes.
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        return await self.accounts.create_user(
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
        user = await self.accounts.user_by_email(email)
        if user is None:
            # Spend the same time as a real check, so timing does not reveal known addresses.
            await asyncio.to_thread(self.hasher.hash, password)
            return None
        try:
            await asyncio.to_thread(self.hasher.verify, user.password_hash, password)
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
        """A new API token, working for ``lifetime_s`` (default ``token_lifetime_s``; at most
        :data:`MAX_TOKEN_LIFETIME_S`); its value is returned only now."""
        wanted = set(scopes)
        unknown = wanted - set(ALL_SCOPES)
        if unknown or not wanted:
            raise InvalidRequest(f"scopes must be some of {ALL_SCOPES}, not {sorted(unknown)}")
        lifetime = self.token_lifetime_s if lifetime_s is None else lifetime_s
        if not MIN_TOKEN_LIFETIME_S <= lifetime <= MAX_TOKEN_LIFETIME_S:
            msg = (
                f"a token may work for {MIN_TOKEN_LIFETIME_S} s to {MAX_TOKEN_LIFETIME_S} s "
                f"(365 days), not {lifetime} s"
            )
            raise InvalidRequest(msg)
        token = "pf_" + secrets.token_urlsafe(32)
        record = await self.accounts.create_token(
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
        return await self.accounts.tokens_for_user(principal.user.id)

    async def revoke_token(self, principal: Principal, token_id: str) -> TokenRecord:
        """Revoke one of the caller's tokens (its own included)."""
        principal.require(Scope.WRITE)
        if token_id not in {token.id for token in await self.tokens_for(principal)}:
            raise NotFound(f"no token {token_id}")
        return await self.accounts.revoke_token(token_id)

    async def authenticate(self, token: str) -> Principal | None:
        """The caller behind a bearer token, if the token is live; None for an unknown or
        revoked one. Raises :class:`TokenExpired` for one past its expiry."""
        record = await self.accounts.authenticate_token(token)
        if record is None:
            return None
        if record.expired(self._clock_ms()):
            expired = datetime.fromtimestamp(record.expires_at / 1000, UTC)
            msg = (
                f"the token expired at {expired:%Y-%m-%d %H:%M} UTC: log in again, or create "
                "a new token"
            )
            raise TokenExpired(msg)
        return Principal(await self.accounts.get_user(record.user_id), frozenset(record.scopes))
