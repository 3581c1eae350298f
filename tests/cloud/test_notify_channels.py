"""Notification channels over the real API (uvicorn, SQLite and PostgreSQL): validation, secrets
that never come back, test sends that are delivered or dead-lettered and shown as such, deletion;
and the JSON log format ``printfleet serve`` offers.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.cloud.test_api import (
    Running,
    api_database_url,
    bearer,
    cloud,
    serving,
    settings_for,
    sign_up,
)
from tests.cloud.test_e2e_jobs import until
from tests.cloud.test_notify_support import Reply, WebhookReceiver, serve_asgi

from printfleet.cloud.logs import JsonLogFormatter, use_json_logs, wants_json
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.notify import Notification, NotificationKind, goes_to_channels
from printfleet.cloud.store import Actor, open_store
from printfleet.cloud.store import ChannelKind as StoreChannelKind
from printfleet.protocol.lifecycle import JobState
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url", "cloud"]  # fixtures, used by name

SECRET = "channel-test-secret-0123456789"


async def _deliveries(cloud: Running, token: str, channel_id: str) -> list[dict[str, Any]]:
    response = await cloud.client.get(
        f"/api/v1/channels/{channel_id}/deliveries", headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


@pytest.mark.asyncio
async def test_a_channel_that_cannot_work_is_refused_with_the_reason(cloud: Running) -> None:
    client = cloud.client
    auth = bearer(await sign_up(client, "hooks@example.org"))

    for invalid, why in [
        ({"kind": "webhook", "target": "http://127.0.0.1:9/hook"}, "secret"),
        ({"kind": "webhook", "target": "ftp://example.org/x", "secret": SECRET}, "http"),
        ({"kind": "apprise", "target": "mailto://127.0.0.1", "secret": SECRET}, "secret"),
        ({"kind": "apprise", "target": "nonsense://what"}, "Apprise"),
        ({"kind": "webhook", "target": "http://h/", "secret": "short"}, "secret"),
        ({"kind": "pigeon", "target": "http://h/", "secret": SECRET}, "kind"),
    ]:
        refused = await client.post("/api/v1/channels", headers=auth, json=invalid)
        assert refused.status_code == 422, invalid
        assert why in refused.json()["message"], refused.json()


@pytest.mark.asyncio
async def test_channels_are_tested_and_their_deliveries_shown(cloud: Running) -> None:
    client = cloud.client
    token = await sign_up(client, "hooks@example.org")
    auth = bearer(token)

    working = WebhookReceiver(SECRET)
    gone = WebhookReceiver(SECRET, [Reply(status=410)])
    async with serve_asgi(working.app) as working_url, serve_asgi(gone.app) as gone_url:
        channels = {}
        for name, url in (("working", working_url), ("gone", gone_url)):
            made = await client.post(
                "/api/v1/channels",
                headers=auth,
                json={"kind": "webhook", "target": f"{url}/hook?token=unshown", "secret": SECRET},
            )
            assert made.status_code == 201, made.text
            channels[name] = made.json()["id"]
            # Neither the secret nor the URL's path and query (often a token) come back.
            assert SECRET not in made.text
            assert "unshown" not in made.text
        mail = await client.post(
            "/api/v1/channels",
            headers=auth,
            json={"kind": "apprise", "target": "mailtos://me:hunter2@example.org?smtp=127.0.0.1"},
        )
        assert mail.status_code == 201
        assert mail.json()["target"] == "mailtos://..."
        listed = await client.get("/api/v1/channels", headers=auth)
        assert [c["id"] for c in listed.json()] == [*channels.values(), mail.json()["id"]]
        assert "hunter2" not in listed.text
        assert SECRET not in listed.text

        sent = {}
        for name, channel_id in channels.items():
            test = await client.post(f"/api/v1/channels/{channel_id}/test", headers=auth)
            assert test.status_code == 202, test.text
            sent[name] = test.json()["notification_id"]

        (hook,) = await working.wait_for(1)
        assert hook.signature_error is None
        assert json.loads(hook.body)["kind"] == "test"
        assert json.loads(hook.body)["id"] == sent["working"]

        async def settled() -> bool:
            rows = [
                row
                for channel_id in channels.values()
                for row in await _deliveries(cloud, token, channel_id)
            ]
            return len(rows) == 2 and all(row["state"] != "pending" for row in rows)

        await until(settled, within=10)
        [delivered] = await _deliveries(cloud, token, channels["working"])
        assert delivered["state"] == "delivered"
        assert delivered["notification_id"] == sent["working"]
        assert delivered["kind"] == "test"
        assert delivered["attempts"] == 1
        [dead] = await _deliveries(cloud, token, channels["gone"])
        assert dead["state"] == "dead_letter"
        assert dead["attempts"] == 1
        assert "410" in dead["last_error"]
        assert len(gone.received) == 1  # a permanent refusal is not retried
        # The test send went to the one channel asked for, never to the mailbox.
        assert len(working.received) == 1

    metrics = (await client.get("/metrics")).text
    assert 'printfleet_notifications_total{channel="webhook",outcome="delivered"} 1.0' in metrics
    assert 'printfleet_notifications_total{channel="webhook",outcome="failed"} 1.0' in metrics

    removed = await client.delete(f"/api/v1/channels/{channels['gone']}", headers=auth)
    assert removed.status_code == 200
    assert (
        await client.get(f"/api/v1/channels/{channels['gone']}/deliveries", headers=auth)
    ).status_code == 404
    listed = await client.get("/api/v1/channels", headers=auth)
    assert channels["gone"] not in {c["id"] for c in listed.json()}


def test_what_goes_to_channels_besides_the_stream() -> None:
    assert goes_to_channels(NotificationKind.THERMAL_FAULT)
    assert goes_to_channels(NotificationKind.PRINTER_OFFLINE)
    assert goes_to_channels(NotificationKind.JOB_EXPIRED)
    assert goes_to_channels(NotificationKind.TEST)
    assert not goes_to_channels(NotificationKind.JOB_COMPLETED)
    assert goes_to_channels(NotificationKind.JOB_COMPLETED, wants_completion=True)
    for live_only in (
        NotificationKind.JOB_STARTED,
        NotificationKind.JOB_PROGRESS,
        NotificationKind.PRINTER_STATE,
        NotificationKind.PRINTER_TELEMETRY,
    ):
        assert not goes_to_channels(live_only, wants_completion=True)


def test_json_logs_carry_job_and_printer_ids() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        use_json_logs(stream, level=logging.INFO)
        logging.getLogger("printfleet.test").warning(
            "job %s expired", "j-1", extra={"job_id": "j-1", "printer_id": "x1-a"}
        )
        logging.getLogger("printfleet.test").info("no ids here")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "job j-1 expired"
    assert first["level"] == "warning"
    assert first["logger"] == "printfleet.test"
    assert (first["job_id"], first["printer_id"]) == ("j-1", "x1-a")
    assert first["time"].endswith("+00:00")
    assert "job_id" not in second

    error = RuntimeError("inside")
    exc_info = (RuntimeError, error, None)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, exc_info)
    assert "RuntimeError: inside" in json.loads(JsonLogFormatter().format(record))["exception"]

    assert wants_json({"PRINTFLEET_LOG_FORMAT": "JSON"})
    assert not wants_json({})
    assert not wants_json({"PRINTFLEET_LOG_FORMAT": "text"})
    with pytest.raises(ValueError, match="'json' or 'text'"):
        wants_json({"PRINTFLEET_LOG_FORMAT": "yaml"})


@pytest.mark.asyncio
async def test_a_delivery_left_unsettled_by_a_dead_cloud_is_sent_again(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with serve_asgi(receiver.app) as url:
        # A cloud queued a thermal-fault webhook, then died before sending it.
        await upgrade(api_database_url)
        async with await open_store(api_database_url) as store:
            user = await store.accounts.create_user(
                "o@example.org", display_name="O", password_hash="-"
            )
            channel = await store.channels.create(
                user.id, kind=StoreChannelKind.WEBHOOK, target=f"{url}/hook", secret=SECRET
            )
            lost = Notification.create(
                NotificationKind.THERMAL_FAULT,
                title="Thermal fault on x1: heaters are off",
                message="hotend sensor open",
                user_ids=[user.id],
                printer_id="x1",
            )
            await store.deliveries.enqueue(
                channel.id, event_key=lost.id, payload=dict(lost.payload())
            )

        settings = settings_for(tmp_path, api_database_url, mosquitto.url, delivery_lease_s=1.0)
        async with serving(settings) as cloud:
            (hook,) = await asyncio.wait_for(receiver.wait_for(1), 10)
            assert hook.signature_error is None
            assert json.loads(hook.body) == lost.payload()

            async def settled() -> bool:
                rows = await cloud.context.store.deliveries.for_channel(channel.id)
                return rows[0].delivered_at is not None

            await until(settled, within=10)
        assert len(receiver.received) == 1


@pytest.mark.asyncio
async def test_a_starting_cloud_tells_of_job_ends_a_crash_left_untold(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with serve_asgi(receiver.app) as url:
        # A cloud expired a job, then died before it queued the submitter's notification.
        await upgrade(api_database_url)
        async with await open_store(api_database_url) as store:
            user = await store.accounts.create_user(
                "o@example.org", display_name="O", password_hash="-"
            )
            await store.channels.create(
                user.id, kind=StoreChannelKind.WEBHOOK, target=f"{url}/hook", secret=SECRET
            )
            created = await store.jobs.create(
                user.id, sha256="ab" * 32, start_by=1, model="p1", name="cube.gcode"
            )
            await store.jobs.record_terminal(
                replace(created.job.view, state=JobState.EXPIRED, reason="start window closed"),
                expected_version=created.job.version,
                actor=Actor.system("expiry"),
            )

        async with serving(settings_for(tmp_path, api_database_url, mosquitto.url)):
            (hook,) = await asyncio.wait_for(receiver.wait_for(1), 10)
        told = json.loads(hook.body)
        assert (told["kind"], told["job_id"]) == ("job_expired", created.job.view.id)
        assert told["data"]["reason"] == "start window closed"
        assert hook.signature_error is None
