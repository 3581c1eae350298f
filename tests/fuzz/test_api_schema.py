"""Schemathesis over the cloud's OpenAPI document, against a real ``printfleet serve``: whatever a
client sends, the server answers as the document says it does.

All of schemathesis's checks, in its coverage, fuzzing and stateful phases: no 5xx; only
documented status codes, content types and headers; bodies matching their response schemas;
inputs the schema forbids refused and inputs it allows accepted (but see ``SEMANTIC``);
``Allow`` naming exactly the documented methods; 405 for undocumented ones; authentication
never ignored. It runs schemathesis's own command line, which has every phase (its pytest
plugin does not run under pytest 9).

Bounded (a few examples per operation) so it stays about a minute; raise
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

import httpx
import pytest

from printfleet.testing import MosquittoBroker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BIN = Path(sys.executable).parent
EXAMPLES = int(os.environ.get("PRINTFLEET_SCHEMA_EXAMPLES", "5"))
ACCOUNT = {"email": "fuzz@example.com", "password": "correct horse battery staple"}

SEMANTIC = {
    "POST /api/v1/channels": ["422"],
    "POST /api/v1/files": ["415", "422"],
}
"""Operations whose inputs are also judged by what no schema can say, documented in their
responses: whether Apprise can use a URL; whether the bytes of a file are G-code. For these
alone, a schema-valid input may be refused with the statuses named."""

ACCEPTED = ["2xx", "401", "403", "404", "409", "429"]
"""What a schema-valid input may get anyway: the request was well formed, but who asked, what
exists, or how often, says no."""


def _config() -> str:
    """schemathesis.toml: log in (again after the fuzzer revokes its own token), and the
    semantic refusals above."""
    email, password = ACCOUNT["email"], ACCOUNT["password"]
    lines = [
        "[auth.dynamic.openapi.token]",
        'path = "/api/v1/login"',
        f'payload = {{ email = "{email}", password = "{password}" }}',
        'extract_selector = "/token"',
    ]
    for name, statuses in SEMANTIC.items():
        expected = ", ".join(f'"{status}"' for status in [*ACCEPTED, *statuses])
        lines += [
            "",
            "[[operations]]",
            f'include-name = "{name}"',
            f"checks.positive_data_acceptance.expected-statuses = [{expected}]",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A cloud served by the console script, with one account; its URL."""
    home = tmp_path_factory.mktemp("schema-cloud")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRINTFLEET_")}
    # One fuzzing client sends far more than a person would, and many wrong passwords: without
    # a high rate limit and many free failures it would mostly meet 429s and cover little.
    environment |= {
        "PRINTFLEET_RATE_LIMIT_PER_S": "1e5",
        "PRINTFLEET_RATE_LIMIT_BURST": "1e5",
        "PRINTFLEET_LOGIN_FREE_FAILURES": "1000000",
    }
    with MosquittoBroker() as broker:
        server = subprocess.Popen(  # noqa: S603 - our own console script
            [
                str(BIN / "printfleet"), "serve", "--port", "0", "--data-dir", str(home),
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
            httpx.post(f"{url}/api/v1/users", json=ACCOUNT, timeout=10).raise_for_status()
            yield url
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()


def test_the_cloud_answers_as_its_openapi_document_says(served: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config())
    run = subprocess.run(  # noqa: S603 - the test environment's own schemathesis
        [
            str(BIN / "schemathesis"), "--config-file", str(config), "--no-color",
            "run", f"{served}/openapi.json",
            "--checks", "all",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", str(EXAMPLES),
            "--workers", "1",
            "--generation-database", "none",
        ],
        capture_output=True, text=True, timeout=540, cwd=tmp_path, check=False,
    )  # fmt: skip
    # The report names each failure with a curl line that reproduces it.
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-2000:]
    assert re.search(r"Tested:\s+(\d+)", run.stdout), run.stdout[-2000:]
