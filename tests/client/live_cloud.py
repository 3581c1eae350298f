"""A real cloud for SDK and CLI tests, served from a thread of its own.

Test modules use it through the ``live_cloud`` fixture (tests/client/conftest.py imports it;
other directories import ``live_cloud`` and ``close_people`` from here).

The cloud runs ``create_app`` under uvicorn (the harness of tests/cloud/test_api.py) on its own
event loop in a background thread, so blocking clients (``Client``, the CLI) can call it from
the test's thread; :meth:`LiveCloud.run` runs a coroutine on the cloud's loop (to seed alerts).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.cloud.test_api import GCODE, PASSWORD, serving, settings_for

from printfleet.client import Client, RetryPolicy
from printfleet.cloud.api import ApiContext
from printfleet.cloud.store import Severity
from printfleet.testing import MosquittoBroker

T = TypeVar("T")

__all__ = ["GCODE", "PASSWORD", "LiveCloud", "Person"]


@dataclass
class LiveCloud:
    """A cloud served in a background thread."""

    url: str
    context: ApiContext
    loop: asyncio.AbstractEventLoop
    clients: list[Client] = field(default_factory=list)
    """The people's clients, closed after each test."""

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        """Run ``coroutine`` on the cloud's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def person(self, name: str = "ada") -> Person:
        """A new account, logged in: a client with its token."""
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.org"
        client = Client(self.url, policy=RetryPolicy.no_retries())
        self.clients.append(client)
        client.register(email, PASSWORD, display_name=name)
        client.login(email, PASSWORD)
        assert client.token is not None
        return Person(email, client.token, client, self)

    def raise_alert(self, printer_id: str, kind: str = "thermal_fault") -> str:
        """An alert on ``printer_id``, as a printer would raise it; its id."""
        record = self.run(
            self.context.store.alerts.add(
                printer_id, kind=kind, severity=Severity.CRITICAL, message="hotend sensor open"
            )
        )
        return record.id


@dataclass
class Person:
    """A user of the cloud and a client acting as them."""

    email: str
    token: str
    client: Client
    cloud: LiveCloud

    def printer(self, model: str = "p1") -> str:
        """A printer this person owns; its id."""
        printer_id = f"{model}-{uuid.uuid4().hex[:8]}"
        self.client.provision_printer(printer_id, f"Printer {printer_id}", model)
        return printer_id


@pytest.fixture(scope="module")
def live_cloud(
    mosquitto: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveCloud]:
    """A cloud on SQLite with open registration, shared by a test module."""
    tmp_path: Path = tmp_path_factory.mktemp("cloud")
    settings = settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}", mosquitto.url)
    ready: Future[LiveCloud] = Future()
    stopping = threading.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        try:
            async with serving(settings) as running:
                await running.link_verified()
                ready.set_result(LiveCloud(running.url, running.context, loop))
                # The test thread sets `stopping`; this loop learns it through the event.
                watcher = loop.run_in_executor(None, stopping.wait)
                watcher.add_done_callback(lambda _: stop.set())
                await stop.wait()
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="live-cloud")
    thread.start()
    try:
        yield ready.result(timeout=60)
    finally:
        stopping.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the cloud did not stop"


@pytest.fixture(autouse=True)
def close_people(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "live_cloud" in request.fixturenames:
        cloud: LiveCloud = request.getfixturevalue("live_cloud")
        while cloud.clients:
            cloud.clients.pop().close()
