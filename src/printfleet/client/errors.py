"""The exceptions the printfleet SDK raises, one per condition a caller branches on.

Each carries the server's error body (``{"error": code, "message": text}``) when there was one,
so a caller can show the server's own words and branch on its stable code.
"""

# ruff: noqa: N818 - the names read as the conditions (and statuses) they stand for, as in the cloud

from __future__ import annotations

from typing import Any

__all__ = [
    "BreakerOpen",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Overloaded",
    "PrintfleetError",
    "RateLimited",
    "ServerError",
    "Unauthenticated",
    "Unreachable",
]


class PrintfleetError(Exception):
    """Base of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        """The HTTP status, or None when no response arrived."""
        self.code = code
        """The server's stable error code (``not_found``, ``store_busy``, ...), if any."""
        self.body = body
        """The server's whole error body, if it sent one."""


class Unreachable(PrintfleetError):
    """No response: the server could not be reached, or the connection broke or timed out."""


class Unauthenticated(PrintfleetError):
    """401: no token, or the token is unknown, expired or revoked."""


class Forbidden(PrintfleetError):
    """403: the token is valid but may not do this."""


class NotFound(PrintfleetError):
    """404: no such thing, or not visible to this user."""


class Conflict(PrintfleetError):
    """409: the request clashes with the current state (already exists, wrong job state)."""


class InvalidRequest(PrintfleetError):
    """400/413/415/422: the request itself is wrong; sending it again will not help."""


class ServerError(PrintfleetError):
    """5xx other than 503: the server failed."""


class _RetryLater(PrintfleetError):
    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        status: int | None = None,
        code: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, body=body)
        self.retry_after = retry_after
        """Seconds the server asked the client to wait (from ``Retry-After``), if it said."""


class Overloaded(_RetryLater):
    """503: the server (or the printer it needs) cannot take this now; retry after a while."""


class RateLimited(_RetryLater):
    """429: this token sent too many requests; retry after a while."""


class BreakerOpen(PrintfleetError):
    """The client stopped calling a server that kept failing; it will try again later."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in
        """Seconds until the breaker lets a probe request through."""
