"""What the overload benchmark saw and how it judges it: the settings of a run, the figures of
each step of each configuration, the recovery after the load drops, the issue's targets, the
report, and its plot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from printfleet.bench.overload_load import OK, RequestRecord

__all__ = [
    "GOODPUT_FLOOR",
    "P99_FACTOR",
    "RECOVERY_HOLD_S",
    "RECOVERY_LIMIT_S",
    "ConfigName",
    "ConfigRun",
    "OverloadReport",
    "OverloadSettings",
    "StepFigures",
    "plot_report",
]

GOODPUT_FLOOR = 0.9
"""At 10x offered load, goodput must stay at this share of capacity (issue 5)."""
P99_FACTOR = 5.0
"""The p99 of admitted requests at 10x may be at most this multiple of its unloaded value."""
RECOVERY_LIMIT_S = 5.0
"""Unloaded latency must be back within this many seconds of the load dropping."""
RECOVERY_HOLD_S = 1.0
"""How long latency must stay back to count as recovered (one noisy window later does not
undo a recovery; a backlog still draining does not look like one)."""

ConfigName = Literal["built", "naive"]


@dataclass(frozen=True, slots=True)
class OverloadSettings:
    """How long, how hard, and with how many clients."""

    multipliers: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 0.5)
    """Offered load in each step, as multiples of the measured capacity."""
    step_s: float = 10.0
    capacity_s: float = 5.0
    """How long the closed loop measuring capacity runs."""
    capacity_workers: int = 8
    """Requests the closed loop keeps in flight: enough to keep the cloud busy."""
    clients: int = 200
    """Simulated clients (each with a token and a retry policy of its own)."""
    processes: int = 2
    """Generator processes."""
    attempt_timeout_s: float = 5.0
    patience_s: float = 10.0
    naive_attempts: int = 5
    connections_per_client: int = 4
    """Requests an app has in flight at once (its HTTP pool); more wait for a connection."""
    grace_s: float = 5.0
    window_s: float = 0.5
    """Time windows for the recovery time and the plot."""
    seed_jobs: int = 50
    naive_pool_size: int = 100

    @classmethod
    def quick(cls) -> OverloadSettings:
        """A CI-sized run: short steps, fewer clients, under a minute in all."""
        return cls(
            step_s=2.5,
            capacity_s=2.0,
            clients=40,
            attempt_timeout_s=2.0,
            patience_s=4.0,
            grace_s=1.0,
            window_s=0.25,
            seed_jobs=10,
            naive_pool_size=50,
        )

    def server_settings(self, config: ConfigName, data_dir: Path) -> dict[str, Any]:
        """The cloud's settings for ``config``."""
        base: dict[str, Any] = {"data_dir": str(data_dir), "open_registration": True}
        if config == "built":
            # Rate limits are per account, and one account stands in here for every simulated
            # client: each gets the quota it would have as a person with an account of its own.
            from printfleet.cloud.app import Settings  # noqa: PLC0415 - the cloud's, only here

            defaults = Settings()
            return {
                **base,
                "rate_limit_per_s": defaults.rate_limit_per_s * self.clients,
                "rate_limit_burst": defaults.rate_limit_burst * self.clients,
            }
        return {
            **base,
            "admission": False,
            "db_pool_size": self.naive_pool_size,
            "db_pool_timeout_s": 30.0,  # SQLAlchemy's default
        }


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True)
class StepFigures:
    """One step of one configuration."""

    multiplier: float
    offered: float
    """Arrivals per second."""
    sent: float
    """Attempts per second that reached the network (first tries and retries)."""
    goodput: float
    """Successful answers per second, counted when they arrived at the client."""
    p50_ms: float | None
    """Of the attempts that succeeded: how long the admitted request took."""
    p99_ms: float | None
    e2e_p99_ms: float | None
    """Of the requests that succeeded: from arrival to answer, waits and retries included."""
    errors: dict[str, int]
    """Requests of this step that failed in the end, by how (HTTP status, timeout, ...)."""
    lag_p99_ms: float
    """How late the generators started requests: a busy generator sends less than offered."""
    cloud_cpu: float | None = None
    """The cloud process's CPU use, in cores: below ~0.9 while overloaded, the machine (other
    processes, the generators) took the rest."""

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "multiplier": self.multiplier,
            "offered": round(self.offered, 1),
            "sent": round(self.sent, 1),
            "goodput": round(self.goodput, 1),
            "p50_ms": _rounded(self.p50_ms),
            "p99_ms": _rounded(self.p99_ms),
            "e2e_p99_ms": _rounded(self.e2e_p99_ms),
            "errors": dict(sorted(self.errors.items())),
            "generator_lag_p99_ms": round(self.lag_p99_ms, 1),
            "cloud_cpu": None if self.cloud_cpu is None else round(self.cloud_cpu, 2),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True, slots=True)
