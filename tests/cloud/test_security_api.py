"""The HTTP API's limits, oracles and contract, probed as an outsider would, on a real cloud
(``create_app`` under uvicorn, SQLite or PostgreSQL, a real Mosquitto):

- rate limits count what the server verified: a made-up bearer earns no bucket of its own, an
  account's tokens share one, and X-Forwarded-For is believed only from configured proxies;
- wrong passwords back off per account and per address, answered 429 before argon2 runs;
- a body over the limit is refused (413) before the server has read it, declared or chunked;
- query bounds come from the schema, so no number reaches the database to overflow (422);
- not-found answers read alike whether the thing is missing or someone else's, and sharing
  with an address tells nothing of whether it has an account;
- bodies are typed as their schema says (``false`` is no temperature), and 405 names every
  method a path has.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher
from tests.cloud.test_api import (
    PASSWORD,
    Running,
    api_database_url,
    bearer,
    cloud,
    serving,
    settings_for,
    sign_up,
    unique,
    upload,
)

from printfleet.cloud.app import Settings
from printfleet.sim.samples import make_sample_gcode
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url", "cloud"]  # fixtures, used by name

BIG = 100_000_000
"""The outside tester's body: 100 MB."""


def sqlite_settings(tmp_path: Path, mosquitto: MosquittoBroker, **changes: Any) -> Settings:
    """A cloud on a SQLite file of this test's own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"
    return settings_for(tmp_path, url, mosquitto.url, **changes)


@contextlib.asynccontextmanager
async def client_from(running: Running, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from ``address`` (any 127.x.y.z is this machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=running.url, transport=transport, timeout=20) as client:
        yield client


class CountingHasher(PasswordHasher):
    """argon2 as the service uses it, counting the passwords it hashes or verifies."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.calls += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # noqa: A002 - argon2's name
        self.calls += 1
        return super().verify(hash, password)


def count_hashing(running: Running) -> CountingHasher:
    """Make the running service hash through a counter, and return it."""
    hasher = CountingHasher()
    # The real service's own hasher, watched: how much argon2 CPU a request cost.
    running.context.service.accounts.hasher = hasher
    return hasher


