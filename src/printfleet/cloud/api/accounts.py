"""Accounts and API tokens: register, log in, and manage the tokens every other route needs.

Registration is closed by default: only the very first account may be created through the
API (that is how a fresh install gets its first user), unless the operator opens it with
``PRINTFLEET_OPEN_REGISTRATION=1``. Passwords are argon2-hashed by the service.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import exc, select

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES, RegistrationClosed, Unauthenticated
from printfleet.cloud.api.schemas import Login, NewToken, NewUser, TokenCreated, TokenOut, UserOut
from printfleet.cloud.store import AlreadyExists, Store, StoreUnavailable
from printfleet.cloud.store.models import User

router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=ERROR_RESPONSES)


async def _has_users(store: Store) -> bool:
    # The store has no "any users?" question yet; this one read goes to its engine directly.
    try:
        async with store.engine.connect() as connection:
            return await connection.scalar(select(User.id).limit(1)) is not None
    except exc.SQLAlchemyError as error:
        raise StoreUnavailable(f"database {store.url} is unavailable") from error


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def register(body: NewUser, context: Context) -> UserOut:
    """Create an account: always the first one, others only if registration is open."""
    if not context.open_registration and await _has_users(context.store):
        raise RegistrationClosed(
            "registration is closed on this server; ask its operator for an account"
        )
    try:
        user = await context.service.register_user(body.email, body.password, body.display_name)
    except AlreadyExists:
        raise AlreadyExists("an account with this e-mail address exists") from None
    return UserOut.of(user)


@router.post("/login")
async def login(body: Login, context: Context) -> TokenCreated:
    """Exchange e-mail and password for a new read/write token (it expires: 30 days by default)."""
    result = await context.service.login(body.email, body.password, token_name=body.token_name)
    if result is None:
        # One answer for an unknown address and a wrong password: no hint which it was.
        raise Unauthenticated("wrong e-mail address or password", code="invalid_credentials")
    record, token = result
    return TokenCreated.created(record, token)


@router.get("/tokens")
async def list_tokens(principal: Reader, context: Context) -> list[TokenOut]:
    """The caller's tokens, revoked ones included, oldest first."""
    return [TokenOut.of(token) for token in await context.service.tokens_for(principal)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: NewToken, principal: Writer, context: Context) -> TokenCreated:
    """A new token for scripts or the SDK, e.g. read-only for a dashboard; shown this once.

    It works for ``expires_in_s`` seconds (at most 365 days), by default as long as a login's.
    """
    record, token = await context.service.issue_token(
        principal, body.name, body.scopes, lifetime_s=body.expires_in_s
    )
    return TokenCreated.created(record, token)


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: str, principal: Writer, context: Context) -> TokenOut:
    """Revoke one of the caller's tokens; it stops working at once."""
    return TokenOut.of(await context.service.revoke_token(principal, token_id))
