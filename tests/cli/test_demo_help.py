"""``demo --help`` and ``sim --help`` say which options count real seconds and which simulated."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from printfleet.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["demo", "sim"])
def test_duration_counts_real_seconds(command: str) -> None:
    shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert shown.exit_code == 0
    lines = [
        line for line in shown.stdout.splitlines() if line.lstrip("│ ").startswith("--duration")
    ]
    assert len(lines) == 1
    assert "this many real seconds" in lines[0]
    assert "simulated seconds after a print ends" in shown.stdout
