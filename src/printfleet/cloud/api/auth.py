"""Bearer-token authentication: ``Authorization: Bearer pf_...`` to a :class:`Principal`.

Routes declare what they need by parameter type: ``Reader`` (a live token with the read
scope) or ``Writer`` (the write scope). Writers are checked here, before a body is read, and
the service checks the scope again where it acts, so no transport can skip it. Each verdict is
passed on to admission control, which counts a verified token's requests against its account
and every other request against its address.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import Unauthenticated
from printfleet.cloud.service import Principal, Scope, TokenExpired

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `POST /api/v1/login` or `POST /api/v1/tokens`: `pf_...`",
)


async def authenticated(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller behind the bearer token; 401 without a live one."""
    if credentials is None:
        raise Unauthenticated("this needs an API token: Authorization: Bearer pf_...")
    try:
        principal = await context.service.accounts.authenticate(credentials.credentials)
    except TokenExpired as expired:
        context.callers.refused(credentials.credentials)
        raise Unauthenticated(str(expired), code="invalid_token") from None
    if principal is None:
        context.callers.refused(credentials.credentials)
        raise Unauthenticated("the token is unknown or revoked", code="invalid_token")
    # From now on admission control counts this token's requests against its account.
    context.callers.verified(credentials.credentials, principal.user.id)
    return principal


async def reader(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """An authenticated caller whose token may read."""
    principal.require(Scope.READ)
    return principal


async def writer(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """An authenticated caller whose token may write."""
    principal.require(Scope.WRITE)
    return principal


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
