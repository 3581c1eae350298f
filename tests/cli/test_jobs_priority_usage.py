"""``jobs priority`` says what is wrong with how it was called, before calling any server."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_client_cli import Cli


def test_a_priority_and_top_together_is_refused_as_both(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "config")
    both = cli("jobs", "priority", "6941a4fb", "20", "--top", code=2).stderr
    assert "give a priority or --top, not both" in both
    missing = cli("jobs", "priority", "6941a4fb", code=2).stderr
    assert "say which job and its priority" in missing
