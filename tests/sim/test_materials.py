"""What a simulated printer has loaded: per model, set at power-on, changed at its screen, and
how ``--material`` is read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from printfleet.agent.hardware import Loadout, LoadoutError, MaterialSlot
from printfleet.sim import SimulatedPrinter
from printfleet.sim.fleet import FleetSpec
from printfleet.sim.materials import MaterialSpec, parse_material


def test_an_x1_has_four_slots_and_a_p1_one_each_with_pla_and_a_0_4_mm_nozzle(
    tmp_path: Path,
) -> None:
    x1 = SimulatedPrinter("x1", storage_dir=tmp_path / "x1")
    p1 = SimulatedPrinter("p1", storage_dir=tmp_path / "p1")
    pla = (MaterialSlot(slot=1, material="PLA"),)
    assert x1.loadout() == Loadout(4, pla, 400)
    assert p1.loadout() == Loadout(1, pla, 400)
    assert x1.simulated
    assert p1.simulated
    with pytest.raises(ValueError, match="model 'p1' has 1 material slots, not 4"):
        SimulatedPrinter("p1", storage_dir=tmp_path / "bad", loadout=Loadout(4))


@pytest.mark.asyncio
async def test_a_person_at_the_screen_changes_slots_and_nozzle_and_wakes_the_waiter(
    tmp_path: Path,
) -> None:
    printer = SimulatedPrinter("x1", storage_dir=tmp_path)
    waiter = asyncio.create_task(printer.next_loadout_change())
    await asyncio.sleep(0)
    assert not waiter.done()
    printer.screen.load_material(3, "petg", "#00ff00")
    changed = await asyncio.wait_for(waiter, 5)
    assert [(held.slot, held.material, held.colour) for held in changed.materials] == [
        (1, "PLA", None),
        (3, "PETG", "#00ff00"),
    ]

    printer.screen.unload_material(1)
    printer.screen.fit_nozzle(600)
    assert printer.loadout() == Loadout(
        4, (MaterialSlot(slot=3, material="PETG", colour="#00ff00"),), 600
    )
    with pytest.raises(LoadoutError, match="this printer has slots 1 to 4"):
        printer.screen.load_material(5, "PLA")
    with pytest.raises(ValueError, match="material"):
        printer.screen.load_material(2, "pla!")
    with pytest.raises(ValueError, match=r"e\.g\. 400"):
        printer.screen.fit_nozzle(40)
    # The same loadout again is no change: nobody is woken for it.
    again = asyncio.create_task(printer.next_loadout_change())
    printer.screen.fit_nozzle(600)
    await asyncio.sleep(0)
    assert not again.done()
    await printer.set_material(2, "TPU", None)
    assert (await asyncio.wait_for(again, 5)).materials[0].material == "TPU"


def test_material_specs_are_read_with_a_clear_error() -> None:
    assert parse_material(" x1-01:2=petg:#FF0000 ") == MaterialSpec("x1-01", 2, "PETG", "#ff0000")
    assert parse_material("p1-02:1=") == MaterialSpec("p1-02", 1, None, None)
    for bad in ("x1-01", "x1-01:two=PLA", "x1-01:1=PLA!", "x1-01:1=PLA:red", "x1-01:1=:#ff0000"):
        with pytest.raises(ValueError, match=r"e\.g\. x1-01:2=PETG"):
            parse_material(bad)


def test_a_fleet_applies_materials_over_each_models_default(tmp_path: Path) -> None:
    spec = FleetSpec(
        printers=2,
        models=["x1", "p1"],
        broker="mqtt://127.0.0.1:1883",
        data_dir=tmp_path,
        materials=[parse_material("sim-x1-0000:4=PA-CF"), parse_material("sim-p1-0001:1=PETG")],
    )
    loadouts = spec.loadouts()
    assert [held.material for held in loadouts["sim-x1-0000"].materials] == ["PLA", "PA-CF"]
    assert [held.material for held in loadouts["sim-p1-0001"].materials] == ["PETG"]
    wrong = FleetSpec(
        printers=2,
        models=["x1", "p1"],
        broker="mqtt://127.0.0.1:1883",
        data_dir=tmp_path,
        materials=[parse_material("sim-p1-0001:2=PETG")],
    )
    with pytest.raises(ValueError, match="sim-p1-0001: no material slot 2"):
        wrong.loadouts()