class FakeClock:
    """Monotonic seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def login(email: str, password: str = PASSWORD) -> dict[str, str]:
    """A login body."""
    return {"email": email, "password": password}


# ---------------------------------------------------------------------------------------------
# Rate limits keyed on what the server verified.


@pytest.mark.asyncio
async def test_made_up_bearers_on_wrong_logins_are_refused_and_cost_no_argon2(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with serving(sqlite_settings(tmp_path, mosquitto)) as running:
        await sign_up(running.client, "ada@example.org")
        hasher = count_hashing(running)
        statuses = []
        for _ in range(60):
            answer = await running.client.post(
                "/api/v1/login",
                headers=bearer(f"pf_{uuid.uuid4().hex}"),
                json=login("ada@example.org", "not the password"),
            )
            statuses.append(answer.status_code)
    assert set(statuses) == {401, 429}
    # Five free tries (the default), then waits; a new bearer per request changes nothing.
    assert statuses.count(401) == 5
    assert hasher.calls == 5


@pytest.mark.asyncio
async def test_a_bearer_that_does_not_authenticate_counts_against_its_address(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    settings = sqlite_settings(tmp_path, mosquitto, rate_limit_per_s=0.01, rate_limit_burst=10)
    async with serving(settings) as running:
        statuses = [
            (
                await running.client.get(
                    "/api/v1/printers", headers=bearer(f"pf_{uuid.uuid4().hex}")
                )
            ).status_code
            for _ in range(30)
        ]
        assert statuses == [401] * 10 + [429] * 20
        # Another address has a bucket of its own.
        async with client_from(running, "127.0.0.2") as other:
            assert (await other.get("/api/v1/printers")).status_code == 401


@pytest.mark.asyncio
async def test_an_accounts_tokens_share_one_bucket_wherever_they_come_from(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    settings = sqlite_settings(tmp_path, mosquitto, rate_limit_per_s=0.01, rate_limit_burst=4)
    async with serving(settings) as running:
        async with client_from(running, "127.0.0.2") as first:
            first_token = await sign_up(first, "ada@example.org")  # the address's 2 of 4
        async with client_from(running, "127.0.0.3") as second:
            answer = await second.post("/api/v1/login", json=login("ada@example.org"))
            second_token = answer.json()["token"]
            statuses = [
                (await second.get("/api/v1/jobs", headers=bearer(token))).status_code
                for token in (first_token, second_token, first_token, second_token, first_token)
            ]
            assert statuses == [200, 200, 200, 200, 429]
            # Ada's bucket is empty, this address's is not: a stranger's bearer from here
            # still gets its honest 401.
            stranger = await second.get("/api/v1/jobs", headers=bearer("pf_" + "x" * 43))
            assert stranger.status_code == 401


@pytest.mark.asyncio
async def test_forwarded_addresses_are_believed_only_from_configured_proxies(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async def statuses(running: Running) -> list[int]:
        return [
            (
                await running.client.get(
                    "/api/v1/printers", headers={"X-Forwarded-For": f"203.0.113.{n}"}
                )
            ).status_code
            for n in range(8)
        ]

    limited = {"rate_limit_per_s": 0.01, "rate_limit_burst": 4}
    async with serving(sqlite_settings(tmp_path / "a", mosquitto, **limited)) as running:
        # Without configuration, every spoofed address is still this one connection's.
        assert await statuses(running) == [401] * 4 + [429] * 4
    proxied = sqlite_settings(tmp_path / "b", mosquitto, trusted_proxies="127.0.0.1", **limited)
    async with serving(proxied) as running:
        # Behind a configured proxy, each forwarded address is a caller of its own.
        assert await statuses(running) == [401] * 8
    with pytest.raises(ValueError, match="not an IP address or network"):
        sqlite_settings(tmp_path, mosquitto, trusted_proxies="127.0.0.1,proxy.example")


# ---------------------------------------------------------------------------------------------
# Login backoff.


@pytest.mark.asyncio
async def test_wrong_passwords_make_an_account_wait_longer_each_time_before_argon2(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    settings = sqlite_settings(tmp_path, mosquitto, login_free_failures=3)
    async with serving(settings) as running:
        await sign_up(running.client, "ada@example.org")
        clock = FakeClock()
        running.context.logins.clock = clock
        hasher = count_hashing(running)
        addresses = (f"127.0.1.{n}" for n in range(1, 200))

        async def guess(password: str = "guess") -> httpx.Response:  # noqa: S107 - wrong on purpose
            # Each guess from an address of its own: only the account's count can stop them.
            async with client_from(running, next(addresses)) as client:
                return await client.post("/api/v1/login", json=login("ada@example.org", password))

        answers = [await guess() for _ in range(5)]
        assert [answer.status_code for answer in answers] == [401, 401, 401, 429, 429]
        assert answers[3].json()["error"] == "too_many_failed_logins"
        assert answers[3].headers["Retry-After"] == "1"
        # While the account waits, even the right password is not checked.
        assert (await guess(PASSWORD)).status_code == 429
        assert hasher.calls == 3

        # Each failure after the free ones doubles the wait, up to the bound.
        waits = []
        for _ in range(10):
            clock.now += 300
            assert (await guess()).status_code == 401
            waits.append(int((await guess(PASSWORD)).headers["Retry-After"]))
        assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        # The right password, once the wait is over, logs in and starts the count afresh.
        clock.now += 300
        assert (await guess(PASSWORD)).status_code == 200
        assert [(await guess()).status_code for _ in range(4)] == [401, 401, 401, 429]
        assert hasher.calls == 3 + 10 + 1 + 3


@pytest.mark.asyncio
async def test_an_address_trying_many_accounts_waits_and_unknown_addresses_count_alike(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    settings = sqlite_settings(tmp_path, mosquitto, login_free_failures=3)
    async with serving(settings) as running:
        await sign_up(running.client, "ada@example.org")
        hasher = count_hashing(running)
        async with client_from(running, "127.0.0.2") as sprayer:
            # One guess each at accounts that exist and do not: the answers do not differ.
            emails = ["ada@example.org", "nobody@example.org", "nemo@example.org"]
            for email in emails:
                answer = await sprayer.post("/api/v1/login", json=login(email, "guess"))
                assert answer.status_code == 401
            answer = await sprayer.post("/api/v1/login", json=login("eve@example.org", "guess"))
            assert answer.status_code == 429
            assert answer.json()["error"] == "too_many_failed_logins"
        assert hasher.calls == 3
        # Ada, from her own address, is not held up by the sprayer.
        assert (
            await running.client.post("/api/v1/login", json=login("ada@example.org"))
        ).status_code == 200


# ---------------------------------------------------------------------------------------------
# Body size.


async def _raw_request(running: Running, head: str, body_part: bytes) -> bytes:
    """Send a request's head and only part of its body, then read whatever comes back."""
    host, port = running.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    received = bytearray()
    try:
        writer.write(head.encode() + body_part)
        await writer.drain()
        async with asyncio.timeout(10):
            # The answer comes without the rest of the body, then the server closes (with a
            # reset when it left sent bytes unread, as it means to).
            with contextlib.suppress(ConnectionResetError):
                while chunk := await reader.read(65536):
                    received += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return bytes(received)


