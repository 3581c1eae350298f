"""The embedded MQTT broker: amqtt in the cloud's own process, for one-command set-ups.

``printfleet serve`` and ``printfleet demo`` use it when no external broker is configured. It
listens on 127.0.0.1 only (a free port unless one is given) and lets clients in without
credentials, which is why it never listens anywhere else: production fleets use Mosquitto with
per-printer credentials and ACLs (see ``broker_auth``).
"""

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmbeddedBroker:
    """Where the running embedded broker listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"


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


@contextlib.asynccontextmanager
async def embedded_broker(port: int | None = None) -> AsyncIterator[EmbeddedBroker]:
    """Run an amqtt broker on 127.0.0.1 for the duration of the context."""
    chosen = port or _free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{chosen}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }
    broker = Broker(config)
    # Only the tables amqtt walks while awaiting; both are empty until the broker starts.
    broker._subscriptions = _SnapshotTable()
    broker._retained_messages = _SnapshotTable()
    await broker.start()
    log.info("embedded MQTT broker on 127.0.0.1:%d", chosen)
    try:
        yield EmbeddedBroker("127.0.0.1", chosen)
    finally:
        await broker.shutdown()
