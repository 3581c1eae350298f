"""The API's request and response bodies, and the one place records become responses.

Times are cloud milliseconds since the Unix epoch, as everywhere in printfleet; durations and
ages are seconds. Secrets (token values, broker passwords) appear only in the response that
creates them.

One module, though it runs past 600 lines: it is one concept, the API's wire format, read
whole beside the SDK's mirror of it (``client/models.py``, pinned by
``tests/client/test_surface.py``), and its shared types (e-mail, printer id, JSON integers)
hold for every area alike.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from printfleet.cloud.notify import redact_url
from printfleet.cloud.store import (
    AlertRecord,
    AuditRecord,
    ChannelKind,
    ChannelRecord,
    DeliveryRecord,
    FileRecord,
    JobRecord,
    PoolRecord,
    Role,
    ShareRole,
    TokenRecord,
    UserRecord,
)
from printfleet.cloud.store.jobs import MAX_COPIES
from printfleet.cloud.telemetry_history import HistoryPoint
from printfleet.cloud.usecases.accounts import MAX_TOKEN_LIFETIME_S, MIN_TOKEN_LIFETIME_S
from printfleet.cloud.usecases.jobs import MAX_START_WITHIN_S, PRIORITIES
from printfleet.cloud.usecases.printers import (
    PLATE_CHECK_OFF_UNCONFIRMED,
    PrinterStatusView,
    ProvisionedPrinter,
)
from printfleet.protocol.dispatch import WaitCode
from printfleet.protocol.identities import PRINTER_ID_PATTERN
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import (
    Heater,
    HeaterTelemetry,
    MaterialName,
    MaterialSlot,
    NozzleUm,
    PlateStatus,
    PrinterStatus,
)

# \s is not the same set everywhere: JSON Schema's (ECMA-262) has U+FEFF and not U+0085, the
# server's (Rust regex) the other way round. Both named, so server and schema agree.
Email = Annotated[str, Field(pattern=r"^[^@\s\x85\ufeff]+@[^@\s\x85\ufeff]+$", max_length=320)]
PrinterId = Annotated[
    str,
    Field(
        pattern=PRINTER_ID_PATTERN,
        description=(
            "1-63 lower-case letters, digits, '-' and '_'; not starting with 'printfleet' and "
            "not a reserved name (admin, root, mosquitto, cloud, ...): see docs/api.md."
        ),
    ),
]
TokenScope = Literal["read", "write", "admin"]


def _json_integer(value: object) -> object:
    # pydantic's int takes false for 0 and "300" for 300, which an integer in JSON Schema is
    # not; 300.0 it must take, as JSON Schema counts it an integer.
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""Makes an ``int`` an integer as JSON Schema means it: a number without a fraction, never a
boolean or text. Last in ``Annotated``, after any Field: placed before one, it would turn the
bounds into keywords JSON Schema does not know (``ge`` for ``minimum``)."""


class _Body(BaseModel):
    # Booleans are StrictBool and integers JSON_INTEGER: the schema (and so every client) says
    # "yes" is no boolean and false no number, and the server must agree.
    model_config = ConfigDict(extra="forbid")


# -- accounts ------------------------------------------------------------------------------------


class NewUser(_Body):
    """An account to create."""

    email: Email
    password: Annotated[str, Field(min_length=8, max_length=1024)]
    display_name: Annotated[str, Field(max_length=200)] = ""


class UserOut(BaseModel):
    """An account (never its password hash)."""

    id: str
    email: str
    display_name: str
    created_at: int

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        """From the store's record."""
        return cls(
            id=user.id, email=user.email, display_name=user.display_name, created_at=user.created_at
        )


class Login(_Body):
    """Credentials exchanged for a read/write token."""

    email: Annotated[str, Field(max_length=320)]
    password: Annotated[str, Field(max_length=1024)]
    token_name: Annotated[str, Field(min_length=1, max_length=100)] = "login"  # noqa: S105 - a label


