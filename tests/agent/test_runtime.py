"""`PrinterAgent` against a real Mosquitto, a real HTTP file server and the simulated printer.

A `CloudPeer` plays the cloud over MQTT: it answers time requests, sends signed commands and
awaits the agent's events and telemetry. The simulator runs faster than real time (`time_scale`);
thermal timings are measured and bounded in its hardware seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from blockbuster import blockbuster_ctx
from tests.agent.peer import (
    WAIT_S,
    CloudPeer,
    FileServer,
    StagedFile,
    cloud_now,
    connected_peer,
    running_agent,
)

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import (
    WATCHDOG_TIMEOUT_S,
    HeaterId,
    MessageLevel,
    PrintOutcomeKind,
    PrintState,
)
from printfleet.agent.journal_store import JournalFile
from printfleet.agent.observer import CommandJudged
from printfleet.agent.runtime import PLATE_PROMPT_ID, PrinterAgent, new_message_id
from printfleet.agent.thermal import (
    HOTEND_LIMITS,
    READING_PERIOD,
    FaultKind,
    detection_bound,
)
from printfleet.broker_address import BrokerAddress
from printfleet.protocol.journal import JournalRecord, RecordKind
from printfleet.protocol.messages import (
    AlertEvent,
    CommandBase,
    Heater,
    JobEndedEvent,
    JobOutcome,
    JobStartedEvent,
    JournalReportEvent,
    JournalStatus,
    PlateStatus,
    PrinterStatus,
    ProgressTelemetry,
    RejectedEvent,
    StagedEvent,
    StartCommand,
    StartSource,
    TimeRequestEvent,
    canonical_bytes,
    encode,
)
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner
from printfleet.sim import SimulatedPrinter, make_sample_gcode
from printfleet.sim.thermal import AMBIENT_C, HeaterFault
from printfleet.testing import MosquittoBroker

pytestmark = pytest.mark.asyncio

TELEMETRY_PERIOD_S = 0.1
LOOP_LATENCY_S = 0.02
"""Real seconds an asyncio timer may fire late on a loaded machine.

`detection_bound` counts hardware time between the readings the agent takes; the agent's timer can
wake late by the event loop's latency, which the time scale turns into that many hardware seconds
more. Bounds below get `LOOP_LATENCY_S * time_scale` of slack, and no more.
"""
ADVANCE_UNTIL_STEP_S = 0.05
"""`Board.advance_until` reports a crossing up to this long after it happened."""
CHILD = Path(__file__).with_name("agent_process.py")


# -- fixtures and helpers -------------------------------------------------------------------------


class RecordingPrinter(SimulatedPrinter):
    """A simulated printer that notes, in hardware seconds, what the agent did to its board."""

    def __init__(
        self,
        model: str,
        *,
        storage_dir: Path,
        time_scale: float,
        watchdog_timeout: float | None = None,
    ) -> None:
        # The board's watchdog counts hardware seconds: at 50x, its 3 s are 60 ms of real time,
        # which a busy shared machine can stall for, cutting the heat of a test that is not about
        # the watchdog. Unless a test asks for the real one, it is 3 s of real time instead.
        super().__init__(
            model,
            storage_dir=storage_dir,
            time_scale=time_scale,
            watchdog_timeout=watchdog_timeout or WATCHDOG_TIMEOUT_S * max(1.0, time_scale),
        )
        self.last_refresh: float | None = None
        self.heaters_off_at: list[float] = []

    async def refresh_watchdog(self) -> None:
        """Refresh, and remember when the board saw it."""
        await super().refresh_watchdog()
        self.last_refresh = self.board.last_refresh

    async def heaters_off(self) -> None:
        """Cut the heaters, and remember when."""
        await super().heaters_off()
        self.heaters_off_at.append(self.board.time)


@pytest_asyncio.fixture
async def peer(mosquitto: MosquittoBroker) -> AsyncIterator[CloudPeer]:
    """The cloud's side, on the suite's shared broker."""
    async with connected_peer(BrokerAddress.parse(mosquitto.url)) as cloud:
        yield cloud


@pytest.fixture
def files() -> Iterator[FileServer]:
    """A real HTTP server for staged files."""
    with FileServer() as server:
        yield server


def new_printer_id(model: str) -> str:
    """A printer id no other test on the shared broker uses."""
    return f"{model}-{uuid.uuid4().hex[:10]}"


def config_for(peer: CloudPeer, broker: str, data_dir: Path, printer_id: str) -> AgentConfig:
    """An agent config that trusts `peer` and reports telemetry often."""
    return AgentConfig(
        printer_id=printer_id,
        broker=broker,
        cloud_public_key=peer.public_key,
        data_dir=data_dir,
        telemetry_period_s=TELEMETRY_PERIOD_S,
    )


def start_of(peer: CloudPeer, printer_id: str, job_id: str, staged: StagedFile) -> StartCommand:
    """A start with the full 30 s dispatch window."""
    now = cloud_now()
    return peer.issuer.start(
        printer_id, job_id, now=now, not_after=now + 30_000, sha256=staged.sha256, name=staged.name
    )


async def stage(peer: CloudPeer, printer_id: str, job_id: str, staged: StagedFile) -> None:
    """Stage a file on a printer and wait until it says the file checks out."""
    since = peer.mark()
    command = peer.issuer.stage(
        printer_id,
        job_id,
        now=cloud_now(),
        file_url=staged.url,
        sha256=staged.sha256,
        size=staged.size,
        name=staged.name,
    )
    await peer.accepted(command)
    event = await peer.event(printer_id, StagedEvent, lambda e: e.job_id == job_id, since=since)
    assert event.body.sha256 == staged.sha256


def set_temperature(peer: CloudPeer, printer_id: str, heater: Heater, target: int) -> CommandBase:
    """A signed set_temperature."""
    return peer.issuer.set_temperature(printer_id, now=cloud_now(), heater=heater, target=target)


def confirm_plate(peer: CloudPeer, printer_id: str) -> CommandBase:
    """A user's remote plate confirmation."""
    return peer.issuer.confirm_plate(printer_id, now=cloud_now(), by="ada@example.com")


