"""Scheduled faults (``--fault``): parsed with clear errors, and injected into a running demo.

End to end on real parts, as a person would run them: the demo's cloud and agents through a real
Mosquitto, a fault written as ``printfleet demo --fault`` takes it, and what the system does.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from tests.sim.test_attendant import farm

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import HardwareError, HeaterId
from printfleet.agent.runtime import PrinterAgent
from printfleet.demo import DemoError, DemoOptions, RunningDemo, running_demo
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import decode_presence
from printfleet.sim import SimulatedPrinter, make_sample_gcode
from printfleet.sim.faults import FaultKind, FaultSpec, PoweredPrinter, parse_fault
from printfleet.sim.thermal import HeaterFault
from printfleet.testing import MosquittoBroker

PRINTFLEET = Path(sys.executable).parent / "printfleet"
TIME_SCALE = 50.0


def test_faults_are_read_with_their_heater_duration_and_time() -> None:
    assert parse_fault("x1-01:heater-disconnected@print+30s") == FaultSpec(
        "x1-01", FaultKind.HEATER_DISCONNECTED, 30.0, after_print_start=True
    )
    assert parse_fault("p1-02:sensor-open:bed@2m") == FaultSpec(
        "p1-02", FaultKind.SENSOR_OPEN, 120.0, heater=HeaterId.BED
    )
    assert parse_fault("sim-x1-0000:power-loss:1.5m@90s") == FaultSpec(
        "sim-x1-0000", FaultKind.POWER_LOSS, 90.0, off_for_s=90.0
    )
    assert parse_fault("x1-01:power-loss@1h").off_for_s is None


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("x1-01", "write PRINTER:KIND[:ARG]@WHEN, e.g. x1-01:heater-disconnected@print+30s"),
        ("x1-01:heater-melted@90s", "unknown fault kind 'heater-melted'"),
        ("x1-01:heater-disconnected@90", "bad time '90'"),
        ("x1-01:heater-disconnected@later+5s", "bad time 'later+5s'"),
        ("x1-01:sensor-short:nozzle@90s", "unknown heater 'nozzle'"),
        ("x1-01:power-loss:soon@90s", "bad time 'soon'"),
    ],
)
def test_a_bad_fault_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_fault(spec)


def unboxed(stderr: str) -> str:
    """Typer's error panel as one line of text: no frame, no wrapping."""
    return " ".join(stderr.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def test_the_sim_command_rejects_a_bad_fault_with_an_example() -> None:
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), "sim", "--fault", "x1-01:heater-disconnected@soon"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    said = unboxed(result.stderr)
    assert "--fault" in said
    assert "bad time 'soon' in fault 'x1-01:heater-disconnected@soon'" in said
    assert "write a number and a unit (s, m, h), e.g. 90s" in said


def test_the_sim_command_rejects_a_fault_on_a_printer_it_does_not_run() -> None:
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), "sim", "--printers", "1", "--fault", "x1-01:power-loss@5s"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "fault for unknown printer(s) x1-01; printers: sim-x1-0000" in unboxed(result.stderr)


@pytest.mark.asyncio
async def test_the_demo_rejects_a_fault_on_a_printer_it_does_not_run(tmp_path: Path) -> None:
    options = DemoOptions(data_dir=tmp_path, port=0, faults=("x1-09:sensor-open@5s",))
    with pytest.raises(DemoError, match="unknown printer"):
        async with running_demo(options):
            pass


async def submit(demo: RunningDemo, printer_id: str, layers: int) -> str:
    sample = make_sample_gcode(layers).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield sample

    file = await demo.context.files.save(demo.principal.user.id, "cube.gcode", chunks())
    created = await demo.context.service.jobs.submit_job(
        demo.principal, file_id=file.id, printer_id=printer_id, start_within_s=600
    )
    return created.job.view.id


