"""Webhooks: signed JSON POSTs with bounded retries, and the check a receiver runs on them.

Each delivery is ``POST <url>`` with ``Notification.to_json()`` as the body and these headers:

- ``X-Printfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``; signed again
  on every attempt, so that a late retry is still inside the receiver's tolerance window;
- ``X-Printfleet-Delivery: <notification id>``, the same on every attempt: receivers deduplicate
  on it, since a receiver that timed out after doing its work will see the delivery again;
- ``X-Printfleet-Event: <kind>``.

2xx is delivered. 408, 429, 5xx, timeouts and connection errors are retried with exponential
backoff and full jitter (or after ``Retry-After`` when the receiver sends one), at most
``max_attempts`` times and never past ``deadline_s``. Other statuses are final at once: a 4xx
will not improve by repeating it, and 410 Gone is how a receiver says "stop". Redirects are not
followed: a signed body should reach the host its owner registered, and no other.

The client should be :func:`~printfleet.cloud.notify.outbound.outbound_client`, which vets every
connection against the outbound policy; a refused destination is a permanent failure. Reasons
name a status or an error class, never what the receiver sent: a receiver's bytes in the
deliveries list would make the cloud a reader of other people's ports.
"""

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import stamina
import stamina.instrumentation

from printfleet.cloud.notify.model import DeadLetter, DeadLetterSink, Notification, redact_url
from printfleet.cloud.notify.outbound import OutboundRefused
from printfleet.http_retry_after import parse_retry_after

log = logging.getLogger(__name__)

# stamina sets up its retry instrumentation at the first retry, importing prometheus_client, which
# reads /proc: a blocking call inside the event loop, just when a receiver is failing. Once, now.
stamina.instrumentation.get_on_retry_hooks()

