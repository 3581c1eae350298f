"""Benchmarks that check printfleet's resource targets, each against a baseline of the same run."""

from printfleet.bench.fleet import run_fleet_bench
from printfleet.bench.fleet_report import (
    CPU_TARGET,
    RSS_TARGET,
    FleetBenchReport,
    FleetBenchSettings,
    FleetMeasurement,
    FleetSample,
)

__all__ = [
    "CPU_TARGET",
    "RSS_TARGET",
    "FleetBenchReport",
    "FleetBenchSettings",
    "FleetMeasurement",
    "FleetSample",
    "run_fleet_bench",
]
