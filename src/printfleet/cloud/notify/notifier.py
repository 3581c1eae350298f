"""``Notifier``: one call sends a notification to the live event streams and to every channel.

:meth:`Notifier.notify` never waits: it publishes to the :class:`EventBus` at once (SSE clients
see the notification immediately) and queues one delivery per channel. :meth:`Notifier.run`
owns a task group that takes deliveries off the queue and runs each as its own task, at most
``max_in_flight`` at a time, so a slow webhook holds one slot and delays no other channel, no
other user and never the caller (the event-ingest path, which must keep handling faults).

When ``max_pending`` deliveries are already waiting, further ones are refused rather than queued:
memory stays bounded and the caller is not blocked. ``notify`` returns the refused channels in
its receipt and counts them, so the caller, which has the store, can record them like any other
dead letter. The notification itself is not lost either way: the caller stores it before
notifying, and the dashboard and the API read it from there.

Deliveries to one channel run concurrently, so a receiver can see two notifications out of order;
ids are time-ordered UUIDv7s and ``created_at`` is in every payload for that reason.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from printfleet.cloud.notify.apprise_sender import AppriseSender
from printfleet.cloud.notify.bus import EventBus
from printfleet.cloud.notify.model import Notification, redact_url
from printfleet.cloud.notify.webhook import WebhookSender

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_IN_FLIGHT = 64


class ChannelKind(StrEnum):
    """How a channel is reached."""

    WEBHOOK = "webhook"
    APPRISE = "apprise"


@dataclass(frozen=True, slots=True)
class Channel:
    """One of a user's enabled channels, as the caller found it in the store.

    ``target`` is the webhook URL or the Apprise URL; ``secret`` signs webhooks (required there).
    Both may be credentials, so ``repr`` shows only the kind and a redacted target. ``id`` is the
    store's id for the channel, handed back in each :class:`DeliveryOutcome`.
    """

    kind: ChannelKind
    target: str
    secret: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ChannelKind(self.kind))
        if not self.target:
            raise ValueError("a channel needs a target URL")
        if self.kind is ChannelKind.WEBHOOK and not self.secret:
            raise ValueError("a webhook channel needs a signing secret")

    def __repr__(self) -> str:
        keep_host = self.kind is ChannelKind.WEBHOOK
        return f"Channel({self.kind.value}, {redact_url(self.target, keep_host=keep_host)})"


@dataclass(frozen=True, slots=True)
class NotifyReceipt:
    """What :meth:`Notifier.notify` did with one notification."""

    notification_id: str
    duplicate: bool
    """The bus had just seen this id: nothing was published or queued again."""
    queued: int
    refused: tuple[Channel, ...] = ()
    """Channels not queued because the notifier was full or closed; the caller records them."""


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery of one notification to one channel ended (after its retries)."""

    notification: Notification
    channel: Channel
    delivered: bool
    attempts: int
    reason: str
    """``"delivered"``, or why it was given up."""


DeliveryListener = Callable[[DeliveryOutcome], Awaitable[None]]
"""Told of every delivery's end: the cloud records it, and counts it in its metrics."""


@dataclass(slots=True)
class NotifierStats:
    """Counters for metrics and tests."""

    notified: int = 0
    duplicates: int = 0
    queued: int = 0
    refused: int = 0
    delivered: int = 0
    failed: int = 0
    errors: int = 0
    """Deliveries that raised (a bug, or a dead-letter sink that failed); each one is logged."""


@dataclass(frozen=True, slots=True)
class _Delivery:
    notification: Notification
    channel: Channel = field(repr=False)


