"""``jobs`` names the pool a waiting job targets, as ``pools`` and ``--pool`` do."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.test_client_cli import Cli
from tests.client.live_cloud import GCODE, LiveCloud, close_people, live_cloud

__all__ = ["close_people", "live_cloud"]  # fixtures, imported for pytest


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config")


def test_a_pool_job_shows_its_pool_by_name(live_cloud: LiveCloud, cli: Cli, tmp_path: Path) -> None:
    ada = live_cloud.person("ada")
    cli("login", live_cloud.url, "--token", ada.token)
    pool = cli.json("pools", "create", "petg-farm", ada.printer())
    gcode = tmp_path / "cube.gcode"
    gcode.write_bytes(GCODE)
    job = cli.json("print", str(gcode), "--pool", "petg-farm")
    assert job["pool_id"] == pool["id"]
    assert job["assigned_printer"] is None

    table = cli("jobs").stdout.replace("\n", "").replace("│", "").replace(" ", "")
    assert "poolpetg-farm" in table
    assert pool["id"] not in table
