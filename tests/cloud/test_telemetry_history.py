"""Telemetry history on SQLite and PostgreSQL: at most one snapshot per printer per interval,
batched writes, a slow store that drops (and counts) instead of holding up ingestion, retention
by a periodic prune; and, through a real cloud and a real Mosquitto, history read back from
``GET /api/v1/printers/{id}/telemetry`` by those who may see the printer."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiomqtt
import pytest
from pydantic import ValidationError
from sqlalchemy import insert, text
from tests.cloud.conftest import T0, FakeClock, Seed
from tests.cloud.test_api import (
    Running,
    api_database_url,
    bearer,
    eventually,
    serving,
    settings_for,
    sign_up,
    unique,
)

from printfleet.client import AsyncClient, NotFound
from printfleet.cloud.app import Settings
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.store import Store, TelemetryRecord, open_store
from printfleet.cloud.store.engine import WRITE_OPTION
from printfleet.cloud.store.models import Printer
from printfleet.cloud.telemetry_history import (
    HistoryPoint,
    HistoryPolicy,
    HistoryStats,
    TelemetryHistory,
)
from printfleet.protocol.messages import (
    HeaterTelemetry,
    PlateStatus,
    PrinterStatus,
    ProgressTelemetry,
    Telemetry,
    encode,
)
from printfleet.protocol.topics import Topics
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name
HOUR_MS = 3_600_000


def report(printer_id: str = "p1", seq: int = 1, hotend_dc: int = 2000) -> Telemetry:
    """A printing printer's report; ``sent_at`` None so the cloud's clock stamps it."""
    return Telemetry(
        printer_id=printer_id,
        seq=seq,
        sent_at=None,
        status=PrinterStatus.PRINTING,
        job_id=None,
        plate=PlateStatus.OCCUPIED,
        hotend=HeaterTelemetry(temp_dc=hotend_dc, target_dc=2100),
        bed=HeaterTelemetry(temp_dc=595, target_dc=600),
        progress=ProgressTelemetry(percent=40, layer=4, total_layers=10, time_left_s=60),
    )


@contextlib.asynccontextmanager
async def running(history: TelemetryHistory) -> AsyncIterator[TelemetryHistory]:
    """``history.run()`` in a task for the block."""
    task = asyncio.create_task(history.run(), name="history under test")
    try:
        yield history
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def written(count: int) -> Callable[[HistoryStats], bool]:
    """Whether ``count`` snapshots were written."""
    return lambda stats: stats.written == count


async def drained(history: TelemetryHistory) -> None:
    while history.queued:
        await history.flush()


class CountingStore:
    """The real store's telemetry, counting write transactions and telling when one has begun."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes = 0
        self.entered = asyncio.Event()

    async def append_batch(self, samples: Sequence[TelemetryRecord]) -> int:
        self.writes += 1
        self.entered.set()
        return await self.store.telemetry.append_batch(samples)

    async def prune(self, *, before: int) -> int:
        return await self.store.telemetry.prune(before=before)


# ---------------------------------------------------------------------------------------------
# Rate, batching, a slow store, retention.


