"""``FleetView``: the cloud's latest knowledge of every printer, built from what printers publish.

It keeps only the newest state per printer (telemetry ingestion keeps the latest state in
memory; ``cloud/telemetry_history.py`` puts history in the store at a bounded rate). It is
evidence for dispatch, not a queue: a view older than the dispatch policy allows simply stops
counting (S8).

Every payload is treated as hostile: undecodable ones are counted and dropped, and a message
whose printer id differs from its topic's is refused, whatever the broker's ACLs say.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from printfleet.protocol.dispatch import PrinterView, SafetySettings
from printfleet.protocol.messages import (
    DecodeError,
    Event,
    PlateStatus,
    Presence,
    PrinterStateEvent,
    PrinterStatus,
    Telemetry,
    decode_event,
    decode_presence,
    decode_telemetry,
)
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """What a printer message was."""

    EVENT = "events"
    TELEMETRY = "telemetry"
    PRESENCE = "presence"


_KINDS = frozenset(kind.value for kind in Kind)


@dataclass(frozen=True, slots=True)
class Ingested:
    """One message, decoded; exactly one of ``event``, ``telemetry``, ``presence`` is set."""

    printer_id: str
    kind: Kind
    event: Event | None = None
    telemetry: Telemetry | None = None
    presence: Presence | None = None


@dataclass(slots=True)
class IngestStats:
    """Counters for metrics and tests."""

    accepted: int = 0
    malformed: int = 0
    spoofed: int = 0
    unknown_topic: int = 0


HEATING_MARGIN_DC = 50
"""A heater more than 5 °C under its (non-zero) target is still heating up."""


def heating_up(report: Telemetry) -> bool:
    """Whether a printer is heating up for a print, as its telemetry says: printing, and a
    heater more than 5 °C under a non-zero target (it counts against the heat-up cap)."""
    return report.status is PrinterStatus.PRINTING and any(
        heater.target_dc > 0 and heater.temp_dc < heater.target_dc - HEATING_MARGIN_DC
        for heater in (report.hotend, report.bed)
    )


class FleetView:
    """Latest state per printer. ``clock_ms`` is cloud time in milliseconds."""

    def __init__(
        self,
        clock_ms: Callable[[], int],
        *,
        topics: Topics | None = None,
        model_of: Callable[[str], str | None] = lambda printer_id: None,
    ) -> None:
        self.topics = topics or Topics()
        self.stats = IngestStats()
        self._clock_ms = clock_ms
        self._model_of = model_of
        self._views: dict[str, PrinterView] = {}
        self._telemetry: dict[str, Telemetry] = {}

    def views(self) -> dict[str, PrinterView]:
        """Every printer heard from, by id."""
        return dict(self._views)

    def view(self, printer_id: str) -> PrinterView | None:
        """One printer's view, if it was ever heard from."""
        return self._views.get(printer_id)

    def telemetry(self, printer_id: str) -> Telemetry | None:
        """The newest telemetry report of a printer."""
        return self._telemetry.get(printer_id)

    def ingest(self, topic: str, payload: bytes) -> Ingested | None:
        """Decode and fold in one message; None (and a count) for anything unusable."""
        printer_id = self.topics.printer_of(topic)
        kind_name = topic.rsplit("/", 1)[-1]
        if printer_id is None or kind_name not in _KINDS:
            self.stats.unknown_topic += 1
            return None
        kind = Kind(kind_name)
        try:
            ingested = self._decode(kind, printer_id, payload)
        except DecodeError as error:
            self.stats.malformed += 1
            log.warning("dropped a malformed %s message from %s: %s", kind, printer_id, error)
            return None
        message = ingested.event or ingested.telemetry or ingested.presence
        if message is None or message.printer_id != printer_id:
            self.stats.spoofed += 1
            log.warning(
                "dropped a %s message on %s's topic naming another printer", kind, printer_id
            )
            return None
        self.stats.accepted += 1
        self._fold(ingested)
        return ingested

    @staticmethod
    def _decode(kind: Kind, printer_id: str, payload: bytes) -> Ingested:
        match kind:
            case Kind.EVENT:
                return Ingested(printer_id, kind, event=decode_event(payload))
            case Kind.TELEMETRY:
                return Ingested(printer_id, kind, telemetry=decode_telemetry(payload))
            case Kind.PRESENCE:
                return Ingested(printer_id, kind, presence=decode_presence(payload))

    def _reported_at(self, sent_at: int | None) -> int:
        # A report is as old as the printer says, if it knows cloud time: one that sat in a
        # queue must not look fresh just because it arrived now.
        now = self._clock_ms()
        return now if sent_at is None else min(now, sent_at)

    def _base(self, printer_id: str) -> PrinterView:
        existing = self._views.get(printer_id)
        if existing is not None:
            return existing
        return PrinterView(
            printer_id=printer_id,
            model=self._model_of(printer_id) or "",
            online=False,
            reported_at=0,
            status=PrinterStatus.IDLE,
            plate=PlateStatus.NEEDS_CONFIRMATION,
            fault=None,
            clock_synced=False,
        )

    def _fold(self, ingested: Ingested) -> None:
        printer_id = ingested.printer_id
        view = self._base(printer_id)
        if ingested.presence is not None:
            presence = ingested.presence
            model = presence.model or view.model
            # A printer that went away may come back with other settings (a restored journal,
            # a swapped board): what it applies is unknown until its next state report.
            # Its clock sync too: a power cycle forgets it, and commands sent before the printer
            # says it is synced again would only be refused.
            reported = view.reported if presence.online else None
            synced = view.clock_synced and presence.online
            self._views[printer_id] = replace(
                view, online=presence.online, model=model, reported=reported, clock_synced=synced
            )
        elif ingested.telemetry is not None:
            report = ingested.telemetry
            self._telemetry[printer_id] = report
            self._views[printer_id] = replace(
                view,
                online=True,
                reported_at=self._reported_at(report.sent_at),
                status=report.status,
                plate=report.plate,
                fault=report.fault,
                job_id=report.job_id,
                # Only a printer that knows cloud time stamps its reports.
                clock_synced=report.sent_at is not None,
                heating=heating_up(report),
            )
        elif isinstance(ingested.event, PrinterStateEvent):
            event = ingested.event
            body = event.body
            self._views[printer_id] = replace(
                view,
                online=True,
                reported_at=self._reported_at(event.sent_at),
                status=body.status,
                plate=body.plate,
                fault=body.fault,
                clock_synced=body.clock_synced,
                cloud_enabled=body.cloud_enabled,
                job_id=body.job_id,
                staged=frozenset(body.staged),
                reported=SafetySettings(plate_check=body.plate_check),
                slots=body.materials,
                materials=frozenset(slot.material for slot in body.materials),
                nozzle_um=body.nozzle_um,
                simulated=body.simulated,
                # Heating is telemetry's word: a print it has not described yet is heating up,
                # and a printer that stopped printing stopped heating up.
                heating=body.status is PrinterStatus.PRINTING
                and (view.heating or body.job_id != view.job_id),
            )
