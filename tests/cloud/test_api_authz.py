"""Who may do what, over every route of the API.

Alice owns a printer, a file, a job, an alert and tokens. Bob is a stranger to all of it: each
of Alice's things is 404 to him, never 403, so he cannot even learn that they exist. Carol
views Alice's printer: she sees it, and gets 403 for anything a viewer may not do. Alice's
read-only token reads everything and writes nothing; no token at all is 401. Alice herself
gets the expected success on each route, which shows every case reaches a real route.
The table must list every route: a route added without its row fails this test.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from tests.cloud.test_api import (
    GCODE,
    Running,
    api_database_url,
    bearer,
    serving,
    settings_for,
    sign_up,
    unique,
    upload,
)

from printfleet.cloud.store import Severity
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name


@pytest_asyncio.fixture
async def cloud(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[Running]:
    """A cloud whose per-account rate limit is out of the way: the table is walked as fast as
    the server answers, and rate limits have tests of their own (test_security_api.py)."""
    settings = settings_for(
        tmp_path,
        api_database_url,
        mosquitto.url,
        rate_limit_per_s=10_000.0,
        rate_limit_burst=10_000.0,
    )
    async with serving(settings) as running:
        yield running


ACTORS = ("anonymous", "read_only", "stranger", "viewer", "owner")
"""The order the table is walked in: the owner last, as some of its successes change things."""

Ids = dict[str, str]


@dataclass(frozen=True)
class Case:
    """One request, and the status each actor must get for it."""

    method: str
    path: str
    """A template over :data:`Ids` (``{printer}``, ``{job}``, ...)."""
    owner: int
    stranger: int
    viewer: int
    read_only: int
    json: Callable[[str, Ids], dict[str, Any]] | None = None
    """The body, given the actor and the ids."""
    upload: bool = False
    stream: bool = False
    """An endpoint that streams until the client leaves: only the status line is read."""
    anonymous: int = 401
    label: str = ""

    def expected(self, actor: str) -> int:
        status: int = getattr(self, actor)
        return status


def _job_body(actor: str, ids: Ids) -> dict[str, Any]:
    return {"file_id": ids[f"file_{actor}"], "printer_id": ids["printer"]}


def _alice_file_on_alices_printer(actor: str, ids: Ids) -> dict[str, Any]:
    return {"file_id": ids["file_owner"], "printer_id": ids["printer"]}


CASES = [
    Case("GET", "/api/v1/tokens", 200, 200, 200, 200),
    Case(
        "POST",
        "/api/v1/tokens",
        201,
        201,
        201,
        403,
        json=lambda actor, ids: {"name": f"{actor}-script", "scopes": ["read"]},
    ),
    Case("DELETE", "/api/v1/tokens/{spare_token}", 200, 404, 404, 403),
    Case("GET", "/api/v1/printers", 200, 200, 200, 200),
    Case(
        "POST",
        "/api/v1/printers",
        201,
        201,
        201,
        403,
        json=lambda actor, ids: {"id": unique(actor), "name": "new", "model": "p1"},
    ),
    Case("GET", "/api/v1/printers/{printer}", 200, 404, 200, 200),
    # Telemetry history: everyone who sees the printer reads it.
    Case("GET", "/api/v1/printers/{printer}/telemetry", 200, 404, 200, 200),
    Case(
        "POST",
        "/api/v1/printers/{printer}/shares",
        201,
        404,
        403,
        403,
        json=lambda actor, ids: {"email": "dave@example.org", "role": "viewer"},
    ),
    # Only the owner sees who else may use the printer, and takes a share away (Dave's, from
    # the row above).
    Case("GET", "/api/v1/printers/{printer}/shares", 200, 404, 403, 200),
    Case("DELETE", "/api/v1/printers/{printer}/shares/{dave}", 200, 404, 403, 403),
    Case("POST", "/api/v1/printers/{printer}/confirm-plate", 202, 404, 403, 403),
    Case(
        "PUT",
        "/api/v1/printers/{printer}/plate-check",
        200,
        404,
        403,
        403,
        json=lambda actor, ids: {"enabled": True},
    ),
    Case("POST", "/api/v1/printers/{printer}/clear-fault", 202, 404, 403, 403),
    Case("GET", "/api/v1/audit?printer_id={printer}", 200, 404, 403, 200),
    Case("POST", "/api/v1/files", 201, 201, 201, 403, upload=True),
    Case("GET", "/api/v1/files", 200, 200, 200, 200),
    Case("GET", "/api/v1/files/{file_owner}", 200, 404, 404, 200),
    # Alice's file on Alice's printer: Bob and Carol cannot even see the file.
    Case("POST", "/api/v1/jobs", 201, 404, 404, 403, json=_alice_file_on_alices_printer),
    # Their own files on Alice's printer: invisible to Bob, view-only for Carol.
    Case("POST", "/api/v1/jobs", 201, 404, 403, 403, json=_job_body, label="own file"),
    Case("GET", "/api/v1/jobs", 200, 200, 200, 200),
    Case("GET", "/api/v1/jobs/{job}", 200, 404, 404, 200),
    # Reordering the queue: the submitter (or the printer's owner) only.
    Case("PATCH", "/api/v1/jobs/{job}", 200, 404, 404, 403, json=lambda a, ids: {"priority": 5}),
    # A queued job cannot be paused or resumed (422) - but only its owner learns that.
    Case("POST", "/api/v1/jobs/{job}/pause", 422, 404, 404, 403),
    Case("POST", "/api/v1/jobs/{job}/resume", 422, 404, 404, 403),
    Case("POST", "/api/v1/jobs/{job}/cancel", 200, 404, 404, 403),
    # Pools are personal; one holds only printers its creator operates (404 for the others,
    # who may not put Alice's printer in a pool of theirs: the words a missing printer gets).
    Case("GET", "/api/v1/pools", 200, 200, 200, 200),
    Case(
        "POST",
        "/api/v1/pools",
        201,
        404,
        404,
        403,
        json=lambda actor, ids: {"name": f"{actor} pool", "printer_ids": [ids["printer"]]},
    ),
    Case("GET", "/api/v1/pools/{pool}", 200, 404, 404, 200),
    Case(
        "PUT",
        "/api/v1/pools/{pool}",
        200,
        404,
        404,
        403,
        json=lambda actor, ids: {"name": "renamed", "printer_ids": [ids["printer"]]},
    ),
    Case("DELETE", "/api/v1/pools/{spare_pool}", 200, 404, 404, 403),
    Case("GET", "/api/v1/alerts", 200, 200, 200, 200),
    # A viewer sees the printer's alerts and may acknowledge them.
    Case("POST", "/api/v1/alerts/{alert}/ack", 200, 404, 200, 403),
    # Everyone reads statistics of the jobs they may see (tests/cloud/test_stats.py).
    Case("GET", "/api/v1/stats", 200, 200, 200, 200),
    # Maintenance counters: a viewer reads them, an operator marks a part serviced, only the
    # owner changes an interval (tests/cloud/test_maintenance.py).
    Case("GET", "/api/v1/printers/{printer}/maintenance", 200, 404, 200, 200),
    Case("POST", "/api/v1/printers/{printer}/maintenance/{part}/serviced", 200, 404, 403, 403),
    Case(
        "PUT",
        "/api/v1/printers/{printer}/maintenance/{part}",
        200,
        404,
        403,
        403,
        json=lambda actor, ids: {"interval_h": 800},
    ),
    Case(
        "POST",
        "/api/v1/printers/{printer}/temperature",
        202,
        404,
        403,
        403,
        json=lambda actor, ids: {"heater": "bed", "target_c": 0},
    ),
    # What is loaded: an operator's word, like a person's at the screen (test_api_materials.py).
    Case(
        "PUT",
        "/api/v1/printers/{printer}/materials/{slot}",
        202,
        404,
        403,
        403,
        json=lambda actor, ids: {"material": "PETG", "colour": "#ff0000"},
    ),
    Case(
        "PUT",
        "/api/v1/printers/{printer}/nozzle",
        202,
        404,
        403,
        403,
        json=lambda actor, ids: {"nozzle_um": 600},
    ),
    # Alice's printer never reported itself simulated: 409 for her (test_api_materials.py).
    Case(
        "POST",
        "/api/v1/printers/{printer}/simulate",
        409,
        404,
        403,
        403,
        json=lambda actor, ids: {"action": "remove_print"},
    ),
    # Everyone has a stream of their own, which shows only what they may see.
    Case("GET", "/api/v1/events", 200, 200, 200, 200, stream=True),
    Case("GET", "/api/v1/channels", 200, 200, 200, 200),
    Case(
        "POST",
        "/api/v1/channels",
        201,
        201,
        201,
        403,
        json=lambda actor, ids: {
            "kind": "webhook",
            "target": "http://127.0.0.1:9/hook",
            "secret": f"{actor}-secret-0123456789",
        },
    ),
    # Channels are personal: another user's is 404, whatever their role on a printer.
    Case("POST", "/api/v1/channels/{channel}/test", 202, 404, 404, 403),
    Case("GET", "/api/v1/channels/{channel}/deliveries", 200, 404, 404, 200),
    Case("DELETE", "/api/v1/channels/{spare_channel}", 200, 404, 404, 403),
]

PUBLIC = {("POST", "/api/v1/users"), ("POST", "/api/v1/login")}


@dataclass
class World:
    cloud: Running
    tokens: dict[str, str | None]
    ids: Ids = field(default_factory=dict)

    async def request(self, case: Case, actor: str) -> httpx.Response:
        token = self.tokens[actor]
        headers = bearer(token) if token is not None else {}
        path = case.path.format(**self.ids)
        if case.stream:
            async with self.cloud.client.stream(case.method, path, headers=headers) as response:
                if response.status_code >= 400:  # an error has a body to read
                    await response.aread()
                return response
        if case.upload:
            files = {"file": ("part.gcode", GCODE, "text/plain")}
            return await self.cloud.client.post(path, headers=headers, files=files)
        body = case.json(actor, self.ids) if case.json is not None else None
        return await self.cloud.client.request(case.method, path, headers=headers, json=body)


async def _world(cloud: Running) -> World:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    bob = await sign_up(client, "bob@example.org")
    carol = await sign_up(client, "carol@example.org")
    await sign_up(client, "dave@example.org")
    read_only = await client.post(
        "/api/v1/tokens", headers=bearer(alice), json={"name": "ro", "scopes": ["read"]}
    )
    spare = await client.post(
        "/api/v1/tokens", headers=bearer(alice), json={"name": "spare", "scopes": ["read"]}
    )
    world = World(
        cloud,
        {
            "anonymous": None,
            "read_only": read_only.json()["token"],
            "stranger": bob,
            "viewer": carol,
            "owner": alice,
        },
    )
    ids = world.ids
    ids["spare_token"] = spare.json()["id"]
    ids["printer"] = unique("alice")
    ids["dave"] = "dave@example.org"
    ids["part"] = "nozzle"
    ids["slot"] = "1"
    made = await client.post(
        "/api/v1/printers",
        headers=bearer(alice),
        json={"id": ids["printer"], "name": "Alice's", "model": "p1"},
    )
    assert made.status_code == 201
    shared = await client.post(
        f"/api/v1/printers/{ids['printer']}/shares",
        headers=bearer(alice),
        json={"email": "carol@example.org", "role": "viewer"},
    )
    assert shared.status_code == 201
    for actor, token in (("owner", alice), ("stranger", bob), ("viewer", carol)):
        ids[f"file_{actor}"] = (await upload(client, token)).json()["id"]
    ids["file_read_only"] = ids["file_anonymous"] = ids["file_owner"]
    job = await client.post(
        "/api/v1/jobs",
        headers=bearer(alice),
        json={"file_id": ids["file_owner"], "printer_id": ids["printer"]},
    )
    ids["job"] = job.json()["id"]
    for name in ("pool", "spare_pool"):
        pool = await client.post(
            "/api/v1/pools",
            headers=bearer(alice),
            json={"name": name, "printer_ids": [ids["printer"]]},
        )
        ids[name] = pool.json()["id"]
    alert = await cloud.context.store.alerts.add(
        ids["printer"], kind="thermal_runaway", severity=Severity.CRITICAL, message="hotend"
    )
    ids["alert"] = alert.id
    for name in ("channel", "spare_channel"):
        # A webhook nobody listens on: test deliveries fail in the background, harmlessly.
        channel = await client.post(
            "/api/v1/channels",
            headers=bearer(alice),
            json={"kind": "webhook", "target": "http://127.0.0.1:9/", "secret": "s" * 16},
        )
        assert channel.status_code == 201, channel.text
        ids[name] = channel.json()["id"]
    return world


def test_the_table_covers_every_route() -> None:
    from printfleet.cloud.app import Settings, create_app  # noqa: PLC0415

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path.split("?", maxsplit=1)[0])

    schema = create_app(Settings()).openapi()
    routes = {
        (method.upper(), shape(path))
        for path, operations in schema["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    covered = {(case.method, shape(case.path)) for case in CASES}
    assert routes - PUBLIC == covered


@pytest.mark.asyncio
async def test_every_route_refuses_whoever_may_not_use_it(cloud: Running) -> None:
    await cloud.link_verified()  # the owner's printer commands must go out
    world = await _world(cloud)
    failures = []
    for actor in ACTORS:
        for case in CASES:
            response = await world.request(case, actor)
            wanted = case.expected(actor)
            if response.status_code != wanted:
                failures.append(
                    f"{actor}: {case.method} {case.path} {case.label} -> "
                    f"{response.status_code}, not {wanted}: {response.text[:200]}"
                )
            elif wanted >= 400:
                assert set(response.json()) >= {"error", "message"}
            if wanted == 401:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert failures == []


@pytest.mark.asyncio
async def test_lists_show_only_what_the_caller_may_see(cloud: Running) -> None:
    world = await _world(cloud)
    ids = world.ids

    async def listed(actor: str, path: str) -> set[str]:
        token = world.tokens[actor]
        assert token is not None
        response = await cloud.client.get(path, headers=bearer(token))
        assert response.status_code == 200
        return {item["id"] for item in response.json()}

    assert ids["printer"] not in await listed("stranger", "/api/v1/printers")
    assert ids["file_owner"] not in await listed("stranger", "/api/v1/files")
    assert ids["job"] not in await listed("stranger", "/api/v1/jobs")
    assert ids["alert"] not in await listed("stranger", "/api/v1/alerts")
    assert ids["spare_token"] not in await listed("stranger", "/api/v1/tokens")
    # The viewer sees the printer and its alerts, not Alice's files or jobs.
    assert ids["printer"] in await listed("viewer", "/api/v1/printers")
    assert ids["alert"] in await listed("viewer", "/api/v1/alerts")
    assert ids["file_owner"] not in await listed("viewer", "/api/v1/files")
    assert ids["job"] not in await listed("viewer", "/api/v1/jobs")
    carol = world.tokens["viewer"]
    assert carol is not None
    shown = await cloud.client.get(f"/api/v1/printers/{ids['printer']}", headers=bearer(carol))
    assert shown.json()["role"] == "viewer"
    # Bob filtering by Alice's printer finds none of her jobs either.
    assert await listed("stranger", f"/api/v1/jobs?printer_id={ids['printer']}") == set()
    assert ids["job"] in await listed("owner", f"/api/v1/jobs?printer_id={ids['printer']}")
