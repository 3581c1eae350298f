"""``CloudService``: the cloud's use cases, built once over one store, signer and issuer.

Each area lives in its own module under :mod:`printfleet.cloud.usecases` (accounts, printers,
files, jobs, alerts, channels); this object builds them with what they share (the store's
repositories, the clock, the link to the printers) and hands them out by area. The HTTP routes,
the CLI and the demo all reach a use case through it, so a rule is defined once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from printfleet.cloud.dispatch.core import CloudCore
from printfleet.cloud.notify.outbound import OutboundPolicy
from printfleet.cloud.store import Store
from printfleet.cloud.store.stats import JobHistory
from printfleet.cloud.usecases.accounts import (
    MAX_TOKEN_LIFETIME_S,
    MIN_TOKEN_LIFETIME_S,
    TOKEN_LIFETIME_S,
    AccountActions,
)
from printfleet.cloud.usecases.alerts import AlertActions
from printfleet.cloud.usecases.channels import ChannelActions, NotificationSender
from printfleet.cloud.usecases.files import FileActions, FileLinks
from printfleet.cloud.usecases.jobs import (
    DEFAULT_START_WITHIN_S,
    MAX_START_WITHIN_S,
    JobActions,
    JobListener,
    JobWindows,
)
from printfleet.cloud.usecases.live import LiveFleet
from printfleet.cloud.usecases.maintenance import DEFAULT_INTERVALS_H, MaintenanceActions
from printfleet.cloud.usecases.pools import PoolActions
from printfleet.cloud.usecases.principal import (
    ALL_SCOPES,
    Forbidden,
    InvalidRequest,
    Principal,
    PrinterUnreachable,
    RegistrationClosed,
    Scope,
    TokenExpired,
)
from printfleet.cloud.usecases.printers import (
    PrinterActions,
    PrinterStatusView,
    ProvisionedPrinter,
)
from printfleet.cloud.usecases.stats import CostRates, StatsActions
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.signing import CommandSigner

__all__ = [
    "ALL_SCOPES",
    "MAX_TOKEN_LIFETIME_S",
    "MIN_TOKEN_LIFETIME_S",
    "TOKEN_LIFETIME_S",
    "CloudService",
    "Forbidden",
    "InvalidRequest",
    "JobListener",
    "Principal",
    "PrinterStatusView",
    "PrinterUnreachable",
    "ProvisionedPrinter",
    "RegistrationClosed",
    "Scope",
    "ServiceSettings",
    "TokenExpired",
]


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Knobs of the service."""

    public_url: str = "http://127.0.0.1:8000"
    """Where printers fetch staged files."""
    broker_url_for_printers: str = "mqtt://127.0.0.1:1883"
    token_lifetime_s: int = TOKEN_LIFETIME_S
    """How long a login's token works, and a created one that does not say."""
    default_start_within_s: int = DEFAULT_START_WITHIN_S
    max_start_within_s: int = MAX_START_WITHIN_S
    file_link_ttl_s: int = 3_600
    cost_rates: CostRates = field(default_factory=CostRates)
    """Prices and power draws for statistics."""
    maintenance_intervals: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_INTERVALS_H)
    )
    """Print hours between services by part, where a printer has no interval of its own."""


class CloudService:
    """The cloud's use cases by area: ``accounts``, ``printers``, ``files``, ``jobs``,
    ``alerts``, ``channels``, ``stats``, ``maintenance``.

    ``live.core`` is the MQTT side once the app runs it (None without a broker), and
    ``jobs.listener`` is told of each job a person created or cancelled (the app's notifier hook).
    """

    def __init__(
        self,
        store: Store,
        signer: CommandSigner,
        issuer: CommandIssuer,
        *,
        settings: ServiceSettings | None = None,
        core: CloudCore | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        file_secret: bytes | None = None,
        outbound: OutboundPolicy | None = None,
        notifications: NotificationSender | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.issuer = issuer
        self.settings = settings = settings or ServiceSettings()
        self.live = LiveFleet(store.audit, core)
        """The printers as the running cloud reaches them (``core`` is set once it runs)."""
        self.accounts = AccountActions(
            store.accounts, clock_ms=clock_ms, token_lifetime_s=settings.token_lifetime_s
        )
        self.pools = PoolActions(pools=store.pools, printers=store.printers)
        self.printers = PrinterActions(
            printers=store.printers,
            pools=store.pools,
            accounts=store.accounts,
            audit=store.audit,
            telemetry=store.telemetry,
            live=self.live,
            issuer=issuer,
            cloud_public_key=signer.public_key,
            broker_url_for_printers=settings.broker_url_for_printers,
            clock_ms=clock_ms,
        )
        self.file_links = FileLinks(
            settings.public_url,
            file_secret or secrets.token_bytes(32),
            ttl_s=settings.file_link_ttl_s,
            clock_ms=clock_ms,
        )
        self.files = FileActions(store.files, self.file_links)
        self.jobs = JobActions(
            jobs=store.jobs,
            files=store.files,
            printers=store.printers,
            audit=store.audit,
            printer_actions=self.printers,
            pool_actions=self.pools,
            live=self.live,
            issuer=issuer,
            windows=JobWindows(settings.default_start_within_s, settings.max_start_within_s),
            clock_ms=clock_ms,
        )
        self.alerts = AlertActions(store.alerts, store.printers)
        self.stats = StatsActions(JobHistory(store.database), settings.cost_rates)
        self.maintenance = MaintenanceActions(
            store.maintenance,
            self.printers,
            store.audit,
            intervals=settings.maintenance_intervals,
        )
        self.channels = ChannelActions(
            store.channels,
            store.deliveries,
            outbound=outbound if outbound is not None else OutboundPolicy(),
            sender=notifications,
        )
