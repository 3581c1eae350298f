"""The SDK against a real cloud (uvicorn, SQLite, Mosquitto): every call, typed answers, and
the server's errors as the SDK's exceptions."""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import tomllib
from pathlib import Path

import pytest
from tests.client.faulty_server import FaultyServer
from tests.client.live_cloud import GCODE, PASSWORD, LiveCloud

from printfleet.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RetryPolicy,
    StreamEvent,
    Unauthenticated,
)
from printfleet.protocol.lifecycle import JobState
from printfleet.sim.samples import make_sample_gcode


def test_accounts_and_tokens(live_cloud: LiveCloud) -> None:
    ada = live_cloud.person("ada")
    with Client(live_cloud.url, policy=RetryPolicy.no_retries()) as anonymous:
        with pytest.raises(Unauthenticated) as refused:
            anonymous.login(ada.email, "not the password")
        assert refused.value.code == "invalid_credentials"
        assert refused.value.status == 401
        issued = anonymous.login(ada.email.upper(), PASSWORD, token_name="laptop")
        assert anonymous.token == issued.token
        assert issued.token.startswith("pf_")
        assert sorted(issued.scopes) == ["read", "write"]
        with pytest.raises(Conflict) as taken:
            anonymous.register(ada.email, PASSWORD)
        assert taken.value.code == "already_exists"
        with pytest.raises(InvalidRequest, match="password"):
            anonymous.register("short@example.org", "short")

    client = ada.client
    read_only = client.create_token("dashboard", ["read"], expires_in_s=3_600)
    assert read_only.scopes == ["read"]
    assert 3_500_000 < read_only.expires_at - read_only.created_at <= 3_600_000
    assert [t.name for t in client.list_tokens()] == ["login", "laptop", "dashboard"]
    with Client(live_cloud.url, read_only.token) as dashboard:
        assert dashboard.list_printers() == []
        with pytest.raises(Forbidden, match="write"):
            dashboard.provision_printer("ro-1", "x", "p1")
        revoked = client.revoke_token(read_only.id)
        assert revoked.revoked_at is not None
        with pytest.raises(Unauthenticated) as gone:
            dashboard.list_printers()
        assert gone.value.code == "invalid_token"


def test_printers_shares_plate_check_and_audit(live_cloud: LiveCloud) -> None:
    owner, bob = live_cloud.person("owner"), live_cloud.person("bob")
    printer_id = f"p1-{owner.token[-6:].lower().replace('_', 'x')}"
    provisioned = owner.client.provision_printer(printer_id, "Workshop", "p1")
    assert provisioned.printer.role == "owner"
    assert provisioned.broker_password
    assert tomllib.loads(provisioned.agent_config)["printer_id"] == printer_id
    with pytest.raises(Conflict):
        owner.client.provision_printer(printer_id, "again", "p1")

    printers = owner.client.list_printers()
    assert [p.id for p in printers] == [printer_id]
    assert printers[0].online is False
    assert printers[0].status is None
    with pytest.raises(NotFound):
        bob.client.get_printer(printer_id)
    share = owner.client.share_printer(printer_id, bob.email, "viewer")
    assert share.role == "viewer"
    assert bob.client.get_printer(printer_id).role == "viewer"
    with pytest.raises(Forbidden):
        bob.client.clear_fault(printer_id)

    with pytest.raises(InvalidRequest, match="confirm"):
        owner.client.set_plate_check(printer_id, enabled=False)
    unchecked = owner.client.set_plate_check(printer_id, enabled=False, confirm=True)
    assert unchecked.plate_check is False
    actions = [entry.action for entry in owner.client.audit(printer_id)]
    assert "printer.shared" in actions or any("share" in a for a in actions)
    assert any("plate" in a for a in actions)


def test_upload_reports_progress_and_files_are_listed(
    live_cloud: LiveCloud, tmp_path: Path
) -> None:
    ada = live_cloud.person()
    path = tmp_path / "big.gcode"
    path.write_bytes(make_sample_gcode(2000, heat=False).encode())
    size = path.stat().st_size
    assert size > 3 * 64 * 1024  # several chunks
    seen: list[tuple[int, int]] = []
    uploaded = ada.client.upload(path, progress=lambda sent, total: seen.append((sent, total)))
    assert uploaded.name == "big.gcode"
    assert uploaded.size == size
    assert uploaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(seen) >= 3
    assert [sent for sent, _ in seen] == sorted(sent for sent, _ in seen)
    assert seen[-1] == (size, size)

    renamed = ada.client.upload(path, name='odd "name".gcode')
    assert renamed.name.endswith(".gcode")
    assert [f.id for f in ada.client.list_files()] == [renamed.id, uploaded.id]
    assert ada.client.get_file(uploaded.id) == uploaded

    notes = tmp_path / "notes.txt"
    notes.write_text("not a print")
    with pytest.raises(InvalidRequest) as refused:
        ada.client.upload(notes)
    assert refused.value.status == 415
    with pytest.raises(FileNotFoundError, match="no such file"):
        ada.client.upload(tmp_path / "missing.gcode")


