"""Every message printfleet sends over MQTT, and its one canonical byte encoding.

Times on the wire are whole milliseconds: cloud time (Unix epoch, the cloud's clock) for
``issued_at``/``not_after``, the printer's own monotonic clock only where a field says so.
Integers keep the encoding canonical: no float formatting can make two encoders disagree.

One module although it is long: the wire format is one concept, and a reader checks every
message against the same base models and the same encoding in one place.
"""

import json
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from printfleet.protocol.identities import PRINTER_ID_PATTERN
from printfleet.protocol.reasons import Reason

PROTOCOL_VERSION: Literal[1] = 1
MAX_PAYLOAD_BYTES = 64 * 1024
"""Larger payloads are refused before parsing: no legitimate message comes close."""

PrinterId = Annotated[str, Field(pattern=PRINTER_ID_PATTERN)]
"""Printer ids are safe to put in an MQTT topic: no ``/``, ``+``, ``#`` or upper case."""
MessageId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
"""A canonical lower-case UUID; printfleet issues time-ordered UUIDv7s."""
MAX_MILLIS = 2**53
Millis = Annotated[int, Field(ge=0, le=MAX_MILLIS)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, Field(max_length=500)]
FileName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^/\\\x00]+$")]


class WireModel(BaseModel):
    """Immutable, strict about unknown fields: a typo on the wire is an error, not a default."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# ---------------------------------------------------------------------------------------------
# Commands: cloud -> printer, signed.


class CommandType(StrEnum):
    """The ``type`` of every command, as it is spelled on the wire.

    Acks and rejections name the command they answer by this word (``command_type``); that
    field stays a string on the wire, since a printer may also refuse what it could not read
    (``unknown``) or a start made at its own screen or LAN API.
    """

    STAGE = "stage"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    CONFIRM_PLATE = "confirm_plate"
    CLEAR_FAULT = "clear_fault"
    SET_PLATE_CHECK = "set_plate_check"
    SET_TEMPERATURE = "set_temperature"
    SET_MATERIAL = "set_material"
    SET_NOZZLE = "set_nozzle"
    SIMULATE = "simulate"
    JOURNAL_QUERY = "journal_query"
    LOCAL_JOB_ACK = "local_job_ack"
    TIME_REPLY = "time_reply"


class Heater(StrEnum):
    """A heater a command can address."""

    HOTEND = "hotend"
    BED = "bed"


class StageBody(WireModel):
    """Fetch a job's file; no physical effect, so it may be retried freely."""

    file_url: Annotated[str, Field(min_length=1, max_length=2000)]
    sha256: Sha256
    size: Annotated[int, Field(ge=0)]
    name: FileName


class StartBody(WireModel):
    """Start printing a staged file: the one command that puts plastic on a plate."""

    sha256: Sha256
    name: FileName
    plate_check: bool = True
    """The owner's plate-check setting as the cloud holds it. The printer checks the plate if
    this *or* its own setting says so: a check turned back on while the printer was away
    applies to the very next start, before the printer has caught up (S5)."""


class EmptyBody(WireModel):
    """Commands whose envelope says everything (pause, resume, cancel)."""


class ConfirmPlateBody(WireModel):
    """A person confirmed remotely that the plate is clear."""

    confirmed_by: ShortText


class ClearFaultBody(WireModel):
    """A person cleared a latched thermal fault remotely."""

    cleared_by: ShortText


class SetPlateCheckBody(WireModel):
    """The owner turns the plate check on or off (audited on both sides)."""

    enabled: bool
    changed_by: ShortText


class SetTemperatureBody(WireModel):
    """Set a heater target; any target above zero is a physical effect."""

    heater: Heater
    target: Annotated[int, Field(ge=0, le=400)]


MaterialName = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9][A-Z0-9+\-]*$")]
"""A filament type as slicers write it, upper case: ``PLA``, ``PETG``, ``PA-CF``, ``TPU``."""
Colour = Annotated[str, Field(pattern=r"^#[0-9a-f]{6}$")]
"""A colour as ``#rrggbb``, lower case."""
NozzleUm = Annotated[int, Field(ge=100, le=2000)]
"""A nozzle's diameter in micrometres (400 is the common 0.4 mm): an integer, as on all the wire."""


class MaterialSlot(WireModel):
    """What one filament slot of a printer holds: its single spool, or one slot of a material
    system (an AMS-like unit has four). Slots are numbered from 1, as slicers number them."""

    slot: Annotated[int, Field(ge=1, le=16)]
    material: MaterialName
    colour: Colour | None = None