@pytest.mark.asyncio
async def test_a_100_mb_body_is_refused_before_it_is_read(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with serving(sqlite_settings(tmp_path, mosquitto)) as running:
        declared = await _raw_request(
            running,
            "POST /api/v1/login HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BIG}\r\n\r\n",
            b'{"email": "' + b"a" * 1000,
        )
        status, _, rest = declared.partition(b"\r\n")
        assert status == b"HTTP/1.1 413 Request Entity Too Large"
        assert b"connection: close" in rest.lower()
        assert rest.endswith(
            b'{"error": "body_too_large", "message": "the request body is larger than the limit '
            b'of 65536 bytes"}'
        )

        # Chunked, so no length to judge by: read up to the limit, and no further.
        chunk = b"a" * 16384
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8))
        chunked = await _raw_request(
            running,
            "POST /api/v1/users HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            chunks,
        )
        assert chunked.startswith(b"HTTP/1.1 413 ")
        assert b'"body_too_large"' in chunked

        # Under the limit, the route itself answers; uploads keep their own, larger, limit.
        near = await running.client.post(
            "/api/v1/login", json=login("ada@example.org", "x" * 60_000)
        )
        assert near.status_code == 422
        token = await sign_up(running.client, "ada@example.org")
        big_gcode = make_sample_gcode(2000, heat=False).encode()
        assert len(big_gcode) > 65536
        assert (await upload(running.client, token, data=big_gcode)).status_code == 201


# ---------------------------------------------------------------------------------------------
# Query bounds, uniform not-found, sharing, strict bodies, Allow.


@pytest.mark.asyncio
async def test_huge_numbers_in_queries_are_422_not_500(cloud: Running) -> None:
    token = await sign_up(cloud.client, "ada@example.org")
    printer_id = unique("p")
    provisioned = await cloud.client.post(
        "/api/v1/printers",
        headers=bearer(token),
        json={"id": printer_id, "name": "P", "model": "m"},
    )
    assert provisioned.status_code == 201
    for path in (
        f"/api/v1/audit?printer_id={printer_id}&since={10**30}",
        f"/api/v1/printers/{printer_id}/telemetry?since={10**30}",
        f"/api/v1/printers/{printer_id}/telemetry?since=-1",
    ):
        answer = await cloud.client.get(path, headers=bearer(token))
        assert answer.status_code == 422, path
        assert answer.json()["error"] == "invalid_request"
        assert answer.json()["details"][0]["loc"] == ["query", "since"]
    # The largest allowed is fine, and so are since and last_s together (the later counts).
    for path in (
        f"/api/v1/audit?printer_id={printer_id}&since={2**53 - 1}",
        f"/api/v1/printers/{printer_id}/telemetry?since=0&last_s=60",
    ):
        answer = await cloud.client.get(path, headers=bearer(token))
        assert answer.status_code == 200, path
        assert answer.json() == []


@pytest.mark.asyncio
async def test_not_found_reads_alike_for_missing_and_for_someone_elses(
    cloud: Running,
) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    bob = await sign_up(client, "bob@example.org")
    printer_id = unique("p")
    await client.post(
        "/api/v1/printers",
        headers=bearer(alice),
        json={"id": printer_id, "name": "P", "model": "m"},
    )
    file_id = (await upload(client, alice)).json()["id"]
    job = await client.post(
        "/api/v1/jobs", headers=bearer(alice), json={"file_id": file_id, "printer_id": printer_id}
    )
    assert job.status_code == 201
    missing = str(uuid.uuid4())

    async def asked(method: str, path: str, **json: object) -> tuple[int, dict[str, str]]:
        answer = await client.request(method, path, headers=bearer(bob), json=json or None)
        return answer.status_code, answer.json()

    theirs = {
        "/api/v1/jobs/": job.json()["id"],
        "/api/v1/files/": file_id,
        "/api/v1/printers/": printer_id,
        "/api/v1/audit": printer_id,
    }
    for method, template in [
        ("GET", "/api/v1/jobs/{}"),
        ("POST", "/api/v1/jobs/{}/cancel"),
        ("GET", "/api/v1/files/{}"),
        ("GET", "/api/v1/printers/{}"),
        ("GET", "/api/v1/audit?printer_id={}"),
    ]:
        real = next(value for prefix, value in theirs.items() if template.startswith(prefix))
        status_theirs, body_theirs = await asked(method, template.format(real))
        status_missing, body_missing = await asked(method, template.format(missing))
        assert status_theirs == status_missing == 404, template
        assert body_theirs["message"].replace(real, "ID") == body_missing["message"].replace(
            missing, "ID"
        ), template
        for table in ("row", "jobs", "files", "printers", "api_tokens"):
            assert table not in body_missing["message"], template
    # A job naming someone else's file, or no file at all.
    for candidate in (file_id, missing):
        status, body = await asked("POST", "/api/v1/jobs", file_id=candidate, model="m")
        assert (status, body) == (404, {"error": "not_found", "message": f"no file {candidate}"})
    status, body = await asked("POST", f"/api/v1/alerts/{missing}/ack")
    assert (status, body) == (404, {"error": "not_found", "message": f"no alert {missing}"})


