"""Free TCP ports on the loopback interface for servers that tests start themselves.

Ports come from the kernel's ephemeral range, so they never collide with services a machine runs on
their standard ports (Mosquitto on 1883, PostgreSQL on 5432, ...).
"""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

# Ports already handed out by this process. A server that is killed and later restarted keeps its
# port, and while it is down the kernel would happily offer that port to the next caller.
_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that nothing listens on and this process has not handed out yet.

    There is an unavoidable window between this check and the server binding the port; servers
    started from `printfleet.testing` report a clear error if another program wins that race.
    """
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
                port: int = probe.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free TCP port found on {host}")


def release_port(port: int) -> None:
    """Let `free_port` hand out `port` again once its server is gone for good."""
    with _lock:
        _handed_out.discard(port)
