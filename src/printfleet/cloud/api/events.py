"""``GET /api/v1/events``: the caller's notifications as a server-sent-event stream.

Jobs they submitted, state and telemetry summaries of the printers they can see, and alerts;
the kinds and the JSON of each are in docs/api.md. The bearer header authenticates, as on every
route (browsers read the stream with ``fetch()``), so no token ever goes into a URL.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from printfleet.cloud.api.auth import Reader
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.notify import sse_response

router = APIRouter(prefix="/api/v1", tags=["events"], responses=ERROR_RESPONSES)

EVENTS_PATH = "/api/v1/events"
"""Where the stream is served (the app exempts it from admission control's slots)."""


@router.get(
    EVENTS_PATH.removeprefix(router.prefix),
    response_class=Response,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One block per notification: `id:`, `event:` (its kind), `data:` "
            "(its JSON); see docs/api.md",
        },
        429: {"description": "The user has too many streams open; retry after Retry-After"},
    },
)
async def events(request: Request, principal: Reader, context: Context) -> Response:
    """Stream the caller's notifications; resume with the ``Last-Event-ID`` header."""
    if context.announcer is None:  # pragma: no cover - the app always makes one
        raise RuntimeError("this app runs without notifications")
    return sse_response(context.announcer.notifier.bus, principal.user.id, request)
