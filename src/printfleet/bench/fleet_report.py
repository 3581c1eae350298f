"""What the fleet benchmark measures and how it judges it: the settings of a run, the samples
and per-size measurements, each size against the empty baseline and the targets, and the report.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from rich.table import Table

__all__ = [
    "CPU_TARGET",
    "RSS_TARGET",
    "TELEMETRY_FLOOR",
    "FleetBenchError",
    "FleetBenchReport",
    "FleetBenchSettings",
    "FleetMeasurement",
    "FleetRow",
    "FleetSample",
    "TelemetryCount",
    "judge",
]

RSS_TARGET = 200 * 1024
"""Bytes of resident memory per idle printer (issue 3), in KiB as the scale test counts them."""
CPU_TARGET = 0.0005
"""Fraction of one core per idle printer (issue 3: 0.05 %)."""
TELEMETRY_FLOOR = 0.9
"""Below this share of the expected telemetry the fleet is not keeping up, and its CPU is moot."""


class FleetBenchError(RuntimeError):
    """The benchmark could not measure a fleet (it died, or never started)."""


@dataclass(frozen=True, slots=True)
class FleetBenchSettings:
    """What to measure, and for how long."""

    sizes: tuple[int, ...] = (100, 1000)
    telemetry_period_s: float = 1.0
    settle_s: float = 10.0
    window_s: float = 5.0
    samples: int = 5
    connect_timeout_s: float = 180.0
    stop_timeout_s: float = 30.0
    models: tuple[str, ...] = ("x1", "p1")

    @classmethod
    def quick(cls) -> Self:
        """A smoke run for CI: a small fleet and short windows; the figures are only indicative."""
        # Windows of two telemetry periods, so every printer reports in each of them.
        return cls(
            sizes=(20,),
            settle_s=1.0,
            window_s=2.0,
            samples=3,
            connect_timeout_s=20.0,
            stop_timeout_s=10.0,
        )

    def all_sizes(self) -> tuple[int, ...]:
        """Every size measured, the empty baseline first."""
        return (0, *sorted({size for size in self.sizes if size > 0}))

    def child_duration_s(self) -> float:
        """How long a child fleet may live at most: it stops by itself even if we die."""
        measuring = self.settle_s + self.samples * self.window_s
        return self.connect_timeout_s + measuring + self.stop_timeout_s + 30.0


@dataclass(frozen=True, slots=True)
class TelemetryCount:
    """Telemetry over one window: reports seen, reports sent (by ``seq``), distinct senders."""

    seen: int
    sent: int
    senders: int


@dataclass(frozen=True, slots=True)
class FleetSample:
    """One measurement window over a running fleet."""

    wall_s: float
    cpu_s: float
    """User plus system CPU time of the fleet process during the window."""
    rss: int
    uss: int
    telemetry: int
    """Telemetry messages the broker delivered to the benchmark during the window."""
    telemetry_sent: int
    """Telemetry messages the printers sent in the window, by their ``seq`` numbers."""
    senders: int
    """Distinct printers among them."""

    @property
    def cpu_fraction(self) -> float:
        """CPU time per wall time: a fraction of one core."""
        return self.cpu_s / self.wall_s

    @property
    def telemetry_rate(self) -> float:
        """Telemetry messages per second seen on the broker."""
        return self.telemetry / self.wall_s

    @property
    def telemetry_sent_rate(self) -> float:
        """Telemetry messages per second the printers sent."""
        return self.telemetry_sent / self.wall_s


def _median(values: Iterator[float]) -> float:
    return float(statistics.median(values))


@dataclass(frozen=True, slots=True)
class FleetMeasurement:
    """Everything measured for one fleet size."""

    printers: int
    connected: int
    """Printers whose retained presence on the broker said online at the end of the windows."""
    connect_s: float | None
    """From launch to every printer connected; None if they never all did."""
    stop_s: float | None
    """From SIGINT to exit; None if the fleet had to be killed."""
    reconnects: int
    """Sessions the fleet reported lost (a healthy idle fleet loses none)."""
    samples: tuple[FleetSample, ...]

    @property
    def rss(self) -> float:
        """Median resident set size, bytes."""
        return _median(sample.rss for sample in self.samples)

    @property
    def uss(self) -> float:
        """Median unique set size (memory only this process holds), bytes."""
        return _median(sample.uss for sample in self.samples)

    @property
    def cpu_fraction(self) -> float:
        """Median CPU use, as a fraction of one core."""
        return _median(sample.cpu_fraction for sample in self.samples)

    @property
    def telemetry_rate(self) -> float:
        """Median telemetry messages per second seen on the broker."""
        return _median(sample.telemetry_rate for sample in self.samples)

    @property
    def telemetry_sent_rate(self) -> float:
        """Median telemetry messages per second the printers sent (by their sequence numbers)."""
        return _median(sample.telemetry_sent_rate for sample in self.samples)

    @property
    def senders(self) -> int:
        """The fewest distinct telemetry senders seen in any window."""
        return min((sample.senders for sample in self.samples), default=0)


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One fleet size judged against the baseline and the targets."""

    measurement: FleetMeasurement
    expected_rate: float
    rss_per_printer: float | None
    uss_per_printer: float | None
    cpu_per_printer: float | None
    problems: tuple[str, ...] = field(default=())

    @property
    def is_baseline(self) -> bool:
        """Whether this is the empty fleet every other size is measured against."""
        return self.measurement.printers == 0

    @property
    def met(self) -> bool:
        """Whether the fleet connected, kept up its telemetry and stayed within both targets."""
        return not self.problems

    @property
    def verdict(self) -> str:
        """A word or a short list of what was missed."""
        if self.is_baseline:
            return "baseline"
        return "meets targets" if self.met else "misses: " + ", ".join(self.problems)