@pytest.mark.asyncio
async def test_sharing_tells_nothing_of_which_addresses_have_accounts(
    cloud: Running,
) -> None:
    client = cloud.client
    owner = await sign_up(client, "owner@example.org")
    await sign_up(client, "known@example.org")
    printer_id = unique("p")
    await client.post(
        "/api/v1/printers",
        headers=bearer(owner),
        json={"id": printer_id, "name": "P", "model": "m"},
    )
    answers = {
        email: await client.post(
            f"/api/v1/printers/{printer_id}/shares",
            headers=bearer(owner),
            json={"email": email, "role": "operator"},
        )
        for email in ("known@example.org", "Unknown@Example.org")
    }
    for email, answer in answers.items():
        assert answer.status_code == 201
        assert answer.json() == {
            "printer_id": printer_id,
            "email": email.lower(),
            "role": "operator",
        }
    # Nothing was made for the address without an account.
    shares = await client.get(f"/api/v1/printers/{printer_id}/shares", headers=bearer(owner))
    assert [share["email"] for share in shares.json()] == ["known@example.org"]


@pytest.mark.asyncio
async def test_bodies_are_typed_as_their_schema_says(cloud: Running) -> None:
    token = await sign_up(cloud.client, "ada@example.org")
    printer_id = unique("p")
    await cloud.client.post(
        "/api/v1/printers",
        headers=bearer(token),
        json={"id": printer_id, "name": "P", "model": "m"},
    )
    file_id = (await upload(cloud.client, token)).json()["id"]
    refused = [
        (f"/api/v1/printers/{printer_id}/temperature", {"heater": "bed", "target_c": False}),
        (f"/api/v1/printers/{printer_id}/temperature", {"heater": "bed", "target_c": "200"}),
        (f"/api/v1/printers/{printer_id}/plate-check", {"enabled": "false", "confirm": True}),
        ("/api/v1/jobs", {"file_id": file_id, "printer_id": printer_id, "notify_completion": 1}),
        ("/api/v1/jobs", {"file_id": file_id, "printer_id": printer_id, "start_within_s": True}),
        ("/api/v1/jobs", {"file_id": file_id, "printer_id": printer_id, "model": None}),
    ]
    for path, body in refused:
        method = "PUT" if path.endswith("plate-check") else "POST"
        answer = await cloud.client.request(method, path, headers=bearer(token), json=body)
        assert answer.status_code == 422, (path, body)
        assert answer.json()["error"] == "invalid_request"
    # A JSON number without a fraction is an integer, as JSON Schema says.
    whole = await cloud.client.post(
        "/api/v1/jobs",
        headers=bearer(token),
        json={"file_id": file_id, "printer_id": printer_id, "start_within_s": 600.0},
    )
    assert whole.status_code == 201


@pytest.mark.asyncio
async def test_405_and_options_name_every_method_of_the_path(cloud: Running) -> None:
    for method, path, allowed in [
        ("OPTIONS", "/api/v1/jobs", "GET, HEAD, POST"),
        ("OPTIONS", "/api/v1/printers/p1/shares", "GET, HEAD, POST"),
        ("PATCH", "/api/v1/tokens", "GET, HEAD, POST"),
        ("DELETE", "/api/v1/printers/p1", "GET, HEAD"),
    ]:
        answer = await cloud.client.request(method, path)
        assert answer.status_code == 405
        assert answer.headers["Allow"] == allowed, path
        assert answer.json()["error"] == "method_not_allowed"
