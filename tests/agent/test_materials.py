"""What is loaded at the printer: reported in every state, changed at the screen or by a signed
command, against a real Mosquitto and the simulated printer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.agent.peer import CloudPeer, cloud_now, connected_peer, running_agent
from tests.agent.test_runtime import config_for, new_printer_id

from printfleet.agent.hardware import Loadout, MaterialSlot
from printfleet.broker_address import BrokerAddress
from printfleet.protocol.messages import (
    AlertEvent,
    PrinterStateEvent,
    SetMaterialCommand,
    SimulateAction,
)
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner
from printfleet.sim import SimulatedPrinter
from printfleet.sim.thermal import HeaterFault
from printfleet.testing import MosquittoBroker

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def peer(mosquitto: MosquittoBroker) -> AsyncIterator[CloudPeer]:
    """The cloud's side, on the suite's shared broker."""
    async with connected_peer(BrokerAddress.parse(mosquitto.url)) as cloud:
        yield cloud


def slots(event: PrinterStateEvent) -> list[tuple[int, str, str | None]]:
    """A state's materials as plain tuples."""
    return [(held.slot, held.material, held.colour) for held in event.body.materials]


async def test_the_state_carries_the_loadout_and_a_screen_change_is_re_reported(
    peer: CloudPeer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """An x1 with PLA and PETG and a 0.6 mm nozzle says so on connect; a person loading TPU in
    slot 3 at the screen makes it say so again, at once."""
    pid = new_printer_id("x1")
    loadout = Loadout(
        4,
        (
            MaterialSlot(slot=1, material="PLA", colour="#ffffff"),
            MaterialSlot(slot=2, material="PETG"),
        ),
        600,
    )
    printer = SimulatedPrinter(
        "x1", storage_dir=tmp_path / "sd", time_scale=1.0, watchdog_timeout=None, loadout=loadout
    )
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    async with printer, running_agent(config, printer):
        first = await peer.state(pid, lambda s: True)
        assert slots(first) == [(1, "PLA", "#ffffff"), (2, "PETG", None)]
        assert first.body.nozzle_um == 600
        assert first.body.simulated is True

        since = peer.mark()
        printer.screen.load_material(3, "TPU", "#00ff00")
        changed = await peer.state(pid, lambda s: len(s.body.materials) == 3, since=since)
        assert slots(changed)[2] == (3, "TPU", "#00ff00")

        since = peer.mark()
        printer.screen.unload_material(1)
        printer.screen.fit_nozzle(400)
        later = await peer.state(pid, lambda s: s.body.nozzle_um == 400, since=since)
        assert slots(later) == [(2, "PETG", None), (3, "TPU", "#00ff00")]


async def test_a_signed_set_material_or_set_nozzle_changes_the_report_and_forgeries_do_not(
    peer: CloudPeer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A p1 with its default PLA: the cloud says PETG is loaded and a 0.6 mm nozzle is fitted;
    the printer records both and re-reports. Unsigned, forged and out-of-range ones change
    nothing."""
    pid = new_printer_id("p1")
    printer = SimulatedPrinter(
        "p1", storage_dir=tmp_path / "sd", time_scale=1.0, watchdog_timeout=None
    )
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        first = await peer.state(pid, lambda s: True)
        assert slots(first) == [(1, "PLA", None)]
        assert first.body.nozzle_um == 400

        def petg(**fields: object) -> SetMaterialCommand:
            return peer.issuer.set_material(
                pid, now=cloud_now(), slot=1, material="PETG", colour="#ff0000"
            ).model_copy(update=fields)

        await peer.refused(petg(sig=""), Reason.BAD_SIGNATURE)
        forger = CommandSigner.generate()
        await peer.refused(forger.sign(petg()), Reason.BAD_SIGNATURE)
        wide = peer.issuer.set_material(pid, now=cloud_now(), slot=2, material="PETG", colour=None)
        refusal = await peer.refused(wide, Reason.MALFORMED)
        assert "single spool" in refusal.body.detail
        assert printer.loadout().materials == (MaterialSlot(slot=1, material="PLA"),)

        since = peer.mark()
        await peer.accepted(petg())
        state = await peer.state(pid, lambda s: slots(s) == [(1, "PETG", "#ff0000")], since=since)
        assert state.body.nozzle_um == 400
        assert printer.loadout().materials[0].material == "PETG"

        since = peer.mark()
        await peer.accepted(peer.issuer.set_nozzle(pid, now=cloud_now(), nozzle_um=600))
        await peer.state(pid, lambda s: s.body.nozzle_um == 600, since=since)
        assert printer.loadout().nozzle_um == 600

        since = peer.mark()
        await peer.accepted(
            peer.issuer.set_material(pid, now=cloud_now(), slot=1, material=None, colour=None)
        )
        await peer.state(pid, lambda s: s.body.materials == (), since=since)
        assert printer.loadout().materials == ()


class RealPrinter(SimulatedPrinter):
    """A printer that says it is not simulated, as a bridge to real hardware would."""

    @property
    def simulated(self) -> bool:
        """Never: a real printer."""
        return False


async def test_simulate_acts_out_faults_on_a_simulated_printer_and_a_real_one_refuses(
    peer: CloudPeer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A simulated x1 takes a bed sensor fault and its repair; a printer that is not simulated
    refuses every ``simulate`` with NOT_SIMULATED and nothing happens to it."""
    pid = new_printer_id("x1")
    printer = SimulatedPrinter(
        "x1", storage_dir=tmp_path / "sd", time_scale=1.0, watchdog_timeout=None
    )
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        sensor_open = peer.issuer.simulate(
            pid, now=cloud_now(), action=SimulateAction.FAULT, fault="sensor-open:bed"
        )
        await peer.accepted(sensor_open)
        assert printer.board.bed.faults == {HeaterFault.SENSOR_OPEN}
        assert not printer.board.hotend.faults
        repair = peer.issuer.simulate(pid, now=cloud_now(), action=SimulateAction.CLEAR_FAULT)
        await peer.accepted(repair)
        assert not printer.board.bed.faults
        printer.plate.add_print()
        await peer.accepted(
            peer.issuer.simulate(pid, now=cloud_now(), action=SimulateAction.REMOVE_PRINT)
        )
        assert printer.plate.objects == 0
        # A power loss needs the switch `printfleet sim` and the demo put printers behind.
        since = peer.mark()
        await peer.accepted(
            peer.issuer.simulate(
                pid, now=cloud_now(), action=SimulateAction.FAULT, fault="power-loss:30s"
            )
        )
        alert = await peer.event(
            pid, AlertEvent, lambda e: e.body.kind == "simulation_failed", since=since
        )
        assert "no power switch" in alert.body.message

    real_id = new_printer_id("x1")
    real = RealPrinter("x1", storage_dir=tmp_path / "real", time_scale=1.0, watchdog_timeout=None)
    config = config_for(peer, mosquitto.url, tmp_path / "real-agent", real_id)
    async with real, running_agent(config, real):
        await peer.synced(real_id)
        state = await peer.state(real_id)
        assert state.body.simulated is False
        for action, fault in (
            (SimulateAction.FAULT, "heater-stuck-on"),
            (SimulateAction.REMOVE_PRINT, None),
            (SimulateAction.CLEAR_FAULT, None),
        ):
            command = peer.issuer.simulate(real_id, now=cloud_now(), action=action, fault=fault)
            refusal = await peer.refused(command, Reason.NOT_SIMULATED)
            assert "not a simulated printer" in refusal.body.detail
        assert not real.board.hotend.faults
