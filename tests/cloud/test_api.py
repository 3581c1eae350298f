"""The HTTP API of a real cloud: ``create_app`` served by uvicorn on 127.0.0.1 with its own
lifespan, on SQLite and on PostgreSQL, with a real Mosquitto; printers are real agents driving
simulated printers. Accounts, tokens, provisioning, a job from upload to completion, idempotent
submission, health and metrics.

The other ``test_api_*`` modules reuse the harness defined here (``serving``, ``sign_up``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tomllib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import httpx
import pytest
import pytest_asyncio
import uvicorn

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import HeaterId
from printfleet.agent.runtime import PrinterAgent
from printfleet.cloud.api import ApiContext
from printfleet.cloud.app import KEY_FILE, Settings, create_app, running_cloud
from printfleet.cloud.broker_auth import (
    CLOUD_USER,
    BrokerAccount,
    hash_password,
    new_secret,
    write_mosquitto_files,
)
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.mosquitto_auth import MosquittoAuthSync
from printfleet.cloud.store import open_store
from printfleet.sim.printer import SimulatedPrinter
from printfleet.sim.samples import make_sample_gcode
from printfleet.sim.thermal import HeaterFault
from printfleet.testing import MosquittoBroker, PostgresServer

T = TypeVar("T")
PASSWORD = "correct horse battery"
GCODE = make_sample_gcode(3, heat=False).encode()

# ---------------------------------------------------------------------------------------------
# Harness.


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of this test's own; the app migrates it on start."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"api_{uuid.uuid4().hex}")


@dataclass
class Running:
    """A cloud being served, and a client for it."""

    client: httpx.AsyncClient
    context: ApiContext
    settings: Settings
    url: str

    async def link_verified(self) -> None:
        """Wait for the cloud's broker link to prove itself (commands need it)."""
        assert self.context.core is not None
        async with asyncio.timeout(15):
            await self.context.core.link.wait_verified()


