"""Admission control: the concurrency limit refuses at once (503 + jittered Retry-After) while
requests are held in flight, callers over their rate get 429, expired deadlines are dropped
unrun, exempt paths always pass, and a real cloud maps them (and a full pool) to the API's
error shape — or, switched off, does none of it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.cloud.test_api import bearer, serving, settings_for, sign_up

from printfleet.cloud.admission import (
    AdmissionGate,
    AdmissionLimits,
    AdmissionMiddleware,
    Refusal,
)
from printfleet.cloud.callers import VerifiedCallers, token_digest
from printfleet.testing import MosquittoBroker


class FakeClock:
    """Seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HeldApp:
    """A test app whose ``/hold`` requests wait until released, and counts what it ran."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.arrived = asyncio.Condition()
        self.ran = 0

    async def hold(self, request: Request) -> Response:
        async with self.arrived:
            self.entered += 1
            self.arrived.notify_all()
        await self.release.wait()
        return JSONResponse({"held": True})

    async def quick(self, request: Request) -> Response:
        self.ran += 1
        return JSONResponse({"ok": True})

    async def wait_entered(self, count: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: self.entered >= count)

    def app(self) -> Starlette:
        paths = ["/health", "/metrics", "/printer-files/f1", "/api/v1/jobs", "/api/v1/events"]
        routes = [Route("/hold", self.hold)] + [Route(path, self.quick) for path in paths]
        return Starlette(routes=routes)


@contextlib.asynccontextmanager
async def served(gate: AdmissionGate, held: HeldApp) -> AsyncIterator[httpx.AsyncClient]:
    """``held``'s app behind the middleware, served by uvicorn on a free 127.0.0.1 port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    app = AdmissionMiddleware(held.app(), gate)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="uvicorn")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # uvicorn has no readiness event, only this flag
                if task.done():
                    await task
                await asyncio.sleep(0.01)
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
            yield client
    finally:
        held.release.set()
        server.should_exit = True
        await task
        listener.close()


# ---------------------------------------------------------------------------------------------
# The middleware over a test app.


@pytest.mark.asyncio
async def test_the_concurrency_limit_refuses_at_once_while_requests_are_held() -> None:
    held = HeldApp()
    gate = AdmissionGate(AdmissionLimits(max_concurrent=2))
    async with served(gate, held) as client:
        holding = [asyncio.create_task(client.get("/hold")) for _ in range(2)]
        await held.wait_entered(2)

        # Both slots are taken: the next request is answered now, not queued behind them
        # (were it queued, this would wait for a release that never comes, and time out).
        async with asyncio.timeout(5):
            refused = await client.get("/api/v1/jobs")
        assert refused.status_code == 503
        assert refused.json() == {
            "error": "overloaded",
            "message": "the server is at its limit of requests in progress; retry after "
            "Retry-After seconds",
        }
        assert 1 <= int(refused.headers["Retry-After"]) <= 4
        assert not any(task.done() for task in holding)
        assert held.ran == 0

        # Health, metrics and printer downloads pass even now, and so do event streams (which
        # would otherwise hold slots for as long as a dashboard stays open).
        for path in ("/health", "/metrics", "/printer-files/f1", "/api/v1/events"):
            assert (await client.get(path)).status_code == 200, path
        assert held.ran == 4

        held.release.set()
        assert [(await task).status_code for task in holding] == [200, 200]
        assert (await client.get("/api/v1/jobs")).status_code == 200
    assert gate.rejected[Refusal.OVERLOADED] == 1
    assert gate.in_flight == 0
    assert gate.exempted == 3


@pytest.mark.asyncio
async def test_refused_clients_are_told_different_waits() -> None:
    held = HeldApp()
    gate = AdmissionGate(AdmissionLimits(max_concurrent=1))
    async with served(gate, held) as client:
        holding = asyncio.create_task(client.get("/hold"))
        await held.wait_entered(1)
        waits = {int((await client.get("/api/v1/jobs")).headers["Retry-After"]) for _ in range(40)}
        held.release.set()
        await holding
    # Forty draws from 1..4 that all agree would mean no jitter (odds 4 in 4**40).
    assert len(waits) > 1
    assert waits <= {1, 2, 3, 4}


