"""Fixtures shared by the whole suite: real Mosquitto and PostgreSQL servers, started by the suite.

They never touch services the machine may already run: each server gets a free port and a temp dir.
A missing binary fails the test with the way to install it; real-service tests never skip silently.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

import pytest

from printfleet.testing import (
    MosquittoBroker,
    PostgresServer,
    ServiceNotInstalledError,
    ServiceProcess,
)

Server = TypeVar("Server", bound=ServiceProcess)

# Fixture name -> marker, so `-m "not postgres"` deselects every test that needs that server.
_MARKER_OF_FIXTURE = {
    "mosquitto": "mosquitto",
    "fresh_mosquitto": "mosquitto",
    "postgres": "postgres",
    "fresh_postgres": "postgres",
}


def pytest_configure(config: pytest.Config) -> None:
    # A terminated run (a CI time limit, a closed terminal) then tears down as after Ctrl-C, and the
    # fixtures stop the servers they started instead of leaving them running.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for marker in sorted({_MARKER_OF_FIXTURE[f] for f in fixtures if f in _MARKER_OF_FIXTURE}):
            item.add_marker(marker)


def _started(server_type: Callable[[], Server]) -> Iterator[Server]:
    try:
        server = server_type()
    except ServiceNotInstalledError as error:
        pytest.fail(str(error), pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoBroker]:
    """A Mosquitto broker shared by the session. Do not kill or freeze it: use `fresh_mosquitto`."""
    yield from _started(MosquittoBroker)


@pytest.fixture
def fresh_mosquitto() -> Iterator[MosquittoBroker]:
    """A Mosquitto broker of this test's own, free to kill, freeze and restart."""
    yield from _started(MosquittoBroker)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the session; give each test its own `create_database`."""
    yield from _started(PostgresServer)


@pytest.fixture
def fresh_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (a second to create), free to kill and freeze."""
    yield from _started(PostgresServer)
