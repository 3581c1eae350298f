"""The cloud's live event stream (``GET /api/v1/events``, docs/api.md section 1), read.

httpx-sse splits the ``text/event-stream`` into blocks by the WHATWG rules; a
:class:`StreamCursor` turns each block into a :class:`StreamEvent` and keeps what a reconnection
needs (the ``Last-Event-ID`` to resume after, the server's ``retry:``). Blocks with an ``id:``
carry a :class:`Notification`; those without are control blocks (``dropped``, ``resync``).
Reconnecting is printfleet's own (:class:`Reconnection`): httpx-sse reads one response and
leaves what to do after it to its caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from httpx_sse import ServerSentEvent
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

__all__ = ["CONTROL_KINDS", "Notification", "Reconnection", "StreamCursor", "StreamEvent"]

CONTROL_KINDS = frozenset({"dropped", "resync"})
"""Blocks that say "refetch state": the stream lost notifications or cannot resume."""


class Notification(BaseModel):
    """One notification: a job, printer or alert event for the caller."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    kind: str
    severity: str
    """``critical``, ``warning`` or ``info``."""
    title: str
    message: str
    printer_id: str | None
    job_id: str | None
    created_at: str
    """ISO 8601, UTC."""
    data: dict[str, JsonValue]

    @property
    def is_alert(self) -> bool:
        """Whether this also raised an alert a person should see."""
        return "alert_id" in self.data or self.severity in {"critical", "warning"}


@dataclass(frozen=True)
class StreamEvent:
    """One block of the stream."""

    kind: str
    """The ``event:`` field: a notification kind, or ``dropped`` / ``resync``."""
    id: str | None
    """The block's ``id:``; None for control blocks."""
    data: JsonValue
    """The ``data:`` as JSON (the raw text if it was not JSON)."""
    notification: Notification | None = None
    """The notification, for blocks with an id whose data is one."""


@dataclass
class StreamCursor:
    """Where a reader is in the event stream, across its connections.

    Feed it every block httpx-sse reads (:meth:`read`), and call :meth:`connected` when a new
    connection's response arrives.
    """

    last_event_id: str | None = None
    """The newest ``id:`` seen: send it as ``Last-Event-ID`` to resume after it."""
    retry_ms: int | None = None
    """The server's advised reconnection delay, if it sent one."""
    _connection_id: str = ""

    def connected(self) -> None:
        """A new response: its blocks are read afresh (``last_event_id`` stays)."""
        self._connection_id = ""

    def read(self, block: ServerSentEvent) -> StreamEvent | None:
        """One block; returns the event it carries, if it has data."""
        if block.retry is not None and block.retry >= 0:
            self.retry_ms = block.retry
        # httpx-sse reports the stream's last event id, as the WHATWG parser keeps it, on every
        # block, so a block shows its own ``id:`` by changing it. The server never repeats an
        # id, and a control block (which has none) must neither carry a notification nor move
        # the resume point.
        block_id: str | None = None
        if block.id != self._connection_id:
            block_id = self._connection_id = block.id
            self.last_event_id = block_id
        if not block.data:
            return None
        try:
            payload: JsonValue = json.loads(block.data)
        except ValueError:
            payload = block.data
        notification = None
        if block_id is not None and isinstance(payload, dict):
            try:
                notification = Notification.model_validate(payload)
            except ValidationError:
                notification = None
        return StreamEvent(kind=block.event, id=block_id, data=payload, notification=notification)


@dataclass
class Reconnection:
    """When to reconnect a dropped stream: backoff with full jitter, the server's ``retry:``
    (or ``Retry-After``) as a floor, and a limit on consecutive failed connections."""

    backoff_delay: Callable[[int], float]
    """Wait before reconnection ``n`` (0 for the first), e.g. ``Backoff.delay``."""
    max_failures: int = 8
    failures: int = 0

    def connected(self) -> None:
        """A connection was answered with the stream: the next drop starts afresh."""
        self.failures = 0

    def next_wait(self, floor: float | None = None) -> float | None:
        """Seconds to wait before reconnecting; None when it is time to give up."""
        if self.failures >= self.max_failures:
            return None
        wait = self.backoff_delay(self.failures)
        self.failures += 1
        return wait if floor is None else max(floor, wait)
