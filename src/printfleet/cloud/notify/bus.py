"""``EventBus``: in-process fan-out of notifications to live subscribers (SSE streams, tests).

Publishing never waits and memory never grows with a slow subscriber. Each subscription has a
bounded queue; when it is full the *oldest* queued notification is dropped and counted, and the
subscriber is told how many it lost before its next notification (SSE sends a ``dropped``
event). Dropping the oldest rather than disconnecting keeps a lagging dashboard showing the newest
state, which is what a person acts on; the count tells it to refetch the rest from the store,
which is the source of truth for notifications. A short ring buffer of recent notifications lets
a client that reconnects with ``Last-Event-ID`` resume without a gap when it was away briefly.

The bus belongs to one event loop: call it only from that loop's thread.
"""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from printfleet.cloud.notify.model import Notification

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 256
DEFAULT_HISTORY_SIZE = 1024
DEFAULT_MAX_SUBSCRIBERS_PER_USER = 16


class SubscriptionClosed(Exception):  # noqa: N818 - it is an ending, not an error
    """The subscription ended: its owner closed it, or the bus shut down."""


class TooManySubscribersError(Exception):
    """A user already has as many live subscriptions as the bus allows."""


class Subscription:
    """One subscriber's bounded queue of notifications for one user.

    Iterate it (``async for``) or call :meth:`receive`; both end when the subscription closes.
    """

    def __init__(self, user_id: str, capacity: int) -> None:
        self.user_id = user_id
        self._capacity = capacity
        self._queue: deque[Notification] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._unreported_drops = 0
        self.dropped = 0
        """How many notifications this subscriber lost to a full queue, in total."""
        self.resumed: bool | None = None
        """After ``subscribe(..., last_event_id=...)``: whether everything since that id was
        replayed (``False`` when the id is no longer in the bus's history). ``None`` otherwise."""

    @property
    def closed(self) -> bool:
        """Whether the subscription has ended (notifications still queued can be received)."""
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, notification: Notification) -> None:
        """Queue a notification without waiting: a full queue loses its oldest one instead."""
        if self._closed:
            return
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self.dropped += 1
            self._unreported_drops += 1
        self._queue.append(notification)
        self._wakeup.set()

    def take_dropped(self) -> int:
        """How many were dropped since the last call: the gap to report before the next one."""
        count, self._unreported_drops = self._unreported_drops, 0
        return count

    def close(self) -> None:
        """End the subscription; a waiting :meth:`receive` returns what is queued, then raises."""
        self._closed = True
        self._wakeup.set()

    async def receive(self) -> Notification:
        """The next notification; raises :class:`SubscriptionClosed` once closed and drained.

        Cancelling it (a caller's ``asyncio.timeout``) loses nothing: a notification leaves the
        queue only after the wait is over, without another ``await``.
        """
        while not self._queue:
            if self._closed:
                raise SubscriptionClosed(self.user_id)
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Notification:
        try:
            return await self.receive()
        except SubscriptionClosed:
            raise StopAsyncIteration from None


@dataclass(slots=True)
class BusStats:
    """Counters for metrics and tests."""

    published: int = 0
    duplicates: int = 0
    delivered: int = 0
    dropped: int = 0


class EventBus:
    """Publishes notifications to the live subscriptions of the users they are addressed to."""

    def __init__(
        self,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        history_size: int = DEFAULT_HISTORY_SIZE,
        max_subscribers_per_user: int = DEFAULT_MAX_SUBSCRIBERS_PER_USER,
    ) -> None:
        if queue_size < 1 or history_size < 1 or max_subscribers_per_user < 1:
            raise ValueError("queue, history and subscriber limits must be at least 1")
        self._queue_size = queue_size
        self._history_size = history_size
        self._max_subscribers = max_subscribers_per_user
        self._subscribers: dict[str, set[Subscription]] = {}
        # Recent notifications for every user, oldest first, and their ids. One shared ring keeps
        # memory bounded however many users there are; resuming filters it by user.
        self._history: deque[Notification] = deque()
        self._history_ids: set[str] = set()
        self._closed = False
        self.stats = BusStats()

    def publish(self, notification: Notification) -> bool:
        """Queue ``notification`` for every live subscriber of its users; never waits.

        Returns ``False`` (and does nothing) for an id still in the recent history: a publisher
        that retries after a crash or a timeout does not show people the same thing twice.
        """
        if notification.id in self._history_ids:
            self.stats.duplicates += 1
            return False
        self._remember(notification)
        self.stats.published += 1
        for user_id in notification.user_ids:
            for subscription in self._subscribers.get(user_id, ()):
                before = subscription.dropped
                subscription.offer(notification)
                self.stats.delivered += 1
                self.stats.dropped += subscription.dropped - before
        return True

    def _remember(self, notification: Notification) -> None:
        if len(self._history) >= self._history_size:
            forgotten = self._history.popleft()
            self._history_ids.discard(forgotten.id)
        self._history.append(notification)
        self._history_ids.add(notification.id)

    def has_room_for(self, user_id: str) -> bool:
        """Whether :meth:`subscribe` would accept one more subscription for ``user_id`` now."""
        return len(self._subscribers.get(user_id, ())) < self._max_subscribers

    def subscriber_count(self, user_id: str | None = None) -> int:
        """Live subscriptions of one user, or of everyone."""
        if user_id is not None:
            return len(self._subscribers.get(user_id, ()))
        return sum(len(subscriptions) for subscriptions in self._subscribers.values())

    @asynccontextmanager
    async def subscribe(
        self, user_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[Subscription]:
        """A subscription to ``user_id``'s notifications, removed from the bus on exit.

        With ``last_event_id``, the notifications for this user published after it are queued
        first (see :attr:`Subscription.resumed`). Registration and replay happen without an
        ``await`` in between, so nothing is missed or repeated at the seam.

        Raises :class:`TooManySubscribersError` when the user is at the limit.
        """
        if not self.has_room_for(user_id):
            raise TooManySubscribersError(
                f"user {user_id!r} already has {self._max_subscribers} live subscriptions"
            )
        subscription = Subscription(user_id, self._queue_size)
        if last_event_id is not None:
            subscription.resumed = self._replay(subscription, last_event_id)
        if self._closed:
            subscription.close()
        else:
            self._subscribers.setdefault(user_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()
            subscriptions = self._subscribers.get(user_id)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscribers[user_id]

    def _replay(self, subscription: Subscription, last_event_id: str) -> bool:
        if last_event_id not in self._history_ids:
            return False
        seen_last = False
        for notification in self._history:
            if seen_last and subscription.user_id in notification.user_ids:
                subscription.offer(notification)
            seen_last = seen_last or notification.id == last_event_id
        return True

    def close(self) -> None:
        """End every subscription (at shutdown, so that open SSE streams finish)."""
        self._closed = True
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.close()