class NewToken(_Body):
    """A token to create for the caller; it cannot have a scope the caller's token lacks."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[TokenScope], Field(min_length=1)] = ["read"]
    expires_in_s: (
        Annotated[int, Field(ge=MIN_TOKEN_LIFETIME_S, le=MAX_TOKEN_LIFETIME_S), JSON_INTEGER] | None
    ) = None
    """How long the token works, in seconds (at most 365 days); by default as long as a login's
    token (30 days unless the server says otherwise)."""


class TokenOut(BaseModel):
    """A token's metadata; the token itself is not kept and cannot be shown again."""

    id: str
    name: str
    scopes: list[str]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
    expires_at: int
    """When the token stops working (cloud ms); after that it is refused with 401."""

    @classmethod
    def of(cls, token: TokenRecord) -> TokenOut:
        """From the store's record."""
        return cls(
            id=token.id,
            name=token.name,
            scopes=list(token.scopes),
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            expires_at=token.expires_at,
        )


class TokenCreated(TokenOut):
    """A new token, with its value: shown this once."""

    token: str
    """Send as ``Authorization: Bearer <token>``."""

    @classmethod
    def created(cls, token: TokenRecord, value: str) -> TokenCreated:
        """From the store's record and the value only the creator sees."""
        return cls(**TokenOut.of(token).model_dump(), token=value)


# -- printers ------------------------------------------------------------------------------------


class NewPrinter(_Body):
    """A printer to provision."""

    id: PrinterId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,39}$")]


class HeaterOut(BaseModel):
    """One heater, in degrees Celsius."""

    current_c: float
    target_c: float

    @classmethod
    def of(cls, heater: HeaterTelemetry) -> HeaterOut:
        """From telemetry's tenths of a degree."""
        return cls(current_c=heater.temp_dc / 10, target_c=heater.target_dc / 10)


class Temperatures(BaseModel):
    """The printer's heaters as of its latest telemetry."""

    hotend: HeaterOut
    bed: HeaterOut


class ProgressOut(BaseModel):
    """Where the running print is."""

    percent: int
    layer: int
    total_layers: int
    time_left_s: int


class MaterialSlotOut(BaseModel):
    """What one filament slot of a printer holds, as the printer last reported it."""

    slot: int
    material: str
    colour: str | None

    @classmethod
    def of(cls, slot: MaterialSlot) -> MaterialSlotOut:
        """From the printer's report."""
        return cls(slot=slot.slot, material=slot.material, colour=slot.colour)


class PrinterOut(BaseModel):
    """A printer as the caller may see it, with the cloud's latest knowledge of it."""

    id: str
    name: str
    model: str
    role: Role
    """The caller's role on it: owner, operator or viewer."""
    plate_check: bool
    """The plate check its owner chose: what the cloud holds the printer to (S5)."""
    plate_check_reported: bool | None
    """The plate check the printer last reported applying; None until it reports. While it
    differs from ``plate_check``, the cloud keeps sending the setting and starts nothing there."""
    created_at: int
    online: bool
    status: PrinterStatus | None
    """None until the printer has reported since this cloud process started."""
    plate: PlateStatus | None
    fault: str | None
    clock_synced: bool
    job_id: str | None
    reported_at: int | None
    report_age_s: float | None
    """Seconds since the printer's latest state or telemetry (as old as the printer says)."""
    temperatures: Temperatures | None
    progress: ProgressOut | None
    link_evidence_age_s: float | None
    """Seconds since the cloud last proved its broker link with a round trip (S8)."""
    materials: list[MaterialSlotOut] = []
    """Its filament slots and what each holds (empty slots left out); [] until it reports, and
    always for a printer that does not report materials."""
    nozzle_um: int | None = None
    """Its nozzle in micrometres (400 = 0.4 mm), as it last reported; null if it does not say."""
    pools: list[str] = []
    """The ids of your pools it is in."""
    simulated: bool = False
    """It said it is a simulated printer (faults may be injected into it)."""

    @classmethod
    def of(cls, status: PrinterStatusView) -> PrinterOut:
        """From the service's view."""
        printer, view, telemetry = status.printer, status.view, status.telemetry
        # A presence message alone says nothing of the printer's state: only a state event or
        # telemetry stamps reported_at.
        heard = view if view is not None and view.reported_at > 0 else None
        now = time.time_ns() // 1_000_000
        return cls(
            id=printer.id,
            name=printer.name,
            model=printer.model,
            role=status.role,
            plate_check=printer.plate_check,
            plate_check_reported=(
                view.reported.plate_check
                if view is not None and view.reported is not None
                else None
            ),
            created_at=printer.created_at,
            online=view is not None and view.online,
            status=heard.status if heard is not None else None,
            plate=heard.plate if heard is not None else None,
            fault=heard.fault if heard is not None else None,
            clock_synced=heard is not None and heard.clock_synced,
            job_id=heard.job_id if heard is not None else None,
            reported_at=heard.reported_at if heard is not None else None,
            report_age_s=(
                max(0.0, (now - heard.reported_at) / 1000) if heard is not None else None
            ),
            temperatures=(
                Temperatures(hotend=HeaterOut.of(telemetry.hotend), bed=HeaterOut.of(telemetry.bed))
                if telemetry is not None
                else None
            ),
            progress=(
                ProgressOut.model_validate(telemetry.progress.model_dump())
                if telemetry is not None and telemetry.progress is not None
                else None
            ),
            link_evidence_age_s=status.link_evidence_age_s,
            materials=[MaterialSlotOut.of(slot) for slot in view.slots] if view else [],
            nozzle_um=view.nozzle_um if view is not None else None,
            pools=list(status.pools),
            simulated=view is not None and view.simulated,
        )


