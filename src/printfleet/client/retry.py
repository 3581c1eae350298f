"""When a printfleet client may send a request again, and how long it waits first.

Pure and clock-injected: no sockets, no sleeping. The SDK (and the overload benchmark's clients)
drive it: ask a :class:`RetryPolicy` for a :class:`RetryCall`, report each attempt's outcome, and
sleep for the delay it returns. Three mechanisms keep clients from storming a struggling server
(REFERENCE.md, "Overload facts"):

- :class:`Backoff`: exponential backoff with full jitter, so retries spread out instead of
  arriving in step;
- :class:`RetryBudget`: a token bucket that keeps retries to a fixed fraction of requests, so
  under sustained failure the load a client adds stays within ~10 %;
- :class:`CircuitBreaker`: after repeated failures, stop calling until a cool-down has passed,
  then let one probe through.

Why not stamina or tenacity here, as elsewhere in printfleet: they retry one call in a loop they
own, and keep no state between calls. The budget and the breaker are state shared by every
request a client sends (the budget by a whole process), decided per response (429 is this
client's fault, 503 the server's; ``Retry-After`` is a floor; a request not safe to send twice is
never sent again), and driven alike by the sync client, the async client and the overload
benchmark's clients, which do their own sleeping. That is a decision object, not a retry loop.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from printfleet.http_retry_after import parse_retry_after

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "Backoff",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "RetryBudget",
    "RetryCall",
    "RetryPolicy",
    "parse_retry_after",
]

Clock = Callable[[], float]
"""Seconds as a float: ``time.monotonic`` for intervals, ``time.time`` for wall-clock dates."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""RFC 9110 §9.2.2: sending these twice has the effect of sending them once."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""A request carrying this header may be sent again: the server answers a repeat with the
first answer (job creation, see docs/api.md)."""

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses that say "not now" rather than "no": the same request may succeed later."""

BREAKER_FAILURE_STATUSES = frozenset({500, 502, 503, 504})
"""Statuses that count against the server's health. 429 does not: it is about this client."""

# 2**_MAX_EXPONENT is far past any sane cap; stopping there keeps the float finite.
_MAX_EXPONENT = 64


@dataclass
class Backoff:
    """Exponential backoff with full jitter: wait U(0, min(cap, base * 2**n)) before retry n.

    Full jitter does the least total work of the AWS-measured variants: clients that failed
    together retry at scattered moments.
    """

    base: float = 0.2
    """Seconds: the upper bound of the first wait."""
    cap: float = 10.0
    """Seconds: no wait is longer than this."""
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0:
            raise ValueError(f"backoff base and cap must be positive, got {self.base}, {self.cap}")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (0 for the first retry)."""
        if retry < 0:
            raise ValueError(f"retry number must be >= 0, got {retry}")
        return min(self.cap, self.base * 2.0 ** min(retry, _MAX_EXPONENT))

    def delay(self, retry: int) -> float:
        """A wait before retry number ``retry``, drawn uniformly from [0, ceiling]."""
        return self.rng.uniform(0.0, self.ceiling(retry))


class RetryBudget:
    """A token bucket that bounds retries to a fraction of requests (gRPC A6, Finagle).

    Every first attempt deposits ``ratio`` tokens (up to ``max_tokens``); every retry withdraws
    one and is refused when less than one is left. The bucket starts full so a client that has
    sent nothing yet can still ride out a blip. Under sustained failure, retries therefore number
    at most ``max_tokens + ratio * requests``: with the defaults, 10 % of requests in the long run.
    Thread-safe: one budget may be shared by every client of a process.
    """

    def __init__(self, *, ratio: float = 0.1, max_tokens: float = 10.0) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f"retry budget ratio must be within [0, 1], got {ratio}")
        if max_tokens < 1:
            raise ValueError(f"retry budget max_tokens must be >= 1, got {max_tokens}")
        self.ratio = ratio
        self.max_tokens = max_tokens
        self._tokens = max_tokens
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """Tokens in the bucket now."""
        return self._tokens

    def deposit(self) -> None:
        """Record a first attempt (not a retry)."""
        with self._lock:
            self._tokens = min(self.max_tokens, self._tokens + self.ratio)

    def try_withdraw(self) -> bool:
        """Take one token for a retry; False (and nothing taken) when the budget is spent."""
        with self._lock:
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class BreakerState(enum.Enum):
    """Where a :class:`CircuitBreaker` is."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """Calls are refused until the cool-down has passed."""
    HALF_OPEN = "half_open"
    """The cool-down has passed: one probe call may go through to test the server."""


class CircuitBreaker:
    """Stops calling a service that keeps failing, then probes it after a cool-down.

    ``failure_threshold`` consecutive failures open the breaker. After ``cooldown`` seconds it is
    half-open: :meth:`allow` lets exactly one probe through (and another one only if that probe
    never reports back within a further cool-down). The probe's success closes the breaker; its
    failure opens it for another cool-down. Thread-safe.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if cooldown <= 0:
            raise ValueError(f"cooldown must be positive, got {cooldown}")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        """The state now (OPEN turns HALF_OPEN by the clock alone)."""
        with self._lock:
            return self._state(self._clock())

    def _state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def retry_in(self) -> float:
        """Seconds until a call may go through (0 when one may now)."""
        with self._lock:
            now = self._clock()
            if self._opened_at is None:
                return 0.0
            if self._probe_at is not None:
                return max(0.0, self._probe_at + self.cooldown - now)
            return max(0.0, self._opened_at + self.cooldown - now)

    def allow(self) -> bool:
        """Whether a call may go through now; in HALF_OPEN this claims the one probe."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.OPEN:
                return False
            # Half-open: one probe at a time. A probe that never reports (its caller was
            # cancelled) must not wedge the breaker, so its claim lapses after a cool-down.
            if self._probe_at is not None and now - self._probe_at < self.cooldown:
                return False
            self._probe_at = now
            return True

    def record_success(self) -> None:
        """A call succeeded: the service works, so close."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probe_at = None

    def record_failure(self) -> None:
        """A call failed in a way that says the service is unhealthy."""
        with self._lock:
            now = self._clock()
            if self._opened_at is not None:
                # A failed probe (or a late report from before opening): a fresh cool-down.
                if self._state(now) is BreakerState.HALF_OPEN:
                    self._opened_at = now
                    self._probe_at = None
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._opened_at = now
                self._probe_at = None


