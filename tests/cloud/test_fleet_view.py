"""The cloud's view of printers: built from real protocol messages, hostile input dropped."""

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.protocol.conftest import counter_ids

from printfleet.cloud.dispatch.fleet_view import FleetView, Kind
from printfleet.protocol.dispatch import SafetySettings
from printfleet.protocol.gate import PrinterState
from printfleet.protocol.messages import (
    HeaterTelemetry,
    MaterialSlot,
    PlateStatus,
    Presence,
    PrinterStatus,
    Telemetry,
    encode,
)
from printfleet.protocol.printer import PrinterCore
from printfleet.protocol.topics import Topics

TOPICS = Topics()
NOW = 1_800_000_000_000


def view_at(now: int = NOW) -> FleetView:
    return FleetView(lambda: now, model_of=lambda printer_id: "p1")


def telemetry(printer_id: str = "p1", sent_at: int | None = NOW - 500) -> Telemetry:
    return Telemetry(
        printer_id=printer_id,
        seq=1,
        sent_at=sent_at,
        status=PrinterStatus.IDLE,
        plate=PlateStatus.CLEAR,
        hotend=HeaterTelemetry(temp_dc=2000, target_dc=2000),
        bed=HeaterTelemetry(temp_dc=600, target_dc=600),
    )


def test_a_state_event_makes_a_printer_view() -> None:
    fleet = view_at()
    core = PrinterCore(
        PrinterState("p1", has_plate_sensor=False), verifier=None, new_id=counter_ids()
    )
    ingested = fleet.ingest(TOPICS.events("p1"), encode(core.state_event(0)))
    assert ingested is not None
    assert ingested.kind is Kind.EVENT
    view = fleet.view("p1")
    assert view is not None
    assert view.online
    assert view.model == "p1"
    assert view.plate is PlateStatus.NEEDS_CONFIRMATION
    assert not view.clock_synced
    assert view.reported_at == NOW  # no sent_at: as old as its arrival


def test_telemetry_is_as_old_as_the_printer_says() -> None:
    fleet = view_at()
    fleet.ingest(TOPICS.telemetry("p1"), encode(telemetry(sent_at=NOW - 7_000)))
    view = fleet.view("p1")
    assert view is not None
    assert view.reported_at == NOW - 7_000
    assert view.clock_synced
    assert fleet.telemetry("p1") == telemetry(sent_at=NOW - 7_000)


def test_presence_offline_marks_the_printer_offline() -> None:
    fleet = view_at()
    fleet.ingest(TOPICS.telemetry("p1"), encode(telemetry()))
    fleet.ingest(TOPICS.presence("p1"), encode(Presence(printer_id="p1", online=False)))
    view = fleet.view("p1")
    assert view is not None
    assert not view.online


def test_a_printer_back_from_away_is_unknown_until_it_reports_again() -> None:
    # Its settings and its clock sync may have changed while it was away (S5): the old report
    # must not stand for the new printer.
    fleet = view_at()
    core = PrinterCore(
        PrinterState("p1", has_plate_sensor=True), verifier=None, new_id=counter_ids()
    )
    fleet.ingest(TOPICS.events("p1"), encode(core.state_event(0)))
    fleet.ingest(TOPICS.telemetry("p1"), encode(telemetry()))
    before = fleet.view("p1")
    assert before is not None
    assert before.reported == SafetySettings(plate_check=True)
    assert before.clock_synced
    fleet.ingest(TOPICS.presence("p1"), encode(Presence(printer_id="p1", online=False)))
    fleet.ingest(TOPICS.presence("p1"), encode(Presence(printer_id="p1", online=True)))
    back = fleet.view("p1")
    assert back is not None
    assert back.online
    assert back.reported is None
    assert not back.clock_synced


def test_hostile_messages_are_counted_and_dropped() -> None:
    fleet = view_at()
    assert fleet.ingest(TOPICS.telemetry("p1"), b"\x00garbage") is None
    assert fleet.ingest(TOPICS.telemetry("p2"), encode(telemetry("p1"))) is None  # spoofed
    assert fleet.ingest("elsewhere/p1/telemetry", encode(telemetry())) is None
    assert fleet.ingest(TOPICS.commands("p1"), encode(telemetry())) is None
    assert (fleet.stats.malformed, fleet.stats.spoofed, fleet.stats.unknown_topic) == (1, 1, 2)
    assert fleet.views() == {}


