"""E-mail through Apprise to a real SMTP server (aiosmtpd on 127.0.0.1), and failures reported."""

import time
from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from tests.cloud.test_notify_support import LOOPBACK_ALLOWED, SmtpServer, plain_body, smtp_server

from printfleet.cloud.notify import AppriseSender, DeadLetter, Notification, NotificationKind
from printfleet.testing import free_port


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """A blocking call made inside the event loop fails the test (threads are fine)."""
    with blockbuster_ctx() as blockbuster:
        yield blockbuster


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    # A sync fixture: starting the server blocks briefly, outside any event loop.
    with smtp_server() as server:
        yield server


def thermal_fault() -> Notification:
    return Notification.create(
        NotificationKind.THERMAL_FAULT,
        title="Thermal fault on p1: heaters are off",
        message="Hotend thermal runaway at 287 C; all heaters switched off.",
        user_ids=["alice"],
        printer_id="p1",
    )


class DeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def __call__(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


@pytest.mark.asyncio
async def test_an_alert_reaches_a_real_smtp_server_within_two_seconds(smtp: SmtpServer) -> None:
    notification = thermal_fault()
    sender = AppriseSender(policy=LOOPBACK_ALLOWED)
    started = time.monotonic()
    (delivery,) = await sender.send(notification, [smtp.url("alice@example.com")])
    (message,) = await smtp.wait_for(1, timeout_s=2.0)
    assert time.monotonic() - started < 2.0
    assert delivery.delivered
    assert delivery.reason == "delivered"
    assert message["Subject"] == "Thermal fault on p1: heaters are off"
    assert message["To"] == "alice@example.com"
    assert message["From"] == "printfleet@example.com"
    body = plain_body(message)
    assert "Hotend thermal runaway at 287 C; all heaters switched off." in body
    assert "Printer: p1" in body
    assert notification.id in body


@pytest.mark.asyncio
async def test_each_url_gets_its_own_result_in_order(smtp: SmtpServer) -> None:
    dead = DeadLetters()
    sender = AppriseSender(on_dead_letter=dead, timeout_s=5.0, policy=LOOPBACK_ALLOWED)
    nobody = f"mailto://127.0.0.1:{free_port()}?from=printfleet@example.com&mode=insecure"
    urls = [
        smtp.url("alice@example.com"),
        "this is not a url",
        nobody,
        smtp.url("bob@example.com"),
    ]
    deliveries = await sender.send(thermal_fault(), urls)
    assert [d.delivered for d in deliveries] == [True, False, False, True]
    assert [d.target for d in deliveries] == urls
    assert deliveries[1].reason == "not a URL Apprise can use"
    assert deliveries[2].reason == "Apprise: FAILURE"
    messages = await smtp.wait_for(2, timeout_s=2.0)
    assert sorted(str(m["To"]) for m in messages) == ["alice@example.com", "bob@example.com"]
    # The URLs are sent concurrently, so their dead letters come in either order.
    assert sorted(letter.target for letter in dead.letters) == sorted([urls[1], urls[2]])
    assert {letter.channel for letter in dead.letters} == {"apprise"}
    assert {letter.attempts for letter in dead.letters} == {1}


@pytest.mark.asyncio
async def test_sending_to_no_urls_sends_nothing() -> None:
    assert await AppriseSender().send(thermal_fault(), []) == []


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AppriseSender(timeout_s=0)