def judge(measurement: FleetMeasurement, baseline: FleetMeasurement, period_s: float) -> FleetRow:
    """Per-printer figures and what misses a target, from a fleet and the empty baseline."""
    n = measurement.printers
    expected = n / period_s
    if n == 0:
        return FleetRow(measurement, expected, None, None, None)
    rss = (measurement.rss - baseline.rss) / n
    uss = (measurement.uss - baseline.uss) / n
    cpu = (measurement.cpu_fraction - baseline.cpu_fraction) / n
    problems: list[str] = []
    if measurement.connected < n:
        problems.append(f"only {measurement.connected}/{n} connected")
    if measurement.telemetry_sent_rate < TELEMETRY_FLOOR * expected:
        problems.append("telemetry behind")
    if rss > RSS_TARGET:
        problems.append("memory")
    if cpu > CPU_TARGET:
        problems.append("CPU")
    return FleetRow(measurement, expected, rss, uss, cpu, tuple(problems))


@dataclass(frozen=True, slots=True)
class FleetBenchReport:
    """A whole run: the settings and one measurement per fleet size, baseline first."""

    settings: FleetBenchSettings
    measurements: tuple[FleetMeasurement, ...]

    def rows(self) -> list[FleetRow]:
        """Every size judged against this run's baseline."""
        baseline = next(m for m in self.measurements if m.printers == 0)
        return [
            judge(measurement, baseline, self.settings.telemetry_period_s)
            for measurement in self.measurements
        ]

    @property
    def met(self) -> bool:
        """Whether every fleet size met the targets."""
        return all(row.met for row in self.rows())

    def to_json(self) -> dict[str, Any]:
        """The report as plain data: settings, targets, and every row with its samples."""
        settings = self.settings
        return {
            "settings": {
                "sizes": list(settings.all_sizes()),
                "telemetry_period_s": settings.telemetry_period_s,
                "settle_s": settings.settle_s,
                "window_s": settings.window_s,
                "samples": settings.samples,
                "models": list(settings.models),
            },
            "targets": {"rss_per_printer_bytes": RSS_TARGET, "cpu_per_printer_core": CPU_TARGET},
            "method": (
                "medians over the windows; per printer = (median(N) - median(0)) / N; "
                "RSS and USS of the fleet process; CPU = (user+system time) / wall time"
            ),
            "met": self.met,
            "fleets": [_row_json(row) for row in self.rows()],
        }

    def table(self) -> Table:
        """The report as a rich table."""
        settings = self.settings
        table = Table(
            title=(
                f"printfleet fleet benchmark: idle simulated printers, telemetry every "
                f"{settings.telemetry_period_s:g} s"
            ),
            caption=(
                f"Medians of {settings.samples} windows of {settings.window_s:g} s after "
                f"{settings.settle_s:g} s settling. Per printer = (median(N) - median(0)) / N, "
                f"measured in this run. Targets per printer: RSS <= {RSS_TARGET // 1024} KiB, "
                f"CPU <= {CPU_TARGET * 100:g} % of a core; (x) = share of the target. "
                "CPU in % of one core; online = retained presence on the broker."
            ),
        )
        for name in ("N", "online", "RSS", "RSS/printer", "USS/printer", "CPU", "CPU/printer"):
            table.add_column(name, justify="right")
        table.add_column("telemetry/s\nsent/seen/expected", justify="right")
        table.add_column("verdict")
        for row in self.rows():
            m = row.measurement
            style = "" if row.is_baseline else ("green" if row.met else "red")
            table.add_row(
                str(m.printers),
                str(m.connected),
                f"{m.rss / 2**20:.1f} MiB",
                _per_printer_bytes(row.rss_per_printer),
                _per_printer_bytes(row.uss_per_printer, target=False),
                f"{m.cpu_fraction * 100:.2f} %",
                _per_printer_cpu(row.cpu_per_printer),
                f"{m.telemetry_sent_rate:.0f} / {m.telemetry_rate:.0f} / {row.expected_rate:.0f}",
                f"[{style}]{row.verdict}[/]" if style else row.verdict,
            )
        return table

    def notes(self) -> list[str]:
        """What a reader should know beyond the table: killed fleets, lost sessions."""
        lines: list[str] = []
        for m in self.measurements:
            if m.stop_s is None:
                lines.append(
                    f"{m.printers} printers: did not stop within "
                    f"{self.settings.stop_timeout_s:g} s of SIGINT and were killed"
                )
            if m.telemetry_rate < TELEMETRY_FLOOR * m.telemetry_sent_rate:
                lines.append(
                    f"{m.printers} printers: the broker delivered {m.telemetry_rate:.0f} of "
                    f"{m.telemetry_sent_rate:.0f} reports/s sent (QoS 0 dropped on the way)"
                )
            if m.reconnects:
                lines.append(f"{m.printers} printers: {m.reconnects} broker sessions lost")
        return lines


