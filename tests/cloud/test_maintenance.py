"""Maintenance counters and reminders: print hours counted from ended prints as statistics count
them, a part due at its interval and not before, one ``maintenance_due`` alert per part and
service reaching a channel, resolved by the service; intervals, roles, strangers and bad part
names through the real API; a real print on a simulated printer raising the reminder. On SQLite
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from tests.cloud.conftest import FakeClock, Seed
from tests.cloud.test_api import api_database_url, bearer, sign_up
from tests.cloud.test_e2e_jobs import HOOK_SECRET, LONG, shop, until, webhook_channel
from tests.cloud.test_notify_announcer import SECRET, announcing
from tests.cloud.test_notify_support import WebhookReceiver, serve_asgi

from printfleet.client import AsyncClient, InvalidRequest
from printfleet.cloud.notify.outbound import OutboundPolicy
from printfleet.cloud.service import CloudService
from printfleet.cloud.store import Actor, AuditNote, ChannelKind, Store, new_id
from printfleet.cloud.store.stats import JobHistory
from printfleet.cloud.usecases.maintenance import MaintenanceReminders
from printfleet.cloud.usecases.principal import Principal, Scope
from printfleet.cloud.usecases.stats import CostRates, GroupBy, summarize
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.signing import CommandSigner
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

HOUR = 3_600_000
DISPATCHER = Actor.system("dispatcher")


async def printed(
    store: Store,
    seed: Seed,
    clock: FakeClock,
    printer_id: str,
    hours: float,
    *,
    end: JobState = JobState.COMPLETED,
    start: str | None = "start:sent",
) -> None:
    """A job that the dispatcher started on ``printer_id`` (audited as ``start``, or never sent
    one if None) and that ended ``hours`` later as ``end``."""
    job = (
        await store.jobs.create(
            seed.owner.id, sha256=seed.sha256, start_by=clock.now + HOUR, printer_id=printer_id
        )
    ).job
    note = AuditNote(DISPATCHER, start, new_id(), {}) if start is not None else None
    view = replace(job.view, assigned_printer=printer_id, state=JobState.PRINTING)
    running = await store.jobs.save(view, expected_version=job.version, audit=note)
    clock.advance(round(hours * HOUR))
    await store.jobs.record_terminal(
        replace(running.view, state=end), expected_version=running.version, actor=DISPATCHER
    )


@pytest_asyncio.fixture
async def service(store: Store, clock: FakeClock) -> AsyncIterator[CloudService]:
    """The real service over the real store."""
    signer = CommandSigner.generate()
    yield CloudService(
        store,
        signer,
        CommandIssuer(signer, new_id),
        clock_ms=clock,
        outbound=OutboundPolicy(["127.0.0.1"]),
    )


def owner_of(seed: Seed) -> Principal:
    return Principal(seed.owner, frozenset({Scope.READ.value, Scope.WRITE.value}))


# ---------------------------------------------------------------------------------------------
# Counting.


@pytest.mark.asyncio
async def test_print_hours_count_ended_prints_as_statistics_do(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    p1, p2 = (printer.id for printer in seed.printers)
    await printed(store, seed, clock, p1, 2)
    await printed(store, seed, clock, p1, 1.5, end=JobState.FAILED)
    await printed(store, seed, clock, p1, 0.25, end=JobState.CANCELLED, start="start:unknown")
    # Never sent a start: nothing printed, however long it waited.
    await printed(store, seed, clock, p1, 10, end=JobState.CANCELLED, start=None)
    await printed(store, seed, clock, p1, 10, end=JobState.REJECTED)
    await printed(store, seed, clock, p2, 3)
    # Still printing: counted once it ends.
    open_job = (
        await store.jobs.create(
            seed.owner.id, sha256=seed.sha256, start_by=clock.now, printer_id=p1
        )
    ).job
    await store.jobs.save(
        replace(open_job.view, assigned_printer=p1, state=JobState.PRINTING),
        expected_version=open_job.version,
        audit=AuditNote(DISPATCHER, "start:sent", new_id(), {}),
    )
    clock.advance(5 * HOUR)

    assert (await store.maintenance.state(p1)).print_hours == 3.75
    assert (await store.maintenance.state(p2)).print_hours == 3.0
    history = await JobHistory(store.database).ended_jobs(seed.owner.id)
    by_printer = summarize(history, by=GroupBy.PRINTER, rates=CostRates()).groups
    assert {group.key: group.print_hours for group in by_printer} == {p1: 3.75, p2: 3.0}


@pytest.mark.asyncio
async def test_hours_since_service_count_from_the_service(
    store: Store, seed: Seed, clock: FakeClock, service: CloudService
) -> None:
    p1 = seed.printers[0].id
    owner = owner_of(seed)
    fresh = await service.maintenance.maintenance(owner, p1)
    assert [(p.part, p.hours_since_service, p.interval_h, p.due) for p in fresh] == [
        ("nozzle", 0.0, 200.0, False),
        ("belts", 0.0, 1000.0, False),
    ]
    await printed(store, seed, clock, p1, 7)
    serviced_at = clock.advance(1)
    after = await service.maintenance.mark_serviced(owner, p1, "nozzle")
    assert [(p.part, p.hours_since_service, p.serviced_at) for p in after] == [
        ("nozzle", 0.0, serviced_at),
        ("belts", 7.0, None),
    ]
    await printed(store, seed, clock, p1, 2)
    later = await service.maintenance.maintenance(owner, p1)
    assert [p.hours_since_service for p in later] == [2.0, 9.0]
    (entry,) = [e for e in await store.audit.for_printer(p1) if e.action.startswith("maint")]
    assert (entry.action, entry.actor.id, entry.detail) == (
        "maintenance.serviced",
        seed.owner.id,
        {"part": "nozzle", "hours_since_service": 7.0},
    )


# ---------------------------------------------------------------------------------------------
# Reminders.


@pytest.mark.asyncio
async def test_a_part_is_due_at_its_interval_reminded_once_on_a_channel_and_resolved_by_service(
    store: Store, seed: Seed, clock: FakeClock, service: CloudService
) -> None:
    p1 = seed.printers[0].id
    owner = owner_of(seed)
    receiver = WebhookReceiver(SECRET)
    async with serve_asgi(receiver.app) as url, announcing(store) as announcer:
        channel = await store.channels.create(
            seed.owner.id, kind=ChannelKind.WEBHOOK, target=f"{url}/hook", secret=SECRET
        )
        reminders = MaintenanceReminders(store.maintenance, announcer)

        await printed(store, seed, clock, p1, 199.999)
        assert await reminders.job_ended(p1) == []
        assert not any(p.due for p in await service.maintenance.maintenance(owner, p1))
        assert await store.alerts.latest(printer_ids=[p1]) == []

        await printed(store, seed, clock, p1, 0.001)  # 200 hours exactly: due
        assert await reminders.job_ended(p1) == ["nozzle"]
        (hook,) = await asyncio.wait_for(receiver.wait_for(1), 10)
        told = json.loads(hook.body)
        assert told["data"]["alert_kind"] == "maintenance_due"
        assert (told["kind"], told["title"]) == ("maintenance_due", f"{p1} is due for service")
        assert told["message"] == f"{p1}: nozzle service due after 200 print hours (every 200 h)"

        # More prints, and the same end heard again: still one reminder, one delivery.
        await printed(store, seed, clock, p1, 3)
        assert await reminders.job_ended(p1) == []
        assert await reminders.job_ended(p1) == []
        (alert,) = await store.alerts.latest(printer_ids=[p1])
        assert (alert.kind, alert.resolved_at) == ("maintenance_due", None)
        assert len(await store.deliveries.for_channel(channel.id)) == 1

        served_at = clock.advance(1)
        await service.maintenance.mark_serviced(owner, p1, "nozzle")
        (resolved,) = await store.alerts.latest(printer_ids=[p1])
        assert (resolved.id, resolved.resolved_at, resolved.resolution) == (
            alert.id,
            served_at,
            f"{p1}: nozzle serviced by owner@example.org",
        )
        assert resolved.acked_at is None  # resolved, not acknowledged by anyone

        # The next cycle: a shorter interval makes the part due sooner, and reminds anew.
        await service.maintenance.set_interval(owner, p1, "nozzle", 50)
        await printed(store, seed, clock, p1, 49)
        assert await reminders.job_ended(p1) == []
        await printed(store, seed, clock, p1, 1.5)
        assert await reminders.job_ended(p1) == ["nozzle"]
        newest, first = await store.alerts.latest(printer_ids=[p1])
        assert first.id == alert.id
        assert newest.message == f"{p1}: nozzle service due after 50 print hours (every 50 h)"
        assert newest.resolved_at is None
        await asyncio.wait_for(receiver.wait_for(2), 10)


@pytest.mark.asyncio
async def test_a_reminder_noted_after_a_service_never_silences_the_next(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    p1 = seed.printers[0].id
    before = (await store.maintenance.state(p1)).part("belts")
    clock.advance(1)
    await store.maintenance.mark_serviced(p1, "belts", resolution="serviced")
    # A reminder raised for the cycle before the service is noted too late: nothing is noted.
    assert not await store.maintenance.mark_reminded(p1, "belts", serviced_at=before.serviced_at)
    now = (await store.maintenance.state(p1)).part("belts")
    assert (now.serviced_at, now.alerted_at) == (clock.now, None)
    assert await store.maintenance.mark_reminded(p1, "belts", serviced_at=now.serviced_at)
    assert (await store.maintenance.state(p1)).part("belts").alerted_at == clock.now


# ---------------------------------------------------------------------------------------------
# The API.


async def _status(client: Any, method: str, path: str, token: str, **kwargs: Any) -> Any:
    response = await client.request(method, path, headers=bearer(token), **kwargs)
    return response.status_code, response.json()


@pytest.mark.asyncio
async def test_the_api_lets_each_role_do_its_part_and_refuses_bad_input(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, email="owner@example.org") as s:
        client = s.client
        printer = await s.printer("p1", power_on=False)
        base = f"/api/v1/printers/{printer.id}/maintenance"
        operator = await sign_up(client, "operator@example.org")
        viewer = await sign_up(client, "viewer@example.org")
        stranger = await sign_up(client, "stranger@example.org")
        for email, role in (("operator@example.org", "operator"), ("viewer@example.org", "viewer")):
            await s.call(
                "POST", f"/api/v1/printers/{printer.id}/shares", json={"email": email, "role": role}
            )

        status, parts = await _status(client, "GET", base, viewer)
        assert status == 200
        assert parts == [
            {
                "part": "nozzle",
                "interval_h": 200.0,
                "default_interval": True,
                "hours_since_service": 0.0,
                "due": False,
                "serviced_at": None,
            },
            {
                "part": "belts",
                "interval_h": 1000.0,
                "default_interval": True,
                "hours_since_service": 0.0,
                "due": False,
                "serviced_at": None,
            },
        ]
        # A stranger learns nothing, not even that the printer exists.
        for method, path in (
            ("GET", base),
            ("POST", f"{base}/nozzle/serviced"),
            ("PUT", f"{base}/nozzle"),
        ):
            status, body = await _status(client, method, path, stranger, json={"interval_h": 1})
            assert (status, body["message"]) == (404, f"no printer {printer.id}")

        status, _ = await _status(client, "POST", f"{base}/nozzle/serviced", viewer)
        assert status == 403
        status, parts = await _status(client, "POST", f"{base}/nozzle/serviced", operator)
        assert status == 200
        assert parts[0]["serviced_at"] is not None
        status, _ = await _status(client, "PUT", f"{base}/belts", operator, json={"interval_h": 9})
        assert status == 403

        status, parts = await _status(
            client, "PUT", f"{base}/belts", s.token, json={"interval_h": 800}
        )
        assert status == 200
        assert (parts[1]["interval_h"], parts[1]["default_interval"]) == (800.0, False)
        status, parts = await _status(
            client, "PUT", f"{base}/belts", s.token, json={"interval_h": None}
        )
        assert (parts[1]["interval_h"], parts[1]["default_interval"]) == (1000.0, True)

        # Bad input: a clear 422 that says what is accepted.
        status, body = await _status(client, "POST", f"{base}/spindle/serviced", s.token)
        assert status == 422
        assert "nozzle, belts" in body["message"]
        for bad in (0, -5, 1e9, True, "300"):
            status, body = await _status(
                client, "PUT", f"{base}/nozzle", s.token, json={"interval_h": bad}
            )
            assert status == 422, bad
        status, body = await _status(
            client, "PUT", f"{base}/nozzle", s.token, json={"interval_h": 0}
        )
        assert "(e.g. 300)" in body["message"]
        status, body = await _status(client, "PUT", f"{base}/nozzle", s.token, json={})
        assert status == 422

        audit = await s.call("GET", "/api/v1/audit", params={"printer_id": printer.id})
        assert [(e["action"], e["detail"]) for e in audit if e["action"].startswith("maint")] == [
            ("maintenance.serviced", {"part": "nozzle", "hours_since_service": 0.0}),
            ("maintenance.interval", {"part": "belts", "interval_h": 800.0, "before": None}),
            ("maintenance.interval", {"part": "belts", "interval_h": None, "before": 800.0}),
        ]

        # The SDK reaches the same routes.
        async with AsyncClient(s.cloud.url, s.token) as sdk:
            parts_seen = await sdk.set_maintenance_interval(printer.id, "nozzle", 300)
            assert parts_seen[0].interval_h == 300.0
            assert [p.part for p in await sdk.maintenance(printer.id)] == ["nozzle", "belts"]
            assert (await sdk.mark_serviced(printer.id, "belts"))[1].serviced_at is not None
            with pytest.raises(InvalidRequest, match="nozzle, belts"):
                await sdk.mark_serviced(printer.id, "hotend")


@pytest.mark.asyncio
async def test_a_real_print_past_the_interval_raises_one_reminder_until_serviced(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(HOOK_SECRET)
    # A nozzle interval of 36 ms of printing (the setting): the first print makes it due.
    async with shop(
        tmp_path, api_database_url, mosquitto, email="farm@example.org", maintenance_nozzle_h=1e-5
    ) as s:
        x1 = await s.printer("x1")
        base = f"/api/v1/printers/{x1.id}/maintenance"

        async def reminders() -> list[dict[str, Any]]:
            alerts = await s.call("GET", "/api/v1/alerts")
            return [a for a in alerts if a["kind"] == "maintenance_due"]

        async def reminded() -> bool:
            return bool(await reminders())

        async def printed_once(job_id: str) -> None:
            async def ended() -> bool:
                return bool((await s.job(job_id))["state"] == "completed")

            await until(ended, within=30)
            assert x1.hardware.remove_print() == 1

        async with webhook_channel(s, receiver):
            await printed_once(await s.submit(x1.id))
            await until(reminded, within=10)
            (hook,) = await asyncio.wait_for(receiver.wait_for(1), 10)
            assert json.loads(hook.body)["data"]["alert_kind"] == "maintenance_due"
            await printed_once(await s.submit(x1.id))
            nozzle, belts = await s.call("GET", base)
            assert (nozzle["due"], belts["due"]) == (True, False)
            assert nozzle["hours_since_service"] > 1e-5
            (alert,) = await reminders()
            assert alert["message"] == (
                f"{x1.id}: nozzle service due after 0 print hours (every 1e-05 h)"
            )
            assert alert["resolved_at"] is None

            await s.call("POST", f"{base}/nozzle/serviced")
            (alert,) = await reminders()
            assert alert["resolution"] == f"{x1.id}: nozzle serviced by farm@example.org"
            assert alert["resolved_at"] is not None
            nozzle, _ = await s.call("GET", base)
            assert (nozzle["due"], nozzle["hours_since_service"]) == (False, 0.0)


@pytest.mark.asyncio
async def test_a_print_a_person_cancels_adds_its_hours_and_may_remind(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(
        tmp_path, api_database_url, mosquitto, email="cancel@example.org", maintenance_belts_h=1e-5
    ) as s:
        x1 = await s.printer("x1")
        job_id = await s.submit(x1.id, LONG)

        async def printing() -> bool:
            return bool((await s.job(job_id))["state"] == "printing")

        await until(printing, within=30)
        await s.call("POST", f"/api/v1/jobs/{job_id}/cancel")

        async def reminded() -> bool:
            alerts = await s.call("GET", "/api/v1/alerts")
            return any(a["kind"] == "maintenance_due" for a in alerts)

        await until(reminded, within=10)
        nozzle, belts = await s.call("GET", f"/api/v1/printers/{x1.id}/maintenance")
        # Due on the hours of the cancelled print alone (the API rounds them to 4 decimals).
        assert (nozzle["due"], belts["due"]) == (False, True)
