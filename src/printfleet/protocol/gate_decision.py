"""What the printer-side gate (:mod:`printfleet.protocol.gate`) answers: the decision with its new
state, the journal records to persist first, the hardware actions, the events to emit, and the
refusal that becomes a ``rejected`` event.
"""

from dataclasses import dataclass

from printfleet.protocol.journal import JournalRecord
from printfleet.protocol.messages import Heater, RejectedBody, WireModel
from printfleet.protocol.printer_state import PrinterState
from printfleet.protocol.reasons import Reason


@dataclass(frozen=True, slots=True)
class StartPrint:
    """Begin printing ``name`` for ``job_id``."""

    job_id: str
    name: str


@dataclass(frozen=True, slots=True)
class PausePrint:
    """Pause the running print."""


@dataclass(frozen=True, slots=True)
class ResumePrint:
    """Resume the paused print."""


@dataclass(frozen=True, slots=True)
class CancelPrint:
    """Stop the running print; the hardware reports the end."""


@dataclass(frozen=True, slots=True)
class HeatersOff:
    """Turn every heater off now."""


@dataclass(frozen=True, slots=True)
class SetTarget:
    """Set one heater's target (°C)."""

    heater: Heater
    target: int


@dataclass(frozen=True, slots=True)
class FetchFile:
    """Download a file into storage and check its sha256 (no physical effect)."""

    job_id: str
    url: str
    sha256: str
    size: int
    name: str


@dataclass(frozen=True, slots=True)
class ShowMessage:
    """Put a message on the printer's screen."""

    text: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class RecordMaterial:
    """Record what a filament slot holds (``material`` None: empty); no physical effect."""

    slot: int
    material: str | None
    colour: str | None


@dataclass(frozen=True, slots=True)
class RecordNozzle:
    """Record the nozzle fitted, in micrometres; no physical effect."""

    nozzle_um: int


@dataclass(frozen=True, slots=True)
class Simulate:
    """Act out ``action`` on the simulated hardware (``fault``: which fault strikes)."""

    action: str
    fault: str | None


Action = (
    StartPrint
    | PausePrint
    | ResumePrint
    | CancelPrint
    | HeatersOff
    | SetTarget
    | FetchFile
    | ShowMessage
    | RecordMaterial
    | RecordNozzle
    | Simulate
)


@dataclass(frozen=True, slots=True)
class Emit:
    """An event to publish: its job id and body; the shell adds id, printer id and time."""

    body: WireModel
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer. Persist ``records`` first, then act, then emit."""

    accepted: bool
    reason: Reason | None
    detail: str
    state: PrinterState
    records: tuple[JournalRecord, ...] = ()
    actions: tuple[Action, ...] = ()
    events: tuple[Emit, ...] = ()
    announce: bool = False
    """Send the full state even if nothing changed: the cloud needs to hear it again."""


def accept(
    state: PrinterState,
    *,
    records: tuple[JournalRecord, ...] = (),
    actions: tuple[Action, ...] = (),
    events: tuple[Emit, ...] = (),
    announce: bool = False,
) -> GateDecision:
    """An acceptance leading to ``state``."""
    return GateDecision(
        accepted=True,
        reason=None,
        detail="",
        state=state,
        announce=announce,
        records=records,
        actions=actions,
        events=events,
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a check failed; becomes a ``rejected`` event."""

    reason: Reason
    detail: str


def refuse(
    state: PrinterState,
    refusal: Refusal,
    *,
    command_type: str,
    command_id: str | None = None,
    job_id: str | None = None,
) -> GateDecision:
    """A refusal: state unchanged, one ``rejected`` event with the reason."""
    body = RejectedBody(
        command_id=command_id,
        command_type=command_type,
        reason=refusal.reason,
        detail=refusal.detail[:500],
    )
    return GateDecision(
        accepted=False,
        reason=refusal.reason,
        detail=refusal.detail,
        state=state,
        events=(Emit(body, job_id),),
    )