@given(payload=st.binary(max_size=400), kind=st.sampled_from(["events", "telemetry", "presence"]))
def test_no_payload_can_crash_ingestion(payload: bytes, kind: str) -> None:
    fleet = view_at()
    result = fleet.ingest(f"{TOPICS.prefix}/printers/p1/{kind}", payload)
    assert result is None or result.printer_id == "p1"


def _state_with_loadout(**fields: Any) -> bytes:
    state = PrinterState("p1", has_plate_sensor=True, **fields)
    core = PrinterCore(state, verifier=None, new_id=counter_ids())
    return encode(core.state_event(0))


def test_a_state_report_tells_the_loadout_and_whether_it_is_simulated() -> None:
    fleet = view_at()
    slots = (
        MaterialSlot(slot=1, material="PLA", colour="#ffffff"),
        MaterialSlot(slot=3, material="PETG"),
    )
    fleet.ingest(
        TOPICS.events("p1"), _state_with_loadout(materials=slots, nozzle_um=600, simulated=True)
    )
    view = fleet.view("p1")
    assert view is not None
    assert view.slots == slots
    assert view.materials == {"PLA", "PETG"}
    assert view.nozzle_um == 600
    assert view.simulated
    # A slot emptied at the printer is gone at its next report.
    fleet.ingest(TOPICS.events("p1"), _state_with_loadout(materials=slots[1:]))
    view = fleet.view("p1")
    assert view is not None
    assert view.materials == {"PETG"}
    assert view.nozzle_um is None
    assert not view.simulated


def _heaters(status: PrinterStatus, hotend: tuple[int, int], bed: tuple[int, int]) -> Telemetry:
    return telemetry().model_copy(
        update={
            "status": status,
            "hotend": HeaterTelemetry(temp_dc=hotend[0], target_dc=hotend[1]),
            "bed": HeaterTelemetry(temp_dc=bed[0], target_dc=bed[1]),
        }
    )


def test_a_printer_heats_up_while_printing_with_a_heater_well_under_its_target() -> None:
    cases = {
        (PrinterStatus.PRINTING, (1500, 2200), (600, 600)): True,  # hotend 70 °C short
        (PrinterStatus.PRINTING, (2200, 2200), (500, 600)): True,  # bed 10 °C short
        (PrinterStatus.PRINTING, (2160, 2200), (560, 600)): False,  # within 5 °C: at temperature
        (PrinterStatus.PRINTING, (250, 0), (250, 0)): False,  # no target: not heating
        (PrinterStatus.IDLE, (250, 2200), (250, 600)): False,  # preheating idle: no print
    }
    for (status, hotend, bed), heating in cases.items():
        fleet = view_at()
        fleet.ingest(TOPICS.telemetry("p1"), encode(_heaters(status, hotend, bed)))
        view = fleet.view("p1")
        assert view is not None
        assert view.heating is heating, (status, hotend, bed)


def test_a_state_report_that_the_print_ended_ends_the_heat_up() -> None:
    fleet = view_at()
    heating = _heaters(PrinterStatus.PRINTING, (1500, 2200), (600, 600))
    fleet.ingest(TOPICS.telemetry("p1"), encode(heating))
    fleet.ingest(TOPICS.events("p1"), _state_with_loadout())
    view = fleet.view("p1")
    assert view is not None
    assert not view.heating


def test_a_print_no_telemetry_has_described_yet_counts_as_heating_up() -> None:
    # The ack and the state report of a start can beat the first telemetry of its heat-up.
    fleet = view_at()
    job_id = str(uuid.uuid4())
    fleet.ingest(
        TOPICS.events("p1"),
        _state_with_loadout(status=PrinterStatus.PRINTING, job_id=job_id),
    )
    view = fleet.view("p1")
    assert view is not None
    assert view.heating
    at_temperature = _heaters(PrinterStatus.PRINTING, (2200, 2200), (600, 600))
    fleet.ingest(
        TOPICS.telemetry("p1"), encode(at_temperature.model_copy(update={"job_id": job_id}))
    )
    fleet.ingest(
        TOPICS.events("p1"),
        _state_with_loadout(status=PrinterStatus.PRINTING, job_id=job_id),
    )
    view = fleet.view("p1")
    assert view is not None
    assert not view.heating