class TelemetryPointOut(BaseModel):
    """One stored telemetry snapshot of a printer (history is kept at a bounded rate)."""

    at: int
    """When the printer reported it (cloud ms)."""
    status: str
    hotend: HeaterOut
    bed: HeaterOut
    percent: int | None
    """Progress of the print running then, if any."""
    job_id: str | None

    @classmethod
    def of(cls, point: HistoryPoint) -> TelemetryPointOut:
        """From a decoded snapshot."""
        return cls(
            at=point.at,
            status=point.status,
            hotend=HeaterOut(current_c=point.hotend_dc / 10, target_c=point.hotend_target_dc / 10),
            bed=HeaterOut(current_c=point.bed_dc / 10, target_c=point.bed_target_dc / 10),
            percent=point.percent,
            job_id=point.job_id,
        )


class ProvisionedOut(BaseModel):
    """A new printer and what its agent needs. The broker password is shown only this once."""

    printer: PrinterOut
    broker_username: str
    broker_password: str
    cloud_public_key: str
    agent_config: str
    """A TOML file for ``printfleet agent --config``."""

    @classmethod
    def of(cls, provisioned: ProvisionedPrinter, public_key: str) -> ProvisionedOut:
        """From the service's result."""
        status = PrinterStatusView(provisioned.printer, Role.OWNER, None, None, None)
        return cls(
            printer=PrinterOut.of(status),
            broker_username=provisioned.broker_username,
            broker_password=provisioned.broker_password,
            cloud_public_key=public_key,
            agent_config=provisioned.agent_config,
        )


class NewShare(_Body):
    """Share a printer with another user."""

    email: Email
    role: ShareRole


class ShareOut(BaseModel):
    """A share as granted."""

    printer_id: str
    email: str
    role: ShareRole


class PlateCheck(_Body):
    """Turn the plate check (S5) on or off. Off needs ``confirm: true`` as well."""

    # The confirm rule in the schema too, so that clients (and schema fuzzing) see it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"enabled": {"const": True}}},
                {"properties": {"confirm": {"const": True}}, "required": ["confirm"]},
            ]
        },
    )

    enabled: StrictBool
    confirm: StrictBool = False
    """Required to turn it off: prints may then start onto an occupied plate."""

    @model_validator(mode="after")
    def _off_is_confirmed(self) -> Self:
        if not self.enabled and not self.confirm:
            raise ValueError(PLATE_CHECK_OFF_UNCONFIRMED)
        return self


class CommandSent(BaseModel):
    """A command went to the printer now (it was not queued; S9)."""

    printer_id: str
    action: str


