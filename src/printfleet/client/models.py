"""What the cloud's HTTP API returns, as the SDK hands it to callers.

These mirror the server's response bodies (``printfleet.cloud.api.schemas``) field for field,
without importing the server: a client needs pydantic and the protocol's enums, not the cloud.
Unknown fields are ignored, so a newer server does not break an older client. Times are cloud
milliseconds since the Unix epoch; ages and durations are seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import PlateStatus, PrinterStatus

__all__ = [
    "Actor",
    "Alert",
    "AuditEntry",
    "Channel",
    "CommandSent",
    "Delivery",
    "FileMetadata",
    "Health",
    "Heater",
    "IssuedToken",
    "Job",
    "JobDetail",
    "LinkHealth",
    "MaterialSlot",
    "NotificationSent",
    "Pool",
    "PrintFile",
    "Printer",
    "Progress",
    "Provisioned",
    "Requirements",
    "Share",
    "Stats",
    "StatsGroup",
    "StatsRates",
    "StoreHealth",
    "TelemetryPoint",
    "Temperatures",
    "Token",
    "User",
    "Wait",
]

Role = Literal["owner", "operator", "viewer"]
ShareRole = Literal["operator", "viewer"]
TokenScope = Literal["read", "write", "admin"]
ChannelKind = Literal["webhook", "apprise"]
HeaterName = Literal["hotend", "bed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    """An account."""

    id: str
    email: str
    display_name: str
    created_at: int


class Token(_Model):
    """An API token's metadata (never its value after creation)."""

    id: str
    name: str
    scopes: list[str]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
    expires_at: int
    """When the token stops working (cloud ms); the server refuses it with 401 after that."""


class IssuedToken(Token):
    """A token just created, with its value: the server shows it this once."""

    token: str


class Heater(_Model):
    """One heater, in degrees Celsius."""

    current_c: float
    target_c: float


class Temperatures(_Model):
    """A printer's heaters as of its latest telemetry."""

    hotend: Heater
    bed: Heater


class Progress(_Model):
    """Where a running print is."""

    percent: int
    layer: int
    total_layers: int
    time_left_s: int


class MaterialSlot(_Model):
    """What one filament slot of a printer holds, as the printer last reported it."""

    slot: int
    material: str
    colour: str | None = None


class Printer(_Model):
    """A printer as the caller may see it, with the cloud's latest knowledge of it."""

    id: str
    name: str
    model: str
    role: Role
    plate_check: bool
    """The plate check its owner chose."""
    plate_check_reported: bool | None = None
    """The plate check the printer last reported applying (None: not reported yet); no print
    starts there while the two differ."""
    created_at: int
    online: bool
    status: PrinterStatus | None
    plate: PlateStatus | None
    fault: str | None
    clock_synced: bool
    job_id: str | None
    reported_at: int | None
    report_age_s: float | None
    temperatures: Temperatures | None
    progress: Progress | None
    link_evidence_age_s: float | None
    """Seconds since the cloud last proved its broker link with a round trip."""
    materials: list[MaterialSlot] = []
    """Its filament slots and what each holds (empty slots left out)."""
    nozzle_um: int | None = None
    """Its nozzle in micrometres (400 = 0.4 mm); None if it does not say."""
    pools: list[str] = []
    """The ids of your pools it is in."""
    simulated: bool = False
    """A simulated printer (faults may be injected into it)."""


class TelemetryPoint(_Model):
    """One stored telemetry snapshot of a printer (history is kept at a bounded rate)."""

    at: int
    status: str
    hotend: Heater
    bed: Heater
    percent: int | None
    job_id: str | None


class Provisioned(_Model):
    """A printer just provisioned, and what its agent needs (the password is shown once)."""

    printer: Printer
    broker_username: str
    broker_password: str
    cloud_public_key: str
    agent_config: str


class Share(_Model):
    """A printer shared with a user."""

    printer_id: str
    email: str
    role: ShareRole


class CommandSent(_Model):
    """A command that went to the printer now."""

    printer_id: str
    action: str


class FileMetadata(_Model):
    """What the slicer wrote into a file, as far as the cloud could read it."""

    estimated_s: int | None
    layers: int | None
    filament_mm: float | None
    has_thumbnail: bool
    filament_g: float | None = None
    """Grams, where the slicer said (absent from clouds older than the field)."""
    material: str | None = None
    """Upper-case (PLA, PETG); several used in one print joined by ``+``."""
    nozzle_um: int | None = None
    """The nozzle it was sliced for, in micrometres (400 = 0.4 mm)."""


class PrintFile(_Model):
    """An uploaded print file."""

    id: str
    name: str
    size: int
    sha256: str
    created_at: int
    metadata: FileMetadata


class Requirements(_Model):
    """What a job needs of a printer; None: any."""

    material: str | None = None
    nozzle_um: int | None = None


