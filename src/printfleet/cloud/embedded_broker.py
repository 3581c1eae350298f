"""The embedded MQTT broker: amqtt in the cloud's own process, for one-command set-ups.

``printfleet serve`` and ``printfleet demo`` use it when no external broker is configured. It
listens on 127.0.0.1 only (a free port unless one is given) and lets clients in without
credentials, which is why it never listens anywhere else: production fleets use Mosquitto with
per-printer credentials and ACLs (see ``broker_auth``).
"""

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

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
    await broker.start()
    log.info("embedded MQTT broker on 127.0.0.1:%d", chosen)
    try:
        yield EmbeddedBroker("127.0.0.1", chosen)
    finally:
        await broker.shutdown()