@pytest.mark.asyncio
async def test_at_most_one_snapshot_per_printer_per_interval(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    history = TelemetryHistory(store.telemetry, HistoryPolicy(interval_s=2), clock_ms=clock)
    # Two printers at 10 Hz for 10 s.
    for tick in range(100):
        for printer_id in ("p1", "p2"):
            history.offer(report(printer_id, seq=tick, hotend_dc=2000 + tick))
        clock.advance(100)
    await drained(history)

    kept = [HistoryPoint.of(r) for r in await store.telemetry.for_printer("p1", since=0)]
    assert [p.at - T0 for p in kept] == [0, 2_000, 4_000, 6_000, 8_000]
    assert [p.hotend_dc for p in kept] == [2000, 2020, 2040, 2060, 2080]
    assert kept[0] == HistoryPoint(
        at=T0,
        status="printing",
        hotend_dc=2000,
        hotend_target_dc=2100,
        bed_dc=595,
        bed_target_dc=600,
        percent=40,
        job_id=None,
    )
    assert len(await store.telemetry.for_printer("p2", since=0)) == 5
    stats = history.stats
    assert (stats.offered, stats.sampled_out, stats.written, stats.dropped) == (200, 190, 10, 0)


@pytest.mark.asyncio
async def test_a_thousand_printers_reporting_every_second_cost_a_few_transactions(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    ids = [f"fleet-{n:04d}" for n in range(1000)]
    async with store.engine.begin() as connection:
        await connection.execute(
            insert(Printer),
            [
                {
                    "id": printer_id,
                    "owner_id": seed.owner.id,
                    "name": printer_id,
                    "model": "mk4",
                    "broker_username": printer_id,
                    "broker_password_hash": "h",
                    "plate_check": True,
                    "cloud_enabled": True,
                    "created_at": T0,
                }
                for printer_id in ids
            ],
        )
    counting = CountingStore(store)
    policy = HistoryPolicy(interval_s=10, batch_size=500, flush_s=0.05)
    history = TelemetryHistory(counting, policy, clock_ms=clock)
    async with running(history):
        # Ten seconds of the whole fleet at 1 Hz: 10,000 reports.
        for second in range(10):
            for printer_id in ids:
                history.offer(report(printer_id, seq=second))
            await history.wait_until(written(1000))
            clock.advance(1_000)
    # One snapshot per printer (the interval is 10 s), in two transactions of 500.
    assert counting.writes == 2
    assert (history.stats.written, history.stats.sampled_out) == (1000, 9000)
    assert len(await store.telemetry.for_printer("fleet-0999", since=0)) == 1


@contextlib.asynccontextmanager
async def write_lock(store: Store) -> AsyncIterator[None]:
    """Another connection holding what a telemetry write needs: the store is slow until exit."""
    if store.engine.dialect.name == "sqlite":
        writer = store.engine.execution_options(**{WRITE_OPTION: True})
        async with writer.connect() as holder:
            await holder.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the write lock is held
            yield
            await holder.rollback()
    else:
        async with store.engine.connect() as holder:
            await holder.execute(text("LOCK TABLE telemetry IN EXCLUSIVE MODE"))
            yield
            await holder.rollback()


@pytest.mark.asyncio
async def test_a_slow_store_makes_the_history_drop_and_count_never_wait(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    counting = CountingStore(store)
    policy = HistoryPolicy(interval_s=0.001, batch_size=20, flush_s=0.01, queue_limit=50)
    history = TelemetryHistory(counting, policy, clock_ms=clock)
    async with running(history):
        # A healthy store keeps up: nothing is dropped.
        for _ in range(5):
            for _ in range(10):
                history.offer(report("p1"))
                clock.advance(10)
            await history.wait_until(written(history.stats.written + 10))
        assert history.stats.dropped == 0

        async with write_lock(store):
            counting.entered.clear()
            history.offer(report("p1"))
            clock.advance(10)
            await counting.entered.wait()  # the writer waits on the lock now
            # Ingestion goes on: every offer returns at once; beyond the queue's bound the
            # snapshots are dropped and counted.
            accepted = 0
            for _ in range(100):
                accepted += history.offer(report("p1"))
                clock.advance(10)
            assert (accepted, history.queued, history.stats.dropped) == (50, 50, 50)
        await history.wait_until(written(50 + 1 + 50))
    assert history.stats.failed == 0
    assert len(await store.telemetry.for_printer("p1", since=0, limit=1000)) == 101


@pytest.mark.asyncio
async def test_a_failed_write_costs_its_batch_not_the_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    await upgrade(url)
    async with (
        await open_store(url, busy_timeout_ms=100) as store,
        await open_store(url) as other,
    ):
        owner = await store.accounts.create_user(
            "o@example.org", display_name="O", password_hash="h"
        )
        await store.printers.create(
            "p1", owner_id=owner.id, name="P1", model="mk4", broker_username="p1",
            broker_password_hash="h",
        )  # fmt: skip
        clock = FakeClock()
        policy = HistoryPolicy(interval_s=0.001, flush_s=0.01)
        history = TelemetryHistory(store.telemetry, policy, clock_ms=clock)
        async with running(history):
            async with write_lock(other):  # longer than the store's busy timeout
                history.offer(report("p1", seq=1))
                await history.wait_until(lambda stats: stats.failed == 1)
            clock.advance(10)
            history.offer(report("p1", seq=2))
            await history.wait_until(written(1))
        assert [r.at for r in await store.telemetry.for_printer("p1", since=0)] == [T0 + 10]


@pytest.mark.asyncio
async def test_old_snapshots_are_deleted_periodically(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    for age_h in (30, 25, 23, 1):
        await store.telemetry.append("p1", at=T0 - age_h * HOUR_MS, data={"status": "idle"})
    policy = HistoryPolicy(retention_s=24 * 3600, prune_every_s=0.05)
    history = TelemetryHistory(store.telemetry, policy, clock_ms=clock)
    async with running(history):
        await history.wait_until(lambda stats: stats.prunes >= 1)
        remaining = await store.telemetry.for_printer("p1", since=0)
        assert [T0 - r.at for r in remaining] == [23 * HOUR_MS, 1 * HOUR_MS]
        assert history.stats.pruned == 2
        # Time passes: the next rounds delete what has aged past the retention since.
        clock.advance(2 * HOUR_MS)
        await history.wait_until(lambda stats: stats.pruned == 3)
        remaining = await store.telemetry.for_printer("p1", since=0)
        assert [T0 - r.at for r in remaining] == [1 * HOUR_MS]


def test_history_settings_come_from_the_environment_and_must_be_positive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRINTFLEET_TELEMETRY_HISTORY_INTERVAL_S", "2.5")
    monkeypatch.setenv("PRINTFLEET_TELEMETRY_RETENTION_S", "3600")
    settings = Settings.from_env()
    assert (settings.telemetry_history_interval_s, settings.telemetry_retention_s) == (2.5, 3600)
    monkeypatch.setenv("PRINTFLEET_TELEMETRY_HISTORY_INTERVAL_S", "0")
    with pytest.raises(ValidationError, match="telemetry_history_interval_s"):
        Settings.from_env()
    with pytest.raises(ValueError, match="interval_s must be positive"):
        HistoryPolicy(interval_s=0)
    with pytest.raises(ValueError, match="at least 1"):
        HistoryPolicy(queue_limit=0)


# ---------------------------------------------------------------------------------------------
# Through a real cloud and a real Mosquitto.


def _counter(metrics: str, outcome: str) -> float:
    match = re.search(
        rf'^printfleet_telemetry_history_snapshots_total{{outcome="{outcome}"}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert match is not None, metrics
    return float(match.group(1))


@pytest.mark.asyncio
async def test_reports_through_mosquitto_become_history_readers_of_the_printer_can_read(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path, api_database_url, mosquitto.url, telemetry_history_interval_s=60
    )
    async with serving(settings) as cloud:
        client = cloud.client
        owner = await sign_up(client, "owner@example.org")
        viewer = await sign_up(client, "viewer@example.org")
        stranger = await sign_up(client, "stranger@example.org")
        printer_id = unique("hist")
        made = await client.post(
            "/api/v1/printers",
            headers=bearer(owner),
            json={"id": printer_id, "name": "History", "model": "p1"},
        )
        assert made.status_code == 201, made.text
        shared = await client.post(
            f"/api/v1/printers/{printer_id}/shares",
            headers=bearer(owner),
            json={"email": "viewer@example.org", "role": "viewer"},
        )
        assert shared.status_code == 201, shared.text
        await cloud.link_verified()  # the cloud listens to printers from then on
        await _publish_burst(cloud, mosquitto, printer_id, count=20)

        # The burst is inside one interval: only its first report is kept.
        async def written() -> str | None:
            metrics = (await client.get("/metrics")).text
            return metrics if _counter(metrics, "written") >= 1 else None

        metrics = await eventually(written)
        assert _counter(metrics, "written") == 1
        assert _counter(metrics, "sampled_out") >= 19
        path = f"/api/v1/printers/{printer_id}/telemetry"
        points = (await client.get(path, headers=bearer(viewer))).json()
        assert len(points) == 1
        assert points[0]["hotend"] == {"current_c": 200.1, "target_c": 210.0}
        assert points[0]["bed"] == {"current_c": 59.5, "target_c": 60.0}
        assert (points[0]["status"], points[0]["percent"]) == ("printing", 40)
        owners = await client.get(f"{path}?last_s=30", headers=bearer(owner))
        assert owners.json() == points
        later = await client.get(f"{path}?since={points[0]['at'] + 1}", headers=bearer(owner))
        assert later.json() == []

        async with AsyncClient(cloud.url, token=viewer) as sdk:
            through_sdk = await sdk.printer_telemetry(printer_id, last_s=60)
            assert [point.model_dump() for point in through_sdk] == points
        async with AsyncClient(cloud.url, token=stranger) as sdk:
            with pytest.raises(NotFound):
                await sdk.printer_telemetry(printer_id)
        hidden = await client.get(path, headers=bearer(stranger))
        assert hidden.status_code == 404
        # Both bounds given: the later one counts.
        both = await client.get(f"{path}?since=0&last_s=60", headers=bearer(owner))
        assert both.json() == points
        negative = await client.get(f"{path}?last_s=-5", headers=bearer(owner))
        assert negative.status_code == 422


async def _publish_burst(
    cloud: Running, broker: MosquittoBroker, printer_id: str, *, count: int
) -> None:
    """``count`` reports published at once as the printer; returns once the cloud has them."""
    topics = Topics()
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=unique("pub")) as mqtt:
        for seq in range(1, count + 1):
            await mqtt.publish(
                topics.telemetry(printer_id), encode(report(printer_id, seq, 2000 + seq))
            )
    assert cloud.context.core is not None
    fleet = cloud.context.core.fleet

    async def last_seen() -> int | None:
        latest = fleet.telemetry(printer_id)
        return 1 if latest is not None and latest.seq == count else None

    await eventually(last_seen)