# -- files ---------------------------------------------------------------------------------------


class FileMetadataOut(BaseModel):
    """What the slicer wrote into the file, as far as it could be read."""

    estimated_s: int | None
    layers: int | None
    filament_mm: float | None
    filament_g: float | None
    material: str | None
    """Upper-case (PLA, PETG); several used in one print joined by ``+``; null if not said."""
    has_thumbnail: bool
    nozzle_um: int | None = None
    """The nozzle it was sliced for, in micrometres (400 = 0.4 mm); null if not said."""


class FileOut(BaseModel):
    """An uploaded print file."""

    id: str
    name: str
    size: int
    sha256: str
    created_at: int
    metadata: FileMetadataOut

    @classmethod
    def of(cls, file: FileRecord) -> FileOut:
        """From the store's record."""
        meta = file.metadata
        return cls(
            id=file.id,
            name=file.name,
            size=file.size,
            sha256=file.sha256,
            created_at=file.created_at,
            metadata=FileMetadataOut(
                estimated_s=meta.estimated_s,
                layers=meta.layers,
                filament_mm=meta.filament_mm,
                filament_g=meta.filament_g,
                material=meta.material,
                has_thumbnail=meta.has_thumbnail,
                nozzle_um=meta.nozzle_um,
            ),
        )


# -- jobs ----------------------------------------------------------------------------------------


def _no_default(schema: dict[str, JsonValue]) -> None:
    # A default of null would contradict the field's schema, which has no null in it.
    schema.pop("default", None)


class NewJob(_Body):
    """Print an uploaded file on one printer, on any printer of a model you operate, or on any
    printer of one of your pools: give exactly one of ``printer_id``, ``model`` and
    ``pool_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["printer_id"]},
                {"required": ["model"]},
                {"required": ["pool_id"]},
            ]
        },
    )

    file_id: str
    # Left out rather than null: "exactly one of" is then a rule the schema can state.
    printer_id: str | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    """The one printer to print on (you must own it or operate it through a share)."""
    model: str | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    """Or: any printer of this model that you may operate, at the moment it is chosen."""
    pool_id: str | SkipJsonSchema[None] = Field(None, json_schema_extra=_no_default)
    """Or: any printer of this pool of yours that you may operate, at the moment it is
    chosen."""
    start_within_s: Annotated[int, Field(gt=0, le=MAX_START_WITHIN_S), JSON_INTEGER] | None = None
    """How long the job may wait to start (default an hour, at most a week); after that it
    expires and you are told (S2, S7)."""
    notify_completion: StrictBool = False
    priority: Annotated[int, Field(ge=PRIORITIES[0], le=PRIORITIES[-1]), JSON_INTEGER] = 0
    """Higher starts first (-100..100); among equals, the older job first."""
    copies: Annotated[int, Field(ge=1, le=MAX_COPIES), JSON_INTEGER] = 1
    """Queue this many copies at once (1..50): they share a ``batch_id`` and their names end
    " (2/5)"; the answer is the first copy."""
    material: MaterialName | None = None
    """The material a printer must have loaded (PLA, PETG, PA-CF), or null for any; left out,
    the one the file's slicer wrote (none for a file that mixes several)."""
    nozzle_um: Annotated[NozzleUm, JSON_INTEGER] | None = None
    """The nozzle a printer must have, in micrometres (400 = 0.4 mm), or null for any; left
    out, the one the file's slicer wrote."""

    @field_validator("printer_id", "model", "pool_id", mode="before")
    @classmethod
    def _left_out_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("leave it out instead of sending null")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = (self.printer_id, self.model, self.pool_id)
        if sum(target is not None for target in targets) != 1:
            raise ValueError(
                'give exactly one of printer_id, model and pool_id, e.g. {"model": "mk4"}'
            )
        return self

    def given(self, name: str) -> bool:
        """Whether the request named the field (a null included), rather than leaving it out."""
        return name in self.model_fields_set


