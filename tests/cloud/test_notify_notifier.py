"""The notifier: one notification to SSE, webhooks and e-mail at once, none waiting on another."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from blockbuster import BlockBuster, blockbuster_ctx
from tests.cloud.test_notify_support import (
    LOOPBACK_ALLOWED,
    Reply,
    SmtpServer,
    WebhookReceiver,
    assert_is,
    eventually,
    next_event,
    plain_body,
    serve_asgi,
    smtp_server,
    sse_blocks,
    sse_server,
    subscribed,
)

from printfleet.cloud.notify import (
    SIGNATURE_HEADER,
    AppriseSender,
    Channel,
    ChannelKind,
    DeadLetter,
    DeadLetterSink,
    EventBus,
    Notification,
    NotificationKind,
    Notifier,
    NotifyReceipt,
    WebhookSender,
    from_alert,
    outbound_client,
    verify,
)
from printfleet.cloud.notify.notifier import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING
from printfleet.protocol.messages import AlertBody
from printfleet.testing import free_port

SECRET = "whsec_notifier"


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """A blocking call made inside the event loop fails the test (threads are fine)."""
    with blockbuster_ctx() as blockbuster:
        yield blockbuster


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def no_backoff() -> Iterator[None]:
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


def job_failed(*users: str) -> Notification:
    return Notification.create(
        NotificationKind.JOB_FAILED,
        title="benchy.gcode failed on p1",
        message="The print failed at layer 12: filament runout.",
        user_ids=users or ("alice",),
        printer_id="p1",
    )


@contextlib.asynccontextmanager
async def notifier_for(
    bus: EventBus,
    *,
    on_dead_letter: DeadLetterSink | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> AsyncIterator[Notifier]:
    """A notifier with real senders; not running yet (see :func:`running`)."""
    async with outbound_client(LOOPBACK_ALLOWED) as client:
        yield Notifier(
            bus,
            webhooks=WebhookSender(client, on_dead_letter=on_dead_letter, max_attempts=3),
            apprise=AppriseSender(
                on_dead_letter=on_dead_letter, timeout_s=5.0, policy=LOOPBACK_ALLOWED
            ),
            max_pending=max_pending,
            max_in_flight=max_in_flight,
        )


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[asyncio.Task[None]]:
    """Run the notifier; on exit, close it and wait for it to drain."""
    task = asyncio.create_task(notifier.run(), name="notifier")
    try:
        yield task
    finally:
        notifier.close()
        await task


@contextlib.asynccontextmanager
async def receiver(script: list[Reply] | None = None) -> AsyncIterator[tuple[WebhookReceiver, str]]:
    hook = WebhookReceiver(SECRET, script or [])
    async with serve_asgi(hook.app) as base_url:
        yield hook, f"{base_url}/hook"


def webhook(url: str) -> Channel:
    return Channel(ChannelKind.WEBHOOK, url, secret=SECRET)


@pytest.mark.asyncio
async def test_a_thermal_fault_reaches_sse_a_webhook_and_email_within_two_seconds(
    smtp: SmtpServer,
) -> None:
    bus = EventBus()
    alert = AlertBody(
        kind="thermal_fault", severity="critical", message="Hotend thermal runaway at 287 C"
    )
    notification = from_alert("p1", alert, user_ids=["alice"])
    async with (
        sse_server(bus) as cloud,
        receiver() as (hook, hook_url),
        notifier_for(bus) as notifier,
        running(notifier),
        cloud.stream("GET", "/events", params={"user": "alice"}) as stream,
        contextlib.aclosing(sse_blocks(stream)) as blocks,
    ):
        await subscribed(blocks)
        started = time.monotonic()
        receipt = notifier.notify(
            notification,
            [webhook(hook_url), Channel(ChannelKind.APPRISE, smtp.url("alice@example.com"))],
        )
        assert receipt == NotifyReceipt(notification.id, duplicate=False, queued=2)
        async with asyncio.timeout(2.0):
            event, hooks, mails = await asyncio.gather(
                next_event(blocks), hook.wait_for(1), smtp.wait_for(1, timeout_s=2.0)
            )
        assert time.monotonic() - started < 2.0

    assert_is(event, notification)
    assert event.event == "thermal_fault"
    (delivered,) = hooks
    assert delivered.signature_error is None
    verify(SECRET, delivered.headers[SIGNATURE_HEADER.lower()], delivered.body)
    assert json.loads(delivered.body)["severity"] == "critical"
    (mail,) = mails
    assert mail["Subject"] == "Thermal fault on p1: heaters are off"
    assert "Hotend thermal runaway at 287 C" in plain_body(mail)
    assert notifier.stats.delivered == 2


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_slow_channel_delays_neither_the_others_nor_the_caller() -> None:
    bus = EventBus()
    release = asyncio.Event()
    async with (
        receiver([Reply(200, hold=release)]) as (slow, slow_url),
        receiver() as (fast, fast_url),
        notifier_for(bus) as notifier,
        running(notifier),
        bus.subscribe("alice") as live,
    ):
        try:
            started = time.monotonic()
            receipt = notifier.notify(job_failed(), [webhook(slow_url), webhook(fast_url)])
            assert time.monotonic() - started < 0.05
            assert receipt.queued == 2
            assert len(live) == 1  # the bus got it before notify() returned
            async with asyncio.timeout(2.0):
                await fast.wait_for(1)
                await slow.wait_for(1)
                await eventually(lambda: notifier.stats.delivered == 1)
            assert notifier.in_flight == 1  # the slow one, still waiting for its receiver
        finally:
            release.set()
    assert notifier.stats.delivered == 2


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_full_queue_refuses_and_reports_rather_than_blocking() -> None:
    bus = EventBus()
    async with receiver() as (hook, url), notifier_for(bus, max_pending=2) as notifier:
        channels = [webhook(f"{url}?n={n}") for n in range(3)]
        receipt = notifier.notify(job_failed(), channels)  # not running yet: nothing drains
        assert receipt.queued == 2
        assert receipt.refused == (channels[2],)
        assert notifier.pending == 2
        assert notifier.stats.refused == 1
        async with running(notifier):
            async with asyncio.timeout(2.0):
                await hook.wait_for(2)
        assert notifier.stats.delivered == 2
        assert notifier.pending == 0


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_in_flight_deliveries_are_bounded() -> None:
    bus = EventBus()
    release = asyncio.Event()
    script = [Reply(200, hold=release), Reply(200, hold=release)]
    async with receiver(script) as (hook, url), notifier_for(bus, max_in_flight=1) as notifier:
        async with running(notifier):
            try:
                notifier.notify(job_failed(), [webhook(url), webhook(url)])
                async with asyncio.timeout(2.0):
                    await hook.wait_for(1)
                assert (notifier.in_flight, notifier.pending) == (1, 1)
            finally:
                release.set()
        assert len(hook.received) == 2


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_the_same_notification_twice_is_delivered_once() -> None:
    bus = EventBus()
    notification = job_failed()
    async with receiver() as (hook, url), notifier_for(bus) as notifier:
        async with running(notifier), bus.subscribe("alice") as live:
            first = notifier.notify(notification, [webhook(url)])
            again = notifier.notify(notification, [webhook(url)])
            assert (first.duplicate, again.duplicate, again.queued) == (False, True, 0)
            assert len(live) == 1
        assert len(hook.received) == 1
        assert notifier.stats.duplicates == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_closing_drains_what_is_queued_and_refuses_the_rest() -> None:
    bus = EventBus()
    async with receiver() as (hook, url), notifier_for(bus) as notifier:
        async with running(notifier) as task, bus.subscribe("alice") as live:
            for _ in range(5):
                notifier.notify(job_failed(), [webhook(url)])
            notifier.close()
            late = notifier.notify(job_failed(), [webhook(url)])
            assert late.queued == 0
            assert len(late.refused) == 1
            assert len(live) == 6  # the live stream still hears of it
            async with asyncio.timeout(2.0):
                await task
        assert len(hook.received) == 5


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_a_delivery_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_store(letter: DeadLetter) -> None:
        raise RuntimeError("database is down")

    bus = EventBus()
    async with (
        receiver([Reply(410)]) as (_, gone_url),
        receiver() as (hook, url),
        notifier_for(bus, on_dead_letter=broken_store) as notifier,
    ):
        async with running(notifier):
            notifier.notify(job_failed(), [webhook(gone_url)])
            async with asyncio.timeout(2.0):
                await eventually(lambda: notifier.stats.errors == 1)
            notifier.notify(job_failed(), [webhook(url)])
            async with asyncio.timeout(2.0):
                await hook.wait_for(1)
        assert notifier.stats.delivered == 1
    assert "database is down" in caplog.text


@pytest.mark.asyncio
async def test_a_failed_email_is_counted_and_dead_lettered() -> None:
    letters: list[DeadLetter] = []

    async def store(letter: DeadLetter) -> None:
        letters.append(letter)

    bus = EventBus()
    nowhere = f"mailto://127.0.0.1:{free_port()}?from=printfleet@example.com&mode=insecure"
    async with notifier_for(bus, on_dead_letter=store) as notifier, running(notifier):
        notifier.notify(job_failed(), [Channel(ChannelKind.APPRISE, nowhere)])
        async with asyncio.timeout(10.0):
            await eventually(lambda: notifier.stats.failed == 1)
    assert [(letter.channel, letter.target) for letter in letters] == [("apprise", nowhere)]


@pytest.mark.asyncio
async def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        async with notifier_for(EventBus(), max_pending=0):
            pass


@pytest.mark.asyncio
async def test_a_notifier_runs_once_at_a_time() -> None:
    async with notifier_for(EventBus()) as notifier, asyncio.timeout(10):
        first = asyncio.create_task(notifier.run())
        second = asyncio.create_task(notifier.run())  # tasks start in the order they were made
        with pytest.raises(RuntimeError, match="already running"):
            await second
        notifier.close()
        await first
