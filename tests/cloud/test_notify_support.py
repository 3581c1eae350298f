"""Real servers for the notification tests: uvicorn apps, a webhook receiver, an SMTP server.

Everything binds 127.0.0.1 on a port the kernel picks. Helpers only; the tests live next door.
"""

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from printfleet.cloud.notify import (
    SIGNATURE_HEADER,
    EventBus,
    Notification,
    OutboundPolicy,
    SignatureError,
    sse_response,
    verify,
)
from printfleet.testing import free_port

LOOPBACK = "127.0.0.1"

LOOPBACK_ALLOWED = OutboundPolicy([LOOPBACK])
"""The outbound policy with the test receivers' address on its allow-list: they all listen on
127.0.0.1, which the policy refuses by default."""


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn in this event loop; yields its base URL.

    The socket listens before uvicorn starts, so the URL works at once: a client that connects
    early waits in the backlog instead of being refused, and no readiness polling is needed.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{port}")
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, for state that offers nothing to await."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the state polled here has no event to await
            await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------------------------
# Server-sent events, read the way a browser's EventSource reads them.


@dataclass
class SseBlock:
    """One block of an event stream (a blank line ends it)."""

    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_comment(self) -> bool:
        return self.event is None and not self.data and self.retry is None


async def sse_blocks(response: httpx.Response) -> AsyncGenerator[SseBlock, None]:
    """Parse a streaming ``text/event-stream`` response into blocks."""
    block = SseBlock()
    async for line in response.aiter_lines():
        if not line:
            yield block
            block = SseBlock()
            continue
        if line.startswith(":"):
            block.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            block.id = value
        elif name == "event":
            block.event = value
        elif name == "data":
            block.data.append(value)
        elif name == "retry":
            block.retry = int(value)


def sse_app(bus: EventBus, *, keepalive_s: float = 15.0) -> FastAPI:
    """A FastAPI app with the event stream at ``/events?user=...`` (authentication is elsewhere)."""
    app = FastAPI()

    @app.get("/events")
    async def events(request: Request, user: str) -> Response:
        return sse_response(bus, user, request, keepalive_s=keepalive_s)

    return app


@contextlib.asynccontextmanager
async def sse_server(
    bus: EventBus, *, keepalive_s: float = 15.0
) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`sse_app` served by uvicorn, and an httpx client for it."""
    async with (
        serve_asgi(sse_app(bus, keepalive_s=keepalive_s)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        try:
            yield client
        finally:
            # Streams still open would keep uvicorn waiting at shutdown.
            bus.close()


async def subscribed(blocks: AsyncIterator[SseBlock]) -> SseBlock:
    """Read the stream's first block: from then on, the subscription exists."""
    first = await anext(blocks)
    assert first.retry == 3000
    assert first.comments == ["subscribed"]
    return first


async def next_event(blocks: AsyncIterator[SseBlock]) -> SseBlock:
    """The next block that is not a comment."""
    async for block in blocks:
        if not block.is_comment:
            return block
    raise AssertionError("the stream ended")


def assert_is(block: SseBlock, notification: Notification) -> None:
    assert block.id == notification.id
    assert block.event == notification.kind.value
    assert len(block.data) == 1
    assert json.loads(block.data[0]) == notification.payload()


# ---------------------------------------------------------------------------------------------
# Webhook receiver.


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    at: float
    signature_error: str | None
    """Why :func:`verify` refused the signature, or ``None`` if it verified."""


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    """If given, the receiver waits for it before answering (a slow or hanging receiver)."""


class WebhookReceiver:
    """A webhook endpoint that verifies signatures and answers from a script (then 200s)."""

    def __init__(self, secret: str, script: Sequence[Reply] = ()) -> None:
        self.secret = secret
        self.script = list(script)
        self.received: list[ReceivedWebhook] = []
        self._changed = asyncio.Condition()
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            verify(self.secret, request.headers.get(SIGNATURE_HEADER), body)
        except SignatureError as error:
            signature_error: str | None = str(error)
        else:
            signature_error = None
        reply = self.script.pop(0) if self.script else Reply()
        async with self._changed:
            self.received.append(
                ReceivedWebhook(dict(request.headers), body, time.monotonic(), signature_error)
            )
            self._changed.notify_all()
        if reply.hold is not None:
            await reply.hold.wait()
        return Response(status_code=reply.status, headers=reply.headers)

    async def wait_for(self, count: int) -> list[ReceivedWebhook]:
        """Wait until ``count`` requests have arrived."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return list(self.received)


# ---------------------------------------------------------------------------------------------
# SMTP server.


class _RecordingHandler:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd, in its own thread) on 127.0.0.1 that records messages."""

    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _RecordingHandler()
        self._controller = Controller(self._handler, hostname=LOOPBACK, port=self.port)

    def __enter__(self) -> "SmtpServer":
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._handler.arrived:
            return list(self._handler.messages)

    def url(self, to: str = "alice@example.com") -> str:
        """The Apprise URL for plain SMTP to this server: no TLS (mode=insecure), no AUTH."""
        return f"mailto://{LOOPBACK}:{self.port}?from=printfleet@example.com&to={to}&mode=insecure"

    async def wait_for(self, count: int, timeout_s: float) -> list[EmailMessage]:
        """Wait (off the event loop) until ``count`` messages have arrived."""

        def wait() -> bool:
            with self._handler.arrived:
                return self._handler.arrived.wait_for(
                    lambda: len(self._handler.messages) >= count, timeout_s
                )

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"{count} message(s) expected within {timeout_s} s")
        return self.messages


def plain_body(message: EmailMessage) -> str:
    """The text/plain part of a message, decoded."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """A started :class:`SmtpServer`, stopped on exit."""
    with SmtpServer() as server:
        yield server
