"""The ``Announcer`` over a real store (SQLite and PostgreSQL), a real notifier and a real webhook
receiver: who is told what, what leaves the cloud, and that nothing is told twice, even by a
restarted cloud hearing the same printer message again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from tests.cloud.conftest import FakeClock, Seed
from tests.cloud.test_notify_support import LOOPBACK_ALLOWED, WebhookReceiver, serve_asgi

from printfleet.cloud.notify import (
    AppriseSender,
    DeliveryOutcome,
    EventBus,
    Notification,
    NotificationKind,
    Notifier,
    Subscription,
    WebhookSender,
    outbound_client,
)
from printfleet.cloud.notify.announcer import Announcer
from printfleet.cloud.store import Actor, ChannelKind, ShareRole, Store
from printfleet.protocol.lifecycle import JobEvent, JobState
from printfleet.protocol.messages import (
    AlertBody,
    PlateStatus,
    Presence,
    PrinterStateBody,
    PrinterStatus,
    make_event,
)

SECRET = "announcer-test-secret-0123"
ALERT_EVENT_ID = "01900000-0000-7000-8000-0000000000a1"


@contextlib.asynccontextmanager
async def announcing(store: Store) -> AsyncIterator[Announcer]:
    """An announcer as the app wires it, its notifier running; drained on exit."""
    announcers: list[Announcer] = []

    async def ended(outcome: DeliveryOutcome) -> None:
        await announcers[0].delivery_ended(outcome)

    async with outbound_client(LOOPBACK_ALLOWED) as client, asyncio.TaskGroup() as group:
        notifier = Notifier(
            EventBus(),
            webhooks=WebhookSender(client, max_attempts=1),
            apprise=AppriseSender(policy=LOOPBACK_ALLOWED),
            on_outcome=ended,
        )
        announcers.append(Announcer(store, notifier))
        group.create_task(notifier.run())
        try:
            yield announcers[0]
        finally:
            notifier.close()


async def taken(subscription: Subscription) -> list[Notification]:
    """Everything queued for the subscriber now (publishing never waits, so this is all)."""
    return [await subscription.receive() for _ in range(len(subscription))]


@pytest.mark.asyncio
async def test_job_changes_reach_the_submitter_and_only_ends_owed_leave_the_cloud(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with serve_asgi(receiver.app) as url, announcing(store) as announcer:
        channel = await store.channels.create(
            seed.owner.id, kind=ChannelKind.WEBHOOK, target=f"{url}/hook", secret=SECRET
        )
        bus = announcer.notifier.bus
        async with bus.subscribe(seed.owner.id) as mine, bus.subscribe(seed.other.id) as theirs:
            for notify_completion in (False, True):
                created = await store.jobs.create(
                    seed.owner.id,
                    sha256=seed.sha256,
                    start_by=clock.now + 60_000,
                    printer_id="p1",
                    name="cube.gcode",
                    notify_completion=notify_completion,
                )
                view = replace(created.job.view, assigned_printer="p1", reason="nozzle clog")
                changes = [
                    (JobEvent.STAGED, JobState.STAGED),
                    (JobEvent.STARTED, JobState.PRINTING),
                    (JobEvent.COMPLETED, JobState.COMPLETED),
                    (JobEvent.FAILED, JobState.FAILED),
                    (JobEvent.CANCELLED, JobState.CANCELLED),
                    (JobEvent.REJECTED, JobState.REJECTED),
                    (JobEvent.EXPIRED, JobState.EXPIRED),
                    (JobEvent.DISPATCHED, JobState.DISPATCHED),  # told when the printer accepts
                ]
                for version, (event, state) in enumerate(changes, start=2):
                    await announcer.job_changed(
                        replace(view, state=state),
                        event,
                        owner=seed.owner.id,
                        name="cube.gcode",
                        version=version,
                        notify_completion=notify_completion,
                    )
                # The same change announced again (a retried callback): nothing new.
                await announcer.job_changed(
                    replace(view, state=JobState.FAILED),
                    JobEvent.FAILED,
                    owner=seed.owner.id,
                    name="cube.gcode",
                    version=5,
                    notify_completion=notify_completion,
                )
                told = await taken(mine)
                assert [n.kind.value for n in told] == [
                    "job_staged",
                    "job_started",
                    "job_completed",
                    "job_failed",
                    "job_cancelled",
                    "job_rejected",
                    "job_expired",
                ]
                assert {n.job_id for n in told} == {view.id}
                [failed] = [n for n in told if n.kind is NotificationKind.JOB_FAILED]
                assert failed.data["reason"] == "nozzle clog"
                assert "nozzle clog" in failed.message
            assert await taken(theirs) == []

        # Queued per channel before they were sent: every end but completion, and completion
        # only for the job that asked.
        rows = await store.deliveries.for_channel(channel.id)
        kinds = sorted(str(row.payload["kind"]) for row in rows)
        owed = ["job_cancelled", "job_expired", "job_failed", "job_rejected"]
        assert kinds == sorted([*owed, *owed, "job_completed"])
        hooks = await receiver.wait_for(len(rows))
        assert all(hook.signature_error is None for hook in hooks)

    # The failures, refusals and expiries are alerts on their printer too, once each.
    alerts = await store.alerts.latest(printer_ids=["p1"])
    assert sorted(a.kind for a in alerts) == sorted(
        ["job_expired", "job_failed", "job_rejected"] * 2
    )


@pytest.mark.asyncio
async def test_an_alert_is_raised_once_for_everyone_who_can_see_the_printer_even_after_a_restart(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    await store.printers.share(
        "p1", seed.other.id, ShareRole.VIEWER, actor=Actor.user(seed.owner.id)
    )
    stranger = await store.accounts.create_user(
        "s@example.org", display_name="S", password_hash="h"
    )
    alert = make_event(
        AlertBody(kind="thermal_fault", severity="critical", message="hotend sensor open"),
        event_id=ALERT_EVENT_ID,
        printer_id="p1",
        job_id=None,
        sent_at=None,
    )
    job = await store.jobs.create(
        seed.owner.id, sha256=seed.sha256, start_by=clock.now + 60_000, printer_id="p1"
    )
    async with announcing(store) as first:
        bus = first.notifier.bus
        async with (
            bus.subscribe(seed.owner.id) as owner,
            bus.subscribe(seed.other.id) as viewer,
            bus.subscribe(stranger.id) as outsider,
        ):
            await first.printer_message("p1", event=alert)
            await first.printer_message("p1", event=alert)  # the broker's second copy
            for _ in range(3):  # a waiting job, every dispatch round
                await first.plate_needed(job.job.view.id, "p1")
            for subscription in (owner, viewer):
                told = await taken(subscription)
                assert [n.kind for n in told] == [
                    NotificationKind.THERMAL_FAULT,
                    NotificationKind.PLATE_CONFIRMATION_NEEDED,
                ]
            assert await taken(outsider) == []
            [fault, plate] = told

    # A restarted cloud: nothing in memory, the same messages heard again.
    async with (
        announcing(store) as second,
        second.notifier.bus.subscribe(seed.owner.id) as owner,
    ):
        await second.printer_message("p1", event=alert)
        await second.plate_needed(job.job.view.id, "p1")
        assert await taken(owner) == []

    alerts = await store.alerts.latest(printer_ids=["p1"])
    assert sorted(a.kind for a in alerts) == ["plate_confirmation_needed", "thermal_fault"]
    assert {a.id for a in alerts} == {fault.data["alert_id"], plate.data["alert_id"]}
    assert plate.job_id == job.job.view.id


def _state(status: PrinterStatus, plate: PlateStatus = PlateStatus.CLEAR) -> PrinterStateBody:
    return PrinterStateBody(
        status=status,
        job_id=None,
        plate=plate,
        has_plate_sensor=True,
        plate_check=True,
        fault=None,
        clock_synced=True,
    )


@pytest.mark.asyncio
async def test_offline_is_an_alert_only_for_a_printer_seen_online(store: Store, seed: Seed) -> None:
    offline = Presence(printer_id="p1", online=False)
    async with (
        announcing(store) as announcer,
        announcer.notifier.bus.subscribe(seed.owner.id) as owner,
    ):
        # The broker hands a starting cloud every printer's retained "offline": old news.
        await announcer.printer_message("p1", presence=offline)
        assert await taken(owner) == []

        event = make_event(
            _state(PrinterStatus.IDLE),
            event_id="01900000-0000-7000-8000-0000000000b1",
            printer_id="p1",
            job_id=None,
            sent_at=None,
        )
        await announcer.printer_message("p1", event=event)
        await announcer.printer_message("p1", event=event)  # unchanged: not told again
        await announcer.printer_message("p1", presence=offline)
        await announcer.printer_message("p1", presence=offline)
        told = await taken(owner)
    assert [(n.kind, n.data.get("online")) for n in told] == [
        (NotificationKind.PRINTER_STATE, True),
        (NotificationKind.PRINTER_STATE, False),
        (NotificationKind.PRINTER_OFFLINE, None),
    ]
    assert [a.kind for a in await store.alerts.latest(printer_ids=["p1"])] == ["printer_offline"]


@pytest.mark.asyncio
async def test_a_plate_that_becomes_clear_resolves_its_confirmation_alerts(
    store: Store, seed: Seed
) -> None:
    """The wait a plate_confirmation_needed alert is about ends when the plate reads clear; a
    report that only repeats "clear" resolves nothing raised since, and a person's
    acknowledgement stays."""
    ids = iter(f"01900000-0000-7000-8000-0000000001{n:02d}" for n in range(50))

    async def state(plate: PlateStatus) -> None:
        body = _state(PrinterStatus.IDLE, plate)
        event = make_event(body, event_id=next(ids), printer_id="p1", job_id=None, sent_at=None)
        await announcer.printer_message("p1", event=event)

    async def alert() -> None:
        body = AlertBody(
            kind="plate_confirmation_needed",
            severity="info",
            message="Remove the print, then confirm the plate is clear",
        )
        event = make_event(body, event_id=next(ids), printer_id="p1", job_id=None, sent_at=None)
        await announcer.printer_message("p1", event=event)

    async def open_kinds() -> list[str]:
        return [a.kind for a in await store.alerts.latest(printer_ids=["p1"], unacked_only=True)]

    async with announcing(store) as announcer:
        await state(PlateStatus.NEEDS_CONFIRMATION)
        await alert()
        await alert()
        assert await open_kinds() == ["plate_confirmation_needed"] * 2
        (first, _) = await store.alerts.latest(printer_ids=["p1"])
        await store.alerts.ack(first.id, user_id=seed.owner.id)

        await state(PlateStatus.CLEAR)
        assert await open_kinds() == []
        resolved = await store.alerts.latest(printer_ids=["p1"])
        assert {a.resolution for a in resolved} == {"the plate of p1 is clear"}
        assert {a.acked_by for a in resolved} == {seed.owner.id, None}

        # Clear again, and an alert raised meanwhile: still open until the next clearing.
        await alert()
        await state(PlateStatus.CLEAR)
        assert await open_kinds() == ["plate_confirmation_needed"]
        await state(PlateStatus.NEEDS_CONFIRMATION)
        assert await open_kinds() == ["plate_confirmation_needed"]
        await state(PlateStatus.CLEAR)
        assert await open_kinds() == []


@pytest.mark.asyncio
async def test_a_job_end_a_crash_left_untold_is_told_once_by_the_next_cloud(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with serve_asgi(receiver.app) as url:
        channel = await store.channels.create(
            seed.owner.id, kind=ChannelKind.WEBHOOK, target=f"{url}/hook", secret=SECRET
        )
        ends = []
        for _ in range(2):
            created = await store.jobs.create(
                seed.owner.id, sha256=seed.sha256, start_by=clock.now + 1_000, printer_id="p1"
            )
            ends.append(
                await store.jobs.record_terminal(
                    replace(created.job.view, state=JobState.EXPIRED, reason="window closed"),
                    expected_version=created.job.version,
                    actor=Actor.system("expiry"),
                )
            )
        untold, told = ends
        async with announcing(store) as before_the_crash:
            # Only the second end was announced before the cloud died.
            await before_the_crash.job_changed(
                told.view, JobEvent.EXPIRED, owner=seed.owner.id, name="", version=told.version
            )
        await receiver.wait_for(1)
        clock.advance(1_000)
        later = await store.channels.create(
            seed.owner.id, kind=ChannelKind.WEBHOOK, target=f"{url}/later", secret=SECRET
        )

        async with announcing(store) as after_the_restart:
            recent = await store.jobs.ended_since(clock.now - 60_000)
            assert await after_the_restart.catch_up(recent) == 1
            assert await after_the_restart.catch_up(recent) == 0
        hooks = await receiver.wait_for(2)

    assert sorted(hook.body.count(untold.view.id.encode()) for hook in hooks) == [0, 1]
    assert all(hook.signature_error is None for hook in hooks)
    # The channel added after those ends was not sent them.
    assert await store.deliveries.for_channel(later.id) == []
    assert len(await store.deliveries.for_channel(channel.id)) == 2


@pytest.mark.asyncio
async def test_the_log_says_where_a_job_is_and_why_only_when_there_is_a_reason(
    store: Store, seed: Seed, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    created = await store.jobs.create(
        seed.owner.id, sha256=seed.sha256, start_by=clock.now + 60_000, printer_id="p1", name="a"
    )
    view = created.job.view
    async with announcing(store) as announcer:
        with caplog.at_level(logging.INFO, logger="printfleet.cloud.notify.announcer"):
            await announcer.job_changed(view, None, owner=seed.owner.id, name="a", version=1)
            staged = replace(view, state=JobState.STAGED, reason="waiting for the plate")
            await announcer.job_changed(
                staged, JobEvent.STAGED, owner=seed.owner.id, name="a", version=2
            )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("job ")]
    assert lines == [
        f"job {view.id} is queued on p1",
        f"job {view.id} is staged on p1: waiting for the plate",
    ]
