"""The overload benchmark: how it judges figures, and a real quick run of the console command
measuring both configurations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from printfleet.bench.overload_load import OK, RequestRecord
from printfleet.bench.overload_report import ConfigRun, OverloadReport, OverloadSettings

CLI = (sys.executable, "-c", "from printfleet.cli import main; main()")
SETTINGS = OverloadSettings(multipliers=(0.5, 10.0, 0.5), step_s=2.0, window_s=0.5)


def record(at: float, *, latency: float = 0.01, outcome: str = OK) -> RequestRecord:
    return RequestRecord(
        scheduled=at, lag=0.0, outcome=outcome, completed=at + latency, attempt_latency=latency
    )


def run(records: list[RequestRecord], name: str = "built") -> ConfigRun:
    return ConfigRun(
        name="built" if name == "built" else "naive",
        start_at=0.0,
        settings=SETTINGS,
        capacity=100.0,
        records=tuple(records),
        sends=tuple(r.scheduled for r in records),
    )


def steady(start: float, end: float, per_s: int, latency: float) -> list[RequestRecord]:
    count = int((end - start) * per_s)
    return [record(start + i / per_s, latency=latency) for i in range(count)]


def test_a_cloud_that_holds_its_goodput_and_latency_meets_the_targets() -> None:
    records = steady(0, 2, 50, 0.01) + steady(2, 4, 95, 0.04) + steady(4, 6, 50, 0.01)
    report = OverloadReport(SETTINGS, 100.0, 10.0, (run(records),))
    steps = report.to_json()["configs"]["built"]["steps"]
    assert [step["goodput"] for step in steps] == pytest.approx([50, 95, 50], abs=2)
    assert report.run("built") is not None
    assert report.problems() == []
    assert report.to_json()["configs"]["built"]["recovery_s"] == 0.0


def test_collapse_and_slow_recovery_are_reported() -> None:
    # Overloaded: goodput 30/s with latencies of a second; after the drop the backlog keeps
    # latency up for 1.5 s of the last step.
    records = (
        steady(0, 2, 50, 0.01)
        + steady(2, 4, 30, 1.0)
        + [record(2.5 + i * 0.1, outcome="timeout") for i in range(10)]
        + steady(4, 5.5, 50, 0.8)
        + steady(5.5, 6, 50, 0.01)
    )
    report = OverloadReport(SETTINGS, 100.0, 10.0, (run(records),))
    problems = report.problems()
    assert any("goodput at 10x is" in p for p in problems), problems
    assert any("p99 at 10x" in p for p in problems), problems
    built = report.run("built")
    assert built is not None
    assert built.recovery_s() == pytest.approx(1.5)
    assert built.steps()[1].errors == {"timeout": 10}
    assert not report.met


def test_the_unloaded_p99_is_the_quieter_of_the_light_steps() -> None:
    # A hiccup in the first step (a 300 ms p99) must not allow 10x to be that slow too.
    records = (
        steady(0, 1.98, 50, 0.01)
        + [record(1.98, latency=0.3)] * 2
        + steady(2, 4, 95, 0.3)
        + steady(4, 6, 50, 0.01)
    )
    report = OverloadReport(SETTINGS, 100.0, 10.0, (run(records),))
    assert any("over 5x the unloaded 10.0 ms" in p for p in report.problems()), report.problems()


def test_latency_that_never_comes_back_is_never_recovered() -> None:
    records = steady(0, 2, 50, 0.01) + steady(2, 4, 95, 0.04) + steady(4, 6, 50, 0.5)
    built = run(records)
    assert built.recovery_s() is None


@pytest.mark.timeout(180)
def test_the_quick_benchmark_measures_both_configurations(tmp_path: Path) -> None:
    plot = tmp_path / "overload.png"
    result = subprocess.run(  # noqa: S603 - our own console script
        [*CLI, "bench", "overload", "--quick", "--json", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["capacity"] > 0
    assert set(figures["configs"]) == {"built", "naive"}
    for config in figures["configs"].values():
        steps = config["steps"]
        assert [step["multiplier"] for step in steps] == [0.5, 1, 2, 5, 10, 0.5]
        for step in steps:
            assert set(step) >= {"offered", "goodput", "p50_ms", "p99_ms", "errors"}
            assert step["offered"] > 0
        assert "recovery_s" in config
        # At half the capacity both clouds answer most requests.
        assert steps[0]["goodput"] > 0.5 * steps[0]["offered"]
    # The naive clients resend what failed: more goes out than arrives, once overloaded.
    naive_peak = figures["configs"]["naive"]["steps"][4]
    assert naive_peak["sent"] > naive_peak["goodput"]
    assert isinstance(figures["met"], bool)
    assert plot.stat().st_size > 10_000
    assert plot.read_bytes().startswith(b"\x89PNG")