class SetMaterialBody(WireModel):
    """A person says what a filament slot holds now (``material`` None: the slot is empty).

    No physical effect: the printer records it, as if entered on its screen, and re-reports its
    state. The cloud routes jobs by what printers report.
    """

    slot: Annotated[int, Field(ge=1, le=16)]
    material: MaterialName | None
    colour: Colour | None = None


class SetNozzleBody(WireModel):
    """A person says which nozzle is fitted now; recorded and re-reported like a material."""

    nozzle_um: NozzleUm


class SimulateAction(StrEnum):
    """What a ``simulate`` command acts out on a simulated printer."""

    REMOVE_PRINT = "remove_print"
    """A person takes the finished print off the plate."""
    FAULT = "fault"
    """A fault strikes the hardware (``fault`` says which)."""
    CLEAR_FAULT = "clear_fault"
    """The simulated hardware is repaired; a latched fault stays until a person clears it."""


SIMULATED_FAULT_KINDS = (
    "heater-disconnected",
    "thermistor-detached",
    "sensor-open",
    "sensor-short",
    "heater-stuck-on",
    "power-loss",
)
"""The faults a simulated printer can be given, as ``printfleet sim --fault`` names them."""
SIMULATED_FAULT_PATTERN = (
    r"^((heater-disconnected|thermistor-detached|sensor-open|sensor-short"
    r"|heater-stuck-on)(:(hotend|bed))?|power-loss(:[0-9]{1,6}(\.[0-9]{1,3})?[smh])?)$"
)
SimulatedFault = Annotated[str, Field(pattern=SIMULATED_FAULT_PATTERN)]
"""``KIND[:ARG]``: a heater fault and its heater (``hotend`` if none), or ``power-loss`` and how
long the power stays off (none: until the simulation stops); e.g. ``sensor-open:bed``,
``power-loss:30s``."""


class SimulateBody(WireModel):
    """Act something out on a simulated printer (``printfleet sim``, the demo); a printer that
    is not simulated refuses it (``NOT_SIMULATED``)."""

    action: SimulateAction
    fault: SimulatedFault | None = None

    @model_validator(mode="after")
    def _fault_with_fault_only(self) -> "SimulateBody":
        if (self.action is SimulateAction.FAULT) != (self.fault is not None):
            msg = "fault is given with action fault, and only then"
            raise ValueError(msg)
        return self


class JournalQueryBody(WireModel):
    """Ask what the printer did about these jobs; answers settle unknown outcomes."""

    job_ids: Annotated[tuple[MessageId, ...], Field(min_length=1, max_length=100)]


class LocalJobAckBody(WireModel):
    """The cloud has recorded these local jobs' reports: the printer may stop re-sending them."""

    job_ids: Annotated[tuple[MessageId, ...], Field(min_length=1, max_length=100)]


class TimeReplyBody(WireModel):
    """The cloud's answer to a printer's time request; ``issued_at`` carries cloud time."""

    nonce: MessageId
    request_sent_local: Millis


class CommandBase(WireModel):
    """Fields every command carries; see docs/protocol.md."""

    v: Literal[1] = PROTOCOL_VERSION
    id: MessageId
    printer_id: PrinterId
    job_id: MessageId | None = None
    issued_at: Millis
    not_after: Millis
    sig: str = ""


class StageCommand(CommandBase):
    """See :class:`StageBody`."""

    type: Literal["stage"] = "stage"
    job_id: MessageId
    body: StageBody


class StartCommand(CommandBase):
    """See :class:`StartBody`."""

    type: Literal["start"] = "start"
    job_id: MessageId
    body: StartBody


class PauseCommand(CommandBase):
    """Pause the named job if it is the one printing."""

    type: Literal["pause"] = "pause"
    job_id: MessageId
    body: EmptyBody = EmptyBody()


class ResumeCommand(CommandBase):
    """Resume the named job: heats and moves again, so it is judged like a start."""

    type: Literal["resume"] = "resume"
    job_id: MessageId
    body: EmptyBody = EmptyBody()


class CancelCommand(CommandBase):
    """Cancel the named job, now or whenever a start for it might arrive."""

    type: Literal["cancel"] = "cancel"
    job_id: MessageId
    body: EmptyBody = EmptyBody()


class ConfirmPlateCommand(CommandBase):
    """See :class:`ConfirmPlateBody`."""

    type: Literal["confirm_plate"] = "confirm_plate"
    body: ConfirmPlateBody


class ClearFaultCommand(CommandBase):
    """See :class:`ClearFaultBody`."""

    type: Literal["clear_fault"] = "clear_fault"
    body: ClearFaultBody


