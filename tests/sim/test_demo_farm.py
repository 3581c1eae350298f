"""The demo farm: varied loadouts so routing by material shows, ``--material`` over them, and a
second account that operates a shared printer — on real parts (the demo's cloud and agents
through a Mosquitto of the test's own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from rich.console import Console
from tests.sim.test_attendant import until

from printfleet.cloud.store import NotFound, Role
from printfleet.cloud.usecases.materials import MaterialActions
from printfleet.demo import (
    OPERATOR_EMAIL,
    DemoError,
    DemoOptions,
    RunningDemo,
    describe,
    running_demo,
)
from printfleet.protocol.messages import SIMULATED_FAULT_KINDS, SimulateAction, SimulateBody
from printfleet.sim.faults import FaultKind, fault_now
from printfleet.testing import MosquittoBroker

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def farm(
    broker: MosquittoBroker, data_dir: Path, materials: tuple[str, ...] = (), max_heatups: int = 0
) -> AsyncIterator[RunningDemo]:
    """The default four demo printers on ``broker``, online, no sample print."""
    options = DemoOptions(
        data_dir=data_dir,
        port=0,
        broker_url=broker.url,
        time_scale=50.0,
        telemetry_period_s=0.5,
        probe_interval_s=0.5,
        submit_sample=False,
        materials=materials,
        max_heatups=max_heatups,
    )
    async with running_demo(options) as demo:
        await demo.wait_until_online()
        yield demo


def reported(demo: RunningDemo, printer_id: str) -> tuple[list[tuple[int, str]], int | None]:
    """What the printer's agent reports: (slot, material) pairs and the nozzle."""
    state = demo.printers[printer_id].agent.core.state
    return [(held.slot, held.material) for held in state.materials], state.nozzle_um


async def test_the_demo_farm_has_varied_loadouts_and_a_second_account_operating_p1_02(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo") as demo:
        assert reported(demo, "x1-01") == ([(1, "PLA"), (2, "PETG")], 400)
        assert reported(demo, "p1-02") == ([(1, "PLA")], 400)
        assert reported(demo, "x1-03") == ([(1, "PLA")], 600)
        assert reported(demo, "p1-04") == ([(1, "PETG")], 400)
        assert all(p.agent.core.state.simulated for p in demo.printers.values())

        console = Console(width=200, record=True)
        console.print(describe(demo))
        shown = console.export_text()
        assert "x1-01 (sensor; PLA, PETG; 0.4 mm)" in shown
        assert "x1-03 (sensor; PLA; 0.6 mm)" in shown
        assert f"{OPERATOR_EMAIL}, password {demo.operator_password} (operates p1-02)" in shown

        accounts = demo.context.service.accounts
        login = await accounts.login(OPERATOR_EMAIL, demo.operator_password, token_name="t")
        assert login is not None
        bo, _ = login
        printers = demo.context.store.printers
        assert await printers.role_of("p1-02", bo.user_id) is Role.OPERATOR
        assert await printers.role_of("x1-01", bo.user_id) is None
        # The README's `printfleet share p1-02 bo@printfleet.example --remove`, as the API does it.
        await demo.context.service.printers.unshare_printer(demo.principal, "p1-02", OPERATOR_EMAIL)
        assert await printers.role_of("p1-02", bo.user_id) is None
        with pytest.raises(NotFound):
            await demo.context.service.printers.unshare_printer(
                demo.principal, "p1-02", OPERATOR_EMAIL
            )
        password = demo.operator_password

    # A second run finds the same second account, and shares p1-02 with it again.
    async with farm(
        fresh_mosquitto, tmp_path / "demo", ("x1-01:3=tpu:#00FF00", "p1-02:1=")
    ) as demo:
        assert demo.operator_password == password
        assert await demo.context.store.printers.role_of("p1-02", bo.user_id) is Role.OPERATOR
        assert reported(demo, "x1-01") == ([(1, "PLA"), (2, "PETG"), (3, "TPU")], 400)
        assert demo.printers["x1-01"].hardware.loadout().materials[2].colour == "#00ff00"
        assert reported(demo, "p1-02") == ([], 400)


@pytest.mark.parametrize(
    ("material", "says"),
    [
        ("x9-01:1=PLA", "material for unknown printer(s) x9-01"),
        ("p1-02:2=PLA", "p1-02: no material slot 2: this printer has a single spool, slot 1"),
        ("x1-01:5=PLA", "x1-01: no material slot 5: this printer has slots 1 to 4"),
        ("x1-01:1=pla!", "e.g. x1-01:2=PETG"),
    ],
)
async def test_a_bad_material_stops_the_demo_before_it_starts(
    tmp_path: Path, material: str, says: str
) -> None:
    options = DemoOptions(data_dir=tmp_path / "demo", port=0, materials=(material,))
    with pytest.raises(DemoError) as refused:
        async with running_demo(options):
            pytest.fail("the demo started")
    assert says in str(refused.value)
    assert not (tmp_path / "demo").exists()


async def test_a_simulated_power_loss_through_the_cloud_cuts_and_restores_a_demo_printer(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with farm(fresh_mosquitto, tmp_path / "demo") as demo:
        printer = demo.printers["p1-02"]
        first_agent = printer.agent
        actions = MaterialActions(demo.context.service.printers)
        await actions.simulate(
            demo.principal, "p1-02", action=SimulateAction.FAULT, fault="power-loss:30s"
        )
        await until(lambda: not printer.power.powered)
        await until(lambda: printer.power.powered and printer.agent is not first_agent)
        await asyncio.wait_for(printer.agent.ready.wait(), 30)
        # The other printers never noticed.
        assert demo.printers["x1-01"].power.powered


async def test_the_wire_names_every_fault_the_simulator_knows() -> None:
    # A broker outage is the demo's broker's fault, not a printer's: no printer is told of it.
    printer_faults = {kind.value for kind in FaultKind if kind is not FaultKind.OUTAGE}
    assert set(SIMULATED_FAULT_KINDS) == printer_faults
    with pytest.raises(ValueError, match="fault"):
        SimulateBody(action=SimulateAction.FAULT, fault="outage")
    for text in ("sensor-open", "sensor-open:bed", "heater-stuck-on:hotend", "power-loss:2.5m"):
        SimulateBody(action=SimulateAction.FAULT, fault=text)
        fault_now("x1-01", text)
    for text in ("sensor-open:nozzle", "power-loss:soon", "meltdown"):
        with pytest.raises(ValueError, match="fault"):
            SimulateBody(action=SimulateAction.FAULT, fault=text)
        with pytest.raises(ValueError, match=r"e\.g\. heater-disconnected"):
            fault_now("x1-01", text)


async def test_the_demo_caps_heat_ups_as_a_cloud_does(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """``printfleet demo --max-heatups 2`` reaches the demo cloud's dispatcher as the setting
    PRINTFLEET_MAX_HEATUPS reaches a cloud's; by default there is no cap."""
    async with farm(fresh_mosquitto, tmp_path / "capped", max_heatups=2) as demo:
        assert demo.context.core is not None
        assert demo.context.core.dispatcher.policy.max_heating == 2
    async with farm(fresh_mosquitto, tmp_path / "uncapped") as demo:
        assert demo.context.core is not None
        assert demo.context.core.dispatcher.policy.max_heating is None
