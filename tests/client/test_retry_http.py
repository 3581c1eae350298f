"""The SDK against a real HTTP server that fails on purpose: what it retries, what it never
re-sends, how long it waits, and when it stops calling."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from blockbuster import blockbuster_ctx
from tests.client.faulty_server import FaultyServer, Reply

from printfleet.client import (
    AsyncClient,
    Backoff,
    BreakerOpen,
    CircuitBreaker,
    Client,
    NotFound,
    Overloaded,
    RateLimited,
    RetryBudget,
    RetryPolicy,
    ServerError,
    Unreachable,
    calls,
)

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC).timestamp()

JOB = {
    "id": "j1",
    "state": "queued",
    "reason": "",
    "name": "cube.gcode",
    "file_id": "f1",
    "printer_id": "p1",
    "model": None,
    "assigned_printer": None,
    "created_at": 1,
    "start_by": 2,
    "ended_at": None,
    "notify_completion": False,
    "idempotency_key": "k",
}
OVERLOADED = {"error": "overloaded", "message": "the server is busy"}


class Sleeps:
    """Records the waits a client asks for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def policy(**changes: object) -> RetryPolicy:
    settings: dict[str, object] = {
        "backoff": Backoff(base=0.1, cap=1.0, rng=random.Random(3)),
        "wall_clock": lambda: NOW,
    }
    settings.update(changes)
    return RetryPolicy(**settings)  # type: ignore[arg-type]


def test_a_get_is_retried_after_the_servers_retry_after() -> None:
    script = [Reply(503, OVERLOADED, {"Retry-After": "2"}), Reply(200, [])]
    sleeps = Sleeps()
    with (
        FaultyServer(script) as server,
        Client(server.url, "t", policy=policy(), sleep=sleeps) as c,
    ):
        assert c.list_printers() == []
    assert len(server.requests_to("/api/v1/printers")) == 2
    assert len(sleeps.waits) == 1
    assert 2.0 <= sleeps.waits[0] <= 2.1


def test_job_creation_is_retried_with_the_same_idempotency_key() -> None:
    # The first attempt reaches the server and its answer is lost: only the key makes the
    # second attempt safe, and it must be the same key.
    script = [Reply(drop=True), Reply(503, OVERLOADED, {"Retry-After": "1"}), Reply(201, JOB)]
    sleeps = Sleeps()
    with (
        FaultyServer(script) as server,
        Client(server.url, "t", policy=policy(), sleep=sleeps) as c,
    ):
        job = c.create_job("f1", printer_id="p1")
    assert job.id == "j1"
    sent = server.requests_to("/api/v1/jobs")
    assert len(sent) == 3
    keys = {request.headers["idempotency-key"] for request in sent}
    assert len(keys) == 1
    assert keys.pop().startswith("sdk-")
    assert {request.body for request in sent} == {sent[0].body}
    assert json.loads(sent[0].body) == {
        "file_id": "f1",
        "printer_id": "p1",
        "notify_completion": False,
    }


@pytest.mark.parametrize(
    "failure", [Reply(drop=True), Reply(503, OVERLOADED, {"Retry-After": "1"})]
)
def test_a_request_without_a_key_is_never_sent_twice(failure: Reply) -> None:
    sleeps = Sleeps()
    with (
        FaultyServer([failure], default=Reply(200, JOB)) as server,
        Client(server.url, "t", policy=policy(), sleep=sleeps) as client,
    ):
        with pytest.raises(Unreachable if failure.drop else Overloaded):
            client.cancel_job("j1")
        # Raw calls get the same treatment: a POST without a key is sent once.
        server.script.append(failure)
        raw = calls.Call("POST", "/api/v1/anything", lambda r: r.json(), json={})
        with pytest.raises(Unreachable if failure.drop else Overloaded):
            client.send(raw)
    assert len(server.requests_to("/api/v1/jobs/j1/cancel")) == 1
    assert len(server.requests_to("/api/v1/anything")) == 1
    assert sleeps.waits == []


def test_overloaded_carries_the_wait_and_the_servers_body() -> None:
    with (
        FaultyServer(default=Reply(503, OVERLOADED, {"Retry-After": "3"})) as server,
        Client(server.url, "t", policy=policy(max_attempts=2), sleep=Sleeps()) as client,
        pytest.raises(Overloaded) as raised,
    ):
        client.get_job("j1")
    assert raised.value.retry_after == 3.0
    assert raised.value.code == "overloaded"
    assert raised.value.body == OVERLOADED
    assert str(raised.value) == "the server is busy"