class SetPlateCheckCommand(CommandBase):
    """See :class:`SetPlateCheckBody`."""

    type: Literal["set_plate_check"] = "set_plate_check"
    body: SetPlateCheckBody


class SetTemperatureCommand(CommandBase):
    """See :class:`SetTemperatureBody`."""

    type: Literal["set_temperature"] = "set_temperature"
    body: SetTemperatureBody


class SetMaterialCommand(CommandBase):
    """See :class:`SetMaterialBody`."""

    type: Literal["set_material"] = "set_material"
    body: SetMaterialBody


class SetNozzleCommand(CommandBase):
    """See :class:`SetNozzleBody`."""

    type: Literal["set_nozzle"] = "set_nozzle"
    body: SetNozzleBody


class SimulateCommand(CommandBase):
    """See :class:`SimulateBody`."""

    type: Literal["simulate"] = "simulate"
    body: SimulateBody


class JournalQueryCommand(CommandBase):
    """See :class:`JournalQueryBody`."""

    type: Literal["journal_query"] = "journal_query"
    body: JournalQueryBody


class LocalJobAckCommand(CommandBase):
    """See :class:`LocalJobAckBody`."""

    type: Literal["local_job_ack"] = "local_job_ack"
    body: LocalJobAckBody


class TimeReplyCommand(CommandBase):
    """See :class:`TimeReplyBody`."""

    type: Literal["time_reply"] = "time_reply"
    body: TimeReplyBody


Command: TypeAlias = Annotated[
    StageCommand
    | StartCommand
    | PauseCommand
    | ResumeCommand
    | CancelCommand
    | ConfirmPlateCommand
    | ClearFaultCommand
    | SetPlateCheckCommand
    | SetTemperatureCommand
    | SetMaterialCommand
    | SetNozzleCommand
    | SimulateCommand
    | JournalQueryCommand
    | LocalJobAckCommand
    | TimeReplyCommand,
    Field(discriminator="type"),
]
"""Any command; ``type`` selects the body."""

# ---------------------------------------------------------------------------------------------
# Events: printer -> cloud. The broker's per-printer ACL authenticates them.


class PrinterStatus(StrEnum):
    """What the printer is doing."""

    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"


class PlateStatus(StrEnum):
    """What the printer knows about its plate, as the cloud should show it."""

    CLEAR = "clear"
    """A sensor reads clear, or a person confirmed it since the last print ended."""
    OCCUPIED = "occupied"
    """A sensor sees something on it."""
    NEEDS_CONFIRMATION = "needs_confirmation"
    """No sensor (or it cannot tell) and nobody has confirmed it clear since the last print."""
    UNCHECKED = "unchecked"
    """The owner turned the plate check off."""


class JobOutcome(StrEnum):
    """How a print ended at the printer."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StartSource(StrEnum):
    """Who asked for a print start (invariant S1)."""

    CLOUD = "cloud"
    LAN = "lan"
    SCREEN = "screen"


class JournalStatus(StrEnum):
    """What a printer's journal says of a job."""

    UNKNOWN = "unknown"
    """Never started here and never cancelled here."""
    STARTED = "started"
    """Started here and not yet ended."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Cancelled here: before it started (it never will), or while it printed."""

    @property
    def ever_started(self) -> bool:
        """Whether the job did start here (CANCELLED is ambiguous; see the journal)."""
        return self in {JournalStatus.STARTED, JournalStatus.COMPLETED, JournalStatus.FAILED}


class AckBody(WireModel):
    """A command was accepted and its effect begun."""

    command_id: MessageId
    command_type: Annotated[str, Field(max_length=40)]


class RejectedBody(WireModel):
    """A command was refused, with one reason code and a human-readable detail."""

    command_id: MessageId | None
    command_type: Annotated[str, Field(max_length=40)]
    reason: Reason
    detail: ShortText = ""


class JobStartedBody(WireModel):
    """A print began; ``source`` says who asked for it."""

    source: StartSource
    command_id: MessageId | None = None
    name: FileName


class JobEndedBody(WireModel):
    """A print ended."""

    outcome: JobOutcome
    detail: ShortText = ""


class StagedBody(WireModel):
    """A job's file is on the printer's storage with the right checksum."""

    sha256: Sha256