SIGNATURE_HEADER = "X-Printfleet-Signature"
DELIVERY_HEADER = "X-Printfleet-Delivery"
EVENT_HEADER = "X-Printfleet-Event"
DEFAULT_TOLERANCE_S = 300
"""Receivers accept a signature this many seconds either side of their own clock."""
USER_AGENT = "printfleet-webhooks/1"


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _digest(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    signed = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(_as_bytes(secret), signed, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The ``X-Printfleet-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


class SignatureError(ValueError):
    """A webhook signature that must not be trusted; the message says why."""


def verify(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a received ``X-Printfleet-Signature`` against the raw body; return its timestamp.

    Any one ``v1=`` entry may match, so that a sender can sign with an old and a new secret
    while they are rotated. Raises :class:`SignatureError` if none matches, or if the timestamp
    is further than ``tolerance_s`` from ``now`` (either way: a replayed or a forged future one).
    """
    if not header:
        raise SignatureError("no signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    expected = _digest(secret, timestamp, body)
    # Every candidate is compared, in constant time each; bytes, because compare_digest refuses
    # non-ASCII str and the header is attacker-controlled.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise SignatureError("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"timestamp is {current - timestamp:+.0f}s away from now")
    return timestamp


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one webhook delivery ended."""

    delivered: bool
    attempts: int
    status_code: int | None
    """The last HTTP status received, if any response came at all."""
    reason: str
    """``"delivered"``, or why it was given up, for people and the dead-letter store."""


class _RetryableError(Exception):
    """An attempt failed in a way that another attempt may cure."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(slots=True)
class _Progress:
    attempts: int = 0
    last_status: int | None = None
    last_reason: str = "no attempt finished"
    note: str = ""


# Timeouts, refused or reset connections, a server that hung up mid-response: the next attempt
# may well succeed. Other httpx errors (bad URL, unsupported scheme, proxy) are configuration.
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _describe(error: Exception) -> str:
    # The class alone: a message may quote the bytes the other end sent (h11 does).
    return type(error).__name__


class WebhookSender:
    """Delivers notifications to webhook URLs over a shared ``httpx.AsyncClient``.

    The caller owns the client (and closes it). Deliveries that end undelivered, for whatever
    reason, are passed to ``on_dead_letter`` before :meth:`deliver` returns; an exception from
    the sink propagates to the caller, which must not lose it silently either.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        on_dead_letter: DeadLetterSink | None = None,
        max_attempts: int = 5,
        deadline_s: float = 60.0,
        attempt_timeout_s: float = 10.0,
        wait_initial_s: float = 0.5,
        wait_max_s: float = 15.0,
        wait_jitter_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1 or deadline_s <= 0 or attempt_timeout_s <= 0:
            raise ValueError("max_attempts, deadline_s and attempt_timeout_s must be positive")
        self._client = client
        self._on_dead_letter = on_dead_letter
        self._max_attempts = max_attempts
        self._deadline_s = deadline_s
        self._attempt_timeout_s = attempt_timeout_s
        self._wait_initial_s = wait_initial_s
        self._wait_max_s = wait_max_s
        self._wait_jitter_s = wait_jitter_s
        self._clock = clock

    async def deliver(self, notification: Notification, url: str, secret: str) -> DeliveryResult:
        """Deliver ``notification`` to ``url`` signed with ``secret``, retrying within bounds."""
        body = notification.to_json()
        progress = _Progress()
        started = time.monotonic()

        def retry_or_not(error: BaseException) -> bool | float:
            if not isinstance(error, _RetryableError):
                return False
            if error.retry_after is None:
                return True
            remaining = self._deadline_s - (time.monotonic() - started)
            if error.retry_after > remaining:
                # Waiting as asked would break the deadline; retrying sooner would ignore the
                # receiver's explicit request. Give up now and let the dead-letter store retry.
                progress.note = f" (asked to wait {error.retry_after:g} s, past the deadline)"
                return False
            return error.retry_after

        result: DeliveryResult | None = None
        try:
            # stamina's timeout only stops new attempts; this one also cuts short the attempt or
            # back-off in progress, so the deadline holds whatever the receiver does.
            async with asyncio.timeout(self._deadline_s):
                async for attempt in stamina.retry_context(
                    on=retry_or_not,
                    attempts=self._max_attempts,
                    timeout=self._deadline_s,
                    wait_initial=self._wait_initial_s,
                    wait_max=self._wait_max_s,
                    wait_jitter=self._wait_jitter_s,
                ):
                    with attempt:
                        result = await self._attempt(notification, url, secret, body, progress)
        except _RetryableError as error:
            result = DeliveryResult(
                delivered=False,
                attempts=progress.attempts,
                status_code=progress.last_status,
                reason=f"gave up after {progress.attempts} attempt(s): {error.reason}"
                + progress.note,
            )
        except TimeoutError:
            result = DeliveryResult(
                delivered=False,
                attempts=progress.attempts,
                status_code=progress.last_status,
                reason=f"deadline of {self._deadline_s:g} s passed after {progress.attempts} "
                f"attempt(s); last: {progress.last_reason}",
            )
        if result is None:  # pragma: no cover - the loop only ends by a result or an exception
            raise RuntimeError("webhook delivery ended without a result")
        if not result.delivered:
            log.warning(
                "webhook %s for notification %s not delivered: %s",
                redact_url(url),
                notification.id,
                result.reason,
            )
            if self._on_dead_letter is not None:
                await self._on_dead_letter(
                    DeadLetter(
                        notification_id=notification.id,
                        channel="webhook",
                        target=url,
                        reason=result.reason,
                        attempts=result.attempts,
                        last_status=result.status_code,
                        payload=body,
                        failed_at=datetime.now(UTC),
                    )
                )
        return result

    async def _attempt(
        self, notification: Notification, url: str, secret: str, body: bytes, progress: _Progress
    ) -> DeliveryResult:
        progress.attempts += 1
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, int(self._clock()), body),
            DELIVERY_HEADER: notification.id,
            EVENT_HEADER: notification.kind.value,
        }
        try:
            # Streamed and never read: only the status matters, and a hostile receiver must not
            # be able to make the cloud buffer a large response body.
            async with self._client.stream(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=self._attempt_timeout_s,
                follow_redirects=False,
            ) as response:
                status = response.status_code
                retry_after = parse_retry_after(
                    response.headers.get("retry-after"), now=self._clock()
                )
        except OutboundRefused as refused:
            progress.last_reason = f"refused by the outbound policy: {refused.rule}"
            return DeliveryResult(
                delivered=False,
                attempts=progress.attempts,
                status_code=None,
                reason=progress.last_reason,
            )
        except _RETRYABLE_TRANSPORT as error:
            progress.last_reason = _describe(error)
            raise _RetryableError(progress.last_reason) from error
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            progress.last_reason = _describe(error)
            return DeliveryResult(
                delivered=False,
                attempts=progress.attempts,
                status_code=None,
                reason=f"permanent failure: {progress.last_reason}",
            )
        progress.last_status = status
        progress.last_reason = f"HTTP {status}"
        if 200 <= status < 300:  # noqa: PLR2004 - the 2xx range
            return DeliveryResult(
                delivered=True, attempts=progress.attempts, status_code=status, reason="delivered"
            )
        if status in {408, 429} or status >= 500:  # noqa: PLR2004 - the 5xx range
            raise _RetryableError(f"HTTP {status}", retry_after)
        hint = " (redirects are not followed)" if 300 <= status < 400 else ""  # noqa: PLR2004
        return DeliveryResult(
            delivered=False,
            attempts=progress.attempts,
            status_code=status,
            reason=f"HTTP {status} is a permanent failure{hint}",
        )