async def until(condition: Callable[[], object], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the simulation notifies nobody of this
            await asyncio.sleep(0.05)


async def settled(demo: RunningDemo, job_id: str) -> JobState:
    async with asyncio.timeout(60):
        # The store notifies nobody of a job's state.
        while not (job := await demo.context.store.jobs.load(job_id)).view.state.terminal:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return job.view.state


@pytest.mark.asyncio
async def test_a_heater_disconnected_mid_print_fails_the_job_alerts_and_latches(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 150 simulated seconds into the print the hotend holds 200 °C: without its heater it falls.
    fault = "x1-01:heater-disconnected@print+150s"
    async with farm(fresh_mosquitto, tmp_path / "demo", None, (fault,)) as demo:
        printer = demo.printers["x1-01"]
        job_id = await submit(demo, "x1-01", layers=20)
        assert await settled(demo, job_id) is JobState.FAILED
        job = await demo.context.store.jobs.load(job_id)
        assert job.view.reason.startswith(
            "stopped by thermal protection: Hotend could not hold 200 °C"
        ), job.view.reason
        assert HeaterFault.HEATER_DISCONNECTED in printer.hardware.board.hotend.faults
        # Heaters off, the print stopped, the fault latched.
        board = printer.hardware.board
        assert (board.hotend.target, board.bed.target) == (0.0, 0.0)
        assert printer.hardware.current_print() is None
        assert printer.agent.core.state.fault is not None
        alerts = await demo.context.store.alerts.latest(printer_ids=["x1-01"])
        assert "thermal_fault" in [alert.kind for alert in alerts]
        # A person clears the latch through the cloud, as `POST .../clear-fault` does.
        await demo.context.service.printers.clear_fault(demo.principal, "x1-01")
        await until(lambda: printer.agent.core.state.fault is None)
    fired = [r.getMessage() for r in caplog.records if r.name == "printfleet.sim.faults"]
    assert fired == ["fault injected: heater-disconnected on x1-01's hotend"]


@pytest.mark.asyncio
async def test_a_power_loss_takes_the_printer_offline_and_its_job_is_never_restarted(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fault = "x1-01:power-loss:30s@print+100s"
    async with farm(fresh_mosquitto, tmp_path / "demo", None, (fault,)) as demo:
        printer = demo.printers["x1-01"]
        first_agent = printer.agent
        job_id = await submit(demo, "x1-01", layers=20)
        core = demo.context.core
        assert core is not None
        await until(lambda: not printer.power.powered)
        # Offline in the cloud's view, with an alert for it.
        await until(lambda: (view := core.fleet.view("x1-01")) is not None and not view.online)
        # The switch flips first; the print stops once the agent it cancels has said goodbye
        # (the offline presence above), which a loaded machine may take a moment longer for.
        await until(lambda: printer.hardware.current_print() is None)
        # The power returns, a fresh agent reads the journal: the job fails, and stays failed.
        assert await settled(demo, job_id) is JobState.FAILED
        assert printer.agent is not first_agent
        job = await demo.context.store.jobs.load(job_id)
        assert job.view.reason == "the printer restarted during the print"
        await printer.agent.ready.wait()
        assert printer.hardware.current_print() is None
        alerts = await demo.context.store.alerts.latest(printer_ids=["x1-01"])
        assert "printer_offline" in [alert.kind for alert in alerts]
    fired = [r.getMessage() for r in caplog.records if r.name == "printfleet.sim.faults"]
    assert fired == [
        (
            "fault injected: power-loss on x1-01: agent and print stop; power returns after 30 "
            "simulated seconds"
        ),
        "power restored: x1-01 starts again from its journal",
    ]


def test_the_sim_command_cuts_a_printers_power_and_restores_it(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    presences: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def on_message(client: Client, userdata: object, message: MQTTMessage) -> None:
        presence = decode_presence(message.payload)
        with lock:
            presences.append((presence.printer_id, presence.online))

    listener = Client(CallbackAPIVersion.VERSION2, client_id="fault-listener")
    listener.on_message = on_message
    listener.connect("127.0.0.1", fresh_mosquitto.port)
    listener.subscribe("printfleet/v1/printers/+/presence", qos=1)
    listener.loop_start()
    try:
        # At 20x, the power goes 2 real seconds in and returns 1 real second later.
        result = subprocess.run(  # noqa: S603 - our own console script
            [
                str(PRINTFLEET), "sim", "--printers", "2", "--broker", fresh_mosquitto.url,
                "--duration", "6", "--time-scale", "20", "--data-dir", str(tmp_path),
                "--fault", "sim-p1-0001:power-loss:20s@40s",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        listener.loop_stop()
        listener.disconnect()
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "fault scheduled: power-loss on sim-p1-0001: agent and print stop; power returns after "
        "20 simulated seconds, 40 simulated seconds after the start"
    ) in " ".join(result.stdout.split())
    said = " ".join(result.stderr.split())
    assert (
        "fault injected: power-loss on sim-p1-0001: agent and print stop; power returns after "
        "20 simulated seconds" in said
    )
    assert "power restored: sim-p1-0001 starts again from its journal" in said
    with lock:
        seen = list(presences)
    # Online, off with the power, online again with a fresh agent, off at the end.
    assert [online for printer, online in seen if printer == "sim-p1-0001"] == [
        True, False, True, False
    ]  # fmt: skip
    assert [online for printer, online in seen if printer == "sim-x1-0000"] == [True, False]


class IdleAgent(PrinterAgent):
    """An agent that only waits: enough to see the power switch start and stop it."""

    runs = 0

    async def run(self) -> None:
        IdleAgent.runs += 1
        await asyncio.Event().wait()


@pytest.mark.asyncio
async def test_overlapping_power_losses_switch_the_printer_once_each_way(tmp_path: Path) -> None:
    IdleAgent.runs = 0
    hardware = SimulatedPrinter("x1", storage_dir=tmp_path / "sd", watchdog_timeout=None)
    config = AgentConfig(printer_id="x1-01", data_dir=tmp_path)
    unit = PoweredPrinter(hardware, config, IdleAgent)
    async with hardware:
        running = asyncio.create_task(unit.run())
        await until(lambda: IdleAgent.runs == 1)
        first = unit.agent
        await unit.power_off()
        await unit.power_off()
        assert not unit.powered
        with pytest.raises(HardwareError, match="printer is off"):
            await hardware.start_print("cube.gcode")
        await unit.power_on()
        await unit.power_on()
        await until(lambda: IdleAgent.runs == 2)
        assert unit.powered
        assert unit.agent is not first
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