class Wait(_Model):
    """Why a job waits: ``code`` for machines (``plate_occupied``, ``heat_up_slot``, ...),
    ``text`` for people, naming the printer and what releases it."""

    code: str
    text: str


class Pool(_Model):
    """One of your pools: printers a job may target as "any printer of this pool"."""

    id: str
    name: str
    printer_ids: list[str]
    created_at: int


class Job(_Model):
    """A job and where it is."""

    id: str
    state: JobState
    reason: str
    name: str
    file_id: str | None
    printer_id: str | None
    model: str | None
    assigned_printer: str | None
    created_at: int
    start_by: int
    ended_at: int | None
    notify_completion: bool
    idempotency_key: str | None
    priority: int = 0
    """Higher starts first; among equals, the older job first."""
    pool_id: str | None = None
    """The pool it may print on, if it targets one."""
    requirements: Requirements = Requirements()
    wait: Wait | None = None
    """Why it has not started yet; None when it is not waiting."""
    batch_id: str | None = None
    """Shared by the copies of one submission; None for a single job."""
    copy_index: int | None = None
    copies: int | None = None


class Actor(_Model):
    """Who or what acted: a user, a printer, or a part of the cloud."""

    kind: str
    id: str


class AuditEntry(_Model):
    """One entry of an audit log."""

    id: int
    at: int
    actor: Actor
    action: str
    printer_id: str | None
    job_id: str | None
    command_id: str | None
    detail: dict[str, JsonValue]


class JobDetail(Job):
    """A job with its audit trail."""

    audit: list[AuditEntry]


class Alert(_Model):
    """An alert from a printer, whether someone acknowledged it, and whether its condition
    cleared (``resolved_at``, ``resolution``)."""

    id: str
    printer_id: str
    job_id: str | None
    kind: str
    severity: str
    message: str
    created_at: int
    acked_by: str | None
    acked_at: int | None
    resolved_at: int | None = None
    resolution: str | None = None
    duration_s: float | None = None
    """From ``created_at`` to ``resolved_at``, or else to ``acked_at``; None while neither."""

    @property
    def needs_attention(self) -> bool:
        """Neither acknowledged by a person nor resolved by its condition clearing."""
        return self.acked_at is None and self.resolved_at is None


class StoreHealth(_Model):
    """Whether the cloud's database answered."""

    ok: bool
    error: str | None = None


class LinkHealth(_Model):
    """The cloud's broker link."""

    connected: bool
    verified: bool
    evidence_age_s: float | None
    last_rtt_s: float | None
    connects: int


class Health(_Model):
    """``ok`` only when the store answers and the broker link is verified."""

    status: Literal["ok", "unavailable"]
    store: StoreHealth
    link: LinkHealth | None


class Channel(_Model):
    """Where the caller's alerts and job ends are sent (never its secret, nor URL credentials)."""

    id: str
    kind: ChannelKind
    target: str
    """Redacted: a webhook's scheme and host, an Apprise URL's scheme."""
    enabled: bool
    created_at: int


class Delivery(_Model):
    """One notification on its way to a channel, delivered, or given up on."""

    id: str
    notification_id: str
    kind: str | None
    state: Literal["pending", "delivered", "dead_letter"]
    attempts: int
    last_error: str
    created_at: int
    delivered_at: int | None
    dead_lettered_at: int | None


class NotificationSent(_Model):
    """A notification was queued; follow it in the channel's deliveries."""

    notification_id: str


class StatsRates(_Model):
    """The prices and power draws statistics were computed with (the cloud's settings)."""

    currency: str
    price_per_kwh: float
    material_price_per_kg: float
    material_prices: dict[str, float]
    power_w: float
    model_power_w: dict[str, float]


class StatsGroup(_Model):
    """One group's figures: ended jobs by outcome (completed, failed, cancelled, expired,
    rejected), success rate (completed ÷ completed + failed), print hours, filament (grams by
    material only where the slicer gave them; ``filament_unknown_jobs`` completed jobs gave
    none), energy from the model's power draw setting, and cost."""

    key: str
    jobs: dict[str, int]
    total_jobs: int
    success_rate: float | None
    print_hours: float
    filament_mm: float
    filament_g: dict[str, float]
    filament_unknown_jobs: int
    energy_kwh: float
    energy_cost: float
    material_cost: float
    cost: float


class Stats(_Model):
    """Statistics of the caller's ended jobs, per group and in total (key ``all``)."""

    by: Literal["printer", "user", "model", "pool"]
    since: int | None
    until: int | None
    currency: str
    rates: StatsRates
    groups: list[StatsGroup]
    total: StatsGroup


class MaintenancePart(_Model):
    """One part of a printer (nozzle, belts): its print hours since service against its
    interval (the printer's own, else the cloud's default), and whether it is due."""

    part: str
    interval_h: float
    default_interval: bool
    hours_since_service: float
    due: bool
    serviced_at: int | None
    """When it was last marked serviced (cloud ms); None: never."""
