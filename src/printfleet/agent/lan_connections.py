"""The LAN API's connections: a budget nobody without the access code can hold, and deadlines
for clients that send slowly or not at all.

uvicorn has a keep-alive timeout but no deadline for a request head, and its
``limit_concurrency`` answers 503 to everyone once idle sockets fill it. So the LAN server runs
uvicorn's h11 protocol with one addition per connection: it is admitted to a
``ConnectionBudget`` (which may close older connections that never showed the code to make
room) and it has one timer, armed for whatever the connection is waiting on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import uvicorn
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = [
    "ConnectionBudget",
    "LanConnection",
    "LanServerConfig",
    "connection_of",
    "is_trusted_proxy",
]

log = logging.getLogger(__name__)

CONNECTION_EXTENSION: Final = "printfleet.lan.connection"
"""The ASGI scope extension under which a request finds its ``LanConnection``."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class LanConnection:
    """One accepted connection as the budget sees it: whose it is and whether it may be closed
    to make room."""

    __slots__ = ("_close", "address", "authenticated", "busy")

    def __init__(self, address: str, close: Callable[[], None]) -> None:
        self.address = address
        """The peer's address as the socket reports it (never a forwarded one)."""
        self.authenticated = False
        """Set once a request on it carried the right access code; never evicted after that."""
        self.busy = False
        """A request on it is with the app."""
        self._close = close

    @property
    def evictable(self) -> bool:
        """Idle and never authenticated: closing it costs nobody with the code anything."""
        return not self.authenticated and not self.busy

    def close(self) -> None:
        """Cut the connection at once, unsent data and all."""
        self._close()

    def __repr__(self) -> str:
        state = "authenticated" if self.authenticated else "anonymous"
        return f"<LanConnection {self.address} {state}{' busy' if self.busy else ''}>"


class ConnectionBudget:
    """How many connections the LAN API keeps, in all and per address, and who gives way.

    A new connection that would go over a cap takes the place of the oldest idle connection
    that has never carried the right access code (from its own address for the per-address
    cap, from anywhere for the total); when there is none, the new one is refused. So sockets
    held open without the code cannot keep out a client that has it: it needs a slot only for
    the moment between connecting and sending its head. Addresses in ``exempt`` (trusted
    proxies, which carry many clients) are held only to the total.
    """

    def __init__(
        self,
        max_connections: int,
        max_per_address: int,
        *,
        exempt: Callable[[str], bool] = lambda _address: False,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self._exempt = exempt
        # Insertion order is age order: the oldest connection comes first.
        self._open: dict[LanConnection, None] = {}

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: LanConnection) -> list[LanConnection]:
        """Take ``connection`` in. Returns the connections to close to make room for it, or
        ``[connection]`` itself when none may give way; the budget has forgotten them all."""
        victims: list[LanConnection] = []
        if not self._exempt(connection.address):
            same = [c for c in self._open if c.address == connection.address]
            if len(same) >= self.max_per_address:
                victim = _oldest_evictable(same)
                if victim is None:
                    return [connection]
                victims.append(victim)
        if len(self._open) - len(victims) >= self.max_connections:
            victim = _oldest_evictable(c for c in self._open if c not in victims)
            if victim is None:
                return [connection]
            victims.append(victim)
        for victim in victims:
            del self._open[victim]
        self._open[connection] = None
        return victims

    def release(self, connection: LanConnection) -> None:
        """Forget a closed connection (any number of times)."""
        self._open.pop(connection, None)


def _oldest_evictable(connections: Iterable[LanConnection]) -> LanConnection | None:
    return next((c for c in connections if c.evictable), None)


def is_trusted_proxy(address: str, proxies: Iterable[Network]) -> bool:
    """Whether ``address`` lies in one of ``proxies``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def connection_of(scope: Mapping[str, Any]) -> LanConnection | None:
    """The connection a request came on, when the guarded protocol serves it."""
    extension = scope.get("extensions", {}).get(CONNECTION_EXTENSION, {})
    connection = extension.get("connection")
    return connection if isinstance(connection, LanConnection) else None


class LanServerConfig(uvicorn.Config):
    """uvicorn's config, serving with the guarded h11 protocol under ``budget``."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        budget: ConnectionBudget,
        header_timeout_s: float,
        idle_timeout_s: float,
        **options: Any,
    ) -> None:
        super().__init__(app, http=GuardedH11Protocol, **options)
        self.budget = budget
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, admitted to a budget, with a deadline for every wait on the
    client: the whole request head within ``header_timeout_s`` of connecting (or of the last
    answer), however slowly it trickles in; and no more than ``idle_timeout_s`` between two
    pieces of a request body."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, LanServerConfig):
            msg = "GuardedH11Protocol serves a LanServerConfig"
            raise TypeError(msg)
        self._budget = config.budget
        self._header_timeout_s = config.header_timeout_s
        self._idle_timeout_s = config.idle_timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._head_due: float | None = None
        self.lan = LanConnection("unknown", self._cut)
        self.app = self._tagging(self.app)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client is not None:
            self.lan.address = self.client[0]
        for victim in self._budget.admit(self.lan):
            log.info("LAN API: closing %r to stay within the connection budget", victim)
            victim.close()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._budget.release(self.lan)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        # The next head is due within the timeout of this answer, not of the first byte.
        self._head_due = None
        super().on_response_complete()
        self._watch()

    def _tagging(self, app: ASGI3Application) -> ASGI3Application:
        lan = self.lan

        async def tagged(
            scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
        ) -> None:
            if scope["type"] == "http":
                scope.setdefault("extensions", {})[CONNECTION_EXTENSION] = {"connection": lan}
            lan.busy = True
            try:
                await app(scope, receive, send)
            finally:
                lan.busy = False

        return tagged

    def _watch(self) -> None:
        """Arm the timer for what the connection waits on now."""
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            # Waiting for a head: one deadline for all of it, so a byte now and then buys nothing.
            if self._head_due is None:
                self._head_due = self.loop.time() + self._header_timeout_s
                self._arm(self._head_due)
        elif cycle.more_body:
            self._head_due = None
            self._arm(self.loop.time() + self._idle_timeout_s)
        else:
            # The whole request is in; the app answers in its own time.
            self._head_due = None
            self._disarm()

    def _arm(self, when: float) -> None:
        self._disarm()
        self._timer = self.loop.call_at(when, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self.flow.read_paused:
            # The app has not taken what came already: the client is not the one stalling.
            self._arm(self.loop.time() + self._idle_timeout_s)
            return
        waited = "a request head" if self._head_due is not None else "more of a request body"
        log.info("LAN API: %s sent no %s in time; closing", self.lan.address, waited)
        self._cut()

    def _cut(self) -> None:
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