def _per_printer_bytes(value: float | None, *, target: bool = True) -> str:
    if value is None:
        return "-"
    text = f"{value / 1024:.1f} KiB"
    return f"{text} ({value / RSS_TARGET:.2f}x)" if target else text


def _per_printer_cpu(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.4f} % ({value / CPU_TARGET:.2f}x)"


def _row_json(row: FleetRow) -> dict[str, Any]:
    m = row.measurement
    return {
        "printers": m.printers,
        "connected": m.connected,
        "telemetry_senders": m.senders,
        "connect_s": m.connect_s,
        "stop_s": m.stop_s,
        "reconnects": m.reconnects,
        "rss_bytes": m.rss,
        "uss_bytes": m.uss,
        "cpu_core": m.cpu_fraction,
        "telemetry_per_s": m.telemetry_rate,
        "telemetry_sent_per_s": m.telemetry_sent_rate,
        "expected_telemetry_per_s": row.expected_rate,
        "rss_per_printer_bytes": row.rss_per_printer,
        "uss_per_printer_bytes": row.uss_per_printer,
        "cpu_per_printer_core": row.cpu_per_printer,
        "verdict": row.verdict,
        "met": row.met,
        "samples": [
            {
                "wall_s": s.wall_s,
                "cpu_s": s.cpu_s,
                "rss_bytes": s.rss,
                "uss_bytes": s.uss,
                "telemetry": s.telemetry,
                "telemetry_sent": s.telemetry_sent,
                "senders": s.senders,
            }
            for s in m.samples
        ],
    }