class PrinterStateBody(WireModel):
    """The printer's whole safety-relevant state, sent on connect and on every change.

    ``materials`` and ``nozzle_um`` say what the printer has loaded (empty slots are left
    out; unknown is ``()``/None): the cloud routes a job only to a printer that matches it.
    """

    status: PrinterStatus
    job_id: MessageId | None
    plate: PlateStatus
    has_plate_sensor: bool
    plate_check: bool
    fault: ShortText | None
    clock_synced: bool
    staged: Annotated[tuple[MessageId, ...], Field(max_length=64)] = ()
    cloud_enabled: bool = True
    materials: Annotated[tuple[MaterialSlot, ...], Field(max_length=16)] = ()
    nozzle_um: NozzleUm | None = None
    simulated: bool = False
    """A simulated printer (``printfleet sim``, the demo): a person may inject faults into it."""


class LocalJobBody(WireModel):
    """A print a person started at the printer (its screen or its LAN API), and how it ended.

    Reported when it ends, and again after every reconnect until the cloud acknowledges it, so
    prints run during an outage reach the cloud's history. ``ended_at`` is cloud time if the
    printer knew it then; ``duration_s`` is unknown (None) if the agent restarted meanwhile.
    """

    source: StartSource
    name: FileName
    outcome: JobOutcome
    detail: ShortText = ""
    ended_at: Millis | None = None
    duration_s: Annotated[int, Field(ge=0)] | None = None


class AlertBody(WireModel):
    """Something a person must know now."""

    kind: Annotated[str, Field(max_length=40)]
    severity: Literal["critical", "warning", "info"]
    message: ShortText


PLATE_EJECTED = "plate_ejected"
"""The alert kind an auto-eject printer sends when it cleared its own plate after a completed
print. It is evidence, not a condition for people: the cloud puts it in the printer's audit log
(``plate.cleared``) and raises no alert and tells no channel."""


class JournalReportBody(WireModel):
    """The answer to a journal query: what this printer did about each job asked for."""

    query_id: MessageId
    jobs: dict[MessageId, JournalStatus]


class TimeRequestBody(WireModel):
    """A printer asks for cloud time; it keeps ``sent_local`` to time the round trip."""

    nonce: MessageId
    sent_local: Millis


class _EventBase(WireModel):
    v: Literal[1] = PROTOCOL_VERSION
    id: MessageId
    printer_id: PrinterId
    job_id: MessageId | None = None
    sent_at: Millis | None
    """The printer's estimate of cloud time when sent, if its clock is synced."""


class AckEvent(_EventBase):
    """See :class:`AckBody`."""

    type: Literal["ack"] = "ack"
    body: AckBody


class RejectedEvent(_EventBase):
    """See :class:`RejectedBody`."""

    type: Literal["rejected"] = "rejected"
    body: RejectedBody


class JobStartedEvent(_EventBase):
    """See :class:`JobStartedBody`."""

    type: Literal["job_started"] = "job_started"
    job_id: MessageId
    body: JobStartedBody


class JobEndedEvent(_EventBase):
    """See :class:`JobEndedBody`."""

    type: Literal["job_ended"] = "job_ended"
    job_id: MessageId
    body: JobEndedBody


class StagedEvent(_EventBase):
    """See :class:`StagedBody`."""

    type: Literal["staged"] = "staged"
    job_id: MessageId
    body: StagedBody


class PrinterStateEvent(_EventBase):
    """See :class:`PrinterStateBody`."""

    type: Literal["state"] = "state"
    body: PrinterStateBody


class AlertEvent(_EventBase):
    """See :class:`AlertBody`."""

    type: Literal["alert"] = "alert"
    body: AlertBody


class LocalJobEvent(_EventBase):
    """See :class:`LocalJobBody`."""

    type: Literal["local_job"] = "local_job"
    job_id: MessageId
    body: LocalJobBody


class JournalReportEvent(_EventBase):
    """See :class:`JournalReportBody`."""

    type: Literal["journal_report"] = "journal_report"
    body: JournalReportBody


class TimeRequestEvent(_EventBase):
    """See :class:`TimeRequestBody`."""

    type: Literal["time_request"] = "time_request"
    body: TimeRequestBody


Event: TypeAlias = Annotated[
    AckEvent
    | RejectedEvent
    | JobStartedEvent
    | JobEndedEvent
    | StagedEvent
    | PrinterStateEvent
    | AlertEvent
    | JournalReportEvent
    | LocalJobEvent
    | TimeRequestEvent,
    Field(discriminator="type"),
]
"""Any printer event; ``type`` selects the body."""

_EVENT_FOR_BODY: dict[type[WireModel], type[_EventBase]] = {
    AckBody: AckEvent,
    RejectedBody: RejectedEvent,
    JobStartedBody: JobStartedEvent,
    JobEndedBody: JobEndedEvent,
    StagedBody: StagedEvent,
    PrinterStateBody: PrinterStateEvent,
    AlertBody: AlertEvent,
    JournalReportBody: JournalReportEvent,
    LocalJobBody: LocalJobEvent,
    TimeRequestBody: TimeRequestEvent,
}


