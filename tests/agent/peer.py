"""Test helpers for agent integration tests: a peer that plays the cloud over real MQTT, a real
HTTP server for staged files, and a way to run a `PrinterAgent` as a task.

The peer subscribes to every printer's events, telemetry and presence, answers time requests with
signed replies made by a `CommandIssuer` (as the cloud would), sends signed commands, and lets a
test await what it received with bounded timeouts instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt

import printfleet.agent
from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import Hardware
from printfleet.agent.observer import AgentObserver
from printfleet.agent.runtime import PrinterAgent, new_message_id
from printfleet.broker_address import BrokerAddress
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import (
    AckEvent,
    CommandBase,
    DecodeError,
    Event,
    Presence,
    PrinterStateEvent,
    RejectedEvent,
    Telemetry,
    TimeRequestEvent,
    decode_event,
    decode_presence,
    decode_telemetry,
    encode,
)
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner
from printfleet.protocol.topics import Topics

__all__ = [
    "CloudPeer",
    "FileServer",
    "StagedFile",
    "cloud_now",
    "running_agent",
]

WAIT_S = 10.0
"""How long a test waits for something the agent should do within milliseconds."""

_E = TypeVar("_E")
_T = TypeVar("_T")


def cloud_now() -> int:
    """Cloud time: Unix epoch milliseconds from this machine's clock."""
    return time.time_ns() // 1_000_000


