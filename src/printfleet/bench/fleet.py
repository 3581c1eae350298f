"""The fleet benchmark: memory and CPU per simulated printer, against an empty fleet of one run.

For each fleet size it runs ``printfleet sim`` as a child process against a Mosquitto broker of its
own, waits until the fleet says it is connected and the broker holds every printer's online
presence, lets it settle, then samples the child's CPU time and memory over several windows while
counting the telemetry the broker carries. An empty fleet (N = 0) is measured the same way first,
and each size is judged by (median(N) - median(0)) / N, so the interpreter, the imports and a
noisy shared machine cancel out as far as they can.

The figures and their judgement are in :mod:`printfleet.bench.fleet_report`, the watching of the
broker in :mod:`printfleet.bench.fleet_tally`; this module runs the fleets and measures them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from printfleet.bench.fleet_report import (
    FleetBenchError,
    FleetBenchReport,
    FleetBenchSettings,
    FleetMeasurement,
    FleetSample,
)
from printfleet.bench.fleet_tally import BrokerTally
from printfleet.sim.fleet import raise_open_file_limit
from printfleet.testing import MosquittoBroker

# The run's settings, error and report are re-exported: they are what a caller of
# run_fleet_bench handles.
__all__ = [
    "FleetBenchError",
    "FleetBenchReport",
    "FleetBenchSettings",
    "measure_fleet",
    "run_fleet_bench",
]

# The fleet's own log line once every printer has connected (``run_fleet``); the output is kept
# on one line by a wide COLUMNS for the child's rich log handler.
_READY_LINE = "simulated printers connected"
_LOST_LINE = "lost its broker"


class _FleetProcess:
    """``printfleet sim`` as a child: its output copied to a log, its readiness line noticed."""

    def __init__(self, command: Sequence[str], log_path: Path) -> None:
        self.log_path = log_path
        self.ready = threading.Event()
        self.lost_sessions = 0
        env = {**os.environ, "COLUMNS": "400"}  # one log record per line, for the readiness line
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._reader = threading.Thread(
            target=self._read, name=f"fleet output {self.process.pid}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        output = self.process.stdout
        if output is None:  # pragma: no cover - Popen was given PIPE
            return
        with self.log_path.open("wb") as log:
            for line in output:
                log.write(line)
                if _LOST_LINE.encode() in line:
                    self.lost_sessions += 1
                if _READY_LINE.encode() in line:
                    self.ready.set()

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self.process.poll() is None

    def stop(self, timeout: float) -> float | None:
        """SIGINT (a clean shutdown), then SIGKILL after ``timeout``; seconds to exit, or None."""
        started = time.monotonic()
        stopped: float | None = None
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
                stopped = time.monotonic() - started
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            stopped = 0.0
        self._reader.join(timeout=5)
        return stopped

    def tail(self, lines: int = 15) -> str:
        """The end of the child's output, for an error message."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _sim_command(
    printers: int, broker_url: str, settings: FleetBenchSettings, data: Path
) -> list[str]:
    # The same interpreter and package as ours, through the CLI that users run.
    return [
        sys.executable,
        "-c",
        "from printfleet.cli import main; main()",
        "sim",
        "--printers",
        str(printers),
        "--models",
        ",".join(settings.models),
        "--broker",
        broker_url,
        "--telemetry-period",
        str(settings.telemetry_period_s),
        "--duration",
        str(settings.child_duration_s()),
        "--data-dir",
        str(data),
    ]


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _sample(process: psutil.Process, tally: BrokerTally, window_s: float) -> FleetSample:
    tally.take_window()
    cpu_before = _cpu_seconds(process)
    started = time.monotonic()
    time.sleep(window_s)  # the window is the measurement itself
    cpu = _cpu_seconds(process) - cpu_before
    wall = time.monotonic() - started
    telemetry = tally.take_window()
    memory = process.memory_full_info()
    return FleetSample(
        wall_s=wall,
        cpu_s=cpu,
        rss=memory.rss,
        uss=memory.uss,
        telemetry=telemetry.seen,
        telemetry_sent=telemetry.sent,
        senders=telemetry.senders,
    )


def measure_fleet(
    printers: int,
    broker_url: str,
    tally: BrokerTally,
    settings: FleetBenchSettings,
    workdir: Path,
) -> FleetMeasurement:
    """Launch a fleet of ``printers``, wait until connected, settle, sample, stop it."""
    data = workdir / f"fleet-{printers}"
    data.mkdir()
    fleet = _FleetProcess(
        _sim_command(printers, broker_url, settings, data), workdir / f"fleet-{printers}.log"
    )
    try:
        process = psutil.Process(fleet.process.pid)
        launched = time.monotonic()
        connected_all = fleet.ready.wait(settings.connect_timeout_s) and tally.wait_online(
            printers,
            max(0.0, settings.connect_timeout_s - (time.monotonic() - launched)),
            alive=fleet.alive,
        )
        connect_s = time.monotonic() - launched if connected_all else None
        if not fleet.alive():
            raise FleetBenchError(
                f"the fleet of {printers} exited with {fleet.process.returncode}:\n{fleet.tail()}"
            )
        time.sleep(settings.settle_s)  # letting start-up work finish is the point of settling
        samples = tuple(_sample(process, tally, settings.window_s) for _ in range(settings.samples))
        connected = tally.online()
        if not fleet.alive():
            raise FleetBenchError(f"the fleet of {printers} died while measured:\n{fleet.tail()}")
    except psutil.NoSuchProcess:
        raise FleetBenchError(f"the fleet of {printers} vanished:\n{fleet.tail()}") from None
    finally:
        stop_s = fleet.stop(settings.stop_timeout_s)
    # The next fleet reuses these printer ids: start it from an empty broker.
    tally.wait_online(0, settings.stop_timeout_s, alive=lambda: True)
    return FleetMeasurement(
        printers=printers,
        connected=connected,
        connect_s=connect_s,
        stop_s=stop_s,
        reconnects=fleet.lost_sessions,
        samples=samples,
    )


def run_fleet_bench(
    settings: FleetBenchSettings, *, progress: Callable[[str], None] = lambda _: None
) -> FleetBenchReport:
    """Measure every fleet size of ``settings``, baseline first, on a broker of our own."""
    # The broker inherits our limit and holds one socket per printer.
    raise_open_file_limit(max(settings.all_sizes()) * 2 + 256)
    measurements: list[FleetMeasurement] = []
    with (
        MosquittoBroker() as broker,
        tempfile.TemporaryDirectory(prefix="printfleet-bench-") as folder,
        BrokerTally(broker.url) as tally,
    ):
        for printers in settings.all_sizes():
            progress(f"measuring {printers} printers on {broker.url}")
            measurement = measure_fleet(printers, broker.url, tally, settings, Path(folder))
            measurements.append(measurement)
            progress(
                f"{printers} printers: {measurement.connected} connected, "
                f"CPU {measurement.cpu_fraction * 100:.2f} % of a core, "
                f"RSS {measurement.rss / 2**20:.1f} MiB"
            )
    return FleetBenchReport(settings, tuple(measurements))