def settings_for(
    tmp_path: Path, database_url: str, broker_url: str | None, **changes: Any
) -> Settings:
    """Test settings: everything under ``tmp_path``, a fast probe, open registration."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "cloud",
        "database_url": database_url,
        "broker_url": broker_url,
        "open_registration": True,
        "probe_interval_s": 1.0,
        # Test receivers (webhooks, SMTP) listen on loopback, which channels may not reach
        # by default; the cloud's own port stays refused whatever this says.
        "outbound_allow": ("127.0.0.1",),
    }
    values.update(changes)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, access_log: bool = False) -> AsyncIterator[Running]:
    """Serve ``create_app(settings)`` with uvicorn on a free 127.0.0.1 port, lifespan and all
    (with uvicorn's access log on, as ``printfleet serve`` runs it, if ``access_log``)."""
    # Said to be TCP, or asyncio leaves Nagle on and each response waits 40 ms for an ACK.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    # Printers fetch files from here, so the public URL must be the real port.
    settings = settings.model_copy(update={"public_url": url})
    app = create_app(settings)
    # As printfleet serve runs it: proxy headers are the app's to trust (trusted_proxies).
    config = uvicorn.Config(
        app,
        log_config=None,
        ws="none",
        access_log=access_log,
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="uvicorn")
    try:
        async with asyncio.timeout(30):
            # uvicorn has no readiness event, only this flag.
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("the app did not start; see the log above")
                await asyncio.sleep(0.01)
        context = app.state.printfleet
        assert isinstance(context, ApiContext)
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield Running(client, context, settings, url)
    finally:
        server.should_exit = True
        await task
        listener.close()


@pytest_asyncio.fixture
async def cloud(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[Running]:
    """A cloud on this test's database, with open registration, against the shared Mosquitto."""
    async with serving(settings_for(tmp_path, api_database_url, mosquitto.url)) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    """The header that authenticates as ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def sign_up(client: httpx.AsyncClient, email: str) -> str:
    """Register ``email`` and log in; the login token."""
    response = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    response = await client.post("/api/v1/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert isinstance(token, str)
    return token


async def upload(
    client: httpx.AsyncClient, token: str, name: str = "cube.gcode", data: bytes = GCODE
) -> httpx.Response:
    """POST a file as multipart."""
    return await client.post(
        "/api/v1/files", headers=bearer(token), files={"file": (name, data, "text/plain")}
    )


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 20) -> T:
    """Poll ``check`` until it returns something (HTTP offers no change notification here)."""
    async with asyncio.timeout(within):
        while (result := await check()) is None:  # noqa: ASYNC110 - the state is the server's
            await asyncio.sleep(0.05)
        return result


def unique(prefix: str) -> str:
    """An id no other test uses (the Mosquitto broker is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# Accounts and tokens.


@pytest.mark.asyncio
async def test_register_and_log_in(cloud: Running) -> None:
    client = cloud.client
    created = await client.post(
        "/api/v1/users", json={"email": "Ada@Example.org", "password": PASSWORD}
    )
    assert created.status_code == 201
    assert created.json()["email"] == "ada@example.org"
    assert "password" not in created.text
    assert "argon2" not in created.text

    again = await client.post(
        "/api/v1/users", json={"email": "ada@example.org", "password": PASSWORD}
    )
    assert again.status_code == 409
    assert again.json()["error"] == "already_exists"
    short = await client.post(
        "/api/v1/users", json={"email": "bob@example.org", "password": "short"}
    )
    assert short.status_code == 422
    assert short.json()["error"] == "invalid_request"
    assert "password" in short.json()["message"]

    # Wrong password and unknown address: the same answer, with a Bearer challenge.
    wrong = await client.post(
        "/api/v1/login", json={"email": "ada@example.org", "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/login", json={"email": "eve@example.org", "password": PASSWORD}
    )
    for refused in (wrong, unknown):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json() == {
            "error": "invalid_credentials",
            "message": "wrong e-mail address or password",
        }

    login = await client.post(
        "/api/v1/login", json={"email": "ADA@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200
    token = login.json()["token"]
    assert token.startswith("pf_")
    assert sorted(login.json()["scopes"]) == ["read", "write"]


@pytest.mark.asyncio
async def test_tokens_authenticate_scope_and_revoke(cloud: Running) -> None:
    client = cloud.client
    await sign_up(client, "ada@example.org")
    login = await client.post(
        "/api/v1/login",
        json={"email": "ada@example.org", "password": PASSWORD, "token_name": "laptop"},
    )
    token = login.json()["token"]

    # No token, a malformed header, an unknown token: 401 with a challenge, never 403.
    missing = await client.get("/api/v1/printers")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    basic = await client.get("/api/v1/printers", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    forged = await client.get("/api/v1/printers", headers=bearer("pf_" + "x" * 43))
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"
    assert forged.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'

    made = await client.post(
        "/api/v1/tokens", headers=bearer(token), json={"name": "dashboard", "scopes": ["read"]}
    )
    assert made.status_code == 201
    read_only = made.json()["token"]
    assert made.json()["scopes"] == ["read"]
    assert (await client.get("/api/v1/printers", headers=bearer(read_only))).status_code == 200
    refused = await client.post(
        "/api/v1/printers",
        headers=bearer(read_only),
        json={"id": unique("ro"), "name": "x", "model": "p1"},
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert "write" in refused.json()["message"]
    # A token cannot mint a stronger one.
    escalate = await client.post(
        "/api/v1/tokens", headers=bearer(token), json={"name": "root", "scopes": ["admin"]}
    )
    assert escalate.status_code == 403

    listed = await client.get("/api/v1/tokens", headers=bearer(token))
    assert [t["name"] for t in listed.json()] == ["login", "laptop", "dashboard"]
    assert all("token" not in t for t in listed.json())  # values are shown once only

    revoked = await client.delete(f"/api/v1/tokens/{made.json()['id']}", headers=bearer(token))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await client.get("/api/v1/printers", headers=bearer(read_only))).status_code == 401

    other = await sign_up(client, "bob@example.org")
    theirs = await client.delete(f"/api/v1/tokens/{login.json()['id']}", headers=bearer(other))
    assert theirs.status_code == 404
    assert (await client.get("/api/v1/tokens", headers=bearer(token))).status_code == 200


@pytest.mark.asyncio
async def test_only_the_first_account_can_register_while_registration_is_closed(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'closed.sqlite3'}"
    settings = settings_for(tmp_path, url, mosquitto.url, open_registration=False)
    async with serving(settings) as running:
        first = await running.client.post(
            "/api/v1/users", json={"email": "admin@example.org", "password": PASSWORD}
        )
        assert first.status_code == 201
        second = await running.client.post(
            "/api/v1/users", json={"email": "mallory@example.org", "password": PASSWORD}
        )
        assert second.status_code == 403
        assert second.json()["error"] == "registration_closed"


# ---------------------------------------------------------------------------------------------
# A printer, from provisioning to a finished print.


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, str, Path]]:
    """A Mosquitto that lets in only known users, each to its own topics; the cloud's password."""
    secret = new_secret()
    auth = tmp_path / "broker-auth"
    passwords, acl = write_mosquitto_files(auth, BrokerAccount(CLOUD_USER, hash_password(secret)))
    with MosquittoBroker(allow_anonymous=False, password_file=passwords, acl_file=acl) as broker:
        yield broker, secret, auth


@dataclass
class Workshop:
    """One owner and one printer, seen through the API."""

    client: httpx.AsyncClient
    token: str
    printer_id: str

    async def get(self, path: str) -> Any:
        response = await self.client.get(path, headers=bearer(self.token))
        assert response.status_code == 200, response.text
        return response.json()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(path, headers=bearer(self.token), json=body)

    async def printer_if(self, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        printer: dict[str, Any] = await self.get(f"/api/v1/printers/{self.printer_id}")
        return printer if ready(printer) else None

    async def job_in(self, job_id: str, state: str) -> dict[str, Any] | None:
        job: dict[str, Any] = await self.get(f"/api/v1/jobs/{job_id}")
        assert job["state"] not in {"rejected", "failed", "expired"}, job
        return job if job["state"] == state else None

    async def alert(self, kind: str) -> dict[str, Any] | None:
        alerts = await self.get("/api/v1/alerts")
        found = [a for a in alerts if a["kind"] == kind and a["printer_id"] == self.printer_id]
        return found[0] if found else None


@pytest.mark.asyncio
async def test_a_provisioned_printer_comes_online_prints_and_reports_faults(
    api_database_url: str,
    secured_broker: tuple[MosquittoBroker, str, Path],
    tmp_path: Path,
) -> None:
    broker, secret, auth = secured_broker
    cloud_url = f"mqtt://{CLOUD_USER}:{secret}@127.0.0.1:{broker.port}"
    assert broker.pid is not None
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.pid}\n")
    # The cloud keeps the broker's password file and ACL in step with provisioning and reloads
    # the broker: nobody edits them by hand.
    synced = settings_for(
        tmp_path, api_database_url, cloud_url, mosquitto_auth_dir=auth, mosquitto_pid_file=pid_file
    )
    async with serving(synced) as cloud:
        token = await sign_up(cloud.client, "owner@example.org")
        shop = Workshop(cloud.client, token, unique("p1"))
        provisioned = await shop.post(
            "/api/v1/printers", {"id": shop.printer_id, "name": "Workshop P1", "model": "p1"}
        )
        assert provisioned.status_code == 201, provisioned.text
        body = provisioned.json()
        assert body["printer"]["role"] == "owner"
        assert body["printer"]["online"] is False
        # The cloud's own broker credentials never travel to a printer.
        assert secret not in body["agent_config"]
        assert body["cloud_public_key"] == cloud.context.service.signer.public_key
        duplicate = await shop.post(
            "/api/v1/printers", {"id": shop.printer_id, "name": "again", "model": "p1"}
        )
        assert duplicate.status_code == 409

        record = await cloud.context.store.printers.get(shop.printer_id)
        line = f"{record.broker_username}:{record.broker_password_hash}"

        async def admitted() -> bool | None:
            return line in await asyncio.to_thread((auth / "passwords").read_text) or None

        await eventually(admitted)
        # The agent runs on exactly what provisioning returned, plus where to keep its files.
        settings = tomllib.loads(body["agent_config"])
        config = AgentConfig.model_validate(
            {**settings, "data_dir": tmp_path / "agent", "telemetry_period_s": 0.2}
        )
        await _wait_for_login(broker, config)
        async with (
            SimulatedPrinter("p1", storage_dir=tmp_path / "sd", time_scale=20) as hardware,
            _running(PrinterAgent(config, hardware).run()),
        ):
            printer = await eventually(
                lambda: shop.printer_if(lambda p: p["online"] and p["temperatures"] is not None)
            )
            assert printer["status"] == "idle"
            assert printer["plate"] == "needs_confirmation"
            assert printer["report_age_s"] < 5
            assert printer["link_evidence_age_s"] is not None
            assert printer["temperatures"]["hotend"]["target_c"] == 0
            job = await _print_one_job(shop, hardware)
            await _fault_and_clear(shop, hardware)

    # Who or what caused each command: the user created the job, the dispatcher sent stage
    # and start.
    actions = {(entry["actor"]["kind"], entry["action"]) for entry in job["audit"]}
    assert ("user", "job.created") in actions
    assert ("system", "stage:sent") in actions
    assert ("system", "start:sent") in actions
    assert job["ended_at"] is not None


async def _print_one_job(shop: Workshop, hardware: SimulatedPrinter) -> dict[str, Any]:
    uploaded = await upload(shop.client, shop.token)
    assert uploaded.status_code == 201, uploaded.text
    submitted = await shop.post(
        "/api/v1/jobs", {"file_id": uploaded.json()["id"], "printer_id": shop.printer_id}
    )
    assert submitted.status_code == 201
    job_id = submitted.json()["id"]
    # A p1 has no plate sensor: the file is staged (fetched through a capability link), then
    # the job waits for a person to confirm the plate.
    await eventually(lambda: shop.job_in(job_id, "staged"))
    assert hardware.current_print() is None
    confirmed = await shop.post(f"/api/v1/printers/{shop.printer_id}/confirm-plate")
    assert confirmed.status_code == 202
    job = await eventually(lambda: shop.job_in(job_id, "completed"), within=30)
    # The print ended and the plate holds it: the printer asks for a person again (S5).
    await eventually(lambda: shop.alert("plate_confirmation_needed"))
    return job


async def _fault_and_clear(shop: Workshop, hardware: SimulatedPrinter) -> None:
    # A thermal fault reaches the API as an alert and as the printer's state (S6) ...
    hardware.inject_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
    fault = await eventually(lambda: shop.alert("thermal_fault"))
    assert fault["severity"] == "critical"
    acked = await shop.post(f"/api/v1/alerts/{fault['id']}/ack")
    assert acked.json()["acked_at"] is not None
    faulted = await eventually(lambda: shop.printer_if(lambda p: p["fault"] is not None))
    assert faulted["status"] == "error"
    # ... and stays latched until a person clears it, once the sensor is mended.
    hardware.clear_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
    cleared = await shop.post(f"/api/v1/printers/{shop.printer_id}/clear-fault")
    assert cleared.status_code == 202
    healthy = await eventually(lambda: shop.printer_if(lambda p: p["fault"] is None))
    assert healthy["status"] == "idle"


async def _wait_for_login(broker: MosquittoBroker, config: AgentConfig) -> None:
    """Until the reloaded broker accepts the printer's credentials (it reloads asynchronously)."""
    async with asyncio.timeout(10):
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    broker.port,
                    username=config.username,
                    password=config.password,
                    identifier=f"login-check-{config.printer_id}",
                ):
                    return
            except aiomqtt.MqttCodeError:
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _running(coroutine: Awaitable[None]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---------------------------------------------------------------------------------------------
# Jobs.


@pytest.mark.asyncio
async def test_job_submission_is_idempotent_and_validated(cloud: Running) -> None:
    client = cloud.client
    token = await sign_up(client, "maker@example.org")
    auth = bearer(token)
    printer_id = unique("p1")
    created = await client.post(
        "/api/v1/printers", headers=auth, json={"id": printer_id, "name": "P", "model": "p1"}
    )
    assert created.status_code == 201
    file_id = (await upload(client, token)).json()["id"]
    job = {"file_id": file_id, "printer_id": printer_id, "start_within_s": 600}

    first = await client.post("/api/v1/jobs", headers={**auth, "Idempotency-Key": "k-1"}, json=job)
    assert first.status_code == 201
    retry = await client.post("/api/v1/jobs", headers={**auth, "Idempotency-Key": "k-1"}, json=job)
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert first.json()["state"] == "queued"
    assert first.json()["idempotency_key"] == "k-1"
    reused = await client.post(
        "/api/v1/jobs",
        headers={**auth, "Idempotency-Key": "k-1"},
        json={**job, "notify_completion": True},
    )
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_mismatch"
    # Without a key every request is a new job.
    other = await client.post("/api/v1/jobs", headers=auth, json=job)
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]

    listed = await client.get("/api/v1/jobs", headers=auth)
    assert [j["id"] for j in listed.json()] == [other.json()["id"], first.json()["id"]]
    detail = await client.get(f"/api/v1/jobs/{first.json()['id']}", headers=auth)
    [created_entry] = [e for e in detail.json()["audit"] if e["action"] == "job.created"]
    assert created_entry["actor"]["kind"] == "user"

    for invalid, error in [
        ({"file_id": file_id}, "invalid_request"),
        ({**job, "model": "p1"}, "invalid_request"),
        ({"file_id": file_id, "model": "x1"}, "invalid_request"),
        ({**job, "start_within_s": 0}, "invalid_request"),
        ({**job, "surprise": 1}, "invalid_request"),
    ]:
        refused = await client.post("/api/v1/jobs", headers=auth, json=invalid)
        assert refused.status_code == 422, invalid
        assert refused.json()["error"] == error
        assert refused.json()["message"]
    missing = await client.post("/api/v1/jobs", headers=auth, json={**job, "file_id": "nope"})
    assert missing.status_code == 404

    job_id = first.json()["id"]
    paused = await client.post(f"/api/v1/jobs/{job_id}/pause", headers=auth)
    assert paused.status_code == 422
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["reason"] == "cancelled by user"
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth)
    assert again.status_code == 422
    queued = await client.get("/api/v1/jobs", headers=auth, params={"state": "queued"})
    assert [j["id"] for j in queued.json()] == [other.json()["id"]]


# ---------------------------------------------------------------------------------------------
# Operations.


@pytest.mark.asyncio
async def test_health_metrics_and_openapi(cloud: Running) -> None:
    client = cloud.client
    await cloud.link_verified()
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["store"]["ok"] is True
    assert health.json()["link"]["verified"] is True

    token = await sign_up(client, "ops@example.org")
    printer_id = unique("p1")
    await client.post(
        "/api/v1/printers",
        headers=bearer(token),
        json={"id": printer_id, "name": "P", "model": "p1"},
    )
    file_id = (await upload(client, token)).json()["id"]
    await client.post(
        "/api/v1/jobs", headers=bearer(token), json={"file_id": file_id, "printer_id": printer_id}
    )
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'printfleet_jobs{state="queued"} 1.0' in text
    assert "printfleet_link_verified 1.0" in text
    assert "printfleet_link_evidence_age_seconds" in text
    assert "printfleet_store_up 1.0" in text

    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/api/v1/jobs", "/api/v1/printers/{printer_id}/plate-check", "/health"):
        assert path in paths
    assert "multipart/form-data" in paths["/api/v1/files"]["post"]["requestBody"]["content"]
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


@pytest.mark.asyncio
async def test_health_is_503_while_the_broker_is_down(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'health.sqlite3'}"
    async with serving(
        settings_for(tmp_path, url, fresh_mosquitto.url, probe_interval_s=0.5)
    ) as cloud:
        await cloud.link_verified()
        fresh_mosquitto.kill()

        async def unhealthy() -> httpx.Response | None:
            response = await cloud.client.get("/health")
            return response if response.status_code == 503 else None

        response = await eventually(unhealthy, within=10)
        assert response.json()["status"] == "unavailable"
        assert response.json()["link"]["verified"] is False
        assert response.json()["store"]["ok"] is True
        # A command now fails now (S9), with a reason and a hint to retry.
        token = await sign_up(cloud.client, "late@example.org")
        printer_id = unique("p1")
        await cloud.client.post(
            "/api/v1/printers",
            headers=bearer(token),
            json={"id": printer_id, "name": "P", "model": "p1"},
        )
        refused = await cloud.client.post(
            f"/api/v1/printers/{printer_id}/confirm-plate", headers=bearer(token)
        )
        assert refused.status_code == 503
        assert refused.json()["error"] == "printer_unreachable"
        assert 1 <= int(refused.headers["Retry-After"]) <= 4


@pytest.mark.asyncio
async def test_the_default_wiring_embedded_broker_and_a_kept_signing_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "cloud", probe_interval_s=0.5)
    async with serving(settings) as cloud:
        await cloud.link_verified()
        assert (await cloud.client.get("/health")).status_code == 200
        key = cloud.context.service.signer.public_key
    key_file = tmp_path / "cloud" / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cloud" / "printfleet.sqlite3").is_file()
    async with serving(settings) as cloud:
        # Printers pinned the key: a restart must not change it.
        assert cloud.context.service.signer.public_key == key


def environment(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """Exactly ``variables`` among the ``PRINTFLEET_*`` ones, for this test."""
    for name in [name for name in os.environ if name.startswith("PRINTFLEET_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_settings_come_from_the_environment_and_options_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment(
        monkeypatch,
        {
            "PRINTFLEET_DATA_DIR": "/srv/printfleet",
            "PRINTFLEET_BROKER_URL": "mqtt://cloud:pw@broker:1883",
            "PRINTFLEET_OPEN_REGISTRATION": "1",
            "PRINTFLEET_MAX_UPLOAD_BYTES": "1048576",
            "PRINTFLEET_PUBLIC_URL": "",  # empty counts as unset
        },
    )
    settings = Settings.from_env(broker_url="mqtt://other:1883", database_url=None)
    assert settings.data_dir == Path("/srv/printfleet")
    assert settings.broker_url == "mqtt://other:1883"
    assert settings.open_registration is True
    assert settings.max_upload_bytes == 1_048_576
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.store_url() == "sqlite+aiosqlite:////srv/printfleet/printfleet.sqlite3"
    # Made directly, settings hold what they are given and nothing of the environment.
    assert Settings(data_dir=Path("/elsewhere")).open_registration is False
    environment(monkeypatch, {})
    defaults = Settings.from_env()
    assert defaults.open_registration is False
    assert defaults.broker_url is None
    assert defaults.max_upload_bytes == 200 * 1024 * 1024
    environment(monkeypatch, {"PRINTFLEET_MAX_UPLOAD_BYTES": "lots"})
    with pytest.raises(ValueError, match="max_upload_bytes"):
        Settings.from_env()


@pytest.mark.asyncio
async def test_keeping_the_broker_files_needs_the_clouds_own_login(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "cloud",
        broker_url="mqtt://127.0.0.1:1883",
        mosquitto_auth_dir=tmp_path / "auth",
    )
    with pytest.raises(ValueError, match="needs the cloud's own broker login"):
        async with running_cloud(settings):
            pass
    assert not (tmp_path / "auth").exists()


@pytest.mark.asyncio
async def test_a_stale_broker_pid_file_is_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    await upgrade(url)
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text("999999999\n")  # above any Linux pid_max: no such process
    async with await open_store(url) as store:
        sync = MosquittoAuthSync(
            tmp_path / "auth", store, cloud_password="s3cret", pid_file=pid_file
        )
        await sync.sync()
    assert sync.syncs == 1
    assert (tmp_path / "auth" / "passwords").read_text().startswith(f"{CLOUD_USER}:$7$")
    assert "is not running" in caplog.text