def test_jobs_are_created_once_listed_and_cancelled(live_cloud: LiveCloud, tmp_path: Path) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()
    path = tmp_path / "cube.gcode"
    path.write_bytes(GCODE)
    file = ada.client.upload(path)

    job = ada.client.create_job(file.id, printer_id=printer_id, start_within_s=600)
    assert job.state is JobState.QUEUED
    assert job.idempotency_key is not None
    assert job.idempotency_key.startswith("sdk-")
    again = ada.client.create_job(
        file.id, printer_id=printer_id, start_within_s=600, idempotency_key=job.idempotency_key
    )
    assert again.id == job.id
    with pytest.raises(InvalidRequest) as mismatch:
        ada.client.create_job(
            file.id,
            printer_id=printer_id,
            start_within_s=600,
            notify_completion=True,
            idempotency_key=job.idempotency_key,
        )
    assert mismatch.value.code == "idempotency_mismatch"
    with pytest.raises(ValueError, match="exactly one"):
        ada.client.create_job(file.id)
    by_model = ada.client.create_job(file.id, model="p1")
    assert by_model.model == "p1"

    assert [j.id for j in ada.client.list_jobs()] == [by_model.id, job.id]
    assert [j.id for j in ada.client.list_jobs(printer_id=printer_id)] == [job.id]
    assert [j.id for j in ada.client.list_jobs(limit=1, older_than=by_model.id)] == [job.id]
    detail = ada.client.get_job(job.id)
    assert any(entry.action == "job.created" for entry in detail.audit)

    cancelled = ada.client.cancel_job(job.id)
    assert cancelled.state is JobState.CANCELLED
    assert [j.id for j in ada.client.list_jobs(states=[JobState.CANCELLED])] == [job.id]
    with pytest.raises(InvalidRequest, match="cancelled"):
        ada.client.pause_job(job.id)
    with pytest.raises(NotFound):
        live_cloud.person("eve").client.get_job(job.id)


def test_alerts_are_listed_and_acknowledged(live_cloud: LiveCloud) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()
    alert_id = live_cloud.raise_alert(printer_id)
    alerts = ada.client.list_alerts(unacked=True)
    assert [(a.id, a.kind, a.severity) for a in alerts] == [(alert_id, "thermal_fault", "critical")]
    acked = ada.client.ack_alert(alert_id)
    assert acked.acked_at is not None
    assert ada.client.list_alerts(unacked=True) == []
    assert [a.id for a in ada.client.list_alerts()] == [alert_id]
    with pytest.raises(NotFound):
        live_cloud.person("eve").client.ack_alert(alert_id)


def test_a_resolved_alert_says_how_and_how_long_it_lasted(live_cloud: LiveCloud) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()
    alert_id = live_cloud.raise_alert(printer_id, kind="printer_offline")
    (open_alert,) = ada.client.list_alerts(unacked=True)
    assert open_alert.needs_attention
    assert (open_alert.resolved_at, open_alert.resolution, open_alert.duration_s) == (None,) * 3
    live_cloud.run(
        live_cloud.context.store.alerts.resolve(
            printer_id, kind="printer_offline", resolution=f"{printer_id} is back online"
        )
    )
    assert ada.client.list_alerts(unacked=True) == []
    (resolved,) = ada.client.list_alerts()
    assert resolved.id == alert_id
    assert not resolved.needs_attention
    assert resolved.resolution == f"{printer_id} is back online"
    assert resolved.resolved_at is not None
    assert resolved.resolved_at >= resolved.created_at
    assert resolved.duration_s == (resolved.resolved_at - resolved.created_at) / 1000
    assert (resolved.acked_at, resolved.acked_by) == (None, None)
    # A person may still acknowledge it; how long it lasted stays the resolution's.
    acked = ada.client.ack_alert(alert_id)
    assert acked.acked_by is not None
    assert acked.resolved_at == resolved.resolved_at
    assert acked.duration_s == resolved.duration_s