def test_429_with_an_http_date_is_honoured() -> None:
    later = format_datetime(datetime.fromtimestamp(NOW + 5, tz=UTC), usegmt=True)
    script = [Reply(429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": later})]
    sleeps = Sleeps()
    with (
        FaultyServer(script, default=Reply(200, [])) as server,
        Client(server.url, "t", policy=policy(), sleep=sleeps) as client,
    ):
        assert client.list_alerts() == []
    assert 5.0 <= sleeps.waits[0] <= 5.1


def test_a_wait_longer_than_the_policy_allows_is_raised_not_slept() -> None:
    script = [Reply(429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": "600"})]
    sleeps = Sleeps()
    with (
        FaultyServer(script) as server,
        Client(server.url, "t", policy=policy(), sleep=sleeps) as client,
        pytest.raises(RateLimited) as raised,
    ):
        client.list_alerts()
    assert raised.value.retry_after == 600.0
    assert sleeps.waits == []


def test_errors_that_a_retry_cannot_cure_are_not_retried() -> None:
    body = {"error": "not_found", "message": "no job j9"}
    with (
        FaultyServer(default=Reply(404, body)) as server,
        Client(server.url, "t", policy=policy(), sleep=Sleeps()) as client,
        pytest.raises(NotFound, match="no job j9"),
    ):
        client.get_job("j9")
    assert len(server.received) == 1


def test_retries_stay_within_ten_percent_under_sustained_failure() -> None:
    requests = 300
    sleeps = Sleeps()
    never_opens = CircuitBreaker(failure_threshold=10**9, cooldown=1.0)
    with (
        FaultyServer(default=Reply(503, OVERLOADED)) as server,
        Client(
            server.url,
            "t",
            policy=policy(budget=RetryBudget(), breaker=never_opens),
            sleep=sleeps,
        ) as client,
    ):
        for _ in range(requests):
            with pytest.raises(Overloaded):
                client.list_printers()
    retries = len(server.received) - requests
    # The bucket starts with 10 tokens; after that, 0.1 per request.
    assert 0 < retries <= 0.1 * requests + 10
    # Without the budget, max_attempts=3 would have tripled the load.
    assert len(server.received) < 1.2 * requests


def test_the_breaker_stops_calling_a_failing_server_then_probes_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=5.0, clock=clock)
    with (
        FaultyServer(default=Reply(503, OVERLOADED)) as server,
        Client(
            server.url, "t", policy=policy(max_attempts=1, breaker=breaker), sleep=Sleeps()
        ) as client,
    ):
        for _ in range(3):
            with pytest.raises(Overloaded):
                client.list_printers()
        with pytest.raises(BreakerOpen) as raised:
            client.list_printers()
        assert raised.value.retry_in == pytest.approx(5.0)
        assert len(server.received) == 3  # the refused call never left the client
        clock.now += 5.0
        server.default = Reply(200, [])
        assert client.list_printers() == []
        assert client.list_printers() == []
    assert len(server.received) == 5


def test_connection_refused_is_unreachable_with_the_address() -> None:
    with FaultyServer() as server:
        url = server.url
    sleeps = Sleeps()
    with Client(url, "t", policy=policy(), sleep=sleeps) as client, pytest.raises(Unreachable) as e:
        client.list_printers()
    assert url in str(e.value)
    assert len(sleeps.waits) == 2  # a GET is retried: three attempts in all


def test_the_client_rejects_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="https://host"):
        Client("ftp://example.org")
    with pytest.raises(ValueError, match="https://host"):
        Client("localhost:8000")


STREAM_1 = (
    b"retry: 10\n: subscribed\n\n"
    b'id: n1\nevent: thermal_fault\ndata: {"id":"n1","kind":"thermal_fault","severity":"critical",'
    b'"title":"Fault","message":"hot","printer_id":"p1","job_id":null,'
    b'"created_at":"2026-12-04T12:00:00.000+00:00","data":{"alert_id":"a1"}}\n\n'
    b'event: dropped\ndata: {"count": 2}\n\n'
)
STREAM_2 = (
    b'id: n2\nevent: printer_state\ndata: {"id":"n2","kind":"printer_state",\ndata: "x":1}\n\n'
)


def test_the_event_stream_resumes_after_the_last_id() -> None:
    script = [
        Reply(raw=STREAM_1, path="/api/v1/events"),
        Reply(503, OVERLOADED, {"Retry-After": "1"}, path="/api/v1/events"),
        Reply(raw=STREAM_2, path="/api/v1/events"),
    ]
    sleeps = Sleeps()
    with (
        FaultyServer(script) as server,
        Client(server.url, "t", policy=policy(), sleep=sleeps) as c,
    ):
        stream = c.events()
        events = [next(stream) for _ in range(3)]
        stream.close()
    fault, dropped, state = events
    assert fault.kind == "thermal_fault"
    assert fault.notification is not None
    assert fault.notification.is_alert
    assert fault.notification.printer_id == "p1"
    assert (dropped.kind, dropped.id, dropped.data) == ("dropped", None, {"count": 2})
    assert dropped.notification is None
    # Two data lines join with a newline; not a notification's shape, so only data.
    assert state.id == "n2"
    assert state.data == {"id": "n2", "kind": "printer_state", "x": 1}
    assert state.notification is None
    sent = server.requests_to("/api/v1/events")
    assert "last-event-id" not in sent[0].headers
    assert sent[1].headers["last-event-id"] == "n1"  # the control block did not move it
    assert sent[2].headers["last-event-id"] == "n1"
    assert sent[0].headers["authorization"] == "Bearer t"
    assert sleeps.waits[1] >= 1.0  # the 503's Retry-After is the floor


def test_an_event_stream_refused_for_good_raises() -> None:
    body = {"error": "invalid_token", "message": "the token is unknown or revoked"}
    with FaultyServer(default=Reply(401, body)) as server, Client(server.url, "t") as client:
        with pytest.raises(Exception, match="unknown or revoked") as raised:
            next(client.events())
        assert type(raised.value).__name__ == "Unauthenticated"


@pytest.mark.asyncio
async def test_the_async_client_retries_the_same_way() -> None:
    script = [Reply(drop=True), Reply(201, JOB)]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with FaultyServer(script) as server:
        async with AsyncClient(server.url, "t", policy=policy(), sleep=sleep) as client:
            job = await client.create_job("f1", model="mk4", idempotency_key="mine")
            server.script.append(Reply(503, OVERLOADED, {"Retry-After": "1"}))
            with pytest.raises(Overloaded):
                await client.pause_job("j1")
    assert job.state == "queued"
    assert [r.headers["idempotency-key"] for r in server.requests_to("/api/v1/jobs")[:2]] == [
        "mine",
        "mine",
    ]
    assert len(server.requests_to("/api/v1/jobs/j1/pause")) == 1
    assert len(waits) == 1


def test_an_answer_of_the_wrong_shape_is_a_server_error() -> None:
    with (
        FaultyServer(default=Reply(200, {"not": "a list"})) as server,
        Client(server.url, "t") as client,
        pytest.raises(ServerError, match=r"unexpected answer from .*/api/v1/printers"),
    ):
        client.list_printers()


@pytest.mark.asyncio
async def test_the_async_client_never_blocks_its_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "cube.gcode"
    path.write_bytes(b"G28\n" * 50_000)
    stored = {
        "id": "f1",
        "name": "cube.gcode",
        "size": path.stat().st_size,
        "sha256": "0" * 64,
        "created_at": 1,
        "metadata": {
            "estimated_s": None,
            "layers": None,
            "filament_mm": None,
            "has_thumbnail": False,
        },
    }
    script = [
        Reply(201, stored, path="/api/v1/files"),
        Reply(503, OVERLOADED, {"Retry-After": "0"}, path="/api/v1/jobs"),
        Reply(201, JOB, path="/api/v1/jobs"),
        Reply(raw=STREAM_1, path="/api/v1/events"),
    ]
    with FaultyServer(script) as server, blockbuster_ctx():
        async with AsyncClient(server.url, "t", policy=policy()) as client:
            file = await client.upload(path)
            job = await client.create_job(file.id, printer_id="p1")
            stream = client.events(reconnect=False)
            kinds = [event.kind async for event in stream]
    assert (file.id, job.id) == ("f1", "j1")
    assert kinds == ["thermal_fault", "dropped"]
    uploaded = server.requests_to("/api/v1/files")[0]
    assert uploaded.body.count(b"G28\n") == 50_000
    assert int(uploaded.headers["content-length"]) == len(uploaded.body)


def test_each_attempt_can_carry_its_own_deadline() -> None:
    expired = {"error": "deadline_exceeded", "message": "the deadline had passed"}
    wall = FakeClock()
    wall.now = NOW

    def sleep(seconds: float) -> None:
        wall.now += 1.5  # the wait between attempts, as the wall clock sees it

    with (
        FaultyServer([Reply(504, expired), Reply(200, [])]) as server,
        Client(
            server.url,
            "t",
            timeout=4.0,
            send_deadline=True,
            policy=policy(wall_clock=wall),
            sleep=sleep,
        ) as client,
    ):
        assert client.list_printers() == []
    deadlines = [int(r.headers["x-request-deadline"]) for r in server.received]
    assert deadlines == [int((NOW + 4) * 1000), int((NOW + 5.5) * 1000)]
    with FaultyServer(default=Reply(200, [])) as server, Client(server.url, "t") as client:
        client.list_printers()
    assert "x-request-deadline" not in server.received[0].headers