class JobChange(_Body):
    """A change to a waiting job: its priority, which is how a queue is reordered."""

    priority: Annotated[int, Field(ge=PRIORITIES[0], le=PRIORITIES[-1]), JSON_INTEGER]
    """Higher starts first (-100..100)."""


class RequirementsOut(BaseModel):
    """What a job needs of a printer; null: any."""

    material: str | None
    nozzle_um: int | None


class WaitOut(BaseModel):
    """Why a job waits: a code for machines, a sentence for people (it names the printer and
    what releases it)."""

    code: WaitCode
    text: str


class JobOut(BaseModel):
    """A job and where it is."""

    id: str
    state: JobState
    reason: str
    """Why it is in this state, when that needs saying (a rejection's reason, ...)."""
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
    """The pool it may print on (any printer of it you may operate), if it targets one."""
    requirements: RequirementsOut = RequirementsOut(material=None, nozzle_um=None)
    wait: WaitOut | None = None
    """Why it has not started yet; null when it is not waiting."""
    batch_id: str | None = None
    """Shared by the copies of one submission; null for a single job."""
    copy_index: int | None = None
    """Which copy it is, from 1; null for a single job."""
    copies: int | None = None
    """How many copies its submission queued; null for a single job."""

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        """From the store's record."""
        view = job.view
        return cls(
            id=view.id,
            state=view.state,
            reason=view.reason,
            name=job.name,
            file_id=job.file_id,
            printer_id=view.printer_id,
            model=view.model,
            assigned_printer=view.assigned_printer,
            created_at=view.created_at,
            start_by=view.start_by,
            ended_at=job.ended_at,
            notify_completion=job.notify_completion,
            idempotency_key=job.idempotency_key,
            priority=view.priority,
            pool_id=view.pool_id,
            requirements=RequirementsOut(
                material=view.requirements.material, nozzle_um=view.requirements.nozzle_um
            ),
            wait=WaitOut(code=view.wait, text=view.reason) if view.wait is not None else None,
            batch_id=job.batch_id,
            copy_index=job.copy_index,
            copies=job.copies,
        )


class ActorOut(BaseModel):
    """Who or what acted: a user, a printer, or a part of the cloud (``dispatcher``)."""

    kind: str
    id: str


class AuditOut(BaseModel):
    """One entry of the audit log."""

    id: int
    at: int
    actor: ActorOut
    action: str
    printer_id: str | None
    job_id: str | None
    command_id: str | None
    detail: dict[str, JsonValue]

    @classmethod
    def of(cls, entry: AuditRecord) -> AuditOut:
        """From the store's record."""
        return cls(
            id=entry.id,
            at=entry.at,
            actor=ActorOut(kind=entry.actor.kind.value, id=entry.actor.id),
            action=entry.action,
            printer_id=entry.printer_id,
            job_id=entry.job_id,
            command_id=entry.command_id,
            detail=dict(entry.detail),
        )


class JobDetail(JobOut):
    """A job with its audit trail: who created it, and who or what caused each command."""

    audit: list[AuditOut]


# -- pools ---------------------------------------------------------------------------------------


PoolName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


class NewPool(_Body):
    """A pool of printers you own or operate, to submit jobs to ("any printer of this pool").
    ``PUT`` takes the same body and replaces the pool's name and printers."""

    name: PoolName
    """Unique among your pools, e.g. "petg farm"."""
    printer_ids: Annotated[list[PrinterId], Field(max_length=500)] = []
    """Printers you own or operate; any other (or none by that id) is 404, in the same words."""


class PoolOut(BaseModel):
    """One of your pools."""

    id: str
    name: str
    printer_ids: list[str]
    created_at: int

    @classmethod
    def of(cls, pool: PoolRecord) -> PoolOut:
        """From the store's record."""
        return cls(
            id=pool.id,
            name=pool.name,
            printer_ids=list(pool.printer_ids),
            created_at=pool.created_at,
        )


# -- alerts and operations -----------------------------------------------------------------------


