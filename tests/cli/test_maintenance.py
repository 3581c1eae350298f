"""``printfleet maintenance`` against a real cloud: the table, --serviced, --every, --json, and
what it says about bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.test_client_cli import Cli
from tests.client.live_cloud import LiveCloud, close_people, live_cloud

from printfleet.cli.failures import CliError
from printfleet.cli.maintenance import interval_value

__all__ = ["close_people", "live_cloud"]  # fixtures, imported for pytest


def test_maintenance_shows_marks_serviced_and_sets_intervals(
    live_cloud: LiveCloud, tmp_path: Path
) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()
    cli = Cli(tmp_path / "config", PRINTFLEET_URL=live_cloud.url, PRINTFLEET_TOKEN=ada.token)

    table = cli("maintenance", printer_id).stdout
    assert f"maintenance of {printer_id}" in table
    assert "200 h (default)" in table
    assert "1000 h (default)" in table

    said = cli("maintenance", printer_id, "--serviced", "nozzle", "--every", "belts=800").stdout
    assert f"{printer_id}: nozzle marked serviced" in said
    assert "800 h" in said
    assert "800 h (default)" not in said
    nozzle, belts = cli.json("maintenance", printer_id)
    assert nozzle["serviced_at"] is not None
    assert (belts["interval_h"], belts["default_interval"]) == (800.0, False)

    back = cli.json("maintenance", printer_id, "--every", "belts=default")
    assert (back[1]["interval_h"], back[1]["default_interval"]) == (1000.0, True)

    refused = cli("maintenance", printer_id, "--serviced", "spindle", code=1)
    assert "nozzle, belts" in refused.stderr
    assert "PART=HOURS" in cli("maintenance", printer_id, "--every", "nozzle", code=2).stderr
    bob = Cli(
        tmp_path / "bob",
        PRINTFLEET_URL=live_cloud.url,
        PRINTFLEET_TOKEN=live_cloud.person("bob").token,
    )
    assert f"no printer {printer_id}" in bob("maintenance", printer_id, code=1).stderr


def test_every_reads_part_equals_hours_and_says_what_it_wants() -> None:
    assert interval_value("nozzle=300") == ("nozzle", 300.0)
    assert interval_value(" belts = 1.5 ") == ("belts", 1.5)
    assert interval_value("belts=default") == ("belts", None)
    for bad in ("nozzle", "nozzle=", "=300", "nozzle=lots"):
        with pytest.raises(CliError, match=r"PART=HOURS, e.g. nozzle=300"):
            interval_value(bad)