class Notifier:
    """Fans notifications out to the bus and to channels; see the module for the guarantees.

    Call :meth:`notify` from the event loop's thread. Deliveries queued before :meth:`run`
    starts wait for it.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        webhooks: WebhookSender,
        apprise: AppriseSender,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_outcome: DeliveryListener | None = None,
    ) -> None:
        if max_pending < 1 or max_in_flight < 1:
            raise ValueError("max_pending and max_in_flight must be at least 1")
        self.bus = bus
        self._on_outcome = on_outcome
        self._webhooks = webhooks
        self._apprise = apprise
        self._max_pending = max_pending
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: deque[_Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._running = False
        self._in_flight = 0
        self.stats = NotifierStats()

    @property
    def pending(self) -> int:
        """Deliveries waiting for a slot."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Deliveries running now."""
        return self._in_flight

    def notify(self, notification: Notification, channels: Iterable[Channel] = ()) -> NotifyReceipt:
        """Publish ``notification`` and queue it for ``channels``; never waits.

        Pass every channel of every user the notification is for in one call: a second call with
        the same id is a duplicate and is ignored as a whole.
        """
        if not self.bus.publish(notification):
            self.stats.duplicates += 1
            return NotifyReceipt(notification.id, duplicate=True, queued=0)
        self.stats.notified += 1
        return self.queue(notification, channels)

    def queue(self, notification: Notification, channels: Iterable[Channel]) -> NotifyReceipt:
        """Queue deliveries of ``notification`` to ``channels`` only, without publishing it
        again: for deliveries a crashed process left unsettled. Never waits."""
        queued = 0
        refused: list[Channel] = []
        for channel in channels:
            if self._closed or len(self._pending) >= self._max_pending:
                refused.append(channel)
                continue
            self._pending.append(_Delivery(notification, channel))
            queued += 1
        if queued:
            self._wakeup.set()
        self.stats.queued += queued
        if refused:
            self.stats.refused += len(refused)
            log.warning(
                "notifier %s: %d delivery(ies) of notification %s refused",
                "closed" if self._closed else "full",
                len(refused),
                notification.id,
            )
        return NotifyReceipt(
            notification.id, duplicate=False, queued=queued, refused=tuple(refused)
        )

    def close(self) -> None:
        """Accept no more deliveries; :meth:`run` returns once those queued have finished."""
        self._closed = True
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver queued notifications until :meth:`close` (drains) or cancellation (does not).

        Deliveries still queued at a cancellation stay queued for the next ``run()``.
        """
        if self._running:
            raise RuntimeError("this notifier is already running")
        self._running = True
        try:
            await self._run()
        finally:
            self._running = False

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._warm_up(), name="notify-apprise-warm-up")
            while True:
                while not self._pending:
                    if self._closed:
                        return  # the task group waits for the deliveries still running
                    self._wakeup.clear()
                    await self._wakeup.wait()
                await self._slots.acquire()
                delivery = self._pending.popleft()
                self._in_flight += 1
                group.create_task(
                    self._deliver(delivery),
                    name=f"notify-{delivery.channel.kind.value}-{delivery.notification.id}",
                )

    async def _warm_up(self) -> None:
        try:
            await self._apprise.warm_up()
        except Exception:
            # Not fatal: the first send loads the plugins itself.
            log.exception("could not load Apprise's plugins ahead of time")

    async def _deliver(self, delivery: _Delivery) -> None:
        notification, channel = delivery.notification, delivery.channel
        try:
            if channel.kind is ChannelKind.WEBHOOK:
                # __post_init__ guarantees a secret for webhooks.
                result = await self._webhooks.deliver(
                    notification, channel.target, channel.secret or ""
                )
                delivered, attempts, reason = result.delivered, result.attempts, result.reason
            else:
                (outcome,) = await self._apprise.send(notification, [channel.target])
                delivered, attempts, reason = outcome.delivered, 1, outcome.reason
            if delivered:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
            if self._on_outcome is not None:
                await self._on_outcome(
                    DeliveryOutcome(notification, channel, delivered, attempts, reason)
                )
        except Exception:
            # One delivery's bug (or a failing dead-letter sink) must not end the task group.
            self.stats.errors += 1
            log.exception("delivery of notification %s to %r raised", notification.id, channel)
        finally:
            self._in_flight -= 1
            self._slots.release()
