"""Server-sent events: a user's notifications as a ``text/event-stream`` for the dashboard and CLI.

Wire format, one block per notification::

    id: <notification id>
    event: <kind>
    data: <Notification.payload() as one line of JSON>

Control blocks carry no ``id:`` (so they never move a client's resume point): ``dropped`` with
``{"count": n}`` when this stream lost ``n`` older notifications to a full queue, ``resync`` when
``Last-Event-ID`` named a notification the bus no longer remembers. After either, a client should
refetch recent notifications from the API. A ``: keep-alive`` comment goes out every 15 s so that
proxies and clients can tell a quiet stream from a dead one.
"""

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from printfleet.cloud.notify.bus import EventBus, SubscriptionClosed, TooManySubscribersError
from printfleet.cloud.notify.model import JsonValue, Notification

KEEPALIVE_S = 15.0
RETRY_MS = 3000
"""What browsers' ``EventSource`` waits before reconnecting."""
MAX_LAST_EVENT_ID = 200


def format_event(notification: Notification) -> bytes:
    """One notification as an SSE block."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        notification.id.encode(),
        notification.kind.value.encode(),
        notification.to_json(),
    )


def format_control(event: str, data: Mapping[str, JsonValue]) -> bytes:
    """A control block (``dropped``, ``resync``), without an id."""
    line = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {line}\n\n".encode()


KEEPALIVE = b": keep-alive\n\n"


async def event_stream(
    bus: EventBus,
    user_id: str,
    *,
    last_event_id: str | None = None,
    keepalive_s: float = KEEPALIVE_S,
    retry_ms: int = RETRY_MS,
) -> AsyncGenerator[bytes, None]:
    """The SSE byte stream for one user; it ends when the subscription or the bus closes."""
    try:
        async with bus.subscribe(user_id, last_event_id=last_event_id) as subscription:
            # The first block goes out only once the subscription exists, so a client that has
            # read it knows that anything published from now on will reach it.
            yield b"retry: %d\n: subscribed\n\n" % retry_ms
            if subscription.resumed is False:
                yield format_control("resync", {"reason": "last_event_id_unknown"})
            while True:
                notification: Notification | None
                try:
                    async with asyncio.timeout(keepalive_s):
                        notification = await subscription.receive()
                except TimeoutError:
                    notification = None
                except SubscriptionClosed:
                    return
                # Drops remove the oldest queued notifications, all older than this one.
                dropped = subscription.take_dropped()
                if dropped:
                    yield format_control("dropped", {"count": dropped})
                yield KEEPALIVE if notification is None else format_event(notification)
    except TooManySubscribersError:
        # Only when another stream for this user won the last slot since sse_response checked.
        yield b": too many event streams for this user\n\n"


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that always closes its stream, however it ends.

    Under an ASGI 2.3 server (uvicorn) Starlette cancels the stream when the client goes away;
    under 2.4 it only notices at the next write. Closing the generator here makes the
    subscription's clean-up independent of either, instead of waiting for garbage collection.
    """

    media_type = "text/event-stream"

    def __init__(self, stream: AsyncGenerator[bytes, None]) -> None:
        super().__init__(
            stream,
            # no-cache: a cached stream is useless. X-Accel-Buffering: nginx would otherwise hold
            # events back until its buffer fills.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


def sse_response(
    bus: EventBus,
    user_id: str,
    request: Request | None = None,
    *,
    last_event_id: str | None = None,
    keepalive_s: float = KEEPALIVE_S,
    retry_ms: int = RETRY_MS,
) -> Response:
    """The response for a user's event-stream endpoint (the caller has authenticated the user).

    The resume point comes from ``last_event_id`` or else the request's ``Last-Event-ID`` header.
    A user already at the bus's stream limit gets 429 instead of a stream.
    """
    if last_event_id is None and request is not None:
        last_event_id = request.headers.get("last-event-id")
    if last_event_id is not None:
        # An over-long id cannot be one of ours; truncated, it resumes nothing and asks for resync.
        last_event_id = last_event_id[: MAX_LAST_EVENT_ID + 1]
    if not bus.has_room_for(user_id):
        # The API's error shape (cloud/api/errors.py), so clients read it like any other 429.
        body = {
            "error": "too_many_streams",
            "message": "too many event streams are open for this user: close one, or retry later",
        }
        return JSONResponse(body, status_code=429, headers={"Retry-After": "5"})
    return EventStreamResponse(
        event_stream(
            bus, user_id, last_event_id=last_event_id, keepalive_s=keepalive_s, retry_ms=retry_ms
        )
    )
