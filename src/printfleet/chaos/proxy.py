"""An asyncio TCP fault proxy: put it between two real processes and break the link on demand.

Modes: ``forward`` passes traffic on; ``delay`` forwards each chunk late; ``blackhole`` keeps
connections open but silently discards every byte (a half-open link: neither side notices until
a timeout); ``hold`` keeps every byte and releases the pile in one burst when the mode returns
to ``forward`` (the 2023 burst-on-reconnect); ``reset`` aborts every connection with an RST and
refuses new ones. Everything binds 127.0.0.1 and stops with the proxy.
"""

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from enum import StrEnum


class ProxyMode(StrEnum):
    """How the proxy treats traffic."""

    FORWARD = "forward"
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    HOLD = "hold"
    RESET = "reset"


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
        self.connections = 0

    async def __aenter__(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            _abort(pipe.writer)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def set_mode(self, mode: ProxyMode) -> None:
        """Switch modes; ``reset`` aborts every live connection at once."""
        self.mode = mode
        if mode is ProxyMode.RESET:
            for pipe in list(self._pipes):
                _abort(pipe.writer)
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode is ProxyMode.RESET:
            _abort(client_w)
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

    async def _flush(self, pipe: _Pipe) -> None:
        if pipe.held:
            burst, pipe.held = b"".join(pipe.held), []
            pipe.writer.write(burst)
            await pipe.writer.drain()
