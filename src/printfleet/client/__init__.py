"""The printfleet Python SDK: typed sync and async clients for the cloud's HTTP API.

Retries are safe by construction: only idempotent requests (and job creation, which carries an
idempotency key) are sent again, with jittered backoff, within a retry budget, behind a breaker.
"""

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
from printfleet.client.retry import Backoff, CircuitBreaker, RetryBudget, RetryPolicy

__all__ = [
    "Backoff",
    "BreakerOpen",
    "CircuitBreaker",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Overloaded",
    "PrintfleetError",
    "RateLimited",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "Unauthenticated",
    "Unreachable",
]
