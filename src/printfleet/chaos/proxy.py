"""An asyncio TCP fault proxy: put it between two real processes and break the link on demand.

Modes: ``forward`` passes traffic on; ``delay`` forwards each chunk late; ``blackhole`` keeps
connections open but silently discards every byte (a half-open link: neither side notices until
a timeout); ``hold`` keeps every byte and releases the pile in one burst when the mode returns
to ``forward`` (the 2023 burst-on-reconnect); ``reset`` aborts every connection with an RST and
refuses new ones; ``lie`` is the 2023 adapter itself: live connections die (a timeout), and every
reconnect is answered by a fake MQTT 3.1.1 broker that acknowledges the CONNECT, subscriptions
and publishes but delivers nothing; when the mode returns to ``forward`` each fake session's bytes
are replayed to the real broker in one burst, then the fake session is reset. Everything binds
127.0.0.1 and stops with the proxy.
"""

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ProxyMode(StrEnum):
    """How the proxy treats traffic."""

    FORWARD = "forward"
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    HOLD = "hold"
    RESET = "reset"
    LIE = "lie"


@dataclass(slots=True, eq=False)
class _Pipe:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    held: list[bytes] = field(default_factory=list)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: linger on, timeout zero."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` with injectable faults."""

    def __init__(self, target_host: str, target_port: int, *, delay_s: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.mode = ProxyMode.FORWARD
        self.delay_s = delay_s
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._mode_changed = asyncio.Event()
        self._fakes: set[_FakeSession] = set()
        self.connections = 0
        self.fake_sessions = 0
        self.fake_acks = 0
        """Publishes the fake broker acknowledged (and delivered nowhere), over every session."""
        self.replayed_bytes = 0

    async def __aenter__(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            _abort(pipe.writer)
        for fake in list(self._fakes):
            _abort(fake.writer)
        self._fakes.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def set_mode(self, mode: ProxyMode) -> None:
        """Switch modes; ``reset`` and ``lie`` abort every live connection at once."""
        self.mode = mode
        if mode in {ProxyMode.RESET, ProxyMode.LIE}:
            for pipe in list(self._pipes):
                _abort(pipe.writer)
        if mode is not ProxyMode.LIE:
            for fake in list(self._fakes):
                self._fakes.discard(fake)
                self._spawn(self._replay(fake, burst=mode is not ProxyMode.RESET), "proxy replay")
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count_fake_ack(self) -> None:
        self.fake_acks += 1

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode is ProxyMode.RESET:
            _abort(client_w)
            return
        if self.mode is ProxyMode.LIE:
            fake = _FakeSession(client_r, client_w, self._count_fake_ack)
            self._fakes.add(fake)
            self.fake_sessions += 1
            self._spawn(fake.serve(), "proxy fake broker")
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(client_w)
            return
        self.connections += 1
        to_server = _Pipe(client_r, upstream_w)
        to_client = _Pipe(upstream_r, client_w)
        for pipe in (to_server, to_client):
            self._pipes.add(pipe)
            task = asyncio.create_task(self._pump(pipe), name="proxy pump")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, pipe: _Pipe) -> None:
        try:
            while chunk := await pipe.reader.read(65536):
                await self._forward(pipe, chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            self._pipes.discard(pipe)
            with contextlib.suppress(ConnectionError, OSError):
                pipe.writer.close()

    async def _forward(self, pipe: _Pipe, chunk: bytes) -> None:
        match self.mode:
            case ProxyMode.BLACKHOLE:
                return
            case ProxyMode.HOLD:
                pipe.held.append(chunk)
                # Release the pile when the link comes back, before anything newer.
                self._spawn_release(pipe)
                return
            case ProxyMode.DELAY:
                await asyncio.sleep(self.delay_s)
            case ProxyMode.RESET:
                _abort(pipe.writer)
                return
            case ProxyMode.FORWARD:
                pass
        await self._flush(pipe)
        pipe.writer.write(chunk)
        await pipe.writer.drain()

    def _spawn_release(self, pipe: _Pipe) -> None:
        if len(pipe.held) != 1:
            return  # a release is already waiting for this pipe

        async def release() -> None:
            while self.mode not in {ProxyMode.FORWARD, ProxyMode.DELAY}:
                await self._mode_changed.wait()
            with contextlib.suppress(ConnectionError, OSError):
                await self._flush(pipe)

        task = asyncio.create_task(release(), name="proxy release")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replay(self, fake: "_FakeSession", *, burst: bool) -> None:
        """Deliver what a fake session swallowed to the real broker, then reset the session."""
        try:
            if burst and fake.held:
                upstream_r, upstream_w = await asyncio.open_connection(*self.target)
                # Whole packets only, then a DISCONNECT so the broker handles them and hangs up.
                upstream_w.write(bytes(fake.held[: fake.complete]) + b"\xe0\x00")
                await upstream_w.drain()
                self.replayed_bytes += fake.complete
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        while await upstream_r.read(65536):
                            pass  # the broker's answers went to nobody in 2023 either
                upstream_w.close()
        except (ConnectionError, OSError):
            pass
        finally:
            _abort(fake.writer)

    async def _flush(self, pipe: _Pipe) -> None:
        if pipe.held:
            burst, pipe.held = b"".join(pipe.held), []
            pipe.writer.write(burst)
            await pipe.writer.drain()


# ---------------------------------------------------------------------------------------------
# The fake broker of ``lie`` mode.


def _split_packet(buffer: bytes | bytearray, start: int) -> tuple[int, int, int] | None:
    """``(first byte, body start, body end)`` of the MQTT packet at ``start``, if complete."""
    length, multiplier, position = 0, 1, start + 1
    while True:
        if position >= len(buffer) or position - start > 4:  # noqa: PLR2004 - 4 length bytes
            return None
        byte = buffer[position]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        position += 1
        if not byte & 0x80:
            break
    end = position + length
    if end > len(buffer):
        return None
    return buffer[start], position, end


_PUBLISH = 3
"""MQTT's PUBLISH packet type."""


def _fake_reply(first: int, body: bytes) -> bytes:
    """What a broker would answer to one MQTT 3.1.1 packet: an acknowledgement, or nothing."""
    kind, flags = first >> 4, first & 0x0F
    match kind:
        case 1:  # CONNECT
            return b"\x20\x02\x00\x00"
        case 3 if flags & 0x06:  # PUBLISH at QoS 1 or 2
            topic_length = int.from_bytes(body[:2], "big")
            packet_id = body[2 + topic_length : 4 + topic_length]
            return (b"\x40\x02" if flags & 0x06 == 0x02 else b"\x50\x02") + packet_id  # noqa: PLR2004
        case 6:  # PUBREL
            return b"\x70\x02" + body[:2]
        case 8:  # SUBSCRIBE: grant each filter the QoS it asked for
            granted, position = bytearray(), 2
            while position + 2 <= len(body):
                length = int.from_bytes(body[position : position + 2], "big")
                position += 2 + length
                if position < len(body):
                    granted.append(body[position] & 0x03)
                position += 1
            return bytes([0x90, 2 + len(granted)]) + body[:2] + bytes(granted)
        case 10:  # UNSUBSCRIBE
            return b"\xb0\x02" + body[:2]
        case 12:  # PINGREQ
            return b"\xd0\x00"
        case _:
            return b""


class _FakeSession:
    """One client connection answered by the fake broker; keeps every byte it was sent."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_publish_acked: Callable[[], None],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.on_publish_acked = on_publish_acked
        self.held = bytearray()
        self.complete = 0
        """How many leading bytes of ``held`` are whole packets."""

    async def serve(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                self.held += chunk
                while (packet := _split_packet(self.held, self.complete)) is not None:
                    first, body_start, end = packet
                    self.complete = end
                    reply = _fake_reply(first, bytes(self.held[body_start:end]))
                    if reply:
                        self.writer.write(reply)
                        if first >> 4 == _PUBLISH:
                            self.on_publish_acked()
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
