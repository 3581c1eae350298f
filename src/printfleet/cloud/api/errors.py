"""Every error the cloud can raise, as one JSON shape: ``{"error": code, "message": text}``.

The service and the store raise exceptions named for conditions (NotFound, Forbidden,
StoreBusy, ...); this module is the single table from those to HTTP statuses and stable codes
that clients can branch on.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from printfleet.cloud.files import (
    ChecksBusy,
    InvalidFile,
    MalformedUpload,
    UnsupportedFileType,
    UploadTooLarge,
)
from printfleet.cloud.store import (
    AlreadyExists,
    Conflict,
    IdempotencyMismatch,
    NotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from printfleet.cloud.usecases.principal import (
    Forbidden,
    InvalidRequest,
    PrinterUnreachable,
    RegistrationClosed,
)

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """What every error response carries."""

    error: str
    """A stable code: ``not_found``, ``forbidden``, ``store_busy``, ..."""
    message: str
    """What went wrong, for a person."""
    details: list[JsonValue] | None = None
    """For ``invalid_request`` from validation: each offending field."""


class Unauthenticated(Exception):  # noqa: N818 - reads as the HTTP status it becomes
    """No usable bearer token (401)."""

    def __init__(self, message: str, *, code: str = "unauthenticated") -> None:
        super().__init__(message)
        self.code = code


class TooManyLogins(Exception):  # noqa: N818 - reads as the condition
    """Too many wrong passwords lately for this account or from this address (429): wait
    ``retry_after_s`` seconds (see ``cloud/login_backoff.py``)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "too many wrong passwords for this account or from this address; retry after "
            "Retry-After seconds"
        )
        self.retry_after_s = retry_after_s


# Exception type -> (status, code). Subclasses are matched through their bases, so order only
# matters for readers: specific ones first.
STATUS_OF: dict[type[Exception], tuple[int, str]] = {
    Forbidden: (403, "forbidden"),
    RegistrationClosed: (403, "registration_closed"),
    InvalidRequest: (422, "invalid_request"),
    PrinterUnreachable: (503, "printer_unreachable"),
    NotFound: (404, "not_found"),
    AlreadyExists: (409, "already_exists"),
    Conflict: (409, "conflict"),
    IdempotencyMismatch: (422, "idempotency_mismatch"),
    StoreBusy: (503, "store_busy"),
    StoreUnavailable: (503, "store_unavailable"),
    StoreError: (500, "store_error"),
    UploadTooLarge: (413, "file_too_large"),
    UnsupportedFileType: (415, "unsupported_file_type"),
    InvalidFile: (422, "invalid_file"),
    MalformedUpload: (400, "malformed_upload"),
    ChecksBusy: (503, "upload_checks_busy"),
}

_RETRY_LATER = (StoreBusy, StoreUnavailable, PrinterUnreachable, ChecksBusy)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[JsonValue] | None = None,
) -> JSONResponse:
    """A response in the one error shape."""
    body = ErrorBody(error=code, message=message, details=details)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def retry_after() -> str:
    """A jittered Retry-After in seconds (1-4), so clients told to wait do not return in step."""
    return str(random.randint(1, 4))  # noqa: S311 - jitter, not secrecy


_STORE_TROUBLE = {
    "store_busy": "the database is busy; retry after Retry-After seconds",
    "store_unavailable": "the database is unavailable; retry after Retry-After seconds",
    "store_error": "the database could not do this",
}
"""What a client is told of the database's own troubles: the store's messages name the
database, its tables and the driver's words, which are the operator's business (logged)."""


def _mapped(error: Exception) -> JSONResponse:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            status, code = STATUS_OF[kind]
            break
    else:  # pragma: no cover - only registered types reach this handler
        status, code = 500, "internal_error"
    headers = {"Retry-After": retry_after()} if isinstance(error, _RETRY_LATER) else None
    message = str(error) or code.replace("_", " ")
    if code in _STORE_TROUBLE:
        if isinstance(error, _RETRY_LATER):
            # These come in floods under overload, and /health tells of them.
            log.debug("%s: %s", code, message)
        else:
            log.error("%s: %s", code, message, exc_info=error)
        message = _STORE_TROUBLE[code]
    return error_response(status, code, message, headers=headers)