def test_an_acknowledged_alert_lasted_until_its_acknowledgement(live_cloud: LiveCloud) -> None:
    ada = live_cloud.person()
    alert_id = live_cloud.raise_alert(ada.printer())
    acked = ada.client.ack_alert(alert_id)
    assert acked.acked_at is not None
    assert acked.resolved_at is None
    assert acked.duration_s == (acked.acked_at - acked.created_at) / 1000


def test_health(live_cloud: LiveCloud) -> None:
    with Client(live_cloud.url) as client:
        health = client.health()
    assert health.status == "ok"
    assert health.store.ok
    assert health.link is not None
    assert health.link.verified


@pytest.mark.asyncio
async def test_the_async_client_covers_the_same_api(live_cloud: LiveCloud, tmp_path: Path) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()
    path = tmp_path / "cube.gcode"
    path.write_bytes(GCODE)
    seen: list[int] = []
    async with AsyncClient(live_cloud.url) as client:
        issued = await client.login(ada.email, PASSWORD)
        assert client.token == issued.token
        file = await client.upload(path, progress=lambda sent, total: seen.append(sent))
        assert seen[-1] == file.size
        job = await client.create_job(file.id, printer_id=printer_id)
        printers = await client.list_printers()
        assert [p.id for p in printers] == [printer_id]
        assert (await client.get_job(job.id)).id == job.id
        assert (await client.cancel_job(job.id)).state is JobState.CANCELLED
        assert (await client.health()).status == "ok"
        with pytest.raises(NotFound):
            await client.get_printer("no-such-printer")


def test_the_event_stream_delivers_the_callers_notifications(
    live_cloud: LiveCloud, tmp_path: Path
) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()
    path = tmp_path / "cube.gcode"
    path.write_bytes(GCODE)
    file = ada.client.upload(path)
    opened = threading.Event()
    received: queue.Queue[StreamEvent] = queue.Queue()

    def follow() -> None:
        with Client(live_cloud.url, ada.token) as listener:
            for event in listener.events(on_open=opened.set):
                received.put(event)
                if event.kind == "job_submitted":
                    return

    follower = threading.Thread(target=follow, name="follower")
    follower.start()
    try:
        assert opened.wait(20)
        job = ada.client.create_job(file.id, printer_id=printer_id)
        event = received.get(timeout=20)
        while event.kind != "job_submitted":
            event = received.get(timeout=20)
    finally:
        follower.join(timeout=30)
    assert event.notification is not None
    assert event.notification.job_id == job.id
    assert event.notification.printer_id == printer_id
    assert event.id == event.notification.id


def test_channels_deliver_a_signed_test_notification(live_cloud: LiveCloud) -> None:
    ada = live_cloud.person()
    with FaultyServer() as webhook:
        channel = ada.client.add_channel(
            "webhook", f"{webhook.url}/hook?key=private", secret="s" * 16
        )
        assert channel.kind == "webhook"
        assert "private" not in channel.target  # the URL is shown back redacted
        with pytest.raises(InvalidRequest, match="secret"):
            ada.client.add_channel("webhook", f"{webhook.url}/hook")
        assert [c.id for c in ada.client.list_channels()] == [channel.id]
        sent = ada.client.test_channel(channel.id)

        deadline = time.monotonic() + 20
        while not webhook.requests_to("/hook"):  # the cloud offers no "delivered" signal
            assert time.monotonic() < deadline, "the webhook was never called"
            time.sleep(0.05)
        hook = webhook.requests_to("/hook")[0]
        assert hook.headers["x-printfleet-delivery"] == sent.notification_id
        assert hook.headers["x-printfleet-signature"].startswith("t=")
        while not any(d.state == "delivered" for d in ada.client.deliveries(channel.id)):
            assert time.monotonic() < deadline, "the delivery was never marked delivered"
            time.sleep(0.05)
    removed = ada.client.remove_channel(channel.id)
    assert removed.id == channel.id
    assert ada.client.list_channels() == []
    with pytest.raises(NotFound):
        ada.client.deliveries(channel.id)


def test_set_temperature_is_sent_and_validated(live_cloud: LiveCloud) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()
    with pytest.raises(InvalidRequest, match="target_c"):
        ada.client.set_temperature(printer_id, "hotend", 999)
    sent = ada.client.set_temperature(printer_id, "bed", 60)
    assert (sent.printer_id, sent.action) == (printer_id, "temperature.bed")
    with pytest.raises(NotFound):
        live_cloud.person("eve").client.set_temperature(printer_id, "bed", 60)
