"""The printfleet Python SDK: typed sync and async clients for the cloud's HTTP API.

    from printfleet.client import Client

    with Client("https://print.example.org", token="pf_...") as cloud:
        file = cloud.upload("cube.gcode")
        job = cloud.create_job(file.id, printer_id="mk4-1", start_within_s=600)

Retries are safe by construction: only idempotent requests (and job creation, which always
carries an idempotency key) are sent again, after a jittered wait or the server's
``Retry-After``, within a retry budget, and never while the breaker is open.
"""

from printfleet.client.async_client import AsyncClient
from printfleet.client.calls import Call
from printfleet.client.errors import (
    BreakerOpen,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Overloaded,
    PrintfleetError,
    RateLimited,
    ServerError,
    Unauthenticated,
    Unreachable,
)
from printfleet.client.events import Notification, StreamEvent
from printfleet.client.models import (
    Alert,
    AuditEntry,
    Channel,
    CommandSent,
    Delivery,
    Health,
    IssuedToken,
    Job,
    JobDetail,
    NotificationSent,
    Pool,
    Printer,
    PrintFile,
    Provisioned,
    Share,
    Token,
    User,
)
from printfleet.client.retry import Backoff, CircuitBreaker, RetryBudget, RetryPolicy
from printfleet.client.sync_client import Client

__all__ = [
    "Alert",
    "AsyncClient",
    "AuditEntry",
    "Backoff",
    "BreakerOpen",
    "Call",
    "Channel",
    "CircuitBreaker",
    "Client",
    "CommandSent",
    "Conflict",
    "Delivery",
    "Forbidden",
    "Health",
    "InvalidRequest",
    "IssuedToken",
    "Job",
    "JobDetail",
    "NotFound",
    "Notification",
    "NotificationSent",
    "Overloaded",
    "Pool",
    "PrintFile",
    "Printer",
    "PrintfleetError",
    "Provisioned",
    "RateLimited",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "Share",
    "StreamEvent",
    "Token",
    "Unauthenticated",
    "Unreachable",
    "User",
]
