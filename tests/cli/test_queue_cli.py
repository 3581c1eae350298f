"""The queue's commands against a real cloud: ``print``/``submit`` to a pool with copies, a
priority and requirements, ``jobs`` with its wait and priority columns, ``jobs priority``,
``pools`` and the loaded column of ``printers``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.test_client_cli import Cli
from tests.client.live_cloud import GCODE, LiveCloud, close_people, live_cloud

__all__ = ["close_people", "live_cloud"]  # fixtures, imported for pytest


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config")


@pytest.fixture
def petg(tmp_path: Path) -> Path:
    path = tmp_path / "bracket.gcode"
    path.write_bytes(GCODE + b"; filament_type = PETG\n; nozzle_diameter = 0.4\n")
    return path


def test_pools_are_made_filled_emptied_and_deleted(live_cloud: LiveCloud, cli: Cli) -> None:
    ada = live_cloud.person("ada")
    first, second = ada.printer(), ada.printer()
    cli("login", live_cloud.url, "--token", ada.token)
    assert "no pools" in cli("pools").stdout

    made = cli.json("pools", "create", "petg farm", first)
    assert made["printer_ids"] == [first]
    assert (
        f"updated pool petg farm ({', '.join(sorted([first, second]))})"
        in cli("pools", "add", "petg farm", second).stdout
    )
    assert cli.json("pools", "remove", "petg farm", first)["printer_ids"] == [second]
    table = cli("pools").stdout
    assert "petg farm" in table
    assert second in table
    assert [p["pools"] for p in cli.json("printers") if p["id"] == second] == [[made["id"]]]
    assert "no pool 'nope'" in cli("pools", "add", "nope", first, code=1).stderr

    # Someone else's printer never goes into a pool of yours.
    bob = live_cloud.person("bob")
    theirs = bob.printer()
    refused = cli("pools", "create", "grab", theirs, code=1)
    assert f"you may not operate printer '{theirs}'" in refused.stderr

    assert "deleted pool petg farm" in cli("pools", "delete", made["id"]).stdout
    assert cli.json("pools") == []


def test_submit_to_a_pool_with_copies_priority_and_requirements(
    live_cloud: LiveCloud, cli: Cli, petg: Path
) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()
    cli("login", live_cloud.url, "--token", ada.token)
    cli("pools", "create", "farm", printer_id)

    said = cli("submit", str(petg), "--pool", "farm", "--copies", "3", "--priority", "10").stdout
    assert "3 copies, the first" in said
    assert "for pool farm with PETG and a 0.4 mm nozzle" in said
    jobs = cli.json("jobs")
    assert sorted(j["name"] for j in jobs) == [f"bracket.gcode ({i}/3)" for i in (1, 2, 3)]
    assert {j["priority"] for j in jobs} == {10}
    assert {(j["requirements"]["material"], j["requirements"]["nozzle_um"]) for j in jobs} == {
        ("PETG", 400)
    }
    batch = jobs[0]["batch_id"]
    assert len(cli.json("jobs", "--batch", batch)) == 3

    anything = cli.json(
        "print", str(petg), "--printer", printer_id, "--material", "any", "--nozzle", "0.6"
    )
    assert anything["requirements"] == {"material": None, "nozzle_um": 600}
    table = cli("jobs").stdout
    for heading in ("wait", "prio"):
        assert heading in table

    assert (
        "give one material"
        in cli("print", str(petg), "--model", "p1", "--material", "PETG+PLA", code=2).stderr
    )
    assert (
        "nozzle in millimetres"
        in cli("print", str(petg), "--model", "p1", "--nozzle", "4", code=2).stderr
    )
    assert "no pool 'elsewhere'" in cli("print", str(petg), "--pool", "elsewhere", code=1).stderr
    assert len(cli.json("jobs")) == 4


def test_jobs_priority_reorders_a_waiting_job(live_cloud: LiveCloud, cli: Cli, petg: Path) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()
    cli("login", live_cloud.url, "--token", ada.token)
    first = cli.json("print", str(petg), "--printer", printer_id, "--priority", "7")
    second = cli.json("print", str(petg), "--printer", printer_id)

    assert "now has priority 10" in cli("jobs", "priority", second["id"], "10").stdout
    assert "priority 10" in cli("jobs", second["id"]).stdout
    # --top: one above every other waiting job of yours.
    assert cli.json("jobs", "priority", first["id"], "--top")["priority"] == 11
    # A negative priority after --, or it reads as an option.
    lowered = cli("jobs", "priority", first["id"], "--json", "--", "-5").stdout
    assert json.loads(lowered)["priority"] == -5

    assert (
        "a whole number from -100 to 100"
        in cli("jobs", "priority", first["id"], "1000", code=2).stderr
    )
    assert "say which job and its priority" in cli("jobs", "priority", first["id"], code=2).stderr
    cli("cancel", first["id"])
    ended = cli("jobs", "priority", first["id"], "3", code=1)
    assert "only a job that has not started yet" in ended.stderr


def test_printers_show_what_is_loaded(live_cloud: LiveCloud, cli: Cli) -> None:
    ada = live_cloud.person("ada")
    ada.printer()
    cli("login", live_cloud.url, "--token", ada.token)
    listed = cli.json("printers")
    assert (listed[0]["materials"], listed[0]["nozzle_um"], listed[0]["simulated"]) == (
        [],
        None,
        False,
    )
    assert "loaded" in cli("printers").stdout
