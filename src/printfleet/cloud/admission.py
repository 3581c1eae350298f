"""Admission control: which HTTP requests the cloud takes on, decided before any work is done.

An overloaded server that queues everything ends up answering requests whose callers gave up
long ago, and the callers' retries keep it there (a metastable failure). This module keeps the
cloud out of that state by refusing early and cheaply, in this order:

1. a request whose caller's deadline (``X-Request-Deadline``, unix milliseconds) has passed is
   dropped (504): nobody is waiting for the answer;
2. each caller has a token bucket; a caller over its rate gets 429 with the seconds until it
   has a token again. A caller is what the server has verified: the account behind a bearer
   token the API has authenticated (:class:`VerifiedCallers`), else the client address. A
   bearer the API has not verified counts against its address, so making up a new one per
   request earns no fresh bucket;
3. at most ``max_concurrent`` requests run at once; one more gets 503 with a jittered
   ``Retry-After`` right away, never a place in a queue.

Health, metrics and the printers' file downloads are exempt: a balancer must see the truth and
printers must get their files while people are being turned away. :class:`AdmissionGate` holds
the rules and counts (no I/O); :class:`AdmissionMiddleware` is the pure-ASGI shell around the app.
:class:`BodyLimitMiddleware` refuses request bodies over a size limit before the app reads them.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from printfleet.cloud.api.errors import retry_after
from printfleet.cloud.callers import VerifiedCallers, token_digest

__all__ = [
    "DEADLINE_HEADER",
    "DEFAULT_MAX_BODY_BYTES",
    "EXEMPT_PREFIXES",
    "STREAM_PREFIXES",
    "AdmissionCollector",
    "AdmissionGate",
    "AdmissionLimits",
    "AdmissionMiddleware",
    "BodyLimitMiddleware",
    "Refusal",
    "Rejection",
    "caller_of",
]

DEADLINE_HEADER = "X-Request-Deadline"
"""When the caller stops waiting, in unix milliseconds. Absolute rather than relative, so time a
request spent queued in the network or the kernel counts too; clients need NTP-kept clocks,
which printfleet assumes anyway (job start windows, S2)."""

EXEMPT_PREFIXES: tuple[str, ...] = ("/health", "/metrics", "/printer-files/")
"""Paths never refused: health and metrics (the truth for balancers and Prometheus, above all
under overload) and printer file downloads (a job that was admitted must be able to print)."""

STREAM_PREFIXES: tuple[str, ...] = ("/api/v1/events",)
"""Long-lived streams: rate-limited and deadline-checked like any request, but not counted
against the concurrency limit, which a few open dashboards would otherwise use up for good
(the stream route limits streams per user itself)."""


class Refusal(enum.Enum):
    """Why a request was turned away; the label of the rejection counter."""

    EXPIRED = "expired"
    """Its deadline had passed on arrival (504)."""
    RATE_LIMITED = "rate_limited"
    """Its caller is over the per-caller rate (429)."""
    OVERLOADED = "overloaded"
    """The concurrency limit was reached (503)."""
    BAD_DEADLINE = "bad_deadline"
    """The deadline header was not a number of milliseconds (400)."""


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The limits one cloud process enforces."""

    max_concurrent: int = 8
    """Requests in progress at once. Enough to keep the event loop and the database pool busy;
    more only lengthens everyone's wait."""
    rate_per_s: float = 20.0
    """Sustained requests per second per caller (an account, or an address)."""
    burst: float = 40.0
    """Requests a caller may send at once after being quiet."""
    max_callers: int = 10_000
    """Callers whose buckets are remembered; the least recently seen are forgotten first (a
    forgotten caller starts again with a full bucket)."""
    exempt: tuple[str, ...] = EXEMPT_PREFIXES
    streams: tuple[str, ...] = STREAM_PREFIXES

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate_per_s must be a positive number, got {self.rate_per_s}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        if self.max_callers < 1:
            raise ValueError(f"max_callers must be >= 1, got {self.max_callers}")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused request's answer: status, the API's error body, headers."""

    reason: Refusal
    status: int
    code: str
    message: str
    retry_after_s: int | None = None

    def body(self) -> bytes:
        """The error in the API's one shape (see ``cloud/api/errors.py``)."""
        return json.dumps({"error": self.code, "message": self.message}).encode()


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class AdmissionGate:
    """The admission rules and their counts, without I/O: the middleware asks :meth:`enter`
    and calls :meth:`leave` once an admitted request is done."""

    limits: AdmissionLimits = field(default_factory=AdmissionLimits)
    callers: VerifiedCallers = field(default_factory=VerifiedCallers)
    """Which bearer tokens stand for which account (the API tells it)."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, for the token buckets."""
    wall_clock_ms: Callable[[], float] = lambda: time.time() * 1000
    """Unix milliseconds, for deadlines."""
    jitter: Callable[[], str] = retry_after
    """The ``Retry-After`` seconds of a 503; jittered so shed clients do not return in step."""
    in_flight: int = 0
    admitted: int = 0
    exempted: int = 0
    rejected: collections.Counter[Refusal] = field(default_factory=collections.Counter)
    _buckets: collections.OrderedDict[str, _Bucket] = field(default_factory=collections.OrderedDict)

    def exempt(self, path: str) -> bool:
        """Whether ``path`` is never refused."""
        return path.startswith(self.limits.exempt)

    def stream(self, path: str) -> bool:
        """Whether ``path`` is a long-lived stream, admitted without a concurrency slot."""
        return path.startswith(self.limits.streams)

    def enter(
        self, caller: str, deadline: str | None, *, takes_slot: bool = True
    ) -> Rejection | None:
        """Admit a request (None) or say why not. An admitted request that ``takes_slot`` (all
        but streams) holds one of the concurrency slots until :meth:`leave` is called.

        ``caller`` names whom the rate applies to; ``deadline`` is the raw header, if any.
        """
        rejection = self._check_deadline(deadline)
        if rejection is None:
            rejection = self._take_token(caller)
        if rejection is None and takes_slot and self.in_flight >= self.limits.max_concurrent:
            # Refund the caller's token: being shed must not also cost it its quota.
            self._buckets[caller].tokens += 1
            rejection = Rejection(
                Refusal.OVERLOADED,
                503,
                "overloaded",
                "the server is at its limit of requests in progress; retry after Retry-After "
                "seconds",
                int(self.jitter()),
            )
        if rejection is not None:
            self.rejected[rejection.reason] += 1
            return rejection
        self.admitted += 1
        if takes_slot:
            self.in_flight += 1
        return None

    def leave(self) -> None:
        """An admitted request is done (answered, failed or cancelled)."""
        self.in_flight -= 1

    def _check_deadline(self, deadline: str | None) -> Rejection | None:
        if deadline is None:
            return None
        try:
            when = float(deadline)
        except ValueError:
            when = math.nan
        if not math.isfinite(when):
            return Rejection(
                Refusal.BAD_DEADLINE,
                400,
                "invalid_request",
                f"{DEADLINE_HEADER} must be unix milliseconds, got {deadline[:40]!r}",
            )
        if when <= self.wall_clock_ms():
            return Rejection(
                Refusal.EXPIRED,
                504,
                "deadline_exceeded",
                f"the request's {DEADLINE_HEADER} had passed when it arrived; it was not run",
            )
        return None

    def _take_token(self, caller: str) -> Rejection | None:
        now = self.clock()
        limits = self.limits
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(limits.burst, now)
            if len(self._buckets) > limits.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
            bucket.tokens = min(
                limits.burst, bucket.tokens + (now - bucket.updated) * limits.rate_per_s
            )
            bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        wait = math.ceil((1 - bucket.tokens) / limits.rate_per_s)
        return Rejection(
            Refusal.RATE_LIMITED,
            429,
            "rate_limited",
            f"more than {limits.rate_per_s:g} requests per second from this caller; retry "
            "after Retry-After seconds",
            max(1, wait),
        )