def make_event(
    body: WireModel, *, event_id: str, printer_id: str, job_id: str | None, sent_at: int | None
) -> Event:
    """Wrap an event body in the envelope its type calls for."""
    event_type = _EVENT_FOR_BODY[type(body)]
    fields = {
        "id": event_id,
        "printer_id": printer_id,
        "job_id": job_id,
        "sent_at": sent_at,
        "body": body,
    }
    return event_type.model_validate(fields)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Telemetry and presence.


class HeaterTelemetry(WireModel):
    """One heater's reading; tenths of a degree keep the encoding integral."""

    temp_dc: int
    target_dc: int


class ProgressTelemetry(WireModel):
    """Where the running print is."""

    percent: Annotated[int, Field(ge=0, le=100)]
    layer: Annotated[int, Field(ge=0)]
    total_layers: Annotated[int, Field(ge=0)]
    time_left_s: Annotated[int, Field(ge=0)]


class Telemetry(WireModel):
    """The periodic report (QoS 0): enough for a dashboard and for dispatch freshness."""

    v: Literal[1] = PROTOCOL_VERSION
    type: Literal["telemetry"] = "telemetry"
    printer_id: PrinterId
    seq: Annotated[int, Field(ge=0)]
    sent_at: Millis | None
    status: PrinterStatus
    job_id: MessageId | None = None
    plate: PlateStatus
    fault: ShortText | None = None
    hotend: HeaterTelemetry
    bed: HeaterTelemetry
    progress: ProgressTelemetry | None = None


class Presence(WireModel):
    """Retained presence; the broker publishes ``online=False`` as the printer's Will."""

    v: Literal[1] = PROTOCOL_VERSION
    type: Literal["presence"] = "presence"
    printer_id: PrinterId
    online: bool
    model: Annotated[str, Field(max_length=40)] = ""


# ---------------------------------------------------------------------------------------------
# Encoding.


class DecodeError(ValueError):
    """A payload that is not a valid message; ``reason`` is the code to reply with."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The one byte encoding of a JSON-compatible mapping: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def encode(message: BaseModel) -> bytes:
    """Encode any message canonically; what is signed is exactly what is sent."""
    return canonical_bytes(message.model_dump(mode="json"))


_command_adapter: TypeAdapter[Command] = TypeAdapter(Command)
_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def _check_envelope(payload: bytes | bytearray) -> None:
    """Cheap checks before validation: size, JSON object, and a version we speak."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(Reason.MALFORMED, f"payload of {len(payload)} bytes is too large")
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as error:
        # ValueError covers bad UTF-8, bad JSON and integers past the int-from-string limit.
        raise DecodeError(Reason.MALFORMED, f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise DecodeError(Reason.MALFORMED, "not a JSON object")
    version = document.get("v")
    # ``True == 1`` and ``1.0 == 1`` in Python; only the integer 1 is version 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise DecodeError(Reason.UNSUPPORTED_VERSION, f"protocol version {version!r}")


def _validation_detail(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"[:300]


def decode_command(payload: bytes | bytearray) -> Command:
    """Parse a command; raises :class:`DecodeError` with MALFORMED or UNSUPPORTED_VERSION."""
    _check_envelope(payload)
    try:
        return _command_adapter.validate_json(payload)
    except ValidationError as error:
        raise DecodeError(Reason.MALFORMED, _validation_detail(error)) from None


def decode_event(payload: bytes | bytearray) -> Event:
    """Parse a printer event; raises :class:`DecodeError` on anything else."""
    _check_envelope(payload)
    try:
        return _event_adapter.validate_json(payload)
    except ValidationError as error:
        raise DecodeError(Reason.MALFORMED, _validation_detail(error)) from None


def decode_telemetry(payload: bytes | bytearray) -> Telemetry:
    """Parse a telemetry report; raises :class:`DecodeError` on anything else."""
    _check_envelope(payload)
    try:
        return Telemetry.model_validate_json(payload)
    except ValidationError as error:
        raise DecodeError(Reason.MALFORMED, _validation_detail(error)) from None


def decode_presence(payload: bytes | bytearray) -> Presence:
    """Parse a presence message; raises :class:`DecodeError` on anything else."""
    _check_envelope(payload)
    try:
        return Presence.model_validate_json(payload)
    except ValidationError as error:
        raise DecodeError(Reason.MALFORMED, _validation_detail(error)) from None
