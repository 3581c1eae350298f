"""The fleet benchmark: its judgement of measured figures, and a real quick run end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from printfleet.bench import (
    CPU_TARGET,
    RSS_TARGET,
    FleetBenchReport,
    FleetBenchSettings,
    FleetMeasurement,
    FleetSample,
)

MIB = 2**20
CLI = (sys.executable, "-c", "from printfleet.cli import main; main()")


def sample(*, rss: int, cpu_fraction: float, telemetry: int, senders: int) -> FleetSample:
    return FleetSample(
        wall_s=1.0,
        cpu_s=cpu_fraction,
        rss=rss,
        uss=rss - MIB,
        telemetry=telemetry,
        telemetry_sent=telemetry,
        senders=senders,
    )


def measurement(
    printers: int, *, rss: int, cpu_fraction: float, connected: int | None = None, sent: int = -1
) -> FleetMeasurement:
    telemetry = printers if sent < 0 else sent
    return FleetMeasurement(
        printers=printers,
        connected=printers if connected is None else connected,
        connect_s=1.0,
        stop_s=0.5,
        reconnects=0,
        samples=tuple(
            sample(rss=rss, cpu_fraction=cpu_fraction, telemetry=telemetry, senders=printers)
            for _ in range(3)
        ),
    )


BASELINE = measurement(0, rss=50 * MIB, cpu_fraction=0.001)


def test_per_printer_figures_are_the_difference_to_the_empty_fleet() -> None:
    fleet = measurement(100, rss=50 * MIB + 100 * 80 * 1024, cpu_fraction=0.001 + 100 * 0.0003)
    report = FleetBenchReport(FleetBenchSettings(sizes=(100,)), (BASELINE, fleet))
    baseline_row, row = report.rows()
    assert baseline_row.verdict == "baseline"
    assert row.rss_per_printer == pytest.approx(80 * 1024)
    assert row.cpu_per_printer == pytest.approx(0.0003)
    assert row.verdict == "meets targets"
    assert report.met


@pytest.mark.parametrize(
    ("fleet", "problem"),
    [
        (measurement(10, rss=50 * MIB + 10 * (RSS_TARGET + 1024), cpu_fraction=0.001), "memory"),
        (measurement(10, rss=50 * MIB, cpu_fraction=0.001 + 10 * 2 * CPU_TARGET), "CPU"),
        (measurement(10, rss=50 * MIB, cpu_fraction=0.001, connected=7), "only 7/10 connected"),
        (measurement(10, rss=50 * MIB, cpu_fraction=0.001, sent=5), "telemetry behind"),
    ],
)
def test_a_missed_target_is_named_in_the_verdict(fleet: FleetMeasurement, problem: str) -> None:
    report = FleetBenchReport(FleetBenchSettings(sizes=(10,)), (BASELINE, fleet))
    row = report.rows()[1]
    assert row.problems == (problem,)
    assert row.verdict == f"misses: {problem}"
    assert not report.met


def test_the_table_and_the_json_show_every_fleet() -> None:
    fleet = measurement(100, rss=60 * MIB, cpu_fraction=0.04)
    report = FleetBenchReport(FleetBenchSettings(sizes=(100,)), (BASELINE, fleet))
    console = Console(record=True, width=200)
    console.print(report.table())
    text = console.export_text()
    assert "baseline" in text
    assert "102.4 KiB (0.51x)" in text
    data = json.loads(json.dumps(report.to_json()))
    assert [f["printers"] for f in data["fleets"]] == [0, 100]
    assert data["targets"] == {
        "rss_per_printer_bytes": RSS_TARGET,
        "cpu_per_printer_core": CPU_TARGET,
    }


@pytest.mark.mosquitto
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_the_quick_benchmark_measures_a_real_fleet() -> None:
    # The command users run: a real broker, real `printfleet sim` children, real sockets.
    result = subprocess.run(  # noqa: S603 - our own interpreter and CLI
        [*CLI, "bench", "fleet", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    baseline, fleet = report["fleets"]
    assert baseline["printers"] == 0
    assert baseline["verdict"] == "baseline"
    assert fleet["printers"] == 20
    assert fleet["connected"] == 20
    assert fleet["telemetry_senders"] == 20
    assert fleet["reconnects"] == 0
    assert fleet["stop_s"] is not None  # stopped by itself on SIGINT
    for row in (baseline, fleet):
        assert row["rss_bytes"] > 0
        assert row["uss_bytes"] > 0
        assert row["cpu_core"] >= 0
        assert len(row["samples"]) == 3
    # CPU time comes in clock ticks (10 ms): too coarse over short windows to compare the two.
    assert fleet["rss_bytes"] > baseline["rss_bytes"]
    # Twenty printers at one report a second each: about twenty a second, seen on the broker.
    assert 10 <= fleet["telemetry_per_s"] <= 30
    assert 0 < fleet["rss_per_printer_bytes"] < 10 * RSS_TARGET
    assert fleet["verdict"] == "meets targets" or fleet["verdict"].startswith("misses: ")