async def _handle_mapped(request: Request, error: Exception) -> Response:
    return _mapped(error)


async def _handle_unauthenticated(request: Request, error: Exception) -> Response:
    assert isinstance(error, Unauthenticated)  # noqa: S101 - registered for this type only
    # RFC 6750: a token that was sent but is no good says so in the challenge.
    challenge = 'Bearer error="invalid_token"' if error.code == "invalid_token" else "Bearer"
    return error_response(401, error.code, str(error), headers={"WWW-Authenticate": challenge})


async def _handle_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for this type only
    details: list[JsonValue] = jsonable_encoder(
        [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in error.errors()]
    )
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid')}" if where else "the request is invalid"
    return error_response(422, "invalid_request", message, details=details)


async def _handle_too_many_logins(request: Request, error: Exception) -> Response:
    assert isinstance(error, TooManyLogins)  # noqa: S101 - registered for this type only
    return error_response(
        429,
        "too_many_failed_logins",
        str(error),
        headers={"Retry-After": str(error.retry_after_s)},
    )


async def _handle_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)  # noqa: S101 - registered for this type only
    code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
        error.status_code, "http_error"
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:  # noqa: PLR2004 - the status named above
        # Starlette names only the methods of the first route that matched the path; a path is
        # often served by several (GET and POST /api/v1/jobs), and Allow must name them all.
        methods = _documented_methods(request)
        if methods:
            headers["Allow"] = ", ".join(methods)
    return error_response(error.status_code, code, str(error.detail), headers=headers or None)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _documented_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document gives the request's path (HEAD with GET, as Starlette
    answers it); none for a path the document does not describe."""
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    paths = request.app.openapi().get("paths", {})
    methods: set[str] = set()
    for template, operations in paths.items():
        if _template(template).fullmatch(path):
            methods |= {method.upper() for method in operations} & _METHODS
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


@functools.cache
def _template(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    )


_Handler = Callable[[Request, Exception], Awaitable[Response]]


async def _handle_unexpected(request: Request, error: Exception) -> Response:
    # A bug. Starlette logs it with its traceback after this; the client gets the one shape
    # and no internals.
    return error_response(500, "internal_error", "something went wrong on the server")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the one error shape."""
    handlers: dict[type[Exception], _Handler] = dict.fromkeys(STATUS_OF, _handle_mapped)
    handlers[Exception] = _handle_unexpected
    handlers[Unauthenticated] = _handle_unauthenticated
    handlers[RequestValidationError] = _handle_validation
    handlers[StarletteHTTPException] = _handle_http
    handlers[TooManyLogins] = _handle_too_many_logins
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


RESPONSE_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: a body that cannot be read as JSON text, or an X-Request-Deadline "
    "that is not unix milliseconds",
    401: "No valid bearer token",
    403: "Not allowed (role or token scope)",
    404: "Not found, or not visible to this user (the two are answered alike)",
    409: "Conflicts with what exists (a unique name taken, or changed concurrently)",
    413: "The request body is larger than the server's limit (PRINTFLEET_MAX_BODY_BYTES)",
    422: "Invalid request",
    429: "Too many requests from this account (or, without a verified token, this address); "
    "retry after Retry-After seconds",
    503: "Unavailable for now; retry after Retry-After seconds",
    504: "The request's X-Request-Deadline had passed when it arrived; it was not run",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """The OpenAPI entries of these error statuses, described as above."""
    return {
        status: {"model": ErrorBody, "description": RESPONSE_DESCRIPTIONS[status]}
        for status in statuses
    }


ERROR_RESPONSES = error_responses(400, 401, 403, 404, 413, 422, 429, 503, 504)
"""The error responses every API route can give, for the OpenAPI document: admission control
(400, 429, 503, 504) and the body limit (413) stand in front of every route. Routes add the
ones only they give (409, ...)."""
