"""The notification value, its JSON, S7's rule for submitters, and the package's public API."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from printfleet.cloud import notify
from printfleet.cloud.notify import (
    JOB_ENDS,
    Channel,
    ChannelKind,
    DeadLetter,
    Notification,
    NotificationKind,
    Severity,
    from_alert,
    must_tell_submitter,
    redact_url,
)
from printfleet.protocol.messages import AlertBody

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def make(**overrides: object) -> Notification:
    fields: dict[str, object] = {
        "title": "Print failed",
        "message": "benchy.gcode failed on p1: nozzle clog",
        "user_ids": ["alice"],
        "printer_id": "p1",
        "job_id": "0190a5e0-0000-7000-8000-000000000001",
        "data": {"layer": 12},
    }
    fields.update(overrides)
    return Notification.create(NotificationKind.JOB_FAILED, **fields)  # type: ignore[arg-type]


def test_the_public_api_is_pinned() -> None:
    assert sorted(notify.__all__) == sorted(
        [
            "ALERT_KINDS",
            "APPRISE_SERVICES",
            "DEFAULT_SEVERITY",
            "DEFAULT_TOLERANCE_S",
            "DELIVERY_HEADER",
            "EVENT_HEADER",
            "JOB_ENDS",
            "SIGNATURE_HEADER",
            "AppriseDelivery",
            "AppriseSender",
            "BusStats",
            "Channel",
            "ChannelKind",
            "DeadLetter",
            "DeadLetterSink",
            "DeliveryListener",
            "DeliveryOutcome",
            "DeliveryResult",
            "EventBus",
            "EventStreamResponse",
            "JsonValue",
            "Notification",
            "NotificationKind",
            "Notifier",
            "NotifierStats",
            "NotifyReceipt",
            "OutboundPolicy",
            "OutboundRefused",
            "Severity",
            "SignatureError",
            "Subscription",
            "SubscriptionClosed",
            "TooManySubscribersError",
            "WebhookSender",
            "check_apprise_url",
            "event_stream",
            "format_control",
            "format_event",
            "from_alert",
            "goes_to_channels",
            "must_tell_submitter",
            "new_notification_id",
            "outbound_client",
            "parse_retry_after",
            "redact_url",
            "sign",
            "sse_response",
            "verify",
            "vetted_resolution",
        ]
    )
    for name in notify.__all__:
        assert getattr(notify, name) is not None


def test_create_fills_in_id_time_and_severity() -> None:
    before = datetime.now(UTC).replace(microsecond=0)  # created_at keeps whole milliseconds
    notification = make()
    assert UUID7.match(notification.id)
    assert notification.severity is Severity.WARNING
    assert before <= notification.created_at <= datetime.now(UTC)
    assert notification.created_at.tzinfo is UTC
    assert notification.user_ids == frozenset({"alice"})
    assert make().id != notification.id


def test_every_kind_has_a_default_severity_and_thermal_faults_are_critical() -> None:
    for kind in NotificationKind:
        assert kind in notify.DEFAULT_SEVERITY
    assert notify.DEFAULT_SEVERITY[NotificationKind.THERMAL_FAULT] is Severity.CRITICAL


def test_data_must_be_json_and_is_detached_from_the_caller() -> None:
    data: dict[str, object] = {"temps": [210, 250]}
    notification = make(data=data)
    data["temps"] = []
    assert notification.data == {"temps": [210, 250]}
    with pytest.raises(TypeError):
        notification.data["x"] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="JSON"):
        make(data={"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="JSON"):
        make(data={"temp": float("nan")})


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"notification_id": "two\nlines"}, "id"),
        ({"notification_id": "x" * 201}, "id"),
        ({"title": "  "}, "title"),
        ({"message": ""}, "message"),
        ({"now": datetime(2026, 1, 1)}, "timezone"),  # noqa: DTZ001 - naive on purpose
    ],
)
def test_invalid_notifications_are_refused(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(**overrides)


def test_created_at_is_kept_in_utc() -> None:
    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert make(now=local).created_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_the_payload_is_one_json_line_without_the_recipients() -> None:
    notification = make(user_ids=["alice", "bob"], title="Drucker p1: Fehler ✗")
    encoded = notification.to_json()
    assert b"\n" not in encoded
    payload = json.loads(encoded)
    assert "user_ids" not in payload
    assert "alice" not in encoded.decode()
    assert payload["kind"] == "job_failed"
    assert payload["title"] == "Drucker p1: Fehler ✗"
    assert payload["created_at"].endswith("+00:00")
    assert Notification.from_payload(payload, user_ids=["alice", "bob"]) == notification


def test_text_gives_a_mail_body_with_context() -> None:
    text = make().text()
    assert text.startswith("benchy.gcode failed on p1: nozzle clog\n")
    assert "Printer: p1" in text
    assert "Severity: warning" in text


def test_submitters_hear_of_every_end_but_completion_unless_they_ask() -> None:
    for kind in NotificationKind:
        expected = kind in JOB_ENDS and kind is not NotificationKind.JOB_COMPLETED
        assert must_tell_submitter(kind) is expected, kind
    assert must_tell_submitter(NotificationKind.JOB_COMPLETED, wants_completion=True)
    assert not must_tell_submitter(NotificationKind.JOB_STARTED, wants_completion=True)
    assert {kind.value for kind in JOB_ENDS} == {
        "job_completed",
        "job_failed",
        "job_cancelled",
        "job_rejected",
        "job_expired",
    }


def test_a_thermal_fault_alert_becomes_a_critical_notification() -> None:
    alert = AlertBody(
        kind="thermal_fault", severity="critical", message="Hotend thermal runaway at 287 C"
    )
    notification = from_alert("p1", alert, user_ids=["alice", "bob"])
    assert notification.kind is NotificationKind.THERMAL_FAULT
    assert notification.severity is Severity.CRITICAL
    assert notification.title == "Thermal fault on p1: heaters are off"
    assert notification.message == "Hotend thermal runaway at 287 C"
    assert notification.printer_id == "p1"
    assert notification.data == {"alert_kind": "thermal_fault"}


def test_an_unknown_alert_kind_still_reaches_people() -> None:
    alert = AlertBody(kind="target_refused", severity="warning", message="")
    notification = from_alert("p2", alert, user_ids=["alice"])
    assert notification.kind is NotificationKind.PRINTER_ALERT
    assert notification.severity is Severity.WARNING
    assert notification.message == "p2 raised a target_refused alert."
    assert notification.data == {"alert_kind": "target_refused"}


def test_urls_are_redacted_for_logs() -> None:
    assert redact_url("https://hooks.example.com:8443/T0/B1/secret?token=x") == (
        "https://hooks.example.com:8443/..."
    )
    assert redact_url("https://user:pw@example.com/x") == "https://example.com/..."
    assert redact_url("tgram://123456:ABCDEF/42", keep_host=False) == "tgram://..."


def test_secrets_stay_out_of_reprs() -> None:
    channel = Channel(ChannelKind.WEBHOOK, "https://example.com/hook?token=abc", secret="s3cret")
    assert "s3cret" not in repr(channel)
    assert "abc" not in repr(channel)
    mail = Channel(ChannelKind.APPRISE, "mailtos://alice:hunter2@example.com")
    assert "hunter2" not in repr(mail)
    letter = DeadLetter(
        notification_id="n1",
        channel="apprise",
        target="mailtos://alice:hunter2@example.com",
        reason="Apprise: FAILURE",
        attempts=1,
        last_status=None,
        payload=b"{}",
        failed_at=datetime.now(UTC),
    )
    assert "hunter2" not in repr(letter)


def test_a_webhook_channel_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        Channel(ChannelKind.WEBHOOK, "https://example.com/hook")
    assert Channel("apprise", "ntfy://topic").kind is ChannelKind.APPRISE  # type: ignore[arg-type]
