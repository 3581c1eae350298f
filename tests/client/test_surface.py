"""The SDK's public names, its models against the server's schemas, and how it reads SSE."""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import EventSource
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, JsonValue

import printfleet.client
from printfleet.client import models
from printfleet.client.events import Reconnection, StreamCursor, StreamEvent
from printfleet.cloud.api import schemas


def test_public_names_are_pinned() -> None:
    assert sorted(printfleet.client.__all__) == sorted(
        [
            "Alert", "AsyncClient", "AuditEntry", "Backoff", "BreakerOpen", "Call", "Channel",
            "CircuitBreaker", "Client", "CommandSent", "Conflict", "Delivery", "Forbidden",
            "Health", "InvalidRequest", "IssuedToken", "Job", "JobDetail", "NotFound",
            "Notification", "NotificationSent", "Overloaded", "Pool", "PrintFile", "Printer",
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
    (models.MaterialSlot, schemas.MaterialSlotOut),
    (models.Requirements, schemas.RequirementsOut),
    (models.Wait, schemas.WaitOut),
    (models.Pool, schemas.PoolOut),
]


@pytest.mark.parametrize(("mine", "theirs"), MIRRORS, ids=[m.__name__ for m, _ in MIRRORS])
def test_models_mirror_the_servers_responses(
    mine: type[BaseModel], theirs: type[BaseModel]
) -> None:
    # A field the server adds or renames shows up here before a user meets it.
    assert set(mine.model_fields) == set(theirs.model_fields)


def read(text: str, cursor: StreamCursor | None = None) -> list[StreamEvent]:
    """The events a client reads from a response with this body, as the clients read them."""
    cursor = cursor if cursor is not None else StreamCursor()
    response = httpx.Response(
        200, headers={"Content-Type": "text/event-stream"}, content=text.encode()
    )
    cursor.connected()
    return [e for b in EventSource(response).iter_sse() if (e := cursor.read(b)) is not None]


def block(lines: list[str]) -> StreamEvent | None:
    events = read("\n".join([*lines, "", ""]))
    assert len(events) <= 1
    return events[0] if events else None


def test_parser_handles_comments_retry_and_fields_without_a_space() -> None:
    cursor = StreamCursor()
    assert read("retry: 3000\n: subscribed\n\n", cursor) == []
    assert cursor.retry_ms == 3000
    assert block(["event:resync", 'data:{"reason":"x"}']) == StreamEvent(
        kind="resync", id=None, data={"reason": "x"}
    )
    message = block(["data: plain text"])
    assert message is not None
    assert (message.kind, message.data) == ("message", "plain text")
    assert block(["id: only-an-id"]) is None  # no data: nothing to dispatch
    assert block(["id: a\0b", "data: 1"]) == StreamEvent(kind="message", id=None, data=1)


def test_a_control_block_after_a_notification_has_no_id_and_keeps_the_resume_point() -> None:
    cursor = StreamCursor()
    events = read(
        'id: n1\nevent: x\ndata: 1\n\nevent: dropped\ndata: {"count": 2}\n\n'
        "id: n2\nevent: y\ndata: 3\n\n",
        cursor,
    )
    assert [(e.kind, e.id) for e in events] == [("x", "n1"), ("dropped", None), ("y", "n2")]
    assert cursor.last_event_id == "n2"
    # A new connection after a drop: its first block is read afresh, the resume point stays.
    assert read('event: resync\ndata: {"reason": "x"}\n\n', cursor) == [
        StreamEvent(kind="resync", id=None, data={"reason": "x"})
    ]
    assert cursor.last_event_id == "n2"


@given(
    kind=st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
    event_id=st.from_regex(r"[0-9a-f-]{1,36}", fullmatch=True),
    payload=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20)),
)
def test_parser_reads_back_what_the_server_writes(
    kind: str, event_id: str, payload: dict[str, JsonValue]
) -> None:
    cursor = StreamCursor()
    text = f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(payload)}\n\n"
    assert read(text, cursor) == [StreamEvent(kind=kind, id=event_id, data=payload)]
    assert cursor.last_event_id == event_id


def test_reconnection_backs_off_then_gives_up_and_resets_on_success() -> None:
    again = Reconnection(float, max_failures=3)
    assert [again.next_wait(), again.next_wait(2.5), again.next_wait()] == [0.0, 2.5, 2.0]
    assert again.next_wait() is None
    again.connected()
    assert again.next_wait() == 0.0
