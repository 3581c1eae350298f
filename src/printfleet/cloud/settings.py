"""How a cloud process is configured: :class:`Settings`, from ``PRINTFLEET_*`` environment
variables and the options of ``printfleet serve``.

pydantic-settings reads the variables (names, empty-means-unset, types and the messages for a
wrong value all come from the one class below), instead of a hand-kept table of names.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from printfleet.cloud.admission import DEFAULT_MAX_BODY_BYTES
from printfleet.cloud.broker_auth import cloud_username
from printfleet.cloud.files import (
    DEFAULT_CHECK_WAIT_S,
    DEFAULT_CHECK_WORKERS,
    DEFAULT_MAX_UPLOAD_BYTES,
    ArchiveLimits,
)
from printfleet.cloud.notify.announcer import DELIVERY_LEASE_S
from printfleet.cloud.notify.outbound import parse_allow_list
from printfleet.cloud.usecases.accounts import (
    MAX_TOKEN_LIFETIME_S,
    MIN_TOKEN_LIFETIME_S,
    TOKEN_LIFETIME_S,
)
from printfleet.cloud.usecases.stats import CostRates

__all__ = ["Settings"]

_ARCHIVE = ArchiveLimits()

_READ_ENVIRONMENT: ContextVar[bool] = ContextVar("_READ_ENVIRONMENT", default=False)
"""Set while :meth:`Settings.from_env` builds settings: only then are variables read."""


class Settings(BaseSettings):
    """How a cloud process runs: :meth:`from_env` reads each setting from its ``PRINTFLEET_*``
    variable (``data_dir`` from ``PRINTFLEET_DATA_DIR``, ...); made directly, a ``Settings``
    holds only the values it is given, whatever the environment says."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="PRINTFLEET_",
        # An empty variable counts as unset, as shells make clearing one easiest that way.
        env_ignore_empty=True,
    )

    data_dir: Path = Path(".printfleet/cloud")
    """The signing key, the secrets key, uploaded files, and the SQLite database unless one is
    given; made private to the cloud's user at start (0700, its files 0600)."""
    database_url: str | None = None
    """SQLite or PostgreSQL (``postgresql+asyncpg://...``); default a SQLite file in data_dir."""
    broker_url: str | None = None
    """``mqtt://user:pass@host:1883`` for the cloud itself; none: an embedded broker on
    127.0.0.1 (one machine only: it lets anyone on the machine in)."""
    printer_broker_url: str | None = None
    """The broker URL written into agent configs; default the cloud's, without credentials."""
    public_url: str = "http://127.0.0.1:8000"
    """Where printers reach this server to fetch files (scheme, host, port, no trailing /)."""
    max_upload_bytes: Annotated[int, Field(gt=0)] = DEFAULT_MAX_UPLOAD_BYTES
    max_archive_members: Annotated[int, Field(gt=0)] = _ARCHIVE.max_members
    """Files a ``.gcode.3mf`` may hold (1024); more: 422."""
    max_member_unpacked_bytes: Annotated[int, Field(gt=0)] = _ARCHIVE.max_member_bytes
    """What one file in a ``.gcode.3mf`` may unpack to (256 MiB); more: 413."""
    max_unpacked_bytes: Annotated[int, Field(gt=0)] = _ARCHIVE.max_total_bytes
    """What a whole ``.gcode.3mf`` may unpack to (512 MiB); more: 413."""
    max_compression_ratio: Annotated[float, Field(ge=1)] = _ARCHIVE.max_ratio
    """Unpacked over packed size, per file in a ``.gcode.3mf`` and for all of it (100); more:
    422, a decompression bomb. Each cap is checked before inflating and while inflating."""
    upload_check_workers: Annotated[int, Field(ge=1)] = DEFAULT_CHECK_WORKERS
    """Uploads whose contents are checked at once (2), in threads of their own, apart from the
    default executor that password hashing uses."""
    upload_check_wait_s: Annotated[float, Field(ge=0)] = DEFAULT_CHECK_WAIT_S
    """How long an upload waits for a check turn (10 s) before 503 with Retry-After."""
    open_registration: bool = False
    """Anyone may create an account. Off: only the first account can be made over HTTP."""
    probe_interval_s: Annotated[float, Field(gt=0)] = 2.0
    """How often the link proves itself through the broker (S8)."""
    max_heatups: Annotated[int, Field(ge=0)] = 0
    """At most this many printers heating up for a print at once (a farm's power circuit); 0:
    no cap. Jobs beyond it wait, saying so."""
    delivery_lease_s: Annotated[float, Field(gt=0)] = DELIVERY_LEASE_S
    """A notification delivery its sender left unsettled this long (it died) is sent again."""
    admission: bool = True
    """Admission control (cloud/admission.py): shed load early instead of queueing it. Off
    only to measure what it prevents (``printfleet bench overload``)."""
    max_concurrent_requests: Annotated[int, Field(ge=1)] = 8
    """API requests in progress at once; one more gets 503 with a jittered Retry-After. About
    the pool size plus a few: more only queue for connections (``printfleet bench overload``:
    8 halves the p50 under overload compared with 16, at the same goodput)."""
    rate_limit_per_s: Annotated[float, Field(gt=0)] = 20.0
    """Sustained API requests per second per account (per client address for requests without
    a token the API has verified); over: 429."""
    rate_limit_burst: Annotated[float, Field(ge=1)] = 40.0
    """Requests an account (or address) may send at once after being quiet."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_BODY_BYTES
    """The largest request body any route but uploads takes (64 KiB); larger: 413, refused
    before it is read. Uploads have their own limit, ``max_upload_bytes``."""
    trusted_proxies: str = ""
    """Comma-separated addresses or networks (``10.0.0.5,fd00::/8``) of reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed. Empty (the default): none is,
    and rate limits and login backoff count the address that connected."""
    login_free_failures: Annotated[int, Field(ge=1)] = 5
    """Wrong passwords in a row an account, or an address, may have before it must wait."""
    login_backoff_max_s: Annotated[float, Field(ge=1)] = 300.0
    """The longest wait after wrong passwords (it starts at 1 s and doubles per failure)."""
    db_pool_size: Annotated[int, Field(ge=1)] = 5
    """Database connections. Small on purpose: more lets more requests wait on the database."""
    db_pool_timeout_s: Annotated[float, Field(gt=0)] = 1.0
    """How long a request waits for a free connection before it is answered 503."""
    telemetry_history_interval_s: Annotated[float, Field(gt=0)] = 10.0
    """Telemetry history keeps at most one snapshot per printer this often (the charts)."""
    telemetry_retention_s: Annotated[float, Field(gt=0)] = 24 * 3600.0
    """Telemetry snapshots older than this are deleted."""
    mosquitto_auth_dir: Path | None = None
    """Where to keep an external Mosquitto's ``passwords`` and ``acl`` files in step with the
    provisioned printers (cloud/mosquitto_auth.py); needs a broker_url with the cloud's
    credentials, user ``printfleet-cloud``."""
    mosquitto_pid_file: Path | None = None
    """Mosquitto's pid file: it is sent SIGHUP to reload the files after each change."""
    mosquitto_cloud_replicas: Annotated[tuple[str, ...], NoDecode] = ()
    """Other cloud replicas on the same broker (comma-separated names in the environment): each
    is written an account ``printfleet-cloud.{name}`` with the cloud's password, and logs in
    with it. Mosquitto's ``use_username_as_clientid`` makes a username its client id, so
    replicas sharing one would push each other off the broker."""
    token_lifetime_s: Annotated[int, Field(ge=MIN_TOKEN_LIFETIME_S, le=MAX_TOKEN_LIFETIME_S)] = (
        TOKEN_LIFETIME_S
    )
    """How long a login's API token works (30 days), and a created one that does not say."""

    # Statistics' prices and power draws: round figures to replace with the site's own, not
    # measurements: 0.30/kWh, round for European household electricity in the mid-2020s;
    # 25/kg, round for a 1 kg PLA spool at retail; 100 W, round for a desktop FDM printer
    # printing PLA on a heated bed (the bed draws most of it).
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "EUR"
    """The currency of the prices below, as statistics show it."""
    price_per_kwh: Annotated[float, Field(ge=0)] = 0.30
    """What one kWh of electricity costs."""
    material_price_per_kg: Annotated[float, Field(ge=0)] = 25.0
    """What one kg of filament costs, for materials without a price of their own."""
    material_prices: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    """Price per kg by material (``PETG=30,ABS=28`` in the variable)."""
    printer_power_w: Annotated[float, Field(ge=0)] = 100.0
    """Average power draw while printing, in watts, for models without one of their own."""
    model_power_w: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    """Average power draw while printing by printer model (``x1=110,p1=95`` in the variable)."""

    # Maintenance intervals in print hours: round figures to replace with what the printers'
    # makers and the site's own experience say, not measurements.
    maintenance_nozzle_h: Annotated[float, Field(gt=0)] = 200.0
    """Print hours between nozzle services, for printers not given an interval of their own."""
    maintenance_belts_h: Annotated[float, Field(gt=0)] = 1000.0
    """Print hours between belt services, for printers not given an interval of their own."""

    @field_validator("material_prices", "model_power_w", mode="before")
    @classmethod
    def _named_numbers(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        named: dict[str, float] = {}
        for entry in _entries(value):
            name, equals, number = entry.partition("=")
            try:
                figure = float(number)
            except ValueError:
                figure = -1.0
            if not equals or not name.strip() or not figure >= 0:
                msg = f"{entry!r} is not name=number with a number of at least 0"
                raise ValueError(msg)
            named[name.strip()] = figure
        return named

    @field_validator("material_prices", "model_power_w")
    @classmethod
    def _not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, figure in value.items():
            if not figure >= 0:
                msg = f"{name}: {figure} is below 0"
                raise ValueError(msg)
        return value

    @field_validator("mosquitto_cloud_replicas", mode="before")
    @classmethod
    def _replica_names(cls, value: object) -> object:
        names = value.split(",") if isinstance(value, str) else value
        if isinstance(names, list | tuple):
            names = tuple(str(name).strip() for name in names if str(name).strip())
            for name in names:
                cloud_username(name)  # ValueError: says what a name may be
        return names

    outbound_allow: Annotated[tuple[str, ...], NoDecode] = ()
    """Internal destinations webhooks and Apprise channels may reach after all (comma- or
    space-separated in the variable): networks (``10.20.0.0/16``), addresses (``127.0.0.1``),
    host names (``hooks.lan``, every address they resolve to), each optionally with one port
    (``127.0.0.1:2525``, ``[fd00::1]:443``). Empty (the default): only public addresses.
    Loopback, private, CGNAT, link-local (cloud metadata), unique-local, multicast and
    unspecified addresses are refused otherwise, and the cloud's own port on this machine
    always (cloud/notify/outbound.py)."""

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _allow_list(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            return parse_allow_list(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                msg = f"trusted_proxies: {entry!r} is not an IP address or network"
                raise ValueError(msg) from None
        return value

    def trusted_proxy_list(self) -> list[str]:
        """``trusted_proxies`` as a list."""
        return _entries(self.trusted_proxies)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``PRINTFLEET_*`` variables; non-None ``overrides`` win (CLI options).

        Raises ValueError (pydantic's ValidationError) naming the setting that is wrong.
        """
        # Typed as pydantic takes them: its own underscore options share __init__'s keywords.
        given = cast(
            "dict[str, Any]",
            {name: value for name, value in overrides.items() if value is not None},
        )
        reading = _READ_ENVIRONMENT.set(True)
        try:
            return cls(**given)
        finally:
            _READ_ENVIRONMENT.reset(reading)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Values given win; the environment counts only in :meth:`from_env`, and no dotenv
        or secrets files ever do."""
        if _READ_ENVIRONMENT.get():
            return init_settings, env_settings
        return (init_settings,)

    def cost_rates(self) -> CostRates:
        """The prices and power draws statistics use."""
        return CostRates(
            currency=self.currency,
            price_per_kwh=self.price_per_kwh,
            material_price_per_kg=self.material_price_per_kg,
            material_prices=dict(self.material_prices),
            power_w=self.printer_power_w,
            model_power_w=dict(self.model_power_w),
        )

    def maintenance_intervals(self) -> dict[str, float]:
        """Print hours between services by part, for printers without intervals of their own."""
        return {"nozzle": self.maintenance_nozzle_h, "belts": self.maintenance_belts_h}

    def store_url(self) -> str:
        """The database URL, defaulting to ``data_dir/printfleet.sqlite3``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'printfleet.sqlite3'}"


def _entries(listed: str) -> list[str]:
    return [entry.strip() for entry in listed.split(",") if entry.strip()]