def caller_of(scope: Scope, callers: VerifiedCallers) -> str:
    """Whom a request counts against: the account of its bearer token if the API has verified
    that token, else its client address. Anyone can send a bearer, so an unverified one must
    not earn a bucket of its own; the address is the one thing the server saw for itself
    (behind a proxy, only once the app has been told to trust it: ``trusted_proxies``)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                account = callers.account_of(token_digest(token.strip()))
                if account is not None:
                    return f"account:{account}"
            break
    client = scope.get("client")
    return f"address:{client[0]}" if client else "address:unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class AdmissionMiddleware:
    """Pure ASGI middleware applying an :class:`AdmissionGate` to every HTTP request.

    Pure ASGI rather than Starlette's BaseHTTPMiddleware: a refusal is written straight to the
    connection, without building a Request or running a task, so refusing stays far cheaper
    than serving.
    """

    def __init__(self, app: ASGIApp, gate: AdmissionGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if scope["type"] != "http" or gate.exempt(scope["path"]):
            if scope["type"] == "http":
                gate.exempted += 1
            await self.app(scope, receive, send)
            return
        takes_slot = not gate.stream(scope["path"])
        rejection = gate.enter(
            caller_of(scope, gate.callers),
            _header(scope, b"x-request-deadline"),
            takes_slot=takes_slot,
        )
        if rejection is not None:
            await _refuse(rejection, send)
            return
        if not takes_slot:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.leave()


async def _refuse(rejection: Rejection, send: Send) -> None:
    body = rejection.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if rejection.retry_after_s is not None:
        headers.append((b"retry-after", str(rejection.retry_after_s).encode()))
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""The largest request body a JSON route takes: the biggest legitimate one (a channel with a
2000-character URL) is a few KiB."""


