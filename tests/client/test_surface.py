"""The SDK's public names, its models against the server's schemas, and the SSE parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, JsonValue

import printfleet.client
from printfleet.client import models
from printfleet.client.events import Reconnection, SseParser, StreamEvent
from printfleet.cloud.api import schemas


def test_public_names_are_pinned() -> None:
    assert sorted(printfleet.client.__all__) == sorted(
        [
            "Alert", "AsyncClient", "AuditEntry", "Backoff", "BreakerOpen", "Call", "Channel",
            "CircuitBreaker", "Client", "CommandSent", "Conflict", "Delivery", "Forbidden",
            "Health", "InvalidRequest", "IssuedToken", "Job", "JobDetail", "NotFound",
            "Notification", "NotificationSent", "Overloaded", "PrintFile", "Printer",
            "PrintfleetError", "Provisioned", "RateLimited", "RetryBudget", "RetryPolicy",
            "ServerError", "Share", "StreamEvent", "Token", "Unauthenticated", "Unreachable",
            "User",
        ]
    )  # fmt: skip
    for name in printfleet.client.__all__:
        assert getattr(printfleet.client, name) is not None


MIRRORS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (models.User, schemas.UserOut),
    (models.Token, schemas.TokenOut),
    (models.IssuedToken, schemas.TokenCreated),
    (models.Heater, schemas.HeaterOut),
    (models.Temperatures, schemas.Temperatures),
    (models.Progress, schemas.ProgressOut),
    (models.Printer, schemas.PrinterOut),
    (models.TelemetryPoint, schemas.TelemetryPointOut),
    (models.Provisioned, schemas.ProvisionedOut),
    (models.Share, schemas.ShareOut),
    (models.CommandSent, schemas.CommandSent),
    (models.FileMetadata, schemas.FileMetadataOut),
    (models.PrintFile, schemas.FileOut),
    (models.Job, schemas.JobOut),
    (models.Actor, schemas.ActorOut),
    (models.AuditEntry, schemas.AuditOut),
    (models.JobDetail, schemas.JobDetail),
    (models.Alert, schemas.AlertOut),
    (models.StoreHealth, schemas.StoreHealth),
    (models.LinkHealth, schemas.LinkHealth),
    (models.Health, schemas.Health),
    (models.Channel, schemas.ChannelOut),
    (models.Delivery, schemas.DeliveryOut),
    (models.NotificationSent, schemas.NotificationSent),
]


@pytest.mark.parametrize(("mine", "theirs"), MIRRORS, ids=[m.__name__ for m, _ in MIRRORS])
def test_models_mirror_the_servers_responses(
    mine: type[BaseModel], theirs: type[BaseModel]
) -> None:
    # A field the server adds or renames shows up here before a user meets it.
    assert set(mine.model_fields) == set(theirs.model_fields)


def block(lines: list[str]) -> StreamEvent | None:
    parser = SseParser()
    events = [parser.feed(line) for line in [*lines, ""]]
    assert all(event is None for event in events[:-1])
    return events[-1]


def test_parser_handles_comments_retry_and_fields_without_a_space() -> None:
    parser = SseParser()
    for line in ["retry: 3000", ": subscribed", ""]:
        assert parser.feed(line) is None
    assert parser.retry_ms == 3000
    assert block(["event:resync", 'data:{"reason":"x"}']) == StreamEvent(
        kind="resync", id=None, data={"reason": "x"}
    )
    message = block(["data: plain text"])
    assert message is not None
    assert (message.kind, message.data) == ("message", "plain text")
    assert block(["id: only-an-id"]) is None  # no data: nothing to dispatch
    assert block(["id: a\0b", "data: 1"]) == StreamEvent(kind="message", id=None, data=1)


@given(
    kind=st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
    event_id=st.from_regex(r"[0-9a-f-]{1,36}", fullmatch=True),
    payload=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20)),
)
def test_parser_reads_back_what_the_server_writes(
    kind: str, event_id: str, payload: dict[str, JsonValue]
) -> None:
    parser = SseParser()
    text = f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(payload)}\n\n"
    events = [e for line in text.split("\n") if (e := parser.feed(line)) is not None]
    assert events == [StreamEvent(kind=kind, id=event_id, data=payload)]
    assert parser.last_event_id == event_id


def test_reconnection_backs_off_then_gives_up_and_resets_on_success() -> None:
    again = Reconnection(float, max_failures=3)
    assert [again.next_wait(), again.next_wait(2.5), again.next_wait()] == [0.0, 2.5, 2.0]
    assert again.next_wait() is None
    again.connected()
    assert again.next_wait() == 0.0
