"""``printfleet load``, ``unload`` and ``nozzle`` against a real cloud (its link to the shared
Mosquitto verified): what they send, what they print, and what they say about bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.test_client_cli import Cli
from tests.client.live_cloud import LiveCloud, close_people, live_cloud

from printfleet.cli.failures import CliError
from printfleet.cli.materials import nozzle_um_of

__all__ = ["close_people", "live_cloud"]  # fixtures, imported for pytest


def test_load_unload_and_nozzle_tell_the_printer_and_are_audited(
    live_cloud: LiveCloud, tmp_path: Path
) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer("x1")
    cli = Cli(tmp_path / "config", PRINTFLEET_URL=live_cloud.url, PRINTFLEET_TOKEN=ada.token)

    said = cli("load", printer_id, "2", "petg", "--colour", "#FF0000").stdout
    assert f"told {printer_id}: slot 2 holds PETG (#FF0000)" in said
    assert f"told {printer_id}: slot 1 is empty" in cli("unload", printer_id, "1").stdout
    sent = cli.json("nozzle", printer_id, "0.6")
    assert (sent["printer_id"], sent["action"]) == (printer_id, "set_nozzle")

    audit = [
        (e.action, e.detail) for e in ada.client.audit(printer_id) if e.action.endswith(".set")
    ]
    assert audit == [
        ("material.set", {"slot": 2, "material": "PETG", "colour": "#ff0000", "outcome": "sent"}),
        ("material.set", {"slot": 1, "material": None, "colour": None, "outcome": "sent"}),
        ("nozzle.set", {"nozzle_um": 600, "outcome": "sent"}),
    ]

    refused = cli("load", printer_id, "1", "pla!", code=1).stderr
    assert "error: body.material: 'pla!' is not a material name" in refused
    assert 'e.g. "PLA", "PETG" or "PA-CF"' in refused
    assert "e.g. 0.4 or 0.6" in cli("nozzle", printer_id, "4", code=2).stderr
    assert cli("load", printer_id, "17", "PLA", code=2).exit_code == 2
    bob = Cli(
        tmp_path / "bob",
        PRINTFLEET_URL=live_cloud.url,
        PRINTFLEET_TOKEN=live_cloud.person("bob").token,
    )
    assert f"no printer {printer_id}" in bob("unload", printer_id, "1", code=1).stderr


def test_the_nozzle_is_read_in_millimetres() -> None:
    assert nozzle_um_of("0.4") == 400
    assert nozzle_um_of(" 0.6mm ") == 600
    assert nozzle_um_of("1") == 1000
    for bad in ("", "0.05", "4", "wide", "0,4"):
        with pytest.raises(CliError, match=r"e\.g\. 0\.4 or 0\.6"):
            nozzle_um_of(bad)


def test_sim_and_demo_refuse_a_material_they_cannot_load(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    unreadable = cli("sim", "--printers", "2", "--material", "sim-x1-0000:1=pla!", code=2).stderr
    assert "e.g. x1-01:2=PETG" in unreadable
    wide = cli("sim", "--printers", "2", "--material", "sim-p1-0001:2=PETG", code=2).stderr
    assert "sim-p1-0001: no material slot 2" in wide
    nobody = cli("sim", "--printers", "2", "--material", "x1-01:1=PLA", code=2).stderr
    assert "material for unknown printer(s) x1-01" in nobody
    demo = cli("demo", "--data-dir", str(tmp_path / "demo"), "--material", "x1-01", code=2)
    assert "--material" in demo.stderr
    assert not (tmp_path / "demo").exists()
