"""The agent's settings: where its broker is, who it is, which cloud key it trusts."""

import tomllib
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from printfleet.protocol.topics import DEFAULT_PREFIX


class BrokerAddress(BaseModel):
    """A broker URL taken apart: ``mqtt://user:pass@host:1883`` or ``mqtts://host:8883``."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        """Parse a broker URL; raises ValueError with the reason when it is not one."""
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"}:
            msg = f"broker URL must start with mqtt:// or mqtts://, not {url!r}"
            raise ValueError(msg)
        if not parts.hostname:
            msg = f"broker URL {url!r} has no host"
            raise ValueError(msg)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


class AgentConfig(BaseModel):
    """Everything one printer agent needs; loadable from a TOML file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    printer_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
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