@dataclass
class RetryPolicy:
    """Which requests a client retries, how often, and how long it waits.

    One policy (with its budget and breaker) is shared by every request a client sends; each
    request gets its own :class:`RetryCall` from :meth:`start`.
    """

    max_attempts: int = 3
    """Attempts per request, the first included (Google SRE: at most 3)."""
    backoff: Backoff = field(default_factory=Backoff)
    budget: RetryBudget = field(default_factory=RetryBudget)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    max_retry_after: float = 30.0
    """A server asking for a longer wait than this gets an error raised, not a sleeping client."""
    wall_clock: Clock = time.time
    """For ``Retry-After`` HTTP dates."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """A policy that sends every request once and never opens a breaker (tests, scripts)."""
        return cls(
            max_attempts=1,
            breaker=CircuitBreaker(failure_threshold=2**31, cooldown=1.0),
        )

    @staticmethod
    def may_resend(method: str, headers: Mapping[str, str]) -> bool:
        """Whether sending this request twice is safe: an idempotent method, or a key.

        Anything else (job creation without its key, confirming a plate, ...) is sent once,
        whatever happens: a second copy might start a second print.
        """
        if method.upper() in IDEMPOTENT_METHODS:
            return True
        return any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers)

    def start(self, method: str, headers: Mapping[str, str]) -> RetryCall:
        """Begin one request; counts as a request for the retry budget."""
        self.budget.deposit()
        return RetryCall(self, resendable=self.may_resend(method, headers))


@dataclass
class RetryCall:
    """The retry decisions for one request. Report every attempt; sleep for what it returns.

    :meth:`admit` before each attempt (False: the breaker is open, do not send); then exactly one
    of :meth:`after_response` or :meth:`after_transport_error`, which return the seconds to wait
    before the next attempt, or None when this outcome is final.
    """

    policy: RetryPolicy
    resendable: bool
    attempts: int = 0
    """Attempts admitted so far."""
    retries_refused_by_budget: int = 0
    gave_up_reason: str | None = None
    """Why the last outcome was final although it was a retryable failure, for messages."""

    def admit(self) -> bool:
        """Whether the next attempt may be sent (the breaker is asked)."""
        if not self.policy.breaker.allow():
            return False
        self.attempts += 1
        return True

    def after_response(self, status: int, retry_after: str | None = None) -> float | None:
        """An attempt got a response with this status and ``Retry-After`` header."""
        breaker = self.policy.breaker
        if status in BREAKER_FAILURE_STATUSES:
            breaker.record_failure()
        else:
            breaker.record_success()
        if status not in RETRYABLE_STATUSES:
            return None
        wait = parse_retry_after(retry_after, now=self.policy.wall_clock())
        if wait is not None and wait > self.policy.max_retry_after:
            self.gave_up_reason = f"the server asked for a wait of {wait:.0f} s"
            return None
        return self._next_delay(wait)

    def after_transport_error(self) -> float | None:
        """An attempt got no response (connection refused or broken, timeout)."""
        self.policy.breaker.record_failure()
        return self._next_delay(None)

    def _next_delay(self, server_wait: float | None) -> float | None:
        if not self.resendable:
            self.gave_up_reason = "the request is not safe to send twice"
            return None
        if self.attempts >= self.policy.max_attempts:
            self.gave_up_reason = f"gave up after {self.attempts} attempts"
            return None
        if not self.policy.budget.try_withdraw():
            self.retries_refused_by_budget += 1
            self.gave_up_reason = "the retry budget is spent"
            return None
        retry = self.attempts - 1
        jittered = self.policy.backoff.delay(retry)
        # The server's wait is a floor; jitter on top keeps clients told the same number apart.
        return jittered if server_wait is None else server_wait + jittered * 0.1
