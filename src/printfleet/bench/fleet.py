"""The fleet benchmark: memory and CPU per simulated printer, against an empty fleet of one run.

For each fleet size it runs ``printfleet sim`` as a child process against a Mosquitto broker of its
own, waits until the fleet says it is connected and the broker holds every printer's online
presence, lets it settle, then samples the child's CPU time and memory over several windows while
counting the telemetry the broker carries. An empty fleet (N = 0) is measured the same way first,
and each size is judged by (median(N) - median(0)) / N, so the interpreter, the imports and a
noisy shared machine cancel out as far as they can.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from rich.table import Table

from printfleet.broker_address import BrokerAddress
from printfleet.protocol.messages import DecodeError, decode_presence
from printfleet.protocol.topics import Topics
from printfleet.sim.fleet import raise_open_file_limit
from printfleet.testing import MosquittoBroker

__all__ = [
    "CPU_TARGET",
    "RSS_TARGET",
    "BrokerTally",
    "FleetBenchError",
    "FleetBenchReport",
    "FleetBenchSettings",
    "FleetMeasurement",
    "FleetRow",
    "FleetSample",
    "TelemetryCount",
    "measure_fleet",
    "run_fleet_bench",
]

RSS_TARGET = 200 * 1024
"""Bytes of resident memory per idle printer (issue 3), in KiB as the scale test counts them."""
CPU_TARGET = 0.0005
"""Fraction of one core per idle printer (issue 3: 0.05 %)."""
TELEMETRY_FLOOR = 0.9
"""Below this share of the expected telemetry the fleet is not keeping up, and its CPU is moot."""

# The fleet's own log line once every printer has connected (``run_fleet``); the output is kept
# on one line by a wide COLUMNS for the child's rich log handler.
_READY_LINE = "simulated printers connected"
_LOST_LINE = "lost its broker"
_SUBSCRIBE_TIMEOUT_S = 10.0


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


# -- watching the broker -------------------------------------------------------------------------


class BrokerTally:
    """What the fleet says on the broker: who is online (retained presence) and telemetry counts.

    A paho client on its own network thread; readers wait on a condition, never by polling.
    """

    def __init__(self, broker_url: str, topics: Topics | None = None) -> None:
        self._address = BrokerAddress.parse(broker_url)
        self._topics = topics or Topics()
        self._telemetry_suffix = "/telemetry"
        self._changed = threading.Condition()
        self._online: set[str] = set()
        self._telemetry = 0
        # Per printer, the first and last telemetry ``seq`` seen this window: how many it sent.
        self._seq_spans: dict[str, tuple[int, int]] = {}
        self._subscribed = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"printfleet-bench-{uuid.uuid4().hex[:12]}",
            clean_session=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def __enter__(self) -> Self:
        self._client.username_pw_set(self._address.username, self._address.password)
        self._client.connect(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._subscribed, _SUBSCRIBE_TIMEOUT_S):
                self._stop()
                raise FleetBenchError(f"could not subscribe on {self._address}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.subscribe(
            [
                (self._topics.all_printers("presence"), 1),
                (self._topics.all_printers("telemetry"), 0),
            ]
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._changed:
            self._subscribed = True
            self._changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        printer = self._topics.printer_of(message.topic)
        if printer is None:
            return
        if message.topic.endswith(self._telemetry_suffix):
            seq = _telemetry_seq(message.payload)
            with self._changed:
                self._telemetry += 1
                first, _ = self._seq_spans.get(printer, (seq, seq))
                self._seq_spans[printer] = (first, seq)
            return
        try:
            online = decode_presence(message.payload).online
        except DecodeError:
            return
        with self._changed:
            if online:
                self._online.add(printer)
            else:
                self._online.discard(printer)
            self._changed.notify_all()

    def online(self) -> int:
        """How many printers' presence says online now."""
        with self._changed:
            return len(self._online)

    def wait_online(self, count: int, timeout: float, *, alive: Callable[[], bool]) -> bool:
        """Wait until exactly ``count`` printers are online; False on timeout or once not alive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._online) != count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not alive():
                    return False
                # Wake now and then to notice a fleet that died without a word.
                self._changed.wait(min(remaining, 0.5))
            return True

    def take_window(self) -> TelemetryCount:
        """Telemetry since the last call; starts a new window."""
        with self._changed:
            spans = self._seq_spans.values()
            taken = TelemetryCount(
                seen=self._telemetry,
                sent=sum(last - first + 1 for first, last in spans),
                senders=len(spans),
            )
            self._telemetry = 0
            self._seq_spans = {}
            return taken


def _telemetry_seq(payload: bytes | bytearray) -> int:
    # json, not the pydantic model: the tally must keep up with a thousand reports a second.
    with contextlib.suppress(ValueError, AttributeError):
        seq = json.loads(payload).get("seq")
        if isinstance(seq, int):
            return seq
    return 0


# -- running one fleet ---------------------------------------------------------------------------


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