class CloudPeer:
    """The cloud's side of the protocol, over a real broker.

    Run `run()` as a task (or use `connected_peer`); it reconnects by itself when the broker goes
    away. Every list only grows, so a test takes a cursor (`mark`) before it acts and looks only
    at what arrived since.
    """

    def __init__(self, address: BrokerAddress, *, topics: Topics | None = None) -> None:
        self.address = address
        self.topics = topics or Topics()
        self.signer = CommandSigner.generate()
        self.issuer = CommandIssuer(self.signer, new_message_id)
        self.events: list[tuple[str, Event]] = []
        self.telemetry: list[tuple[str, Telemetry]] = []
        self.presence: list[tuple[str, Presence]] = []
        self.undecodable: list[tuple[str, str]] = []
        self.connected = asyncio.Event()
        self.on_connect: Callable[[], None] | None = None
        """Called each time the peer is subscribed again, before anything new is received."""
        self._client: aiomqtt.Client | None = None
        self._changed = asyncio.Condition()

    @property
    def public_key(self) -> str:
        """The key agents must pin to obey this peer."""
        return self.signer.public_key

    # -- the link -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Receive until cancelled, reconnecting whenever the broker drops."""
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError:
                self._client = None
                self.connected.clear()
                # Reconnect quickly: the peer should be back before any agent is.
                await asyncio.sleep(0.01)

    async def _session(self) -> None:
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            identifier=f"peer-{uuid.uuid4().hex[:12]}",
            clean_session=True,
            timeout=5,
        )
        async with client:
            for kind in ("events", "telemetry", "presence"):
                async with asyncio.timeout(WAIT_S):
                    await client.subscribe(self.topics.all_printers(kind), qos=1, timeout=math.inf)
            self._client = client
            if self.on_connect is not None:
                self.on_connect()
            self.connected.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                await self._receive(client, str(message.topic), payload)

    async def _receive(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        printer_id = self.topics.printer_of(topic)
        assert printer_id is not None, topic
        try:
            if topic.endswith("/events"):
                event = decode_event(payload)
                assert event.printer_id == printer_id, (event, topic)
                if isinstance(event, TimeRequestEvent):
                    # Answer at once, as the cloud does: the agent times the round trip.
                    reply = self.issuer.time_reply(
                        printer_id,
                        now=cloud_now(),
                        nonce=event.body.nonce,
                        request_sent_local=event.body.sent_local,
                    )
                    await _publish(client, self.topics.commands(printer_id), encode(reply))
                await self._append(self.events, printer_id, event)
            elif topic.endswith("/telemetry"):
                await self._append(self.telemetry, printer_id, decode_telemetry(payload))
            elif topic.endswith("/presence") and payload:  # empty: a retained message cleared
                await self._append(self.presence, printer_id, decode_presence(payload))
        except DecodeError as error:
            await self._append(self.undecodable, printer_id, f"{topic}: {error}")

    async def _append(self, stream: list[tuple[str, _T]], printer_id: str, item: _T) -> None:
        async with self._changed:
            stream.append((printer_id, item))
            self._changed.notify_all()

    # -- sending ------------------------------------------------------------------------------

    async def send(self, command: CommandBase, *, to: str | None = None) -> CommandBase:
        """Publish a command to its printer, or to printer `to` (QoS 1, never retained)."""
        await self.send_raw(to or command.printer_id, encode(command))
        return command

    async def send_raw(self, printer_id: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish any bytes on a printer's commands topic."""
        async with asyncio.timeout(WAIT_S):
            await self.connected.wait()
        client = self._client
        assert client is not None
        await _publish(client, self.topics.commands(printer_id), payload, retain=retain)

    # -- waiting ------------------------------------------------------------------------------

    def mark(self) -> int:
        """A cursor into `events`: pass it as `since` to look only at what comes after now."""
        return len(self.events)

    def events_of(self, printer_id: str, since: int = 0) -> list[Event]:
        """The events one printer published, from cursor `since` on."""
        return [event for pid, event in self.events[since:] if pid == printer_id]

    async def _wait_for(
        self, find: Callable[[], _T | None], what: Callable[[], str], wait_s: float
    ) -> _T:
        found: list[_T] = []

        def check() -> bool:
            item = find()
            if item is None:
                return False
            found.append(item)
            return True

        try:
            async with asyncio.timeout(wait_s), self._changed:
                await self._changed.wait_for(check)
        except TimeoutError:
            raise AssertionError(f"timed out after {wait_s} s waiting for {what()}") from None
        return found[0]

    async def event(
        self,
        printer_id: str,
        kind: type[_E],
        where: Callable[[_E], bool] = lambda _: True,
        *,
        since: int = 0,
        wait_s: float = WAIT_S,
    ) -> _E:
        """The first `kind` event from `printer_id` after cursor `since` for which `where` holds."""

        def find() -> _E | None:
            for event in self.events_of(printer_id, since):
                if isinstance(event, kind) and where(event):
                    return event
            return None

        def what() -> str:
            seen = "\n  ".join(_describe(e) for e in self.events_of(printer_id, since))
            return f"a {kind.__name__} from {printer_id}; got since the cursor:\n  {seen}"

        return await self._wait_for(find, what, wait_s)

    async def answer(
        self,
        command: CommandBase,
        *,
        since: int = 0,
        to: str | None = None,
        wait_s: float = WAIT_S,
    ) -> AckEvent | RejectedEvent:
        """The ack or rejection of `command` (sent to printer `to`, if not its addressee): the
        first event after `since` that names its id."""
        printer_id = to or command.printer_id

        def find() -> AckEvent | RejectedEvent | None:
            for event in self.events_of(printer_id, since):
                if isinstance(event, AckEvent | RejectedEvent) and (
                    event.body.command_id == command.id
                ):
                    return event
            return None

        def what() -> str:
            seen = "\n  ".join(_describe(e) for e in self.events_of(printer_id, since))
            kind = getattr(command, "type", "?")
            return f"an answer to {kind} {command.id}; got since the cursor:\n  {seen}"

        return await self._wait_for(find, what, wait_s)

    async def accepted(self, command: CommandBase) -> AckEvent:
        """Send `command` and return its ack; fail with the rejection if it is refused."""
        since = self.mark()
        await self.send(command)
        answer = await self.answer(command, since=since)
        assert isinstance(answer, AckEvent), _describe(answer)
        return answer

    async def refused(
        self, command: CommandBase, reason: Reason, *, to: str | None = None
    ) -> RejectedEvent:
        """Send `command` (to printer `to`, if given) and return its rejection, which must give
        `reason`."""
        since = self.mark()
        await self.send(command, to=to)
        answer = await self.answer(command, since=since, to=to)
        assert isinstance(answer, RejectedEvent), _describe(answer)
        assert answer.body.reason is reason, _describe(answer)
        return answer

    async def state(
        self,
        printer_id: str,
        where: Callable[[PrinterStateEvent], bool] = lambda _: True,
        *,
        since: int = 0,
    ) -> PrinterStateEvent:
        """The first state event after `since` that satisfies `where`."""
        return await self.event(printer_id, PrinterStateEvent, where, since=since)

    async def telemetry_where(
        self,
        printer_id: str,
        where: Callable[[Telemetry], bool],
        *,
        since: int = 0,
        wait_s: float = WAIT_S,
    ) -> Telemetry:
        """The first telemetry report (after index `since`) that satisfies `where`."""

        def find() -> Telemetry | None:
            for pid, report in self.telemetry[since:]:
                if pid == printer_id and where(report):
                    return report
            return None

        def what() -> str:
            mine = [t for pid, t in self.telemetry[since:] if pid == printer_id]
            return f"telemetry from {printer_id}; last of {len(mine)}: {mine[-1:]}"

        return await self._wait_for(find, what, wait_s)

    async def synced(self, printer_id: str, *, since: int = 0) -> None:
        """Wait until the printer reports cloud time, i.e. it has accepted a time reply."""
        await self.telemetry_where(printer_id, lambda t: t.sent_at is not None, since=since)

    async def presence_where(
        self, printer_id: str, where: Callable[[Presence], bool], *, since: int = 0
    ) -> Presence:
        """The first presence message (after index `since`) that satisfies `where`."""

        def find() -> Presence | None:
            for pid, presence in self.presence[since:]:
                if pid == printer_id and where(presence):
                    return presence
            return None

        return await self._wait_for(find, lambda: f"presence of {printer_id}", WAIT_S)


async def _publish(
    client: aiomqtt.Client, topic: str, payload: bytes, *, retain: bool = False
) -> None:
    # Bounded by asyncio.timeout, not aiomqtt's own timeout: that one goes through
    # asyncio.wait_for, which on Python 3.11 can swallow a cancellation and hang a test's exit.
    async with asyncio.timeout(WAIT_S):
        await client.publish(topic, payload, qos=1, retain=retain, timeout=math.inf)


def _describe(event: Event) -> str:
    return f"{event.type} {event.body.model_dump(mode='json')}"


@contextlib.asynccontextmanager
async def connected_peer(address: BrokerAddress) -> AsyncIterator[CloudPeer]:
    """A `CloudPeer` running as a task, subscribed before this yields."""
    peer = CloudPeer(address)
    task = asyncio.create_task(peer.run(), name="cloud-peer")
    try:
        async with asyncio.timeout(WAIT_S):
            await peer.connected.wait()
        yield peer
        assert not peer.undecodable, peer.undecodable
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_agent(
    config: AgentConfig, hardware: Hardware, *, observer: AgentObserver | None = None
) -> AsyncIterator[tuple[PrinterAgent, asyncio.Task[None]]]:
    """Run a `PrinterAgent` as a task until the block ends; yields once it is connected.

    A crash of the agent fails the test: waiting for readiness and leaving the block both check.
    Leaving the block stops the agent and checks that nothing of it keeps running: a stopped
    agent that still watched a print or wrote its journal would race the agent that replaces it.
    """
    before = asyncio.all_tasks()
    agent = PrinterAgent(config, hardware, observer=observer)
    task = asyncio.create_task(agent.run(), name=f"agent:{config.printer_id}")
    try:
        ready = asyncio.create_task(agent.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=WAIT_S, return_when="FIRST_COMPLETED")
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        if task in done:
            await task  # raises what stopped it
            raise AssertionError("the agent returned before it connected")
        assert ready in done, "the agent did not connect"
        yield agent, task
        assert not task.done(), "the agent stopped by itself"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    leftover = [
        task.get_name()
        for task in asyncio.all_tasks() - before
        if not task.done() and _runs_agent_code(task)
    ]
    assert not leftover, f"tasks outlived the stopped agent: {leftover}"


AGENT_SOURCES = Path(printfleet.agent.__file__).parent
"""The agent's package: its loops live in several modules (session, thermal watch, ...)."""


def _runs_agent_code(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and Path(code.co_filename).is_relative_to(AGENT_SOURCES)


# -- staged files over real HTTP -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A file the server offers: where, its checksum and size."""

    name: str
    url: str
    sha256: str
    size: int


class FileServer:
    """A stdlib HTTP server on 127.0.0.1:0 in a thread, serving files from memory."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self.requests: list[str] = []
        files, requests = self._files, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                data = files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/x-gcode")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
                """Quiet: the test output is no place for an access log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def add(self, name: str, data: bytes) -> StagedFile:
        """Offer `data` as `/name`."""
        self._files[name] = data
        host, port = self._server.server_address[:2]
        return StagedFile(
            name=name,
            url=f"http://{host!s}:{port}/{name}",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextlib.contextmanager
def file_server() -> Iterator[FileServer]:
    """A running `FileServer`."""
    with FileServer() as server:
        yield server
