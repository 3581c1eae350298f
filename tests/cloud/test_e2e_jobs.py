"""End to end, through a real Mosquitto, real printer agents on simulated printers, and the real
cloud app served by uvicorn, on SQLite and on PostgreSQL: what a person sees of a job's life.

- submit -> start -> progress -> complete, each step on the submitter's event stream;
- a job for a printer whose plate is occupied waits until a person confirms it (p1-like) or the
  sensor reads clear (x1-like), and never starts before;
- a job whose window passes while its printer is offline or busy ends ``expired``, the submitter
  is told on the stream and by a signed webhook, and it never starts later;
- a cloud restart mid-job loses nothing and starts nothing twice.

The other ``test_e2e_*`` modules reuse the harness defined here (``Shop``, ``EventFeed``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import uvicorn
from tests.cloud.test_api import (
    Running,
    api_database_url,
    bearer,
    serving,
    settings_for,
    sign_up,
    unique,
)
from tests.cloud.test_notify_support import WebhookReceiver, serve_asgi, sse_blocks

from printfleet.agent.config import AgentConfig
from printfleet.agent.runtime import PrinterAgent
from printfleet.cloud.api import ApiContext
from printfleet.cloud.app import Settings, create_app
from printfleet.protocol.topics import Topics
from printfleet.sim.printer import SimulatedPrinter
from printfleet.sim.samples import make_sample_gcode
from printfleet.testing import MosquittoBroker, free_port

__all__ = ["api_database_url"]  # a fixture, used by name

TIME_SCALE = 30.0
"""Simulated seconds per real second: a 3-layer print takes about a third of a real second."""
SHORT = make_sample_gcode(3, heat=False).encode()
LONG = make_sample_gcode(30, heat=False).encode()
"""About 80 simulated seconds: nearly three real ones, long enough to act while it prints."""
HOOK_SECRET = "e2e-webhook-secret-0123456789"


# ---------------------------------------------------------------------------------------------
# Harness.


class EventFeed:
    """A user's ``GET /api/v1/events`` stream, read in the background into a list."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self._client = client
        self._token = token
        self.events: list[dict[str, Any]] = []
        """Each notification's JSON, with the SSE ``id:`` and ``event:`` it came with."""
        self._changed = asyncio.Condition()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        headers = {**bearer(self._token), "Accept": "text/event-stream"}
        async with self._client.stream("GET", "/api/v1/events", headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for block in sse_blocks(response):
                if "subscribed" in block.comments:
                    self._subscribed.set()
                if block.event is None or block.id is None:
                    continue
                (line,) = block.data
                payload = json.loads(line)
                assert payload["id"] == block.id
                assert payload["kind"] == block.event
                async with self._changed:
                    self.events.append({**payload, "received_at": time.monotonic()})
                    self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[EventFeed]:
        """Read the stream until exit; entered once the subscription exists."""
        self._task = asyncio.create_task(self._read(), name="sse reader")
        try:
            async with asyncio.timeout(10):
                waiting = asyncio.ensure_future(self._subscribed.wait())
                await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if self._task.done():
                    await self._task
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def of(self, kind: str, job_id: str | None = None) -> list[dict[str, Any]]:
        """The notifications of ``kind`` received so far (about ``job_id`` only, if given)."""
        return [
            event
            for event in self.events
            if event["kind"] == kind and (job_id is None or event["job_id"] == job_id)
        ]

    async def wait_for(
        self,
        kind: str,
        job_id: str | None = None,
        *,
        where: Callable[[dict[str, Any]], bool] = lambda event: True,
        within: float = 30,
    ) -> dict[str, Any]:
        """The first notification of ``kind`` (about ``job_id``) that satisfies ``where``."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.of(kind, job_id) if where(e)), None)

        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            seen = [(e["kind"], e["job_id"], e["data"].get("state")) for e in self.events]
            raise AssertionError(f"no {kind} for {job_id} in {within} s; got {seen}") from None
        event = found()
        assert event is not None
        return event


@dataclass
class Printer:
    """A provisioned printer: its simulated hardware and, while it runs, its agent."""

    id: str
    config: AgentConfig
    hardware: SimulatedPrinter
    task: asyncio.Task[None] | None = None

    async def power_on(self) -> None:
        """Start the agent (the hardware is already on)."""
        self.task = asyncio.create_task(PrinterAgent(self.config, self.hardware).run())

    async def power_off(self) -> None:
        """Stop the agent; the broker publishes its Will ("offline")."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


@dataclass
class Shop:
    """A cloud, one user, their printers, and their event stream."""

    cloud: Running
    token: str
    tmp_path: Path
    stack: contextlib.AsyncExitStack
    printers: dict[str, Printer] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.cloud.client

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, headers=bearer(self.token), **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json()

    async def printer(
        self, model: str, *, power_on: bool = True, printer_id: str | None = None
    ) -> Printer:
        """Provision a printer of ``model`` ("x1": plate sensor; "p1": none) and its agent."""
        printer_id = printer_id or unique(model)
        provisioned = await self.call(
            "POST", "/api/v1/printers", json={"id": printer_id, "name": printer_id, "model": model}
        )
        settings = tomllib.loads(provisioned["agent_config"])
        config = AgentConfig.model_validate(
            {
                **settings,
                "data_dir": self.tmp_path / printer_id / "agent",
                "telemetry_period_s": 0.2,
                "keepalive_s": 2,
            }
        )
        hardware = await self.stack.enter_async_context(
            SimulatedPrinter(
                model, storage_dir=self.tmp_path / printer_id / "sd", time_scale=TIME_SCALE
            )
        )
        printer = Printer(printer_id, config, hardware)
        self.stack.push_async_callback(printer.power_off)
        self.printers[printer_id] = printer
        if power_on:
            await printer.power_on()
            await self.online(printer_id)
        return printer

    async def online(self, printer_id: str) -> None:
        """Until the cloud has fresh state from the printer (dispatch needs it)."""

        async def ready() -> bool:
            state = await self.call("GET", f"/api/v1/printers/{printer_id}")
            return bool(state["online"] and state["status"] is not None)

        await until(ready, within=20)

    async def submit(self, printer_id: str, gcode: bytes = SHORT, **job: Any) -> str:
        """Upload ``gcode`` and queue it on the printer; the job's id."""
        response = await self.client.post(
            "/api/v1/files",
            headers=bearer(self.token),
            files={"file": ("part.gcode", gcode, "text/plain")},
        )
        assert response.status_code == 201, response.text
        created = await self.call(
            "POST",
            "/api/v1/jobs",
            json={"file_id": response.json()["id"], "printer_id": printer_id, **job},
        )
        job_id: str = created["id"]
        return job_id

    async def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self.call("GET", f"/api/v1/jobs/{job_id}")
        return job

    def feed(self) -> EventFeed:
        return EventFeed(self.client, self.token)


async def until(check: Callable[[], Any], *, within: float) -> None:
    """Poll a server-side condition that offers no change notification (a few times a second,
    well under the API's per-token rate limit)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the state is the server's
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def shop(
    tmp_path: Path,
    database_url: str,
    mosquitto: MosquittoBroker,
    email: str = "maker@example.org",
    **changes: Any,
) -> AsyncIterator[Shop]:
    """A cloud (fast probes) with one signed-up user; its printers stop on exit."""
    settings = settings_for(tmp_path, database_url, mosquitto.url, probe_interval_s=0.5, **changes)
    async with contextlib.AsyncExitStack() as stack:
        cloud = await stack.enter_async_context(serving(settings))
        await cloud.link_verified()
        token = await sign_up(cloud.client, email)
        yield Shop(cloud, token, tmp_path, stack)


@contextlib.asynccontextmanager
async def command_spy(
    mosquitto: MosquittoBroker, printer_id: str
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every command the cloud publishes to ``printer_id``, decoded, as it is published."""
    seen: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=unique("spy")) as client:
            await client.subscribe(Topics().commands(printer_id), qos=1)
            subscribed.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                seen.append(json.loads(message.payload))

    task = asyncio.create_task(listen(), name="command spy")
    try:
        async with asyncio.timeout(10):
            await subscribed.wait()
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def starts_of(commands: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    return [c for c in commands if c["type"] == "start" and c.get("job_id") == job_id]


@contextlib.asynccontextmanager
async def webhook_channel(shop: Shop, receiver: WebhookReceiver) -> AsyncIterator[str]:
    """Serve ``receiver`` and register it as the user's webhook; yields the channel id.

    The channel goes with the receiver: later notifications (the printers going offline as the
    test ends) would otherwise be retried against a closed port until the cloud shuts down.
    """
    async with serve_asgi(receiver.app) as url:
        channel = await shop.call(
            "POST",
            "/api/v1/channels",
            json={"kind": "webhook", "target": f"{url}/hook", "secret": HOOK_SECRET},
        )
        try:
            yield channel["id"]
        finally:
            await shop.call("DELETE", f"/api/v1/channels/{channel['id']}")


# ---------------------------------------------------------------------------------------------
# Tests.


@pytest.mark.asyncio
async def test_a_print_is_streamed_from_submission_to_completion(
    api_database_url: str,
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="printfleet.cloud")
    async with shop(tmp_path, api_database_url, mosquitto) as s:
        x1 = await s.printer("x1")
        async with s.feed().open() as feed:
            job_id = await s.submit(x1.id, LONG, notify_completion=True)
            submitted = await feed.wait_for("job_submitted", job_id)
            staged = await feed.wait_for("job_staged", job_id)
            started = await feed.wait_for("job_started", job_id)
            progress = await feed.wait_for("job_progress", job_id)
            completed = await feed.wait_for("job_completed", job_id, within=30)
            await feed.wait_for("printer_state", where=lambda e: e["data"]["job_id"] == job_id)

        steps = [submitted, staged, started, progress, completed]
        assert [e["received_at"] for e in steps] == sorted(e["received_at"] for e in steps)
        assert started["data"] == {
            "state": "printing",
            "reason": None,
            "name": "part.gcode",
            "printer_id": x1.id,
            "wait": None,
            "priority": 0,
            "pool_id": None,
        }
        assert 0 <= progress["data"]["progress"]["percent"] <= 100
        assert progress["data"]["progress"]["total_layers"] == 30
        assert completed["severity"] == "info"
        # Each step once: the stream never repeats a notification.
        ids = [event["id"] for event in feed.events]
        assert len(ids) == len(set(ids))

        job = await s.job(job_id)
        assert job["state"] == "completed"
        # The end is audited as what the printer reported (S1).
        ends = [e for e in job["audit"] if e["action"] == "job.completed"]
        assert [(e["actor"]["kind"], e["actor"]["id"]) for e in ends] == [("printer", x1.id)]

        # The cloud's log lines about the job carry its id and its printer's, as fields.
        about = {
            record.getMessage().split(" of job ")[0]
            for record in caplog.records
            if getattr(record, "job_id", None) == job_id
            and getattr(record, "printer_id", None) == x1.id
        }
        assert {"stage", "start"} <= about

        metrics = (await s.client.get("/metrics")).text
        assert "printfleet_dispatch_latency_seconds_count 1.0" in metrics
        assert 'printfleet_job_changes_total{state="completed"} 1.0' in metrics


@pytest.mark.asyncio
@pytest.mark.parametrize("model", ["p1", "x1"])
async def test_a_job_waits_for_a_clear_plate_and_never_starts_before(
    model: str, api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto) as s:
        printer = await s.printer(model, power_on=False)
        if model == "x1":
            printer.hardware.plate.add_print()  # last night's print is still on the plate
        await printer.power_on()
        await s.online(printer.id)
        async with s.feed().open() as feed, command_spy(mosquitto, printer.id) as commands:
            job_id = await s.submit(printer.id)
            if model == "p1":
                # No sensor: a person is asked, on the stream (and on their channels) ...
                asked = await feed.wait_for("plate_confirmation_needed")
                assert asked["printer_id"] == printer.id
                assert asked["job_id"] == job_id
            else:
                await until(lambda: _plate_reads(s, printer.id, "occupied"), within=10)
            # ... and while nobody acts, rounds of dispatch pass and nothing starts.
            core = s.cloud.context.core
            assert core is not None
            await core.dispatcher.wait_ticks(4)
            assert printer.hardware.current_print() is None
            assert starts_of(commands, job_id) == []
            assert feed.of("job_started", job_id) == []
            assert (await s.job(job_id))["state"] in {"queued", "staged"}

            acted_at = time.monotonic()
            if model == "p1":
                await s.call("POST", f"/api/v1/printers/{printer.id}/confirm-plate")
            else:
                assert printer.hardware.remove_print() == 1
            started = await feed.wait_for("job_started", job_id)
            await feed.wait_for("job_completed", job_id, within=30)

        assert started["received_at"] > acted_at
        assert len(starts_of(commands, job_id)) == 1
        # Asked once while it waited, not once per dispatch round. (A p1 asks again after the
        # print, for the next one: that is the printer's own alert.)
        asks = [
            e
            for e in feed.of("plate_confirmation_needed")
            if e["received_at"] < started["received_at"]
        ]
        assert len(asks) == (1 if model == "p1" else 0)


async def _plate_reads(s: Shop, printer_id: str, plate: str) -> bool:
    state = await s.call("GET", f"/api/v1/printers/{printer_id}")
    return bool(state["plate"] == plate)


@pytest.mark.asyncio
@pytest.mark.parametrize("while_printer_is", ["offline", "busy"])
async def test_a_job_whose_window_passes_expires_is_told_and_never_starts(
    while_printer_is: str, api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(HOOK_SECRET)
    async with shop(tmp_path, api_database_url, mosquitto) as s:
        printer = await s.printer("x1", power_on=while_printer_is == "busy")
        async with (
            webhook_channel(s, receiver) as channel_id,
            s.feed().open() as feed,
            command_spy(mosquitto, printer.id) as commands,
        ):
            if while_printer_is == "busy":
                long_job = await s.submit(printer.id, LONG)
                await feed.wait_for("job_started", long_job)
            job_id = await s.submit(printer.id, start_within_s=1)
            expired = await feed.wait_for("job_expired", job_id, within=15)
            assert expired["severity"] == "warning"
            assert expired["data"]["state"] == "expired"
            assert expired["data"]["reason"]

            # The same notification reached the webhook, signed, once.
            (hook,) = [
                r for r in await receiver.wait_for(1) if json.loads(r.body)["kind"] == "job_expired"
            ]
            assert hook.signature_error is None
            assert json.loads(hook.body)["id"] == expired["id"]
            assert hook.headers["x-printfleet-delivery"] == expired["id"]

            # The printer comes back, or becomes free: the expired job still never starts.
            if while_printer_is == "offline":
                await printer.power_on()
                await s.online(printer.id)
            else:
                await feed.wait_for("job_completed", long_job, within=30)
            core = s.cloud.context.core
            assert core is not None
            await core.dispatcher.wait_ticks(4)
            assert starts_of(commands, job_id) == []
            assert printer.hardware.current_print() is None
            assert (await s.job(job_id))["state"] == "expired"

            async def delivered() -> bool:
                rows = await s.call("GET", f"/api/v1/channels/{channel_id}/deliveries")
                return any(r["kind"] == "job_expired" and r["state"] == "delivered" for r in rows)

            await until(delivered, within=10)

        ends = [e for e in (await s.job(job_id))["audit"] if e["action"] == "job.expired"]
        assert [e["actor"]["kind"] for e in ends] == ["system"]
        # An alert on the printer too, for the people who run it.
        alerts = await s.call("GET", "/api/v1/alerts")
        assert [(a["kind"], a["printer_id"]) for a in alerts if a["job_id"] == job_id] == [
            ("job_expired", printer.id)
        ]


@pytest.mark.asyncio
async def test_a_cloud_restart_mid_job_loses_nothing_and_starts_nothing_twice(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path,
        api_database_url,
        mosquitto.url,
        probe_interval_s=0.5,
        public_url=f"http://127.0.0.1:{free_port()}",
    )
    async with contextlib.AsyncExitStack() as stack:  # the printers outlive both clouds
        async with _cloud(settings) as first:
            token = await sign_up(first.client, "maker@example.org")
            s = Shop(first, token, tmp_path, stack)
            x1 = await s.printer("x1")
            commands = await stack.enter_async_context(command_spy(mosquitto, x1.id))
            async with s.feed().open() as feed:
                printing = await s.submit(x1.id, LONG)
                await feed.wait_for("job_started", printing)
                waiting = await s.submit(x1.id, SHORT)  # queued behind the running one
                await feed.wait_for("job_staged", waiting)
        assert x1.hardware.current_print() is not None  # the cloud went away mid-print

        # A new cloud process on the same database and data directory.
        async with _cloud(settings) as second:
            s.cloud = second
            async with s.feed().open() as feed:

                async def ended() -> bool:
                    return bool((await s.job(printing))["state"] == "completed")

                await until(ended, within=30)
                # The finished print is on the plate: the next job waits for it to be taken off.
                await second.context.core.dispatcher.wait_ticks(4)  # type: ignore[union-attr]
                assert feed.of("job_started", waiting) == []
                assert x1.hardware.remove_print() == 1
                await feed.wait_for("job_started", waiting)
                await feed.wait_for("job_completed", waiting)
            for job_id in (printing, waiting):
                job = await s.job(job_id)
                assert job["state"] == "completed"
                sent = [e for e in job["audit"] if e["action"].startswith("start:")]
                assert len(sent) == 1, sent
        assert len(starts_of(commands, printing)) == 1
        assert len(starts_of(commands, waiting)) == 1


@contextlib.asynccontextmanager
async def _cloud(settings: Settings) -> AsyncIterator[Running]:
    """The app served on the port of ``settings.public_url``: a restarted cloud keeps its
    address, as a real one does, so links to files it handed out before still work."""
    port = int(settings.public_url.rsplit(":", 1)[1])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    app = create_app(settings)
    config = uvicorn.Config(
        app, log_config=None, ws="none", access_log=False, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="uvicorn")
    try:
        async with asyncio.timeout(30):
            while not server.started:  # uvicorn has no readiness event, only this flag
                if task.done():
                    await task
                    raise RuntimeError("the app did not start; see the log above")
                await asyncio.sleep(0.01)
        context = app.state.printfleet
        assert isinstance(context, ApiContext)
        async with httpx.AsyncClient(base_url=settings.public_url, timeout=20) as client:
            running = Running(client, context, settings, settings.public_url)
            await running.link_verified()
            yield running
    finally:
        server.should_exit = True
        await task
        listener.close()


@pytest.mark.asyncio
async def test_confirming_a_plate_its_sensor_sees_occupied_says_what_to_do(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto) as s:
        printer = await s.printer("x1", power_on=False)
        printer.hardware.plate.add_print()
        await printer.power_on()
        await s.online(printer.id)
        await until(lambda: _plate_reads(s, printer.id, "occupied"), within=10)
        path = f"/api/v1/printers/{printer.id}/confirm-plate"
        refused = await s.client.post(path, headers=bearer(s.token))
        assert refused.status_code == 422, refused.text
        assert "take the print off" in refused.json()["message"]
        assert printer.hardware.remove_print() == 1
        await until(lambda: _plate_reads(s, printer.id, "clear"), within=10)
        accepted = await s.client.post(path, headers=bearer(s.token))
        assert accepted.status_code == 202, accepted.text