def progress_of(
    peer: CloudPeer, printer_id: str, job_id: str, since: int
) -> list[ProgressTelemetry]:
    """The progress reports of one job, in order."""
    return [
        report.progress
        for pid, report in peer.telemetry[since:]
        if pid == printer_id and report.job_id == job_id and report.progress is not None
    ]


def assert_sensible_progress(progress: list[ProgressTelemetry], layers: int) -> None:
    """Several reports, never going backwards, reaching well into the print, layers counted."""
    percents = [p.percent for p in progress]
    assert len(progress) >= 5, progress
    assert percents == sorted(percents), percents
    assert len(set(percents)) >= 3, percents
    assert max(percents) >= 50, percents
    assert all(p.total_layers == layers for p in progress), progress
    layer_numbers = [p.layer for p in progress]
    assert layer_numbers == sorted(layer_numbers), layer_numbers
    assert layer_numbers[-1] <= layers


# -- 1. printing ----------------------------------------------------------------------------------


async def test_p1_prints_a_staged_job_and_then_needs_its_plate_confirmed(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Stage over HTTP, confirm the plate remotely, start, watch progress, see it complete; the
    plate then needs a new confirmation before anything else starts."""
    pid = new_printer_id("p1")
    layers = 20
    data = make_sample_gcode(layers, hotend_c=50.0, bed_c=0.0).encode()
    cube = files.add("cube.gcode", data)
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    printer = RecordingPrinter("p1", storage_dir=tmp_path / "sd", time_scale=50.0)
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        job = new_message_id()
        await stage(peer, pid, job, cube)
        assert await printer.storage.read(cube.name) == data
        assert files.requests == [f"/{cube.name}"]

        # No sensor and nobody confirmed: refused, and the refusal does not use up the job.
        await peer.refused(start_of(peer, pid, job, cube), Reason.PLATE_UNCONFIRMED)
        since = peer.mark()
        await peer.accepted(confirm_plate(peer, pid))
        await peer.state(pid, lambda s: s.body.plate is PlateStatus.CLEAR, since=since)

        since, telemetry_since = peer.mark(), len(peer.telemetry)
        start = start_of(peer, pid, job, cube)
        await peer.accepted(start)
        started = await peer.event(pid, JobStartedEvent, lambda e: e.job_id == job, since=since)
        assert started.body.source is StartSource.CLOUD
        assert started.body.command_id == start.id
        ended = await peer.event(
            pid, JobEndedEvent, lambda e: e.job_id == job, since=since, wait_s=30
        )
        assert ended.body.outcome is JobOutcome.COMPLETED, ended.body

        # Published in the documented order: ack, job_started, state.
        order = [e.type for e in peer.events_of(pid, since)]
        assert order[:3] == ["ack", "job_started", "state"], order
        printing = peer.events_of(pid, since)[2]
        assert printing.body.status is PrinterStatus.PRINTING  # type: ignore[union-attr]

        assert_sensible_progress(progress_of(peer, pid, job, telemetry_since), layers)

        # The plate now holds the print: the next start needs a new confirmation.
        after = await peer.state(
            pid, lambda s: s.body.status is PrinterStatus.IDLE and s.job_id is None, since=since
        )
        assert after.body.plate is PlateStatus.NEEDS_CONFIRMATION
        await peer.event(
            pid, AlertEvent, lambda e: e.body.kind == "plate_confirmation_needed", since=since
        )
        assert PLATE_PROMPT_ID in printer.screen.open_prompts
        assert printer.plate.objects == 1
        second = new_message_id()
        await stage(peer, pid, second, cube)
        await peer.refused(start_of(peer, pid, second, cube), Reason.PLATE_UNCONFIRMED)
        assert printer.current_print() is None

        # A remote confirmation answers the question on the printer's screen too.
        await peer.accepted(confirm_plate(peer, pid))
        assert PLATE_PROMPT_ID not in printer.screen.open_prompts
    assert printer.plate.prints_on_occupied_plate == 0


async def test_x1_starts_only_once_its_sensor_sees_the_plate_cleared(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A printer with a plate sensor needs no confirmation, but refuses an occupied plate."""
    pid = new_printer_id("x1")
    cube = files.add("cube.gcode", make_sample_gcode(8, hotend_c=45.0, bed_c=0.0).encode())
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    printer = RecordingPrinter("x1", storage_dir=tmp_path / "sd", time_scale=50.0)
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        first, second = new_message_id(), new_message_id()
        await stage(peer, pid, first, cube)
        since = peer.mark()
        await peer.accepted(start_of(peer, pid, first, cube))
        ended = await peer.event(
            pid, JobEndedEvent, lambda e: e.job_id == first, since=since, wait_s=30
        )
        assert ended.body.outcome is JobOutcome.COMPLETED
        assert printer.plate.objects == 1

        await stage(peer, pid, second, cube)
        await peer.refused(start_of(peer, pid, second, cube), Reason.PLATE_NOT_CLEAR)
        assert printer.remove_print() == 1
        since = peer.mark()
        await peer.accepted(start_of(peer, pid, second, cube))
        await peer.event(pid, JobStartedEvent, lambda e: e.job_id == second, since=since)
        ended = await peer.event(
            pid, JobEndedEvent, lambda e: e.job_id == second, since=since, wait_s=30
        )
        assert ended.body.outcome is JobOutcome.COMPLETED
    assert printer.plate.prints_on_occupied_plate == 0


# -- 2. thermal faults ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Onset:
    """When a fault's detection clock starts, and how long detection may take from there.

    `at` is in hardware seconds and never later than the instant at which `detection_bound`'s
    onset condition first holds, so measuring from it can only overstate the latency. `job` is
    the job printing when the fault struck, if any.
    """

    at: float
    bound: float
    kind: FaultKind
    job: str | None = None


@dataclass(frozen=True, slots=True)
class Rig:
    """What a fault scenario works with."""

    peer: CloudPeer
    printer: RecordingPrinter
    pid: str
    heat_to_60: StagedFile
    """A print that heats the hotend to 60 °C, then prints."""


HOTEND = HeaterId.HOTEND


class ToldObserver:
    """An agent observer that keeps what it is told."""

    def __init__(self) -> None:
        self.judged: list[CommandJudged] = []
        self.faults: list[tuple[str, str]] = []
        self.cleared: list[str] = []

    def command_judged(self, judged: CommandJudged) -> None:
        self.judged.append(judged)

    def thermal_fault(self, printer_id: str, fault: str) -> None:
        self.faults.append((printer_id, fault))

    def fault_cleared(self, printer_id: str) -> None:
        self.cleared.append(printer_id)

    def verdict(self, command_id: str) -> tuple[bool, Reason | None]:
        """What the gate made of one command, as the agent reported it."""
        (judged,) = [j for j in self.judged if j.command is not None and j.command.id == command_id]
        return judged.decision.accepted, judged.decision.reason


async def heater_disconnected_while_heating(rig: Rig) -> Onset:
    """A print starts heating a hotend that no power reaches.

    Onset: the print sets the target, with readings at room temperature. The print's heating
    time counts from then, so the onset is now less the print's elapsed time, read after now.
    """
    peer, printer, pid = rig.peer, rig.printer, rig.pid
    ambient = printer.read_heater(HOTEND).temperature
    printer.inject_fault(HOTEND, HeaterFault.HEATER_DISCONNECTED)
    job = new_message_id()
    await stage(peer, pid, job, rig.heat_to_60)
    await peer.accepted(start_of(peer, pid, job, rig.heat_to_60))
    handle = printer.current_print()
    assert handle is not None
    await handle.wait_until(lambda progress: progress.state is PrintState.HEATING)
    now = printer.clock.now()
    at = now - handle.progress().elapsed
    bound = detection_bound(FaultKind.NOT_HEATING, HOTEND, 60, ambient)
    return Onset(at, bound, FaultKind.NOT_HEATING, job)


async def thermistor_detached_while_holding(rig: Rig) -> Onset:
    """Onset: readings fall to `level` (and stay there), as `detection_bound` defines RUNAWAY.

    The thermistor cools slowly after it falls out of the block, so the onset comes seconds after
    the injection; it is found on a look-ahead copy of the board, which the agent cannot disturb
    before it detects anything.
    """
    peer, printer, pid = rig.peer, rig.printer, rig.pid
    telemetry_since = len(peer.telemetry)
    await peer.accepted(set_temperature(peer, pid, Heater.HOTEND, 60))
    # Within 1 °C of the target: the heater has been holding it for a verify step or more.
    await peer.telemetry_where(pid, lambda t: t.hotend.temp_dc >= 590, since=telemetry_since)
    printer.inject_fault(HOTEND, HeaterFault.THERMISTOR_DETACHED)
    level = AMBIENT_C + 10.0
    bound = detection_bound(FaultKind.RUNAWAY, HOTEND, 60, level)
    probe = printer.board.look_ahead()
    crossing = probe.advance_until(HOTEND, lambda reading: reading <= level, probe.time + 60.0)
    assert crossing is not None
    while probe.time < crossing + bound:  # the bound's premise: readings stay down
        probe.step(READING_PERIOD)
        assert probe.read(HOTEND).temperature <= level
    return Onset(crossing - ADVANCE_UNTIL_STEP_S, bound, FaultKind.RUNAWAY)


async def sensor_open(rig: Rig) -> Onset:
    """Onset: the injection; from then on the sensor reads -15 °C."""
    await rig.peer.accepted(set_temperature(rig.peer, rig.pid, Heater.HOTEND, 60))
    at = rig.printer.clock.now()
    rig.printer.inject_fault(HOTEND, HeaterFault.SENSOR_OPEN)
    return Onset(
        at, detection_bound(FaultKind.UNDER_MIN, HOTEND, 60, AMBIENT_C), FaultKind.UNDER_MIN
    )


async def sensor_short(rig: Rig) -> Onset:
    """Onset: the injection; from then on the sensor reads 999 °C."""
    await rig.peer.accepted(set_temperature(rig.peer, rig.pid, Heater.HOTEND, 60))
    at = rig.printer.clock.now()
    rig.printer.inject_fault(HOTEND, HeaterFault.SENSOR_SHORT)
    return Onset(at, detection_bound(FaultKind.OVER_MAX, HOTEND, 60, AMBIENT_C), FaultKind.OVER_MAX)


async def heater_stuck_on(rig: Rig) -> Onset:
    """Onset: the reading crosses the hotend's maximum, found on a look-ahead copy of the board.

    The block starts hot, as after a print: heating it from room temperature would cost two
    minutes of hardware time and show nothing more.
    """
    printer = rig.printer
    hotend = printer.board.hotend
    hotend.body_temp = hotend.sensor_temp = 265.0
    await rig.peer.accepted(set_temperature(rig.peer, rig.pid, Heater.HOTEND, 260))
    printer.inject_fault(HOTEND, HeaterFault.HEATER_STUCK_ON)
    probe = printer.board.look_ahead()
    crossing = probe.advance_until(
        HOTEND, lambda reading: reading > HOTEND_LIMITS.max_temp, probe.time + 120.0
    )
    assert crossing is not None
    bound = detection_bound(FaultKind.OVER_MAX, HOTEND, 260, AMBIENT_C)
    return Onset(crossing - ADVANCE_UNTIL_STEP_S, bound, FaultKind.OVER_MAX)


@dataclass(frozen=True, slots=True)
class FaultCase:
    fault: HeaterFault
    provoke: Callable[[Rig], Awaitable[Onset]]
    time_scale: float
    says: str
    """Words the alert must contain, so a person knows what to check."""


FAULT_CASES = [
    FaultCase(
        HeaterFault.HEATER_DISCONNECTED, heater_disconnected_while_heating, 25.0, "not heating"
    ),
    FaultCase(
        HeaterFault.THERMISTOR_DETACHED, thermistor_detached_while_holding, 25.0, "could not hold"
    ),
    FaultCase(HeaterFault.SENSOR_OPEN, sensor_open, 5.0, "thermistor is probably disconnected"),
    FaultCase(HeaterFault.SENSOR_SHORT, sensor_short, 5.0, "above its maximum"),
    FaultCase(HeaterFault.HEATER_STUCK_ON, heater_stuck_on, 10.0, "cut mains power"),
]
"""Time scales: as high as keeps `LOOP_LATENCY_S * time_scale` small against each bound."""


@pytest.mark.parametrize("case", FAULT_CASES, ids=[case.fault.value for case in FAULT_CASES])
async def test_a_thermal_fault_is_caught_in_time_cuts_the_heaters_and_blocks_starts(
    case: FaultCase, peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """S6: detection within `detection_bound`, heaters off within 1 s, alerts, a latch; the
    agent's observer is told of the fault, of the commands it refused and of the clearing."""
    pid = new_printer_id("x1")
    cube = files.add("cube.gcode", make_sample_gcode(2, hotend_c=60.0, bed_c=0.0).encode())
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    printer = RecordingPrinter("x1", storage_dir=tmp_path / "sd", time_scale=case.time_scale)
    told = ToldObserver()
    async with printer, running_agent(config, printer, observer=told) as (agent, _):
        await peer.synced(pid)
        since = peer.mark()
        onset = await case.provoke(Rig(peer, printer, pid, cube))
        alert = await peer.event(
            pid, AlertEvent, lambda e: e.body.kind == "thermal_fault", since=since
        )
        fault = agent.guard.latched
        assert fault is not None
        assert (fault.heater, fault.kind) == (HOTEND, onset.kind)
        latency = fault.detected_at - onset.at
        allowed = onset.bound + LOOP_LATENCY_S * case.time_scale
        assert 0.0 <= latency <= allowed, f"detected {latency:.2f} s after onset, bound {allowed}"
        assert_heaters_cut(case, printer, fault.detected_at)
        assert told.faults[0] == (pid, fault.message)

        # Told on every channel the printer has: the cloud, the screen, and the job's end.
        assert alert.body.severity == "critical"
        assert alert.body.message == fault.message
        assert case.says in alert.body.message
        faulted = await peer.state(pid, lambda s: s.body.fault is not None, since=since)
        assert faulted.body.status is PrinterStatus.ERROR
        shown = [m for m in printer.screen.messages if m.level is MessageLevel.ERROR]
        assert [m.text for m in shown] == [fault.message]
        if onset.job is not None:
            # The print is stopped, and the job ends failed (not cancelled: nobody cancelled it).
            ended = await peer.event(
                pid, JobEndedEvent, lambda e: e.job_id == onset.job, since=since
            )
            assert ended.body.outcome is JobOutcome.FAILED
            assert fault.message in ended.body.detail
            assert printer.current_print() is None

        job = new_message_id()
        start = start_of(peer, pid, job, cube)
        await peer.refused(start, Reason.THERMAL_FAULT)
        assert told.verdict(start.id) == (False, Reason.THERMAL_FAULT)
        await peer.refused(set_temperature(peer, pid, Heater.BED, 40), Reason.THERMAL_FAULT)
        assert told.cleared == []
        if case.fault is not HeaterFault.HEATER_STUCK_ON:  # else still too hot: it would re-latch
            await repair_and_clear(case.fault, Rig(peer, printer, pid, cube), job)
            assert told.cleared == [pid]


def assert_heaters_cut(case: FaultCase, printer: RecordingPrinter, detected_at: float) -> None:
    """Both targets went to 0 within 1 s (hardware) of detection, and stayed there."""
    cuts = [t for t in printer.heaters_off_at if t >= detected_at]
    assert cuts, "the heaters were never turned off"
    assert cuts[0] - detected_at <= 1.0
    board = printer.board
    assert (board.hotend.target, board.bed.target) == (0.0, 0.0)
    if case.fault is HeaterFault.HEATER_STUCK_ON:
        # Software can only set the target to 0; the failed switch keeps full power flowing,
        # which is why the alert tells a person to cut mains power.
        assert board.hotend.delivered_duty() == 1.0
    else:
        assert board.hotend.delivered_duty() == 0.0


async def repair_and_clear(fault: HeaterFault, rig: Rig, job: str) -> None:
    """A person repairs the printer and clears the fault: it may heat and print again."""
    peer, printer, pid = rig.peer, rig.printer, rig.pid
    printer.clear_fault(HOTEND, fault)
    since = peer.mark()
    await peer.accepted(peer.issuer.clear_fault(pid, now=cloud_now(), by="ada@example.com"))
    await peer.event(pid, AlertEvent, lambda e: e.body.kind == "fault_cleared", since=since)
    await peer.state(pid, lambda s: s.body.status is PrinterStatus.IDLE, since=since)
    await peer.accepted(set_temperature(peer, pid, Heater.HOTEND, 40))
    assert printer.board.hotend.target == 40.0  # thermal protection let go of its latch too
    refused = [
        e
        for e in peer.events_of(pid, since)
        if isinstance(e, AlertEvent) and e.body.kind == "target_refused"
    ]
    assert not refused, refused
    await stage(peer, pid, job, rig.heat_to_60)
    await peer.accepted(start_of(peer, pid, job, rig.heat_to_60))


# -- 3. the board watchdog ------------------------------------------------------------------------


async def test_a_blocked_agent_loop_lets_the_board_watchdog_cut_the_heat(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The event loop is blocked mid-print; the board cuts heater power 3 s after the last refresh.

    The simulator is lazy: nothing runs while the loop is blocked, but the board, on its next read,
    integrates the time that passed and trips the watchdog at the exact deadline, as a board that
    ran on would have. What this shows is that the agent refreshed in time while it could (the
    print ran for many times 3 s), that its last refresh came before the block, and that the cut
    reaches the cloud as a failed job.
    """
    scale = 25.0
    pid = new_printer_id("x1")
    cube = files.add("cube.gcode", make_sample_gcode(200, hotend_c=50.0, bed_c=0.0).encode())
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    printer = RecordingPrinter(
        "x1", storage_dir=tmp_path / "sd", time_scale=scale, watchdog_timeout=WATCHDOG_TIMEOUT_S
    )
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        job = new_message_id()
        await stage(peer, pid, job, cube)
        since, telemetry_since = peer.mark(), len(peer.telemetry)
        await peer.accepted(start_of(peer, pid, job, cube))
        await peer.telemetry_where(
            pid,
            lambda t: t.progress is not None and t.progress.layer >= 3,
            since=telemetry_since,
        )
        handle = printer.current_print()
        assert handle is not None
        assert handle.progress().elapsed > 3 * 3.0  # refreshed in time all along
        assert not printer.watchdog_tripped
        last_refresh = printer.last_refresh
        assert last_refresh is not None
        time.sleep(12.0 / scale)  # noqa: ASYNC251 - a blocked event loop is the fault under test

        ended = await peer.event(pid, JobEndedEvent, lambda e: e.job_id == job, since=since)
        assert ended.body.outcome is JobOutcome.FAILED
        assert "watchdog" in ended.body.detail
        assert printer.watchdog_tripped
        tripped_at = printer.board.watchdog_tripped_at
        assert tripped_at is not None
        assert tripped_at - last_refresh == pytest.approx(3.0, abs=1e-6)
        assert (printer.board.hotend.target, printer.board.bed.target) == (0.0, 0.0)


async def test_a_frozen_agent_process_lets_the_board_watchdog_cut_the_heat(
    peer: CloudPeer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The agent's whole process is stopped with SIGSTOP while heating, and continued later.

    Board and agent share the process, so the board is frozen too; but its clock is the wall
    clock and its physics lazy, so on its first read after SIGCONT it computes exactly what a
    board that ran on would have done. The child reports every refresh on stdout; the last one
    seen before the trip may be one reading period older than the true last refresh, if the stop
    fell between the refresh and its report.
    """
    scale = 10.0
    pid = new_printer_id("x1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        mosquitto.url,
        pid,
        str(tmp_path),
        str(scale),
        "60",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    stdout = process.stdout

    async def line() -> dict[str, Any]:
        raw = await asyncio.wait_for(stdout.readline(), WAIT_S)
        assert raw, "the agent process ended"
        return dict(json_loads(raw))

    try:
        while "ready" not in await line():
            pass
        reports = [await line() for _ in range(5)]
        assert all(r["tripped_at"] is None and r["target"] == 60.0 for r in reports)
        telemetry_since = len(peer.telemetry)
        await peer.telemetry_where(pid, lambda t: t.hotend.target_dc == 600, since=telemetry_since)

        os.kill(process.pid, signal.SIGSTOP)
        await asyncio.sleep(6.0 / scale)  # the freeze itself: twice the watchdog's 3 s
        telemetry_since = len(peer.telemetry)
        os.kill(process.pid, signal.SIGCONT)

        last_refresh = reports[-1]["refreshed"]
        while (report := await line())["tripped_at"] is None:
            last_refresh = report["refreshed"]
        gap = report["tripped_at"] - last_refresh
        assert 3.0 - 1e-6 <= gap <= 3.0 + READING_PERIOD + LOOP_LATENCY_S * scale, gap
        assert report["target"] == 0.0
        assert report["refreshed"] > report["tripped_at"]  # the agent lives on, and refreshes
        # And says so over MQTT: heater off.
        await peer.telemetry_where(pid, lambda t: t.hotend.target_dc == 0, since=telemetry_since)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                await asyncio.wait_for(process.communicate(), WAIT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode == 0


def json_loads(raw: bytes) -> dict[str, Any]:
    """One JSON object."""
    document = json.loads(raw)
    assert isinstance(document, dict)
    return document


# -- 4. restarts ----------------------------------------------------------------------------------


async def test_a_restart_mid_print_never_runs_the_job_again(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """S3 and S7: the new agent reports the print failed, and refuses both kinds of replay."""
    pid = new_printer_id("x1")
    cube = files.add("cube.gcode", make_sample_gcode(200, hotend_c=45.0, bed_c=0.0).encode())
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    job = new_message_id()
    async with SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=25.0) as printer:
        async with running_agent(config, printer):
            await peer.synced(pid)
            await stage(peer, pid, job, cube)
            telemetry_since = len(peer.telemetry)
            start = start_of(peer, pid, job, cube)
            await peer.accepted(start)
            await peer.telemetry_where(
                pid,
                lambda t: t.progress is not None and t.progress.layer >= 1,
                since=telemetry_since,
            )
        assert printer.current_print() is not None  # the agent is gone; the print runs on
    # Power is off too: the print is lost.

    since, telemetry_since = peer.mark(), len(peer.telemetry)
    async with (
        SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=25.0) as printer,
        running_agent(config, printer),
    ):
        ended = await peer.event(pid, JobEndedEvent, lambda e: e.job_id == job, since=since)
        assert ended.body.outcome is JobOutcome.FAILED
        assert "restarted" in ended.body.detail
        await peer.synced(pid, since=telemetry_since)

        again = await peer.refused(start, Reason.DUPLICATE)  # the very same message, redelivered
        assert again.job_id == job
        await peer.refused(start_of(peer, pid, job, cube), Reason.ALREADY_STARTED)
        query = peer.issuer.journal_query(pid, (job,), now=cloud_now())
        await peer.send(query)
        report = await peer.event(
            pid, JournalReportEvent, lambda e: e.body.query_id == query.id, since=since
        )
        assert report.body.jobs == {job: JournalStatus.FAILED}
        assert printer.current_print() is None
        assert printer.plate.objects == 0


async def test_an_agent_restarted_under_a_running_print_stops_it(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Only the agent restarts; the printer keeps power and keeps printing. The new agent reports
    the job failed, so it must not let the print go on unsupervised and unaccounted for."""
    pid = new_printer_id("x1")
    cube = files.add("cube.gcode", make_sample_gcode(200, hotend_c=45.0, bed_c=0.0).encode())
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    job = new_message_id()
    # Slow enough that the board watchdog (3 s) does not end the print between the two agents.
    async with SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=10.0) as printer:
        async with running_agent(config, printer):
            await peer.synced(pid)
            await stage(peer, pid, job, cube)
            await peer.accepted(start_of(peer, pid, job, cube))
        handle = printer.current_print()
        assert handle is not None

        since = peer.mark()
        async with running_agent(config, printer):
            assert handle.outcome is not None
            assert handle.outcome.kind is PrintOutcomeKind.CANCELLED
            assert printer.current_print() is None
            ended = await peer.event(pid, JobEndedEvent, lambda e: e.job_id == job, since=since)
            assert ended.body.outcome is JobOutcome.FAILED
            await peer.state(pid, lambda s: s.body.status is PrinterStatus.IDLE, since=since)


async def test_making_an_agent_touches_no_file_and_run_rebuilds_the_core_from_the_journal(
    peer: CloudPeer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Agents are made inside a running event loop (a fleet of them shares one), so making one
    does no blocking I/O: ``run()`` reads the journal in a thread and builds the core from it."""
    pid = new_printer_id("p1")
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    fault = "hotend: thermal runaway, latched before the restart"
    journal = JournalFile(config.data_dir / "journal.sqlite3")
    await asyncio.to_thread(
        journal.append, [JournalRecord(kind=RecordKind.FAULT_LATCHED, detail=fault)]
    )
    async with SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=1.0) as printer:
        with blockbuster_ctx():
            agent = PrinterAgent(config, printer)
        with pytest.raises(RuntimeError, match="journal"):
            assert agent.core is None
        task = asyncio.create_task(agent.run(), name=f"agent:{pid}")
        try:
            state = await peer.state(pid)
            assert state.body.fault == fault
            assert state.body.status is PrinterStatus.ERROR
            assert agent.core.state.fault == fault
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- 5. garbage on the commands topic -------------------------------------------------------------


GARBAGE = [
    ("binary", b"\xff\xfe\x00\x01garbage", Reason.MALFORMED, "not JSON"),
    ("empty", b"", Reason.MALFORMED, "not JSON"),
    ("array", b"[1, 2, 3]", Reason.MALFORMED, "not a JSON object"),
    ("no version", b'{"type": "start"}', Reason.UNSUPPORTED_VERSION, "protocol version None"),
    ("version 2", b'{"v": 2, "type": "start"}', Reason.UNSUPPORTED_VERSION, "protocol version 2"),
    ("version true", b'{"v": true}', Reason.UNSUPPORTED_VERSION, "protocol version True"),
    ("bad id", b'{"v": 1, "type": "start", "id": "x"}', Reason.MALFORMED, ""),
    ("unknown type", b'{"v": 1, "type": "launch"}', Reason.MALFORMED, "type"),
    ("oversized", b'{"v": 1, "pad": "' + b"x" * 70_000 + b'"}', Reason.MALFORMED, "too large"),
    ("a megabyte", b"x" * 1024 * 1024, Reason.MALFORMED, "too large"),
    ("deep nesting", b'{"v": 1, "a": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", Reason.MALFORMED,
     "not JSON"),
    ("huge integer", b'{"v": 1, "n": ' + b"9" * 5_000 + b"}", Reason.MALFORMED, ""),
]  # fmt: skip


async def test_garbage_and_forgeries_are_refused_and_the_agent_carries_on(
    peer: CloudPeer, mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each bad payload gets a `rejected` event; a retained command is dropped unjudged."""
    caplog.set_level(logging.WARNING, logger="printfleet.agent")
    pid = new_printer_id("p1")
    # A command left retained on the topic, as a misbehaving publisher might: delivered to the
    # agent when it subscribes, it must be dropped, not judged (and so not consumed either).
    retained = peer.issuer.confirm_plate(pid, now=cloud_now(), by="a retained message")
    await peer.send_raw(pid, encode(retained), retain=True)
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    printer = RecordingPrinter("p1", storage_dir=tmp_path / "sd", time_scale=1.0)
    async with printer, running_agent(config, printer) as (agent, _):
        await peer.synced(pid)
        # Clears the retained message; the agent sees the empty payload as garbage, below.
        await peer.send_raw(pid, b"", retain=True)
        await peer.event(pid, RejectedEvent, lambda e: e.body.command_id is None)

        for name, payload, reason, detail in GARBAGE:
            since = peer.mark()
            await peer.send_raw(pid, payload)
            refusal = await peer.event(
                pid, RejectedEvent, lambda e: e.body.command_id is None, since=since
            )
            assert refusal.body.reason is reason, (name, refusal.body)
            assert refusal.body.command_type == "unknown", name
            assert detail in refusal.body.detail, (name, refusal.body.detail)

        unsigned = confirm_plate(peer, pid).model_copy(update={"sig": ""})
        await peer.refused(unsigned, Reason.BAD_SIGNATURE)
        forger = CommandSigner.generate()
        await peer.refused(forger.sign(confirm_plate(peer, pid)), Reason.BAD_SIGNATURE)
        await peer.refused(confirm_plate(peer, "someone-else"), Reason.WRONG_PRINTER, to=pid)
        extra = {**confirm_plate(peer, pid).model_dump(mode="json"), "also": 1}
        since = peer.mark()
        await peer.send_raw(pid, canonical_bytes(extra))
        refusal = await peer.event(pid, RejectedEvent, since=since)
        assert refusal.body.reason is Reason.MALFORMED
        assert "also" in refusal.body.detail

        # Still working: a valid command is obeyed.
        await peer.accepted(confirm_plate(peer, pid))
        assert not [
            e for e in peer.events_of(pid) if getattr(e.body, "command_id", None) == retained.id
        ]
        assert agent.stats.malformed == len(GARBAGE) + 2
        assert agent.stats.retained_dropped == 1
        assert any("retained" in r.getMessage() for r in caplog.records)


# -- 6. broker restarts ---------------------------------------------------------------------------


async def test_after_a_broker_restart_the_agent_reconnects_and_announces_itself(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The broker is killed and restarted; the agent comes back by itself, with presence, state
    and a time request, and obeys commands again."""
    pid = new_printer_id("p1")
    async with connected_peer(BrokerAddress.parse(fresh_mosquitto.url)) as peer:
        config = config_for(peer, fresh_mosquitto.url, tmp_path / "agent", pid)
        printer = RecordingPrinter("p1", storage_dir=tmp_path / "sd", time_scale=1.0)
        async with printer, running_agent(config, printer) as (agent, _):
            await peer.presence_where(pid, lambda p: p.online)
            await peer.synced(pid)
            connects = agent.stats.connects
            for _attempt in range(3):
                since, presence_since = await restart_broker(fresh_mosquitto, peer, agent)
                if since is not None:
                    break
                connects = agent.stats.connects
            else:
                pytest.fail("the peer never got back before the agent")
            presence = await peer.presence_where(pid, lambda p: p.online, since=presence_since)
            assert presence.model == "p1"
            state = await peer.state(pid, since=since)
            assert state.body.status is PrinterStatus.IDLE
            await peer.event(pid, TimeRequestEvent, since=since)
            assert agent.stats.connects == connects + 1
            await peer.accepted(confirm_plate(peer, pid))


async def restart_broker(
    broker: MosquittoBroker, peer: CloudPeer, agent: PrinterAgent
) -> tuple[int | None, int]:
    """Kill the broker and start it again; return cursors into the peer's events and presence.

    The event cursor is None if the agent was back before the peer had subscribed again: its
    announcement (not retained) may then have gone to nobody, and the caller should try again.
    """
    peer_back = asyncio.Event()
    agent_connects: list[int] = []

    def note() -> None:
        agent_connects.append(agent.stats.connects)
        peer_back.set()

    connects = agent.stats.connects
    peer.on_connect = note
    try:
        await asyncio.to_thread(broker.kill)
        cursors = peer.mark(), len(peer.presence)
        await asyncio.to_thread(broker.restart)
        async with asyncio.timeout(WAIT_S):
            await peer_back.wait()
    finally:
        peer.on_connect = None
    return (cursors[0] if agent_connects[0] == connects else None), cursors[1]
