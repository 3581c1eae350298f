"""``TelemetryHistory``: printers' telemetry kept in the store, at a bounded rate, for charts.

Ingestion hands each report to :meth:`TelemetryHistory.offer`, which never waits: it keeps at
most one snapshot per printer per ``interval_s`` and puts it in a bounded queue. A writer task
stores the queue in batches (one transaction for up to ``batch_size`` rows, so a thousand
printers reporting every second cost about one write a second, not a thousand); while the store
is slow the queue fills and further snapshots are dropped and counted — history is for people
looking back, and must never hold up the messages dispatch depends on. A second task deletes
snapshots older than ``retention_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from printfleet.cloud.store import StoreError, TelemetryRecord
from printfleet.cloud.store.values import JSONValue
from printfleet.protocol.messages import Telemetry

__all__ = [
    "HistoryCollector",
    "HistoryPoint",
    "HistoryPolicy",
    "HistoryStats",
    "TelemetryHistory",
    "TelemetryHistoryStore",
    "snapshot",
]

log = logging.getLogger(__name__)


class TelemetryHistoryStore(Protocol):
    """What the history needs of the store (its telemetry repository)."""

    async def append_batch(self, samples: Sequence[TelemetryRecord]) -> int:
        """Store ``samples`` in one transaction; how many were stored."""
        ...

    async def prune(self, *, before: int) -> int:
        """Delete snapshots older than ``before``; how many."""
        ...


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much history is kept, and how it is written."""

    interval_s: float = 10.0
    """At most one snapshot per printer this often."""
    retention_s: float = 24 * 3600.0
    """Snapshots older than this are deleted."""
    batch_size: int = 500
    """At most this many rows per transaction."""
    flush_s: float = 1.0
    """How long a snapshot may wait for others to share its transaction."""
    queue_limit: int = 10_000
    """Snapshots waiting for the store; beyond, new ones are dropped (and counted)."""
    prune_every_s: float = 300.0
    """How often old snapshots are deleted."""

    def __post_init__(self) -> None:
        for name in ("interval_s", "retention_s", "flush_s", "prune_every_s"):
            if getattr(self, name) <= 0:
                msg = f"HistoryPolicy.{name} must be positive, not {getattr(self, name)}"
                raise ValueError(msg)
        if self.batch_size < 1 or self.queue_limit < 1:
            msg = "HistoryPolicy.batch_size and queue_limit must be at least 1"
            raise ValueError(msg)


