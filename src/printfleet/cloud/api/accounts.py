"""Accounts and API tokens: register, log in, and manage the tokens every other route needs.

Registration is closed by default: only the very first account may be created through the
API (that is how a fresh install gets its first user), unless the operator opens it with
``PRINTFLEET_OPEN_REGISTRATION=1``. Passwords are argon2-hashed by the service.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import (
    ERROR_RESPONSES,
    ErrorBody,
    TooManyLogins,
    Unauthenticated,
    error_responses,
)
from printfleet.cloud.api.schemas import Login, NewToken, NewUser, TokenCreated, TokenOut, UserOut

router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=ERROR_RESPONSES)


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def register(body: NewUser, context: Context) -> UserOut:
    """Create an account: always the first one, others only if registration is open."""
    user = await context.service.accounts.sign_up(
        body.email, body.password, body.display_name, open_registration=context.open_registration
    )
    return UserOut.of(user)


@router.post(
    "/login",
    responses={
        401: {"model": ErrorBody, "description": "Wrong e-mail address or password"},
        429: {
            "model": ErrorBody,
            "description": "Too many wrong passwords for this account or from this address, "
            "or too many requests; retry after Retry-After seconds",
        },
    },
)
async def login(body: Login, request: Request, context: Context) -> TokenCreated:
    """Exchange e-mail and password for a new read/write token (it expires: 30 days by default)."""
    address = request.client.host if request.client is not None else "unknown"
    # Before the password is hashed: a guesser made to wait costs the server nothing.
    attempt = context.logins.begin(body.email, address)
    if attempt.wait_s is not None:
        raise TooManyLogins(attempt.wait_s)
    try:
        result = await context.service.accounts.login(
            body.email, body.password, token_name=body.token_name
        )
    except BaseException:
        context.logins.abandoned(attempt)
        raise
    if result is None:
        # One answer for an unknown address and a wrong password: no hint which it was.
        raise Unauthenticated("wrong e-mail address or password", code="invalid_credentials")
    context.logins.succeeded(attempt)
    record, token = result
    context.callers.verified(token, record.user_id)
    return TokenCreated.created(record, token)


@router.get("/tokens")
async def list_tokens(principal: Reader, context: Context) -> list[TokenOut]:
    """The caller's tokens, revoked ones included, oldest first."""
    return [TokenOut.of(token) for token in await context.service.accounts.tokens_for(principal)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: NewToken, principal: Writer, context: Context) -> TokenCreated:
    """A new token for scripts or the SDK, e.g. read-only for a dashboard; shown this once.

    It works for ``expires_in_s`` seconds (at most 365 days), by default as long as a login's.
    """
    record, token = await context.service.accounts.issue_token(
        principal, body.name, body.scopes, lifetime_s=body.expires_in_s
    )
    context.callers.verified(token, record.user_id)
    return TokenCreated.created(record, token)


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: str, principal: Writer, context: Context) -> TokenOut:
    """Revoke one of the caller's tokens; it stops working at once."""
    return TokenOut.of(await context.service.accounts.revoke_token(principal, token_id))
