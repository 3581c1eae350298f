"""Schemathesis over the cloud's OpenAPI spec, against a real ``printfleet serve``: whatever a
client sends, no 5xx, and every response matches the schema the spec promises.

Bounded (a few examples per operation) so it stays well under a minute; raise
``PRINTFLEET_SCHEMA_EXAMPLES`` for a longer hunt.
"""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from printfleet.testing import MosquittoBroker

PRINTFLEET = Path(sys.executable).parent / "printfleet"
EXAMPLES = int(os.environ.get("PRINTFLEET_SCHEMA_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A cloud served by the console script; its URL and a user's token."""
    home = tmp_path_factory.mktemp("schema-cloud")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRINTFLEET_")}
    # One fuzzing client sends far more than a person would: without a high per-token rate it
    # would mostly meet 429s and cover little.
    environment |= {"PRINTFLEET_RATE_LIMIT_PER_S": "1e5", "PRINTFLEET_RATE_LIMIT_BURST": "1e5"}
    with MosquittoBroker() as broker:
        server = subprocess.Popen(  # noqa: S603 - our own console script
            [
                str(PRINTFLEET), "serve", "--port", "0", "--data-dir", str(home),
                "--broker-url", broker.url,
            ],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            found = re.search(r"http://127\.0\.0\.1:(\d+)", server.stdout.readline())
            assert found
            url = found.group(0)
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become healthy"
                time.sleep(0.1)  # a separate process: nothing to await but its answer
            account = {"email": "fuzz@example.com", "password": "correct horse battery staple"}
            httpx.post(f"{url}/api/v1/users", json=account, timeout=10).raise_for_status()
            login = httpx.post(f"{url}/api/v1/login", json=account, timeout=10)
            login.raise_for_status()
            yield url, login.json()["token"]
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> schemathesis.BaseSchema:
    url, _ = served
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def _exercise(api_schema: schemathesis.BaseSchema, served: tuple[str, str]) -> None:
    # Each operation driven by Hypothesis directly: schemathesis's pytest plugin does not run
    # under pytest 9.
    _, token = served
    results = list(api_schema.get_all_operations())
    broken = [result.err() for result in results if isinstance(result, Err)]
    assert broken == [], "the OpenAPI spec has operations schemathesis cannot read"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert operations
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def exercise(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error, response_schema_conformance],
            )

        exercise()


def test_no_input_makes_the_cloud_fail_or_break_its_schema(
    api_schema: schemathesis.BaseSchema, served: tuple[str, str]
) -> None:
    _exercise(api_schema, served)
