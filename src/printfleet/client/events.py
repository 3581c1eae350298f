"""The cloud's live event stream (``GET /api/v1/events``, docs/api.md section 1), parsed.

:class:`SseParser` is a sans-IO parser of ``text/event-stream`` lines (the WHATWG rules:
``id:``, ``event:``, ``data:``, ``retry:``, comments, a blank line ends a block); the clients
feed it lines and yield a :class:`StreamEvent` per block. Blocks with an ``id:`` carry a
:class:`Notification`; those without are control blocks (``dropped``, ``resync``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

__all__ = ["CONTROL_KINDS", "Notification", "Reconnection", "SseParser", "StreamEvent"]

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
class SseParser:
    """Turns the stream's lines into :class:`StreamEvent` blocks."""

    last_event_id: str | None = None
    """The newest ``id:`` seen: send it as ``Last-Event-ID`` to resume after it."""
    retry_ms: int | None = None
    """The server's advised reconnection delay, if it sent one."""
    _data: list[str] = field(default_factory=list)
    _kind: str = ""
    _id: str | None = None

    def feed(self, line: str) -> StreamEvent | None:
        """One line, without its line ending; returns a block when ``line`` ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._kind = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> StreamEvent | None:
        data, kind, block_id = self._data, self._kind or "message", self._id
        self._data, self._kind, self._id = [], "", None
        if block_id is not None:
            self.last_event_id = block_id
        if not data:
            return None
        text = "\n".join(data)
        try:
            payload: JsonValue = json.loads(text)
        except ValueError:
            payload = text
        notification = None
        if block_id is not None and isinstance(payload, dict):
            try:
                notification = Notification.model_validate(payload)
            except ValidationError:
                notification = None
        return StreamEvent(kind=kind, id=block_id, data=payload, notification=notification)


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
