"""Webhook signatures, and deliveries with bounded retries against a real HTTP receiver."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import stamina
from blockbuster import BlockBuster, blockbuster_ctx
from tests.cloud.test_notify_support import LOOPBACK_ALLOWED, Reply, WebhookReceiver, serve_asgi

from printfleet.cloud.notify import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    DeadLetter,
    DeliveryResult,
    Notification,
    NotificationKind,
    SignatureError,
    WebhookSender,
    outbound_client,
    parse_retry_after,
    sign,
    verify,
)
from printfleet.testing import free_port

SECRET = "whsec_test_5f0c"
BODY = b'{"id":"n1","kind":"thermal_fault"}'
NOW = 1_790_000_000


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """A blocking call made inside the event loop fails the test (threads are fine)."""
    with blockbuster_ctx() as blockbuster:
        yield blockbuster


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """stamina's test mode: real attempts, no waiting between them."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


def thermal_fault() -> Notification:
    return Notification.create(
        NotificationKind.THERMAL_FAULT,
        title="Thermal fault on p1: heaters are off",
        message="Hotend thermal runaway at 287 C",
        user_ids=["alice"],
        printer_id="p1",
    )


class DeadLetters:
    """A dead-letter sink that keeps what it is given, as the store will."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def __call__(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


@contextlib.asynccontextmanager
async def receiver_and_sender(
    script: list[Reply], **sender_options: float
) -> AsyncIterator[tuple[WebhookReceiver, WebhookSender, DeadLetters, str]]:
    receiver = WebhookReceiver(SECRET, script)
    dead = DeadLetters()
    async with serve_asgi(receiver.app) as base_url, outbound_client(LOOPBACK_ALLOWED) as client:
        sender = WebhookSender(client, on_dead_letter=dead, **sender_options)  # type: ignore[arg-type]
        yield receiver, sender, dead, f"{base_url}/hook"


# ---------------------------------------------------------------------------------------------
# Signatures.


def test_a_signature_verifies_with_the_same_secret_and_body() -> None:
    header = sign(SECRET, NOW, BODY)
    assert header.startswith(f"t={NOW},v1=")
    assert len(header.partition("v1=")[2]) == 64
    assert verify(SECRET, header, BODY, now=NOW + 10) == NOW
    assert verify(SECRET.encode(), header, BODY.decode(), now=NOW) == NOW


@pytest.mark.parametrize(
    ("secret", "header", "body", "now", "match"),
    [
        (SECRET, sign(SECRET, NOW, BODY), BODY + b" ", NOW, "does not match"),
        ("other", sign(SECRET, NOW, BODY), BODY, NOW, "does not match"),
        (SECRET, sign(SECRET, NOW, BODY), BODY, NOW + 301, "away from now"),
        (SECRET, sign(SECRET, NOW, BODY), BODY, NOW - 301, "away from now"),
        (SECRET, sign(SECRET, NOW, BODY).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, NOW, "match"),
        (SECRET, None, BODY, NOW, "no signature"),
        (SECRET, "v1=abc", BODY, NOW, "malformed"),
        (SECRET, f"t={NOW}", BODY, NOW, "malformed"),
        (SECRET, f"t=-{NOW},v1=00", BODY, NOW, "malformed"),
        (SECRET, f"t={NOW},v1=ünïcödé", BODY, NOW, "does not match"),
    ],
)
def test_a_bad_signature_is_refused(
    secret: str, header: str | None, body: bytes, now: int, match: str
) -> None:
    with pytest.raises(SignatureError, match=match):
        verify(secret, header, body, now=now)


def test_any_v1_may_match_while_secrets_rotate() -> None:
    old = sign("old-secret", NOW, BODY).partition("v1=")[2]
    header = f"{sign(SECRET, NOW, BODY)},v1={old}"
    assert verify(SECRET, header, BODY, now=NOW) == NOW
    assert verify("old-secret", header, BODY, now=NOW) == NOW


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7", now=NOW) == 7.0
    assert parse_retry_after(None, now=NOW) is None
    assert parse_retry_after("soon", now=NOW) is None
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=30)
    assert parse_retry_after(format_datetime(later, usegmt=True), now=NOW) == 30.0
    assert parse_retry_after(format_datetime(later, usegmt=True), now=NOW + 60) == 0.0


# ---------------------------------------------------------------------------------------------
# Deliveries.


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_delivery_is_signed_and_verifies_at_the_receiver() -> None:
    notification = thermal_fault()
    async with receiver_and_sender([]) as (receiver, sender, dead, url):
        result = await sender.deliver(notification, url, SECRET)
    assert result == DeliveryResult(delivered=True, attempts=1, status_code=200, reason="delivered")
    (received,) = receiver.received
    assert received.signature_error is None
    assert received.headers["content-type"] == "application/json"
    assert received.headers[DELIVERY_HEADER.lower()] == notification.id
    assert received.headers[EVENT_HEADER.lower()] == "thermal_fault"
    assert json.loads(received.body) == notification.payload()
    assert Notification.from_payload(json.loads(received.body)).message == notification.message
    assert dead.letters == []


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_receiver_that_fails_twice_then_succeeds_gets_exactly_three_attempts() -> None:
    notification = thermal_fault()
    script = [Reply(503), Reply(500)]
    async with receiver_and_sender(script, max_attempts=5) as (receiver, sender, dead, url):
        result = await sender.deliver(notification, url, SECRET)
    assert result.delivered
    assert result.attempts == 3
    assert len(receiver.received) == 3
    assert {r.headers[DELIVERY_HEADER.lower()] for r in receiver.received} == {notification.id}
    assert all(r.signature_error is None for r in receiver.received)
    assert dead.letters == []


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_dead_receiver_ends_in_the_dead_letter_sink_after_bounded_attempts() -> None:
    notification = thermal_fault()
    dead = DeadLetters()
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    async with outbound_client(LOOPBACK_ALLOWED) as client:
        sender = WebhookSender(client, on_dead_letter=dead, max_attempts=4)
        result = await sender.deliver(notification, url, SECRET)
    assert not result.delivered
    assert result.attempts == 4
    assert result.status_code is None
    assert result.reason.startswith("gave up after 4 attempt(s): ConnectError")
    (letter,) = dead.letters
    assert letter.notification_id == notification.id
    assert letter.channel == "webhook"
    assert letter.target == url
    assert letter.attempts == 4
    assert letter.reason == result.reason
    assert letter.payload == notification.to_json()


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_receiver_that_always_fails_gets_max_attempts() -> None:
    script = [Reply(500) for _ in range(10)]
    async with receiver_and_sender(script, max_attempts=3) as (receiver, sender, dead, url):
        result = await sender.deliver(thermal_fault(), url, SECRET)
    assert (result.delivered, result.attempts, result.status_code) == (False, 3, 500)
    assert result.reason == "gave up after 3 attempt(s): HTTP 500"
    assert len(receiver.received) == 3
    assert [letter.last_status for letter in dead.letters] == [500]


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_a_client_error_is_permanent_at_once(status: int) -> None:
    async with receiver_and_sender([Reply(status)]) as (receiver, sender, dead, url):
        result = await sender.deliver(thermal_fault(), url, SECRET)
    assert (result.delivered, result.attempts, result.status_code) == (False, 1, status)
    assert result.reason == f"HTTP {status} is a permanent failure"
    assert len(receiver.received) == 1
    assert [letter.reason for letter in dead.letters] == [result.reason]


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize("status", [408, 429])
async def test_request_timeout_and_too_many_requests_are_retried(status: int) -> None:
    async with receiver_and_sender([Reply(status)]) as (_, sender, dead, url):
        result = await sender.deliver(thermal_fault(), url, SECRET)
    assert (result.delivered, result.attempts) == (True, 2)
    assert dead.letters == []


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_redirects_are_not_followed() -> None:
    script = [Reply(307, {"Location": "http://example.com/elsewhere"})]
    async with receiver_and_sender(script) as (_, sender, dead, url):
        result = await sender.deliver(thermal_fault(), url, SECRET)
    assert (result.delivered, result.attempts, result.status_code) == (False, 1, 307)
    assert "redirects are not followed" in result.reason
    assert len(dead.letters) == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_url_httpx_cannot_use_is_permanent() -> None:
    dead = DeadLetters()
    async with outbound_client(LOOPBACK_ALLOWED) as client:
        sender = WebhookSender(client, on_dead_letter=dead)
        result = await sender.deliver(thermal_fault(), "ftp://127.0.0.1/hook", SECRET)
    assert (result.delivered, result.attempts) == (False, 1)
    assert result.reason.startswith("permanent failure: UnsupportedProtocol")
    assert len(dead.letters) == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_the_deadline_bounds_a_receiver_that_never_answers() -> None:
    never = asyncio.Event()
    script = [Reply(200, hold=never)]
    options = {"deadline_s": 0.5, "attempt_timeout_s": 30.0}
    async with receiver_and_sender(script, **options) as (_, sender, dead, url):
        started = time.monotonic()
        result = await sender.deliver(thermal_fault(), url, SECRET)
        elapsed = time.monotonic() - started
        never.set()
    assert 0.5 <= elapsed < 2.0
    assert not result.delivered
    assert result.reason == (
        "deadline of 0.5 s passed after 1 attempt(s); last: no attempt finished"
    )
    assert len(dead.letters) == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_each_attempt_has_its_own_timeout() -> None:
    never = asyncio.Event()
    script = [Reply(200, hold=never)]
    options = {"attempt_timeout_s": 0.2, "max_attempts": 2}
    async with receiver_and_sender(script, **options) as (receiver, sender, _, url):
        result = await sender.deliver(thermal_fault(), url, SECRET)
        never.set()
    assert (result.delivered, result.attempts) == (True, 2)
    assert len(receiver.received) == 2


@pytest.mark.asyncio
async def test_retry_after_is_honoured() -> None:
    # No test mode here: the wait is the point. Without Retry-After it would be ~10 ms.
    script = [Reply(503, {"Retry-After": "1"})]
    options = {"wait_initial_s": 0.01, "wait_jitter_s": 0.0}
    async with receiver_and_sender(script, **options) as (receiver, sender, _, url):
        result = await sender.deliver(thermal_fault(), url, SECRET)
    assert (result.delivered, result.attempts) == (True, 2)
    first, second = receiver.received
    assert second.at - first.at >= 0.95


@pytest.mark.asyncio
async def test_a_retry_after_past_the_deadline_gives_up_at_once() -> None:
    script = [Reply(429, {"Retry-After": "120"})]
    async with receiver_and_sender(script, deadline_s=60.0) as (_, sender, dead, url):
        started = time.monotonic()
        result = await sender.deliver(thermal_fault(), url, SECRET)
    assert time.monotonic() - started < 5
    assert (result.delivered, result.attempts, result.status_code) == (False, 1, 429)
    assert result.reason == (
        "gave up after 1 attempt(s): HTTP 429 (asked to wait 120 s, past the deadline)"
    )
    assert len(dead.letters) == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_failing_dead_letter_sink_is_not_swallowed() -> None:
    async def broken_store(letter: DeadLetter) -> None:
        raise RuntimeError("database is down")

    async with (
        serve_asgi(WebhookReceiver(SECRET, [Reply(410)]).app) as base_url,
        outbound_client(LOOPBACK_ALLOWED) as client,
    ):
        sender = WebhookSender(client, on_dead_letter=broken_store)
        with pytest.raises(RuntimeError, match="database is down"):
            await sender.deliver(thermal_fault(), f"{base_url}/hook", SECRET)


def test_sender_limits_must_be_positive() -> None:
    client = httpx.AsyncClient()
    try:
        with pytest.raises(ValueError, match="positive"):
            WebhookSender(client, max_attempts=0)
    finally:
        asyncio.run(client.aclose())
