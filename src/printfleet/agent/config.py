"""The agent's settings: where its broker is, who it is, which cloud key it trusts."""

import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, model_validator

from printfleet.broker_address import BrokerAddress
from printfleet.protocol.identities import PRINTER_ID_PATTERN
from printfleet.protocol.topics import DEFAULT_PREFIX


class AgentConfig(BaseModel):
    """Everything one printer agent needs; loadable from a TOML file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    printer_id: Annotated[str, Field(pattern=PRINTER_ID_PATTERN)]
    model: str = "x1"
    broker: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    topic_prefix: str = DEFAULT_PREFIX
    cloud_public_key: str | None = None
    """The key commands must be signed with; without one every command is refused."""
    data_dir: Path = Path(".printfleet/agent")
    telemetry_period_s: Annotated[float, Field(gt=0)] = 1.0
    time_sync_period_s: Annotated[float, Field(gt=0)] = 30.0
    keepalive_s: Annotated[int, Field(ge=2)] = 10
    mode: Literal["cloud+lan", "lan-only"] = "cloud+lan"
    """``lan-only``: every cloud command is refused (CLOUD_DISABLED); the LAN API and the
    printer's screen still work, and local jobs are still reported to the cloud."""
    lan_listen: str | None = None
    """``host:port`` for the LAN API (``0.0.0.0:8090`` for the whole network); None: off."""
    lan_access_code: SecretStr | None = None
    """The code every LAN request must carry; required when ``lan_listen`` is set."""
    lan_max_upload_bytes: Annotated[int, Field(gt=0)] = 512 * 1024 * 1024
    lan_max_failures: Annotated[int, Field(ge=1)] = 5
    """Wrong access codes one client address may send per ``lan_lockout_s`` before 429."""
    lan_lockout_s: Annotated[float, Field(gt=0)] = 60.0
    lan_header_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """A LAN client has this long to send a whole request head, from connecting or from the
    end of its previous answer; then it is cut off, however slowly its bytes still arrive."""
    lan_idle_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    """A request body (an upload) that stalls this long is cut off."""
    lan_max_connections: Annotated[int, Field(ge=1)] = 32
    """Connections the LAN API keeps open at once; past it a new one replaces the oldest idle
    connection that never carried the access code, or is refused if there is none."""
    lan_max_connections_per_address: Annotated[int, Field(ge=1)] = 8
    """The same, for one client address (trusted proxies are held only to the total)."""
    lan_trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    """Addresses or networks (``192.168.1.10``, ``10.0.0.0/24``) of reverse proxies whose
    ``X-Forwarded-For`` names the client; from anyone else the header is ignored. Empty: the
    client is always the socket's peer."""
    report_retry_s: Annotated[float, Field(gt=0)] = 30.0
    """How often unacknowledged local-job reports are sent again while connected."""
    telemetry_buffer: Annotated[int, Field(ge=1, le=10_000)] = 300
    """Telemetry reports kept while the broker is unreachable (the newest), summarised on
    return; older ones are counted, not kept."""
    plate_clearing: Literal["person", "auto_eject"] = "person"
    """Who clears the plate after a print: ``person``, or ``auto_eject`` for a machine that
    clears its own (an eject arm, a plate swapper, a belt). Set by whoever installs the
    printer, like its plate sensor; the cloud cannot change it. An ``auto_eject`` printer runs
    its eject routine after each completed print (never after a failed or cancelled one) and,
    if that reports the plate clear, confirms the plate itself, as "auto-eject"."""

    @model_validator(mode="after")
    def _lan_needs_a_code(self) -> Self:
        if self.lan_listen is not None:
            lan_address(self.lan_listen)
            code = self.lan_access_code
            if code is None or len(code.get_secret_value()) < 8:  # noqa: PLR2004 - documented
                msg = "lan_access_code of at least 8 characters is required with lan_listen"
                raise ValueError(msg)
        return self

    @classmethod
    def from_file(cls, path: Path) -> "AgentConfig":
        """Load a TOML config file (keys as the field names above)."""
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))

    def broker_address(self) -> BrokerAddress:
        """The broker, with explicit credentials taking precedence over the URL's."""
        address = BrokerAddress.parse(self.broker)
        return address.model_copy(
            update={
                "username": self.username or address.username,
                "password": self.password or address.password,
            }
        )


def lan_address(listen: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) taken apart; raises ValueError when it is not one."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:  # noqa: PLR2004
        msg = f"lan_listen must be host:port, not {listen!r}"
        raise ValueError(msg)
    return host, int(port)