@pytest.mark.asyncio
async def test_each_account_has_its_own_rate_and_is_told_when_to_return() -> None:
    held = HeldApp()
    clock = FakeClock()
    gate = AdmissionGate(AdmissionLimits(rate_per_s=0.5, burst=2), clock=clock)
    # What the API tells the gate once it has authenticated these tokens.
    gate.callers.verified("pf_ada", "ada-id")
    gate.callers.verified("pf_bob", "bob-id")
    ada, bob = bearer("pf_ada"), bearer("pf_bob")
    async with served(gate, held) as client:
        assert [(await client.get("/api/v1/jobs", headers=ada)).status_code for _ in range(2)] == [
            200,
            200,
        ]
        limited = await client.get("/api/v1/jobs", headers=ada)
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert limited.headers["Retry-After"] == "2"  # one token at 0.5/s
        # Another account, and callers without a verified token (counted by address), are not
        # affected.
        assert (await client.get("/api/v1/jobs", headers=bob)).status_code == 200
        assert (await client.get("/api/v1/jobs")).status_code == 200

        clock.now += 2
        assert (await client.get("/api/v1/jobs", headers=ada)).status_code == 200
        assert (await client.get("/api/v1/jobs", headers=ada)).status_code == 429
    assert held.ran == 5
    assert gate.rejected[Refusal.RATE_LIMITED] == 2


@pytest.mark.asyncio
async def test_bearers_the_api_has_not_verified_count_against_their_address() -> None:
    held = HeldApp()
    gate = AdmissionGate(AdmissionLimits(rate_per_s=0.01, burst=3), clock=FakeClock())
    gate.callers.verified("pf_ada", "ada-id")
    async with served(gate, held) as client:
        made_up = [
            (await client.get("/api/v1/jobs", headers=bearer(f"pf_{n}"))).status_code
            for n in range(4)
        ]
        assert made_up == [200, 200, 200, 429]
        assert (await client.get("/api/v1/jobs")).status_code == 429
        # A verified token draws on its account's bucket, not the address's.
        assert (await client.get("/api/v1/jobs", headers=bearer("pf_ada"))).status_code == 200
        # Once the API has refused it (revoked, expired), it is the address's again.
        gate.callers.refused("pf_ada")
        assert (await client.get("/api/v1/jobs", headers=bearer("pf_ada"))).status_code == 429


def test_verified_callers_are_bounded_and_keep_no_tokens() -> None:
    callers = VerifiedCallers(max_entries=2)
    for n in range(3):
        callers.verified(f"pf_secret_{n}", f"user-{n}")
    assert len(callers) == 2
    assert callers.account_of(token_digest(b"pf_secret_0")) is None  # the oldest is forgotten
    assert callers.account_of(token_digest(b"pf_secret_2")) == "user-2"
    assert "pf_secret" not in repr(vars(callers))


def test_a_shed_request_does_not_cost_its_caller_a_token() -> None:
    clock = FakeClock()
    gate = AdmissionGate(AdmissionLimits(max_concurrent=1, rate_per_s=1, burst=1), clock=clock)
    assert gate.enter("other", None) is None
    shed = gate.enter("ada", None)
    assert shed is not None
    assert shed.reason is Refusal.OVERLOADED
    gate.leave()
    # Ada's one token was refunded: she gets in at once, not after a second.
    assert gate.enter("ada", None) is None


