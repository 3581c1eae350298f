"""Audit log, alerts, notification channels and deliveries, and telemetry history in the store,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from sqlalchemy import delete, exc, update
from tests.cloud.conftest import T0, FakeClock, Seed

from printfleet.cloud.store import (
    Actor,
    ActorKind,
    AlertRecord,
    ChannelKind,
    NotFound,
    Severity,
    Store,
    new_id,
)
from printfleet.cloud.store.models import Alert, AuditEntry

# ---------------------------------------------------------------------------------------------
# Audit.


@pytest.mark.asyncio
async def test_audit_entries_answer_by_job_command_and_printer(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job_id, command_id = new_id(), new_id()
    dispatcher = Actor.system("dispatcher")
    first = await store.audit.append(
        dispatcher, "command.start", printer_id="p1", job_id=job_id, command_id=command_id,
        detail={"not_after": T0 + 30_000, "nested": {"a": [1, 2.5, None, True]}},
    )  # fmt: skip
    clock.advance(1_000)
    second = await store.audit.append(
        Actor.printer("p1"), "command.acked", printer_id="p1", job_id=job_id, command_id=command_id
    )
    clock.advance(1_000)
    third = await store.audit.append(Actor.user(seed.owner.id), "plate.confirmed", printer_id="p1")

    assert (first.at, first.actor.kind, first.detail) == (
        T0,
        ActorKind.SYSTEM,
        {"not_after": T0 + 30_000, "nested": {"a": [1, 2.5, None, True]}},
    )
    assert first.id < second.id < third.id
    assert await store.audit.for_job(job_id) == [first, second]
    assert await store.audit.for_command(command_id) == [first, second]
    # The printer's log holds "printer.created" (from the seed) first.
    assert (await store.audit.for_printer("p1"))[-3:] == [first, second, third]
    assert await store.audit.for_printer("p1", since=T0 + 1_000) == [second, third]
    assert await store.audit.for_printer("p1", limit=2) == [second, third]
    assert await store.audit.for_job(new_id()) == []


@pytest.mark.asyncio
async def test_a_printer_clearing_its_own_plate_is_audited_once_per_event(
    store: Store, seed: Seed
) -> None:
    """An auto-eject's evidence, as the broker may deliver it twice: one ``plate.cleared``
    entry per event, by the printer, in its words; unknown printers are refused."""
    first, second = new_id(), new_id()
    said = "p1 ejected its print: plate cleared by auto-eject"
    assert await store.audit.record_plate_cleared("p1", first, message=said)
    assert not await store.audit.record_plate_cleared("p1", first, message=said)
    assert await store.audit.record_plate_cleared("p1", second, message=said)
    cleared = [e for e in await store.audit.for_printer("p1") if e.action == "plate.cleared"]
    assert [(e.actor.kind, e.actor.id, e.detail) for e in cleared] == [
        (ActorKind.PRINTER, "p1", {"event_id": first, "evidence": said}),
        (ActorKind.PRINTER, "p1", {"event_id": second, "evidence": said}),
    ]
    with pytest.raises(NotFound):
        await store.audit.record_plate_cleared("nobody-1", new_id(), message=said)


@pytest.mark.asyncio
async def test_the_audit_log_cannot_be_rewritten(store: Store) -> None:
    job_id = new_id()
    entry = await store.audit.append(Actor.system("test"), "something", job_id=job_id)
    for statement in (
        update(AuditEntry).where(AuditEntry.id == entry.id).values(action="nothing"),
        delete(AuditEntry).where(AuditEntry.id == entry.id),
    ):
        with pytest.raises(exc.DBAPIError, match="append-only"):
            async with store.engine.begin() as connection:
                await connection.execute(statement)
    assert await store.audit.for_job(job_id) == [entry]


# ---------------------------------------------------------------------------------------------
# Alerts.


@pytest.mark.asyncio
async def test_alerts_are_listed_newest_first_and_acknowledged_once(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    job = (await store.jobs.create(seed.owner.id, sha256=seed.sha256, start_by=1, model="mk4")).job
    hot = await store.alerts.add(
        "p1", kind="thermal_fault", severity=Severity.CRITICAL, message="hotend runaway",
        job_id=job.view.id,
    )  # fmt: skip
    clock.advance(1_000)
    plate = await store.alerts.add(
        "p2", kind="plate_check", severity=Severity.WARNING, message="confirm the plate"
    )
    assert (hot.printer_id, hot.job_id, hot.kind, hot.severity, hot.message) == (
        "p1",
        job.view.id,
        "thermal_fault",
        Severity.CRITICAL,
        "hotend runaway",
    )
    assert (hot.created_at, hot.acked_by, hot.acked_at) == (T0, None, None)
    assert await store.alerts.latest() == [plate, hot]
    assert await store.alerts.latest(printer_ids=["p1"]) == [hot]
    assert await store.alerts.latest(printer_ids=[]) == []
    assert await store.alerts.latest(limit=1) == [plate]

    clock.advance(1_000)
    acked = await store.alerts.ack(hot.id, user_id=seed.owner.id)
    assert (acked.acked_by, acked.acked_at) == (seed.owner.id, T0 + 2_000)
    clock.advance(1_000)
    assert await store.alerts.ack(hot.id, user_id=seed.other.id) == acked
    assert await store.alerts.latest(unacked_only=True) == [plate]
    with pytest.raises(NotFound):
        await store.alerts.ack(new_id(), user_id=seed.owner.id)
    with pytest.raises(NotFound):
        await store.alerts.add("p9", kind="x", severity=Severity.INFO, message="unknown printer")


@pytest.mark.asyncio
async def test_alerts_whose_condition_cleared_are_resolved_not_acknowledged(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    def offline() -> Awaitable[AlertRecord]:
        return store.alerts.add(
            "p1", kind="printer_offline", severity=Severity.WARNING, message="p1 went away"
        )

    unseen, seen, legacy = await offline(), await offline(), await offline()
    other = await store.alerts.add(
        "p1", kind="thermal_fault", severity=Severity.CRITICAL, message="hotend runaway"
    )
    clock.advance(1_000)
    seen = await store.alerts.ack(seen.id, user_id=seed.owner.id)
    # What a cloud before resolutions did with a cleared alert: acknowledged it, by nobody.
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Alert).where(Alert.id == legacy.id).values(acked_at=T0 + 1_000)
        )
    needing_attention = await store.alerts.latest(unacked_only=True)
    assert sorted(alert.id for alert in needing_attention) == sorted([other.id, unseen.id])

    clock.advance(119_000)
    resolved = await store.alerts.resolve("p1", kind="printer_offline", resolution="p1 is back")
    assert sorted(alert.id for alert in resolved) == sorted([unseen.id, seen.id])
    by_id = {alert.id: alert for alert in await store.alerts.latest()}
    for alert_id in (unseen.id, seen.id):
        assert (by_id[alert_id].resolved_at, by_id[alert_id].resolution) == (
            T0 + 120_000,
            "p1 is back",
        )
    assert (by_id[unseen.id].acked_by, by_id[unseen.id].acked_at) == (None, None)
    assert by_id[unseen.id].duration_ms == 120_000
    # A person's acknowledgement stays theirs; the alert lasted until its condition cleared.
    assert (by_id[seen.id].acked_by, by_id[seen.id].acked_at) == (seed.owner.id, T0 + 1_000)
    assert by_id[seen.id].duration_ms == 120_000
    assert (by_id[legacy.id].resolved_at, by_id[legacy.id].duration_ms) == (None, 1_000)
    assert (by_id[other.id].resolved_at, by_id[other.id].duration_ms) == (None, None)
    assert await store.alerts.latest(unacked_only=True) == [other]
    clock.advance(1_000)
    assert await store.alerts.resolve("p1", kind="printer_offline", resolution="again") == []


# ---------------------------------------------------------------------------------------------
# Channels and deliveries.


@pytest.mark.asyncio
async def test_channels_belong_to_their_user(store: Store, seed: Seed, clock: FakeClock) -> None:
    hook = await store.channels.create(
        seed.owner.id, kind=ChannelKind.WEBHOOK, target="https://example.org/hook", secret="s"
    )
    clock.advance(1)
    mail = await store.channels.create(
        seed.owner.id, kind=ChannelKind.APPRISE, target="mailto://ops", enabled=False
    )
    assert (hook.kind, hook.target, hook.secret, hook.enabled) == (
        ChannelKind.WEBHOOK,
        "https://example.org/hook",
        "s",
        True,
    )
    assert (mail.secret, mail.enabled) == (None, False)
    assert await store.channels.for_user(seed.owner.id) == [hook, mail]
    assert await store.channels.for_user(seed.other.id) == []
    with pytest.raises(NotFound):
        await store.channels.create(new_id(), kind=ChannelKind.WEBHOOK, target="https://x")


@pytest.mark.asyncio
async def test_a_delivery_is_claimed_retried_and_finished(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    channel = await store.channels.create(seed.owner.id, kind=ChannelKind.WEBHOOK, target="h")
    queued = await store.deliveries.enqueue(channel.id, event_key="job:1", payload={"state": "x"})
    assert (queued.attempts, queued.next_attempt_at, queued.delivered_at) == (0, T0, None)
    # The same event again is the same delivery.
    again = await store.deliveries.enqueue(channel.id, event_key="job:1", payload={"other": 1})
    assert again == queued

    [claimed] = await store.deliveries.claim(lease_ms=10_000)
    assert (claimed.id, claimed.attempts, claimed.next_attempt_at) == (queued.id, 1, T0 + 10_000)
    assert claimed.payload == {"state": "x"}
    assert await store.deliveries.claim() == []  # leased

    await store.deliveries.failed(claimed.id, error="HTTP 502", retry_at=T0 + 5_000)
    clock.advance(4_999)
    assert await store.deliveries.claim() == []
    clock.advance(1)
    [retried] = await store.deliveries.claim()
    assert (retried.attempts, retried.last_error) == (2, "HTTP 502")

    await store.deliveries.succeeded(retried.id)
    clock.advance(60_000)
    assert await store.deliveries.claim() == []
    with pytest.raises(NotFound):
        await store.deliveries.succeeded(new_id())


@pytest.mark.asyncio
async def test_a_dead_lettered_delivery_is_never_claimed_again(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    channel = await store.channels.create(seed.owner.id, kind=ChannelKind.APPRISE, target="m")
    await store.deliveries.enqueue(channel.id, event_key="alert:1", payload={})
    [claimed] = await store.deliveries.claim(lease_ms=1_000)
    await store.deliveries.failed(claimed.id, error="refused", retry_at=None)
    clock.advance(3_600_000)
    assert await store.deliveries.claim() == []


@pytest.mark.asyncio
async def test_a_sender_s_given_up_delivery_is_kept(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    channel = await store.channels.create(seed.owner.id, kind=ChannelKind.WEBHOOK, target="h")
    # One the sender never queued here...
    kept = await store.deliveries.record_dead_letter(
        channel.id, event_key="n1", payload={"kind": "job_failed"}, attempts=5, error="HTTP 500"
    )
    assert (kept.attempts, kept.last_error, kept.dead_lettered_at, kept.payload) == (
        5,
        "HTTP 500",
        T0,
        {"kind": "job_failed"},
    )
    # ...and one it did: the queued row is marked, not duplicated.
    queued = await store.deliveries.enqueue(channel.id, event_key="n2", payload={"a": 1})
    clock.advance(1_000)
    given_up = await store.deliveries.record_dead_letter(
        channel.id, event_key="n2", payload={"a": 1}, attempts=3, error="timeout"
    )
    assert (given_up.id, given_up.dead_lettered_at, given_up.attempts) == (queued.id, T0 + 1_000, 3)
    assert await store.deliveries.claim() == []
    with pytest.raises(NotFound):
        await store.deliveries.record_dead_letter(
            new_id(), event_key="x", payload={}, attempts=1, error="e"
        )


@pytest.mark.asyncio
async def test_an_expired_lease_makes_a_delivery_due_again(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    # The sender that claimed it died: after the lease another one takes it (at least once).
    channel = await store.channels.create(seed.owner.id, kind=ChannelKind.WEBHOOK, target="h")
    await store.deliveries.enqueue(channel.id, event_key="k", payload={})
    [first] = await store.deliveries.claim(lease_ms=1_000)
    clock.advance(1_000)
    [second] = await store.deliveries.claim(lease_ms=1_000)
    assert (second.id, second.attempts) == (first.id, 2)


@pytest.mark.asyncio
async def test_concurrent_claims_take_different_deliveries(store: Store, seed: Seed) -> None:
    channel = await store.channels.create(seed.owner.id, kind=ChannelKind.WEBHOOK, target="h")
    for number in range(12):
        await store.deliveries.enqueue(channel.id, event_key=f"e{number}", payload={})
    batches = await asyncio.gather(*(store.deliveries.claim(limit=4) for _ in range(4)))
    claimed = [delivery.id for batch in batches for delivery in batch]
    assert len(claimed) == len(set(claimed)) == 12


# ---------------------------------------------------------------------------------------------
# Telemetry.


@pytest.mark.asyncio
async def test_telemetry_is_kept_until_pruned(store: Store, seed: Seed) -> None:
    for second in range(5):
        await store.telemetry.append(
            "p1", at=T0 + second * 1_000, data={"nozzle_dc": 2_000 + second, "pct": second * 20}
        )
    await store.telemetry.append("p2", at=T0, data={"nozzle_dc": 250})
    samples = await store.telemetry.for_printer("p1")
    assert [sample.at for sample in samples] == [T0 + n * 1_000 for n in range(5)]
    assert samples[0].data == {"nozzle_dc": 2_000, "pct": 0}
    assert [s.at for s in await store.telemetry.for_printer("p1", limit=2)] == [
        T0 + 3_000,
        T0 + 4_000,
    ]
    assert [s.at for s in await store.telemetry.for_printer("p1", since=T0 + 3_000)] == [
        T0 + 3_000,
        T0 + 4_000,
    ]
    assert await store.telemetry.prune(before=T0 + 2_000) == 3
    assert len(await store.telemetry.for_printer("p1")) == 3
    assert await store.telemetry.for_printer("p2") == []
    with pytest.raises(NotFound):
        await store.telemetry.append("p9", at=T0, data={})