class ConfigRun:
    """What one configuration's generators saw, and when its steps began."""

    name: ConfigName
    start_at: float
    settings: OverloadSettings
    capacity: float
    records: tuple[RequestRecord, ...]
    sends: tuple[float, ...]
    cpu: tuple[tuple[float, float], ...] = ()
    """(wall time, CPU seconds) of the cloud process, sampled through the run."""

    def cpu_share(self, start: float, end: float) -> float | None:
        """The cloud's CPU use between ``start`` and ``end``, in cores."""
        inside = [sample for sample in self.cpu if start <= sample[0] <= end]
        if len(inside) < 2:  # noqa: PLR2004 - a difference needs two
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    def bounds(self, index: int) -> tuple[float, float]:
        """Wall-clock start and end of step ``index``."""
        start = self.start_at + index * self.settings.step_s
        return start, start + self.settings.step_s

    def steps(self) -> list[StepFigures]:
        """Figures per step."""
        step_s = self.settings.step_s
        figures = []
        for index, multiplier in enumerate(self.settings.multipliers):
            start, end = self.bounds(index)
            arrived = [r for r in self.records if start <= r.scheduled < end]
            done = [r for r in self.records if r.outcome == OK and start <= r.completed < end]
            errors: dict[str, int] = {}
            for record in arrived:
                if record.outcome != OK:
                    errors[record.outcome] = errors.get(record.outcome, 0) + 1
            latencies = [r.attempt_latency * 1000 for r in done]
            e2e = [(r.completed - r.scheduled) * 1000 for r in done]
            figures.append(
                StepFigures(
                    multiplier=multiplier,
                    offered=len(arrived) / step_s,
                    sent=sum(start <= t < end for t in self.sends) / step_s,
                    goodput=len(done) / step_s,
                    p50_ms=_percentile(latencies, 0.5),
                    p99_ms=_percentile(latencies, 0.99),
                    e2e_p99_ms=_percentile(e2e, 0.99),
                    errors=errors,
                    lag_p99_ms=(_percentile([r.lag for r in arrived], 0.99) or 0.0) * 1000,
                    cloud_cpu=self.cpu_share(start, end),
                )
            )
        return figures

    def unloaded_p50_ms(self) -> float | None:
        """The median latency of successful requests (arrival to answer) in the first step."""
        start, end = self.bounds(0)
        e2e = [
            (r.completed - r.scheduled) * 1000
            for r in self.records
            if r.outcome == OK and start <= r.scheduled < end
        ]
        return _percentile(e2e, 0.5)

    def windows(self) -> list[tuple[float, float, float, float | None]]:
        """(seconds since start, offered/s, goodput/s, p50 ms arrival to answer) per window."""
        width = self.settings.window_s
        total = self.settings.step_s * len(self.settings.multipliers)
        count = max(1, round(total / width))
        offered = [0] * count
        good = [0] * count
        e2e: list[list[float]] = [[] for _ in range(count)]
        for record in self.records:
            slot = int((record.scheduled - self.start_at) // width)
            if 0 <= slot < count:
                offered[slot] += 1
                if record.outcome == OK:
                    e2e[slot].append((record.completed - record.scheduled) * 1000)
            if record.outcome == OK:
                done = int((record.completed - self.start_at) // width)
                if 0 <= done < count:
                    good[done] += 1
        return [
            (i * width, offered[i] / width, good[i] / width, _percentile(e2e[i], 0.5))
            for i in range(count)
        ]

    def recovery_s(self) -> float | None:
        """Seconds from the last load drop until the latency of successful requests (arrival
        to answer, median per window) is back near its unloaded value — within 2x, or 5 ms —
        and stays there for ``RECOVERY_HOLD_S`` (or the rest of the step, if shorter). None if
        that never happened in the last step."""
        multipliers = self.settings.multipliers
        drops = [i for i in range(1, len(multipliers)) if multipliers[i] < multipliers[i - 1]]
        baseline = self.unloaded_p50_ms()
        if not drops or baseline is None:
            return None
        drop = drops[-1]
        start, end = self.bounds(drop)
        limit = max(2 * baseline, baseline + 5.0)
        inside = [
            (self.start_at + at, p50 is not None and p50 <= limit)
            for at, _, _, p50 in self.windows()
            if start <= self.start_at + at < end
        ]
        hold = max(1, math.ceil(RECOVERY_HOLD_S / self.settings.window_s))
        for index, (moment, _) in enumerate(inside):
            if all(ok for _, ok in inside[index : index + hold]):
                return moment - start
        return None


@dataclass(frozen=True, slots=True)
class OverloadReport:
    """Both configurations, measured against one capacity."""

    settings: OverloadSettings
    capacity: float
    """Requests per second of the closed loop against the built cloud."""
    capacity_p50_ms: float | None
    runs: tuple[ConfigRun, ...]
    plot: Path | None = None

    def run(self, name: ConfigName) -> ConfigRun | None:
        """The run of configuration ``name``, if it was measured."""
        return next((run for run in self.runs if run.name == name), None)

    def problems(self) -> list[str]:
        """What the built configuration misses of the issue's targets."""
        built = self.run("built")
        if built is None:
            return ["the built configuration was not measured"]
        steps = built.steps()
        peak = max(range(len(steps)), key=lambda i: steps[i].multiplier)
        found = []
        goodput = steps[peak].goodput
        if goodput < GOODPUT_FLOOR * self.capacity:
            found.append(
                f"goodput at {steps[peak].multiplier:g}x is {goodput:.0f}/s, under "
                f"{GOODPUT_FLOOR:.0%} of capacity {self.capacity:.0f}/s"
            )
        # The unloaded p99 is the lowest of the lightest steps' (before and after the peak), so
        # that a hiccup in one of them cannot loosen the target.
        lightest = min(step.multiplier for step in steps)
        quiet = [s.p99_ms for s in steps if s.multiplier == lightest and s.p99_ms is not None]
        unloaded, loaded = min(quiet, default=None), steps[peak].p99_ms
        if unloaded is None or loaded is None:
            found.append("no successful requests to take a p99 of")
        elif loaded > P99_FACTOR * unloaded:
            found.append(
                f"p99 at {steps[peak].multiplier:g}x is {loaded:.1f} ms, over {P99_FACTOR:g}x "
                f"the unloaded {unloaded:.1f} ms"
            )
        recovery = built.recovery_s()
        if recovery is None or recovery > RECOVERY_LIMIT_S:
            found.append(
                "latency did not recover after the load dropped"
                if recovery is None
                else f"latency took {recovery:.1f} s to recover, over {RECOVERY_LIMIT_S:g} s"
            )
        return found

    @property
    def met(self) -> bool:
        """Whether the built configuration meets every target."""
        return not self.problems()

    def to_json(self) -> dict[str, Any]:
        """Plain data: settings, capacity, and every step of both configurations."""
        s = self.settings
        return {
            "settings": {
                "multipliers": list(s.multipliers),
                "step_s": s.step_s,
                "clients": s.clients,
                "processes": s.processes,
                "attempt_timeout_s": s.attempt_timeout_s,
                "patience_s": s.patience_s,
            },
            "capacity": round(self.capacity, 1),
            "capacity_p50_ms": _rounded(self.capacity_p50_ms),
            "targets": {
                "goodput_share_at_peak": GOODPUT_FLOOR,
                "p99_factor": P99_FACTOR,
                "recovery_s": RECOVERY_LIMIT_S,
            },
            "configs": {
                run.name: {
                    "steps": [step.to_json() for step in run.steps()],
                    "recovery_s": _rounded(run.recovery_s()),
                }
                for run in self.runs
            },
            "met": self.met,
            "problems": self.problems(),
            "plot": None if self.plot is None else str(self.plot),
        }

    def table(self) -> Table:
        """Both configurations, step by step."""
        table = Table(
            title=(
                f"printfleet overload benchmark: capacity {self.capacity:.0f} req/s "
                f"(closed loop, p50 {self.capacity_p50_ms or 0:.1f} ms)"
            ),
            caption=(
                "built = admission control + SDK clients (full-jitter backoff, retry budget, "
                "breaker, Retry-After); naive = no admission, large pool, immediate retries. "
                "sent = attempts incl. retries; goodput = successes/s; p50/p99 = admitted "
                "requests that succeeded; e2e p99 = arrival to success; errors = requests that "
                "failed in the end; recovery = until unloaded latency is back."
            ),
        )
        for column in ("config", "load", "offered/s", "sent/s", "goodput/s"):
            table.add_column(column, justify="right" if column != "config" else "left")
        for column in ("p50 ms", "p99 ms", "e2e p99 ms"):
            table.add_column(column, justify="right")
        table.add_column("cloud CPU", justify="right")
        table.add_column("errors")
        table.add_column("recovery", justify="right")
        for run in self.runs:
            steps = run.steps()
            recovery = run.recovery_s()
            for index, step in enumerate(steps):
                last = index == len(steps) - 1
                table.add_row(
                    run.name if index == 0 else "",
                    f"{step.multiplier:g}x",
                    f"{step.offered:.0f}",
                    f"{step.sent:.0f}",
                    f"{step.goodput:.0f}",
                    _ms(step.p50_ms),
                    _ms(step.p99_ms),
                    _ms(step.e2e_p99_ms),
                    "-" if step.cloud_cpu is None else f"{step.cloud_cpu:.0%}",
                    " ".join(f"{k}:{v}" for k, v in sorted(step.errors.items())) or "-",
                    ("never" if recovery is None else f"{recovery:.1f} s") if last else "",
                    end_section=last,
                )
        return table

    def notes(self) -> list[str]:
        """Verdict and caveats."""
        lines = [
            f"{run.name} {step.multiplier:g}x: the generators ran up to "
            f"{step.lag_p99_ms:.0f} ms late (p99): they offered less than planned"
            for run in self.runs
            for step in run.steps()
            if step.lag_p99_ms > 100  # noqa: PLR2004 - well beyond timer granularity
        ]
        cpus = len(getattr(os, "sched_getaffinity", lambda _: ())(0))
        if cpus >= 2:  # noqa: PLR2004 - see pin_to
            lines.append(f"the cloud ran on 1 of {cpus} CPUs, the load generators on the others")
        problems = self.problems()
        lines.append(
            "built meets every target" if not problems else "built misses: " + "; ".join(problems)
        )
        if self.plot is not None:
            lines.append(f"plot written to {self.plot}")
        return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def plot_report(report: OverloadReport, path: Path) -> Path | None:
    """Goodput and latency over time for each configuration, as a PNG."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional (extra "bench")
    except ImportError:
        return None
    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    throughput, latency = axes
    colours = {"built": "tab:blue", "naive": "tab:red"}
    for run in report.runs:
        windows = run.windows()
        at = [w[0] for w in windows]
        colour = colours[run.name]
        throughput.plot(at, [w[1] for w in windows], color=colour, alpha=0.35, linestyle="--",
                        label=f"{run.name}: offered")  # fmt: skip
        throughput.plot(at, [w[2] for w in windows], color=colour, label=f"{run.name}: goodput")
        latency.plot(
            at,
            [math.nan if w[3] is None else w[3] for w in windows],
            color=colour,
            label=f"{run.name}: p50 arrival to success",
        )
    throughput.axhline(report.capacity, color="grey", linewidth=0.8, label="capacity")
    throughput.set_ylabel("requests / s")
    throughput.legend(loc="upper left", fontsize="small")
    latency.set_yscale("log")
    latency.set_ylabel("ms")
    latency.set_xlabel(
        "seconds; steps of "
        + ", ".join(f"{m:g}x" for m in report.settings.multipliers)
        + " capacity"
    )
    latency.legend(loc="upper left", fontsize="small")
    step = report.settings.step_s
    for axis in axes:
        for index in range(1, len(report.settings.multipliers)):
            axis.axvline(index * step, color="grey", linewidth=0.5, alpha=0.5)
    figure.suptitle("printfleet overload: built vs naive")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
