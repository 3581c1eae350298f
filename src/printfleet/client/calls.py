"""Every API request the SDK can make, described once for both the sync and the async client.

A :class:`Call` is what to send and how to read the answer; :class:`~printfleet.client.Client`
and :class:`~printfleet.client.AsyncClient` only send it. :func:`error_for` is the one table
from an error response to the SDK's exceptions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import TypeAdapter

from printfleet.client import errors
from printfleet.client.models import (
    Alert,
    AuditEntry,
    Channel,
    ChannelKind,
    CommandSent,
    Delivery,
    Health,
    HeaterName,
    IssuedToken,
    Job,
    JobDetail,
    MaintenancePart,
    NotificationSent,
    Pool,
    Printer,
    PrintFile,
    Provisioned,
    Share,
    ShareRole,
    Stats,
    TelemetryPoint,
    Token,
    TokenScope,
    User,
)
from printfleet.client.retry import IDEMPOTENCY_HEADER
from printfleet.http_retry_after import parse_retry_after
from printfleet.protocol.lifecycle import JobState

T = TypeVar("T")

API = "/api/v1"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its successful answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    guarded: bool = True
    """Through the retry policy and breaker; False for health checks, which report, not fail."""
    accept: frozenset[int] = frozenset()
    """Error statuses whose body is still the answer (health's 503)."""


def _reader(kind: type[T] | Any) -> Callable[[httpx.Response], T]:
    adapter: TypeAdapter[T] = TypeAdapter(kind)

    def read(response: httpx.Response) -> T:
        return adapter.validate_json(response.content)

    return read


def error_for(response: httpx.Response, *, now: float | None = None) -> errors.PrintfleetError:
    """The exception for an error response, carrying the server's error body."""
    status = response.status_code
    body: dict[str, Any] | None
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body = parsed if isinstance(parsed, dict) else None
    code = body.get("error") if body is not None else None
    message = body.get("message") if body is not None else None
    if (not isinstance(message, str) or not message) and body is None and response.text.strip():
        message = response.text.strip()[:300]
    if not isinstance(message, str) or not message:
        message = f"HTTP {status} {response.reason_phrase}".strip()
    shared: dict[str, Any] = {
        "status": status,
        "code": code if isinstance(code, str) else None,
        "body": body,
    }
    if status in {429, 503}:
        wait = parse_retry_after(response.headers.get("Retry-After"), now=now)
        kind = errors.Overloaded if status == 503 else errors.RateLimited  # noqa: PLR2004 - 429
        return kind(message, retry_after=wait, **shared)
    simple: dict[int, type[errors.PrintfleetError]] = {
        401: errors.Unauthenticated,
        403: errors.Forbidden,
        404: errors.NotFound,
        409: errors.Conflict,
    }
    if status in simple:
        return simple[status](message, **shared)
    if status >= 500:  # noqa: PLR2004 - the HTTP server-error class
        return errors.ServerError(message, **shared)
    return errors.InvalidRequest(message, **shared)


def _params(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


# -- accounts ------------------------------------------------------------------------------------


def register(email: str, password: str, display_name: str = "") -> Call[User]:
    """Create an account."""
    body = {"email": email, "password": password, "display_name": display_name}
    return Call("POST", f"{API}/users", _reader(User), json=body)


def login(
    email: str,
    password: str,
    token_name: str = "login",  # noqa: S107 - a label
) -> Call[IssuedToken]:
    """Exchange e-mail and password for a read/write token."""
    body = {"email": email, "password": password, "token_name": token_name}
    return Call("POST", f"{API}/login", _reader(IssuedToken), json=body)


def list_tokens() -> Call[list[Token]]:
    """The caller's tokens."""
    return Call("GET", f"{API}/tokens", _reader(list[Token]))


def create_token(
    name: str, scopes: list[TokenScope], *, expires_in_s: int | None = None
) -> Call[IssuedToken]:
    """A new token for the caller; it expires after ``expires_in_s`` (the server's default if
    None)."""
    body: dict[str, Any] = {"name": name, "scopes": scopes}
    if expires_in_s is not None:
        body["expires_in_s"] = expires_in_s
    return Call("POST", f"{API}/tokens", _reader(IssuedToken), json=body)


def revoke_token(token_id: str) -> Call[Token]:
    """Revoke one of the caller's tokens."""
    return Call("DELETE", f"{API}/tokens/{token_id}", _reader(Token))


# -- printers ------------------------------------------------------------------------------------


def list_printers() -> Call[list[Printer]]:
    """The printers the caller can see."""
    return Call("GET", f"{API}/printers", _reader(list[Printer]))


def get_printer(printer_id: str) -> Call[Printer]:
    """One printer."""
    return Call("GET", f"{API}/printers/{printer_id}", _reader(Printer))


def printer_telemetry(
    printer_id: str, *, since: int | None = None, last_s: float | None = None, limit: int = 1000
) -> Call[list[TelemetryPoint]]:
    """A printer's telemetry history, oldest first (``since`` cloud ms or the last ``last_s``)."""
    return Call(
        "GET",
        f"{API}/printers/{printer_id}/telemetry",
        _reader(list[TelemetryPoint]),
        params=_params(since=since, last_s=last_s, limit=limit),
    )


def provision_printer(printer_id: str, name: str, model: str) -> Call[Provisioned]:
    """Provision a printer the caller will own."""
    body = {"id": printer_id, "name": name, "model": model}
    return Call("POST", f"{API}/printers", _reader(Provisioned), json=body)


def share_printer(printer_id: str, email: str, role: ShareRole) -> Call[Share]:
    """Share a printer with another user."""
    return Call(
        "POST",
        f"{API}/printers/{printer_id}/shares",
        _reader(Share),
        json={"email": email, "role": role},
    )


def shares(printer_id: str) -> Call[list[Share]]:
    """Who a printer the caller owns is shared with."""
    return Call("GET", f"{API}/printers/{printer_id}/shares", _reader(list[Share]))


def unshare_printer(printer_id: str, email: str) -> Call[Share]:
    """Take a share of a printer the caller owns away; the share as it was."""
    return Call("DELETE", f"{API}/printers/{printer_id}/shares/{email}", _reader(Share))


def confirm_plate(printer_id: str) -> Call[CommandSent]:
    """Confirm the printer's plate is clear."""
    return Call("POST", f"{API}/printers/{printer_id}/confirm-plate", _reader(CommandSent))


def set_plate_check(printer_id: str, *, enabled: bool, confirm: bool = False) -> Call[Printer]:
    """Turn the plate check on or off (off needs ``confirm``)."""
    return Call(
        "PUT",
        f"{API}/printers/{printer_id}/plate-check",
        _reader(Printer),
        json={"enabled": enabled, "confirm": confirm},
    )


def set_temperature(printer_id: str, heater: HeaterName, target_c: int) -> Call[CommandSent]:
    """Preheat or cool a heater (0 turns it off); sent now or not at all."""
    return Call(
        "POST",
        f"{API}/printers/{printer_id}/temperature",
        _reader(CommandSent),
        json={"heater": heater, "target_c": target_c},
    )


def clear_fault(printer_id: str) -> Call[CommandSent]:
    """Clear a latched thermal fault."""
    return Call("POST", f"{API}/printers/{printer_id}/clear-fault", _reader(CommandSent))


def audit(printer_id: str, *, since: int | None = None, limit: int = 100) -> Call[list[AuditEntry]]:
    """A printer's audit log, oldest first."""
    return Call(
        "GET",
        f"{API}/audit",
        _reader(list[AuditEntry]),
        params=_params(printer_id=printer_id, since=since, limit=limit),
    )


# -- files ---------------------------------------------------------------------------------------


def list_files() -> Call[list[PrintFile]]:
    """The caller's files, newest first."""
    return Call("GET", f"{API}/files", _reader(list[PrintFile]))


def get_file(file_id: str) -> Call[PrintFile]:
    """One of the caller's files."""
    return Call("GET", f"{API}/files/{file_id}", _reader(PrintFile))


upload_answer: Call[PrintFile] = Call("POST", f"{API}/files", _reader(PrintFile))
"""How an upload's answer is read (uploads are streamed, so they are sent apart)."""


# -- jobs ----------------------------------------------------------------------------------------


class FromFile(Enum):
    """A job requirement left out: the cloud takes it from the file's slicer metadata."""

    FROM_FILE = "from the file"


FROM_FILE = FromFile.FROM_FILE


def create_job(
    file_id: str,
    *,
    printer_id: str | None = None,
    model: str | None = None,
    pool_id: str | None = None,
    start_within_s: int | None = None,
    notify_completion: bool = False,
    idempotency_key: str | None = None,
    priority: int = 0,
    copies: int = 1,
    material: str | FromFile | None = FROM_FILE,
    nozzle_um: int | FromFile | None = FROM_FILE,
) -> Call[Job]:
    """Queue a print (``copies`` of it); always with an idempotency key, so that it may be
    retried safely. ``material`` and ``nozzle_um`` left out come from the file's metadata;
    None means any."""
    if sum(target is not None for target in (printer_id, model, pool_id)) != 1:
        raise ValueError("a job needs exactly one of printer_id, model and pool_id")
    body = _params(
        file_id=file_id,
        printer_id=printer_id,
        model=model,
        pool_id=pool_id,
        start_within_s=start_within_s,
        notify_completion=notify_completion,
    )
    if priority:
        body["priority"] = priority
    if copies != 1:
        body["copies"] = copies
    # None is sent (it means "any"); left out, the cloud reads the file's metadata.
    if not isinstance(material, FromFile):
        body["material"] = material
    if not isinstance(nozzle_um, FromFile):
        body["nozzle_um"] = nozzle_um
    key = idempotency_key or f"sdk-{uuid.uuid4()}"
    return Call("POST", f"{API}/jobs", _reader(Job), json=body, headers={IDEMPOTENCY_HEADER: key})


def list_jobs(
    *,
    states: list[JobState] | None = None,
    printer_id: str | None = None,
    batch_id: str | None = None,
    older_than: str | None = None,
    limit: int = 50,
) -> Call[list[Job]]:
    """The caller's jobs, newest first, a page at a time."""
    params = _params(printer_id=printer_id, batch_id=batch_id, older_than=older_than, limit=limit)
    if states:
        params["state"] = [str(state) for state in states]
    return Call("GET", f"{API}/jobs", _reader(list[Job]), params=params)


def set_priority(job_id: str, priority: int) -> Call[Job]:
    """Give a waiting job a new priority (-100..100; higher starts first)."""
    return Call("PATCH", f"{API}/jobs/{job_id}", _reader(Job), json={"priority": priority})


def get_job(job_id: str) -> Call[JobDetail]:
    """One job with its audit trail."""
    return Call("GET", f"{API}/jobs/{job_id}", _reader(JobDetail))


def cancel_job(job_id: str) -> Call[Job]:
    """Cancel a job."""
    return Call("POST", f"{API}/jobs/{job_id}/cancel", _reader(Job))


def pause_job(job_id: str) -> Call[Job]:
    """Pause a printing job."""
    return Call("POST", f"{API}/jobs/{job_id}/pause", _reader(Job))


def resume_job(job_id: str) -> Call[Job]:
    """Resume a paused job."""
    return Call("POST", f"{API}/jobs/{job_id}/resume", _reader(Job))


# -- pools ---------------------------------------------------------------------------------------


def list_pools() -> Call[list[Pool]]:
    """The caller's pools, by name."""
    return Call("GET", f"{API}/pools", _reader(list[Pool]))


def get_pool(pool_id: str) -> Call[Pool]:
    """One of the caller's pools."""
    return Call("GET", f"{API}/pools/{pool_id}", _reader(Pool))


def create_pool(name: str, printer_ids: list[str]) -> Call[Pool]:
    """Make a pool of printers the caller owns or operates."""
    body = {"name": name, "printer_ids": printer_ids}
    return Call("POST", f"{API}/pools", _reader(Pool), json=body)


def update_pool(pool_id: str, name: str, printer_ids: list[str]) -> Call[Pool]:
    """Rename a pool and replace its printers."""
    body = {"name": name, "printer_ids": printer_ids}
    return Call("PUT", f"{API}/pools/{pool_id}", _reader(Pool), json=body)


def delete_pool(pool_id: str) -> Call[Pool]:
    """Delete a pool (refused while jobs not yet ended target it)."""
    return Call("DELETE", f"{API}/pools/{pool_id}", _reader(Pool))


# -- alerts and operations -----------------------------------------------------------------------


def list_alerts(*, unacked: bool = False) -> Call[list[Alert]]:
    """Alerts of the printers the caller can see, newest first."""
    params = {"unacked": "true"} if unacked else None
    return Call("GET", f"{API}/alerts", _reader(list[Alert]), params=params)


def ack_alert(alert_id: str) -> Call[Alert]:
    """Acknowledge an alert."""
    return Call("POST", f"{API}/alerts/{alert_id}/ack", _reader(Alert))


def stats(
    *,
    by: Literal["printer", "user", "model", "pool"] = "printer",
    since: int | str | None = None,
    until: int | str | None = None,
) -> Call[Stats]:
    """Statistics of the caller's ended jobs per printer, user or model; ``since`` and
    ``until`` are cloud ms or ISO 8601 times."""
    params = _params(by=by, since=since, until=until)
    return Call("GET", f"{API}/stats", _reader(Stats), params=params)


def stats_csv(
    *,
    by: Literal["printer", "user", "model", "pool"] = "printer",
    since: int | str | None = None,
    until: int | str | None = None,
) -> Call[str]:
    """:func:`stats` as the server writes it in CSV: one line per group, then ``all``."""
    params = _params(by=by, since=since, until=until)
    return Call("GET", f"{API}/stats", lambda response: response.text, params=params, headers=_CSV)


_CSV = {"Accept": "text/csv"}


def list_channels() -> Call[list[Channel]]:
    """The caller's notification channels."""
    return Call("GET", f"{API}/channels", _reader(list[Channel]))


def add_channel(kind: ChannelKind, target: str, secret: str | None = None) -> Call[Channel]:
    """Add a webhook (with its signing secret) or an Apprise URL."""
    body = _params(kind=kind, target=target, secret=secret)
    return Call("POST", f"{API}/channels", _reader(Channel), json=body)


def remove_channel(channel_id: str) -> Call[Channel]:
    """Remove a channel."""
    return Call("DELETE", f"{API}/channels/{channel_id}", _reader(Channel))


def test_channel(channel_id: str) -> Call[NotificationSent]:
    """Send a ``test`` notification to a channel now."""
    return Call("POST", f"{API}/channels/{channel_id}/test", _reader(NotificationSent))


def deliveries(channel_id: str, *, limit: int = 100) -> Call[list[Delivery]]:
    """A channel's recent deliveries, newest first."""
    return Call(
        "GET",
        f"{API}/channels/{channel_id}/deliveries",
        _reader(list[Delivery]),
        params={"limit": limit},
    )


def health() -> Call[Health]:
    """The cloud's health; answered (not raised) when it is unavailable."""
    return Call("GET", "/health", _reader(Health), guarded=False, accept=frozenset({503}))


# -- maintenance ---------------------------------------------------------------------------------


def maintenance(printer_id: str) -> Call[list[MaintenancePart]]:
    """A printer's parts: print hours since service, interval, and whether each is due."""
    return Call("GET", f"{API}/printers/{printer_id}/maintenance", _reader(list[MaintenancePart]))


def mark_serviced(printer_id: str, part: str) -> Call[list[MaintenancePart]]:
    """Say ``part`` was serviced now; its reminder, if raised, is resolved."""
    return Call(
        "POST",
        f"{API}/printers/{printer_id}/maintenance/{part}/serviced",
        _reader(list[MaintenancePart]),
    )


def set_maintenance_interval(
    printer_id: str, part: str, interval_h: float | None
) -> Call[list[MaintenancePart]]:
    """Service ``part`` every ``interval_h`` print hours (None: the cloud's default)."""
    return Call(
        "PUT",
        f"{API}/printers/{printer_id}/maintenance/{part}",
        _reader(list[MaintenancePart]),
        json={"interval_h": interval_h},
    )
