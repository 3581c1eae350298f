"""`printfleet chaos list` and `chaos run`'s refusals: the surface, without starting a world."""

import subprocess
import sys
from pathlib import Path

from printfleet.chaos.scenarios import SCENARIOS

PRINTFLEET = Path(sys.executable).parent / "printfleet"


def chaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), "chaos", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": str(PRINTFLEET.parent)},
    )


def test_list_names_every_scenario() -> None:
    listed = chaos("list")
    assert listed.returncode == 0, listed.stderr
    for name in SCENARIOS:
        assert name in listed.stdout


def test_an_unknown_scenario_is_refused_with_the_known_ones() -> None:
    refused = chaos("run", "incident-2024")
    assert refused.returncode == 2
    assert "unknown scenario 'incident-2024'" in refused.stderr
    assert "incident-2023-08-15" in refused.stderr


def test_safeguards_take_only_on_or_off() -> None:
    refused = chaos("run", "broker-kill", "--safeguards", "maybe")
    assert refused.returncode == 2
    assert "use 'on' or 'off'" in refused.stderr