class AlertOut(BaseModel):
    """An alert from a printer, whether someone acknowledged it, and whether its condition
    cleared."""

    id: str
    printer_id: str
    job_id: str | None
    kind: str
    severity: str
    message: str
    created_at: int
    acked_by: str | None = Field(description="Who acknowledged it; always a person")
    acked_at: int | None
    resolved_at: int | None = Field(
        description="When its condition cleared (a printer back online), cloud ms; null while "
        "it has not"
    )
    resolution: str | None = Field(description="What cleared it, e.g. 'p1 is back online'")
    duration_s: float | None = Field(
        description="How long it lasted: from created_at to resolved_at, or else to acked_at; "
        "null while neither"
    )

    @classmethod
    def of(cls, alert: AlertRecord) -> AlertOut:
        """From the store's record."""
        return cls(
            id=alert.id,
            printer_id=alert.printer_id,
            job_id=alert.job_id,
            kind=alert.kind,
            severity=alert.severity.value,
            message=alert.message,
            created_at=alert.created_at,
            acked_by=alert.acked_by,
            acked_at=alert.acked_at,
            resolved_at=alert.resolved_at,
            resolution=alert.resolution,
            duration_s=None if alert.duration_ms is None else alert.duration_ms / 1000,
        )


# -- notification channels -----------------------------------------------------------------------


class NewChannel(_Body):
    """A place to send the caller's alerts and job ends (docs/api.md, section 3)."""

    kind: ChannelKind
    target: Annotated[str, Field(min_length=1, max_length=2000)]
    """A webhook's ``http(s)://`` URL, or an Apprise URL (``mailto://...``, ``ntfy://...``)."""
    secret: Annotated[str | None, Field(min_length=16, max_length=200)] = None
    """Signs webhook bodies (HMAC-SHA256); required for webhooks, refused for Apprise."""


class ChannelOut(BaseModel):
    """A channel as its owner sees it later: never its secret, nor credentials in its URL."""

    id: str
    kind: ChannelKind
    target: str
    """Redacted: scheme and host of a webhook, only the scheme of an Apprise URL."""
    enabled: bool
    created_at: int

    @classmethod
    def of(cls, channel: ChannelRecord) -> ChannelOut:
        """From the store's record."""
        keep_host = channel.kind is ChannelKind.WEBHOOK
        return cls(
            id=channel.id,
            kind=channel.kind,
            target=redact_url(channel.target, keep_host=keep_host),
            enabled=channel.enabled,
            created_at=channel.created_at,
        )


class DeliveryOut(BaseModel):
    """One notification on its way to a channel, delivered, or given up on (a dead letter)."""

    id: str
    notification_id: str
    kind: str | None
    state: Literal["pending", "delivered", "dead_letter"]
    attempts: int
    last_error: str
    created_at: int
    delivered_at: int | None
    dead_lettered_at: int | None

    @classmethod
    def of(cls, delivery: DeliveryRecord) -> DeliveryOut:
        """From the store's record."""
        state: Literal["pending", "delivered", "dead_letter"] = "pending"
        if delivery.delivered_at is not None:
            state = "delivered"
        elif delivery.dead_lettered_at is not None:
            state = "dead_letter"
        kind = delivery.payload.get("kind")
        return cls(
            id=delivery.id,
            notification_id=delivery.event_key,
            kind=kind if isinstance(kind, str) else None,
            state=state,
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            dead_lettered_at=delivery.dead_lettered_at,
        )


class NotificationSent(BaseModel):
    """A notification was queued; follow it in the channel's deliveries."""

    notification_id: str


class NewTemperature(_Body):
    """Preheat or cool one heater; 0 turns it off."""

    heater: Heater
    target_c: Annotated[int, Field(ge=0, le=300), JSON_INTEGER]


class StoreHealth(BaseModel):
    """Whether the database answered."""

    ok: bool
    error: str | None = None


class LinkHealth(BaseModel):
    """The broker link, as the link supervisor has evidence of it (S8)."""

    connected: bool
    verified: bool
    evidence_age_s: float | None
    last_rtt_s: float | None
    connects: int


class Health(BaseModel):
    """``ok`` only when the store answers and the broker link is verified."""

    status: Literal["ok", "unavailable"]
    store: StoreHealth
    link: LinkHealth | None