class BodyLimitMiddleware:
    """Pure ASGI middleware refusing, with 413 in the API's error shape, any request body over
    ``max_bytes``, before the app reads it.

    A declared ``Content-Length`` over the limit is refused on the headers alone. A body without
    one (chunked) is read here up to the limit and no further, then handed to the app whole, so
    neither JSON parsing nor anything else ever holds more than ``max_bytes`` of it. The refusal
    closes the connection, so the rest of the body is never read. ``streamed`` names the
    ``(method, path)`` pairs that read their body as a stream and enforce a limit of their own
    (uploads).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        streamed: Collection[tuple[str, str]] = (),
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = frozenset(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            # The server delivers no more than the declared length, so the header is the bound.
            if length.strip().isdigit() and int(length) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete: nobody to answer
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": bytes(body), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()  # from here on, only the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "body_too_large",
                "message": f"the request body is larger than the limit of {self.max_bytes} bytes",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is not wanted: closing is the only way not to read it.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class AdmissionCollector:
    """Prometheus view of a gate: admitted, exempt and rejected (by reason) counts, and the
    requests in progress, read at scrape time."""

    def __init__(self, gate: AdmissionGate) -> None:
        self._gate = gate

    def collect(self) -> Iterable[Metric]:
        """The gate's counts as metric families."""
        gate = self._gate
        yield CounterMetricFamily(
            "printfleet_http_admitted",
            "API requests admitted by admission control.",
            value=gate.admitted,
        )
        yield CounterMetricFamily(
            "printfleet_http_exempt",
            "Requests to exempt paths (health, metrics, printer files), never refused.",
            value=gate.exempted,
        )
        rejected = CounterMetricFamily(
            "printfleet_http_rejected",
            "API requests refused by admission control, by reason.",
            labels=["reason"],
        )
        for reason in Refusal:
            rejected.add_metric([reason.value], gate.rejected[reason])
        yield rejected
        yield GaugeMetricFamily(
            "printfleet_http_in_flight",
            "Admitted API requests in progress.",
            value=gate.in_flight,
        )
