"""Where an MQTT broker is, as printfleet writes it: ``mqtt://user:pass@host:1883`` or
``mqtts://host:8883``. The cloud, the agent and the tools all parse broker URLs with this."""

from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict


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
