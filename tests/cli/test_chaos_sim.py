"""`printfleet chaos sim`: seeded schedules, JSON figures, and exact replays."""

import json
import subprocess
import sys
from pathlib import Path

PRINTFLEET = Path(sys.executable).parent / "printfleet"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script
        [str(PRINTFLEET), "chaos", "sim", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_safe_schedules_report_no_violation() -> None:
    result = run("--seeds", "60", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    assert figures["schedules"] == 60
    assert figures["violating_schedules"] == 0
    assert figures["starts"] > 0
    assert figures["faults_injected"] > 0


def test_without_safeguards_violations_are_found_and_replay_exactly() -> None:
    result = run("--seeds", "20", "--safeguards", "off", "--json")
    assert result.returncode == 0
    figures = json.loads(result.stdout)
    assert figures["violating_schedules"] > 0
    first = figures["violations"][0]
    replay = run("--seed", str(first["seed"]), "--safeguards", "off")
    again = run("--seed", str(first["seed"]), "--safeguards", "off")
    assert first["kind"] in replay.stdout
    assert replay.stdout == again.stdout
