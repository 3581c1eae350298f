"""The embedded MQTT broker: amqtt in the cloud's own process, for one-command set-ups.

``printfleet serve`` and ``printfleet demo`` use it when no external broker is configured. It
listens on 127.0.0.1 only (a free port unless one is given) and lets clients in without
credentials, which is why it never listens anywhere else: production fleets use Mosquitto with
per-printer credentials and ACLs (see ``broker_auth``). The demo may stop it and start it again
on the same port (``printfleet demo --fault broker:outage``), so a person can watch the cloud and
the printers ride out a broker outage.
"""

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """Where the running embedded broker listens, and its switch: `stop()` and `start()`."""

    __slots__ = ("_broker", "host", "port")

    def __init__(self, host: str, port: int, broker: Broker) -> None:
        self.host = host
        self.port = port
        self._broker: Broker | None = broker

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker listens (it has not been stopped, or has started again)."""
        return self._broker is not None

    async def stop(self) -> None:
        """Stop the broker: every client's connection drops and retained messages are gone,
        as after a broker restart without persistence. Nothing happens if it is stopped."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def start(self) -> None:
        """Start the broker again on the same port. Nothing happens if it runs."""
        if self._broker is None:
            self._broker = await _started(self.port)


class _SnapshotTable(dict[Any, Any]):
    """A table whose every iteration walks a copy of it.

    amqtt 0.12 walks its subscription and retained-message tables across awaits: while one
    client's connection is being set up (its retained messages sent), another client's SUBSCRIBE
    adds a filter, and the walk fails with "dictionary changed size during iteration" — that
    client is dropped and its connection times out. A printer fleet connecting at once (the demo
    starting, a broker restart) does exactly this. Walking a copy sees the table as it was when
    the walk began, which is all those walks need.
    """

    def __iter__(self) -> Iterator[Any]:
        return iter(list(super().__iter__()))

    def keys(self) -> Any:
        return list(super().keys())

    def values(self) -> Any:
        return list(super().values())

    def items(self) -> Any:
        return list(super().items())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _started(port: int) -> Broker:
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }
    broker = Broker(config)
    # Only the tables amqtt walks while awaiting; both are empty until the broker starts.
    broker._subscriptions = _SnapshotTable()
    broker._retained_messages = _SnapshotTable()
    await broker.start()
    return broker


@contextlib.asynccontextmanager
async def embedded_broker(port: int | None = None) -> AsyncIterator[EmbeddedBroker]:
    """Run an amqtt broker on 127.0.0.1 for the duration of the context."""
    chosen = port or _free_port()
    running = EmbeddedBroker("127.0.0.1", chosen, await _started(chosen))
    log.info("embedded MQTT broker on 127.0.0.1:%d", chosen)
    try:
        yield running
    finally:
        await running.stop()