@dataclass(slots=True)
class HistoryStats:
    """Counters for metrics and tests."""

    offered: int = 0
    """Telemetry reports handed to the history."""
    sampled_out: int = 0
    """Reports skipped: the printer had a snapshot queued less than ``interval_s`` before."""
    dropped: int = 0
    """Snapshots dropped because the queue was full (the store was slow)."""
    written: int = 0
    """Snapshots stored."""
    skipped_unknown: int = 0
    """Snapshots of printers the store does not know."""
    failed: int = 0
    """Snapshots lost because their batch's write failed."""
    batches: int = 0
    """Write transactions (successful or not)."""
    pruned: int = 0
    """Snapshots deleted as too old."""
    prunes: int = 0
    """Pruning rounds completed."""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One stored snapshot, decoded: temperatures in tenths of a degree, as on the wire."""

    at: int
    status: str
    hotend_dc: int
    hotend_target_dc: int
    bed_dc: int
    bed_target_dc: int
    percent: int | None = None
    job_id: str | None = None

    @classmethod
    def of(cls, record: TelemetryRecord) -> HistoryPoint:
        """From a stored row (written by :func:`snapshot`)."""
        data = record.data
        hotend, bed = _pair(data.get("hotend")), _pair(data.get("bed"))
        percent, job_id = data.get("percent"), data.get("job_id")
        return cls(
            at=record.at,
            status=str(data.get("status", "")),
            hotend_dc=hotend[0],
            hotend_target_dc=hotend[1],
            bed_dc=bed[0],
            bed_target_dc=bed[1],
            percent=percent if isinstance(percent, int) else None,
            job_id=job_id if isinstance(job_id, str) else None,
        )


def _pair(value: JSONValue | None) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:  # noqa: PLR2004 - [current, target]
        current, target = value
        if isinstance(current, int) and isinstance(target, int):
            return current, target
    return 0, 0


def snapshot(report: Telemetry) -> dict[str, JSONValue]:
    """What is stored of a report: compact, as there are many (``[current, target]`` in dC)."""
    data: dict[str, JSONValue] = {
        "status": report.status.value,
        "hotend": [report.hotend.temp_dc, report.hotend.target_dc],
        "bed": [report.bed.temp_dc, report.bed.target_dc],
    }
    if report.progress is not None:
        data["percent"] = report.progress.percent
    if report.job_id is not None:
        data["job_id"] = report.job_id
    return data


class TelemetryHistory:
    """Samples reports, queues them, writes them in batches and prunes old ones.

    ``clock_ms`` is cloud time in milliseconds; ``run()`` until cancelled.
    """

    def __init__(
        self,
        store: TelemetryHistoryStore,
        policy: HistoryPolicy | None = None,
        *,
        clock_ms: Callable[[], int],
    ) -> None:
        self.policy = policy or HistoryPolicy()
        self.stats = HistoryStats()
        self._store = store
        self._clock_ms = clock_ms
        self._interval_ms = int(self.policy.interval_s * 1000)
        self._queue: deque[TelemetryRecord] = deque()
        self._kept_at: dict[str, int] = {}
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._changed = asyncio.Condition()

    @property
    def queued(self) -> int:
        """Snapshots waiting for the store."""
        return len(self._queue)

    def offer(self, report: Telemetry) -> bool:
        """Consider one report (never blocks); True if a snapshot of it was queued."""
        self.stats.offered += 1
        now = self._clock_ms()
        printer_id = report.printer_id
        kept = self._kept_at.get(printer_id)
        if kept is not None and now - kept < self._interval_ms:
            self.stats.sampled_out += 1
            return False
        if len(self._queue) >= self.policy.queue_limit:
            # Not marked as kept: the printer's next report tries again.
            self.stats.dropped += 1
            return False
        self._kept_at[printer_id] = now
        # As old as the printer says, if it knows cloud time (as FleetView reckons).
        at = now if report.sent_at is None else min(now, report.sent_at)
        self._queue.append(TelemetryRecord(printer_id=printer_id, at=at, data=snapshot(report)))
        self._arrived.set()
        if len(self._queue) >= self.policy.batch_size:
            self._full.set()
        return True

    async def run(self) -> None:
        """Write and prune until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._write_forever(), name="telemetry history writer")
            group.create_task(self._prune_forever(), name="telemetry history pruner")

    async def wait_until(self, condition: Callable[[HistoryStats], bool]) -> None:
        """Return once ``condition(stats)`` holds after a write or a prune (for tests)."""
        async with self._changed:
            await self._changed.wait_for(lambda: condition(self.stats))

    async def flush(self) -> None:
        """Write one batch of whatever is queued now."""
        batch = [
            self._queue.popleft() for _ in range(min(len(self._queue), self.policy.batch_size))
        ]
        if not self._queue:
            self._arrived.clear()
        if len(self._queue) < self.policy.batch_size:
            self._full.clear()
        if not batch:
            return
        self.stats.batches += 1
        try:
            stored = await self._store.append_batch(batch)
        except StoreError as error:
            # History is best effort: the batch is given up rather than retried, so a store
            # that keeps failing cannot make the queue grow without bound.
            self.stats.failed += len(batch)
            log.warning("lost %d telemetry snapshots: %s", len(batch), error)
        else:
            self.stats.written += stored
            self.stats.skipped_unknown += len(batch) - stored
        await self._notify()

    async def prune(self) -> int:
        """Delete snapshots older than the retention; how many."""
        before = self._clock_ms() - int(self.policy.retention_s * 1000)
        try:
            deleted = await self._store.prune(before=before)
        except StoreError as error:
            log.warning("could not delete old telemetry snapshots: %s", error)
            deleted = 0
        else:
            self.stats.pruned += deleted
        self.stats.prunes += 1
        await self._notify()
        return deleted

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _write_forever(self) -> None:
        while True:
            await self._arrived.wait()
            # Let others join the first snapshot's transaction, unless a batch is full already.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.flush_s):
                    await self._full.wait()
            await self.flush()

    async def _prune_forever(self) -> None:
        while True:
            await self.prune()
            await asyncio.sleep(self.policy.prune_every_s)


class HistoryCollector:
    """Prometheus view of the history's counters, read at scrape time."""

    def __init__(self, history: TelemetryHistory) -> None:
        self._history = history

    def collect(self) -> Iterable[Metric]:
        """The counters as metric families."""
        stats = self._history.stats
        snapshots = CounterMetricFamily(
            "printfleet_telemetry_history_snapshots",
            "Telemetry reports offered to the history, by what became of them.",
            labels=["outcome"],
        )
        outcomes: Mapping[str, int] = {
            "written": stats.written,
            "sampled_out": stats.sampled_out,
            "dropped": stats.dropped,
            "failed": stats.failed,
            "unknown_printer": stats.skipped_unknown,
        }
        for outcome, count in outcomes.items():
            snapshots.add_metric([outcome], count)
        yield snapshots
        yield CounterMetricFamily(
            "printfleet_telemetry_history_batches",
            "Write transactions of telemetry history.",
            value=stats.batches,
        )
        yield CounterMetricFamily(
            "printfleet_telemetry_history_pruned",
            "Snapshots deleted as older than the retention.",
            value=stats.pruned,
        )
        yield GaugeMetricFamily(
            "printfleet_telemetry_history_queued",
            "Snapshots waiting to be written.",
            value=self._history.queued,
        )