@pytest.mark.asyncio
async def test_requests_past_their_deadline_are_dropped_unrun() -> None:
    held = HeldApp()
    gate = AdmissionGate(AdmissionLimits())
    now_ms = time.time() * 1000
    async with served(gate, held) as client:
        expired = await client.get(
            "/api/v1/jobs", headers={"X-Request-Deadline": str(int(now_ms - 1))}
        )
        assert expired.status_code == 504
        assert expired.json()["error"] == "deadline_exceeded"
        assert held.ran == 0

        live = await client.get(
            "/api/v1/jobs", headers={"X-Request-Deadline": str(int(now_ms + 60_000))}
        )
        assert live.status_code == 200
        assert held.ran == 1

        garbled = await client.get("/api/v1/jobs", headers={"X-Request-Deadline": "soon"})
        assert garbled.status_code == 400
        assert garbled.json() == {
            "error": "invalid_request",
            "message": "X-Request-Deadline must be unix milliseconds, got 'soon'",
        }
    assert gate.rejected[Refusal.EXPIRED] == 1
    assert gate.rejected[Refusal.BAD_DEADLINE] == 1


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_concurrent must be >= 1"):
        AdmissionLimits(max_concurrent=0)
    with pytest.raises(ValueError, match="rate_per_s must be a positive number"):
        AdmissionLimits(rate_per_s=float("inf"))
    with pytest.raises(ValueError, match="burst must be >= 1"):
        AdmissionLimits(burst=0.5)


def test_the_gate_forgets_the_least_recent_callers_first() -> None:
    gate = AdmissionGate(AdmissionLimits(rate_per_s=1, burst=1, max_callers=2), clock=FakeClock())
    for caller in ("a", "b"):
        assert gate.enter(caller, None) is None
        gate.leave()
    assert gate.enter("a", None) is not None  # a is out of tokens, and now the most recent
    assert gate.enter("c", None) is None  # pushes b out
    gate.leave()
    assert gate.enter("b", None) is None  # b starts again with a full bucket


# ---------------------------------------------------------------------------------------------
# The real cloud.


@pytest.mark.asyncio
async def test_the_cloud_limits_each_token_and_counts_it(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    settings = settings_for(tmp_path, url, mosquitto.url, rate_limit_per_s=0.01, rate_limit_burst=3)
    async with serving(settings) as cloud:
        # Registering and logging in (by address) take two of the address's three tokens.
        token = await sign_up(cloud.client, "ada@example.org")
        statuses = [
            (await cloud.client.get("/api/v1/jobs", headers=bearer(token))).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        metrics = (await cloud.client.get("/metrics")).text
    assert 'printfleet_http_rejected_total{reason="rate_limited"} 1.0' in metrics
    assert "printfleet_http_admitted_total 5.0" in metrics


@pytest.mark.asyncio
async def test_the_cloud_without_admission_control_never_refuses(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    settings = settings_for(
        tmp_path, url, mosquitto.url, admission=False, rate_limit_per_s=0.01, rate_limit_burst=1
    )
    async with serving(settings) as cloud:
        token = await sign_up(cloud.client, "ada@example.org")
        statuses = {
            (await cloud.client.get("/api/v1/jobs", headers=bearer(token))).status_code
            for _ in range(4)
        }
        expired = await cloud.client.get(
            "/api/v1/jobs", headers={**bearer(token), "X-Request-Deadline": "1"}
        )
        metrics = (await cloud.client.get("/metrics")).text
    assert statuses == {200}
    assert expired.status_code == 200
    assert "printfleet_http_rejected" not in metrics


@pytest.mark.asyncio
async def test_a_full_database_pool_is_answered_503_soon(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    settings = settings_for(tmp_path, url, mosquitto.url, db_pool_size=1, db_pool_timeout_s=0.3)
    async with serving(settings) as cloud:
        token = await sign_up(cloud.client, "ada@example.org")
        # Take the pool's only connection, as a slow request would.
        async with cloud.context.store.engine.connect():
            started = time.monotonic()
            busy = await cloud.client.get("/api/v1/jobs", headers=bearer(token))
            waited = time.monotonic() - started
        assert busy.status_code == 503
        assert busy.json() == {
            "error": "store_busy",
            # The store's own words name the database; they are for the log.
            "message": "the database is busy; retry after Retry-After seconds",
        }
        assert 1 <= int(busy.headers["Retry-After"]) <= 4
        assert waited < 5
        assert (await cloud.client.get("/api/v1/jobs", headers=bearer(token))).status_code == 200
