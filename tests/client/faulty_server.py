"""A small real HTTP/1.1 server that answers from a script, to make clients meet failures.

Each connection's requests are read off a real socket and recorded (method, path, headers,
body); the answer is the next scripted :class:`Reply` whose path prefix matches, or a plain
200 once the script runs out. A reply can also drop the connection without an answer, as a
crashed or overloaded server (or a broken network) would after receiving the request.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection instead of answering (after reading the request)."""
    raw: bytes | None = None
    """The body verbatim (for event streams), instead of ``body`` as JSON."""
    path: str = ""
    """Only for requests whose path starts with this."""


@dataclass
class Received:
    """A request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FaultyServer:
    """Serves the script on 127.0.0.1; use as a context manager."""

    def __init__(self, script: list[Reply] | None = None, default: Reply | None = None) -> None:
        self.script = list(script or [])
        self.default = default or Reply(200, {})
        self.received: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                owner._serve(self.rfile, self.connection)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="faulty-server"
        )

    def __enter__(self) -> FaultyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def requests_to(self, path: str) -> list[Received]:
        """The requests received whose path starts with ``path``."""
        with self._lock:
            return [r for r in self.received if r.path.startswith(path)]

    def _next(self, path: str) -> Reply:
        with self._lock:
            for index, reply in enumerate(self.script):
                if path.startswith(reply.path):
                    return self.script.pop(index)
            return self.default

    def _serve(self, reader: Any, connection: socket.socket) -> None:
        for request in _requests(reader):
            with self._lock:
                self.received.append(request)
            reply = self._next(request.path)
            if reply.drop:
                connection.shutdown(socket.SHUT_RDWR)
                return
            body = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            kind = "text/event-stream" if reply.raw is not None else "application/json"
            headers = {"Content-Type": kind, "Content-Length": str(len(body)), **reply.headers}
            head = f"HTTP/1.1 {reply.status} X\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in headers.items()
            )
            connection.sendall(head.encode() + b"\r\n" + body)


def _requests(reader: Any) -> Iterator[Received]:
    while True:
        line = reader.readline()
        if not line.strip():
            return
        method, target, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (header := reader.readline().decode()).strip():
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers.get("content-length", "0")))
        yield Received(method, target, headers, body)
