"""A throwaway Mosquitto broker on a free loopback port, for tests and fault injection.

Readiness is proven by an MQTT CONNECT answered with a CONNACK: the same probe that tests use to
show that a frozen broker no longer answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from printfleet.testing.process import INSTALL_HINT, ServiceNotInstalledError, ServiceProcess

# Debian installs the broker in sbin, which is not on an unprivileged user's PATH.
_FALLBACK_LOCATIONS = (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))

_CONNACK = 0x20


def find_mosquitto() -> Path:
    """Locate the `mosquitto` binary, or explain how to install it."""
    found = shutil.which("mosquitto")
    if found is not None:
        return Path(found)
    for candidate in _FALLBACK_LOCATIONS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ServiceNotInstalledError(
        f"mosquitto is not installed (not on PATH, not in sbin). {INSTALL_HINT}"
    )


def probe_mqtt_connect(host: str, port: int, *, timeout: float, client_id: str = "") -> int:
    """Send an MQTT 3.1.1 CONNECT (clean session) and return the CONNACK's return code.

    0 means accepted, 5 not authorised; either proves the broker serves. Raises `TimeoutError` when
    no CONNACK arrives within `timeout` seconds (overall), `OSError` when the connection fails.
    An empty `client_id` stands for a fresh unique one.
    """
    deadline = time.monotonic() + timeout
    # Unique by default: a broker drops the older of two connections with the same client id.
    identifier = (client_id or f"printfleet-probe-{uuid.uuid4().hex[:12]}").encode()
    # Protocol name "MQTT", level 4 (3.1.1), flags: clean session, keep-alive 10 s.
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x0a"
    payload = len(identifier).to_bytes(2, "big") + identifier
    remaining = len(variable_header) + len(payload)
    if remaining > 127:  # noqa: PLR2004 -- one-byte remaining length keeps the encoder trivial
        raise ValueError("client_id too long for the probe")
    packet = bytes([0x10, remaining]) + variable_header + payload
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(packet)
        reply = b""
        while len(reply) < 4:  # noqa: PLR2004 -- a CONNACK is exactly four bytes
            connection.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = connection.recv(4 - len(reply))
            if not chunk:
                raise ConnectionResetError("broker closed the connection before its CONNACK")
            reply += chunk
        if reply[0] != _CONNACK:
            raise ConnectionError(f"expected a CONNACK, got {reply!r}")
        if reply[3] == 0:
            connection.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean goodbye
        return reply[3]


class MosquittoBroker(ServiceProcess):
    """A Mosquitto broker of its own: config, log and port in a temp dir, no persistence.

    Use it as a context manager, or call `start()` and `close()`. `kill()`, `restart()`, `freeze()`
    and `thaw()` inject faults; the broker always comes back on the same port.
    """

    name = "mosquitto"

    def __init__(
        self,
        *,
        port: int | None = None,
        allow_anonymous: bool = True,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        username_as_client_id: bool = False,
        extra_config: Sequence[str] = (),
        binary: Path | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self.binary = find_mosquitto() if binary is None else binary
        super().__init__(port=port, ready_timeout=ready_timeout)
        self.allow_anonymous = allow_anonymous
        self.password_file = password_file
        self.acl_file = acl_file
        self.username_as_client_id = username_as_client_id
        """``use_username_as_clientid true``, as printfleet's README configures Mosquitto: each
        login's client id is its username, whatever it asks for (logins without one are
        refused)."""
        self.extra_config = tuple(extra_config)

    @property
    def url(self) -> str:
        """Where clients connect: `mqtt://127.0.0.1:PORT`."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The broker's configuration file, written before its first start."""
        return self.directory / "mosquitto.conf"

    def _prepare(self, directory: Path) -> None:
        lines = [
            "# Written by printfleet.testing for one throwaway broker.",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            # Nothing may survive a restart that a test did not ask for (S9: no queues).
            "persistence false",
            # Standard error is redirected to our log file, which also catches errors the broker
            # reports before its logging is configured (a bad config line, a port in use).
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            # As root, Mosquitto would switch to the 'mosquitto' user, who cannot read our 0700 temp
            # dir nor a password file a test wrote.
            lines.append("user root")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.username_as_client_id:
            lines.append("use_username_as_clientid true")
        lines.extend(self.extra_config)
        (directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def _command(self) -> Sequence[str | Path]:
        return [self.binary, "-c", self.config_path]

    def _is_ready(self) -> bool:
        probe_mqtt_connect(self.host, self.port, timeout=1.0)
        return True
