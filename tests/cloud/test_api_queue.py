"""A farm's queue through the HTTP API of a real cloud (SQLite and PostgreSQL): requirements
from the file's slicer metadata or the request, copies under one idempotency key, priorities
that reorder waiting jobs only, and pools that hold only their creator's printers and are
invisible and unusable to everyone else."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

PETG_04 = GCODE + b"; filament_type = PETG\n; nozzle_diameter = 0.4\n"


@pytest_asyncio.fixture
async def cloud(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[Running]:
    """A cloud without printers online: jobs wait, which is what these tests look at."""
    async with serving(settings_for(tmp_path, api_database_url, mosquitto.url)) as running:
        yield running


async def printer(client: httpx.AsyncClient, token: str, model: str = "p1") -> str:
    """A printer provisioned by the token's user; its id."""
    printer_id = unique("queue")
    response = await client.post(
        "/api/v1/printers",
        headers=bearer(token),
        json={"id": printer_id, "name": printer_id, "model": model},
    )
    assert response.status_code == 201, response.text
    return printer_id


async def submit(
    client: httpx.AsyncClient, token: str, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = bearer(token) | ({"Idempotency-Key": key} if key is not None else {})
    return await client.post("/api/v1/jobs", headers=headers, json=body)


@pytest.mark.asyncio
async def test_requirements_come_from_the_file_unless_the_request_says(cloud: Running) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    p1 = await printer(client, alice)
    file = (await upload(client, alice, "petg.gcode", PETG_04)).json()
    assert (file["metadata"]["material"], file["metadata"]["nozzle_um"]) == ("PETG", 400)

    job = (await submit(client, alice, file_id=file["id"], printer_id=p1)).json()
    assert job["requirements"] == {"material": "PETG", "nozzle_um": 400}
    assert (job["priority"], job["pool_id"], job["batch_id"], job["copies"]) == (
        0,
        None,
        None,
        None,
    )
    # Waiting, but no planning round has written a code yet, or one has: either way the shape.
    assert job["wait"] is None or set(job["wait"]) == {"code", "text"}

    anything = await submit(
        client, alice, file_id=file["id"], printer_id=p1, material=None, nozzle_um=600
    )
    assert anything.json()["requirements"] == {"material": None, "nozzle_um": 600}

    # A file that mixes materials requires none of them by default: no printer has "PETG+PLA".
    mixed = GCODE + b"; filament used [g] = 1.0,2.0\n; filament_type = PETG;PLA\n"
    mixed_file = (await upload(client, alice, "mixed.gcode", mixed)).json()
    assert mixed_file["metadata"]["material"] == "PETG+PLA"
    job = (await submit(client, alice, file_id=mixed_file["id"], printer_id=p1)).json()
    assert job["requirements"] == {"material": None, "nozzle_um": None}

    plain = (await upload(client, alice)).json()
    job = (await submit(client, alice, file_id=plain["id"], model="p1", material="PA-CF")).json()
    assert job["requirements"] == {"material": "PA-CF", "nozzle_um": None}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"material": "petg"}, "material"),
        ({"material": "PETG+PLA"}, "one material"),
        ({"nozzle_um": 50}, "nozzle_um"),
        ({"nozzle_um": "0.4"}, "nozzle_um"),
        ({"priority": 101}, "priority"),
        ({"copies": 0}, "copies"),
        ({"copies": 51}, "copies"),
        ({"pool_id": None}, "leave it out"),
        ({"model": "p1"}, "exactly one"),
    ],
)
async def test_bad_job_requests_are_422_naming_the_field(
    cloud: Running, changes: dict[str, Any], words: str
) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    p1 = await printer(client, alice)
    file = (await upload(client, alice)).json()
    response = await submit(client, alice, file_id=file["id"], printer_id=p1, **changes)
    assert response.status_code == 422, response.text
    assert words in response.text
    listed = await client.get("/api/v1/jobs", headers=bearer(alice))
    assert listed.json() == []


@pytest.mark.asyncio
async def test_copies_are_one_batch_and_one_idempotent_request(cloud: Running) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    await printer(client, alice)
    file = (await upload(client, alice, "bracket.gcode")).json()
    first = await submit(client, alice, "batch-1", file_id=file["id"], model="p1", copies=3)
    assert first.status_code == 201, first.text
    job = first.json()
    assert (job["name"], job["copy_index"], job["copies"]) == ("bracket.gcode (1/3)", 1, 3)
    again = await submit(client, alice, "batch-1", file_id=file["id"], model="p1", copies=3)
    assert again.status_code == 200
    assert again.json()["id"] == job["id"]
    other = await submit(client, alice, "batch-1", file_id=file["id"], model="p1", copies=2)
    assert other.status_code == 422

    batch = await client.get(
        "/api/v1/jobs", headers=bearer(alice), params={"batch_id": job["batch_id"]}
    )
    names = sorted(j["name"] for j in batch.json())
    assert names == [f"bracket.gcode ({i}/3)" for i in (1, 2, 3)]
    assert len((await client.get("/api/v1/jobs", headers=bearer(alice))).json()) == 3


@pytest.mark.asyncio
async def test_a_waiting_job_is_reordered_and_a_started_or_ended_one_is_not(
    cloud: Running,
) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    bob = await sign_up(client, "bob@example.org")
    p1 = await printer(client, alice)
    file = (await upload(client, alice)).json()
    job = (await submit(client, alice, file_id=file["id"], printer_id=p1)).json()

    path = f"/api/v1/jobs/{job['id']}"
    raised = await client.patch(path, headers=bearer(alice), json={"priority": 10})
    assert raised.status_code == 200, raised.text
    assert raised.json()["priority"] == 10
    assert (await client.get(path, headers=bearer(alice))).json()["priority"] == 10
    for body in ({"priority": -101}, {"priority": "high"}, {}, {"priority": 1, "x": 1}):
        assert (await client.patch(path, headers=bearer(alice), json=body)).status_code == 422
    # A stranger cannot even learn the job exists.
    assert (await client.patch(path, headers=bearer(bob), json={"priority": 99})).status_code == 404

    await client.post(f"{path}/cancel", headers=bearer(alice))
    ended = await client.patch(path, headers=bearer(alice), json={"priority": 1})
    assert ended.status_code == 409
    assert "cancelled" in ended.json()["message"]
    detail = (await client.get(path, headers=bearer(alice))).json()
    assert detail["priority"] == 10
    assert [e["detail"] for e in detail["audit"] if e["action"] == "job.priority"] == [
        {"from": 0, "to": 10}
    ]


@pytest.mark.asyncio
async def test_pools_hold_only_their_creators_printers_and_are_theirs_alone(
    cloud: Running,
) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    bob = await sign_up(client, "bob@example.org")
    a1, a2 = await printer(client, alice), await printer(client, alice)
    b1 = await printer(client, bob)

    made = await client.post(
        "/api/v1/pools", headers=bearer(alice), json={"name": "petg", "printer_ids": [a2, a1]}
    )
    assert made.status_code == 201, made.text
    pool = made.json()
    assert pool["printer_ids"] == sorted([a1, a2])
    same_name = await client.post(
        "/api/v1/pools", headers=bearer(alice), json={"name": "petg", "printer_ids": []}
    )
    assert same_name.status_code == 409

    # Bob may not put Alice's printer in a pool of his, nor learn whether it exists.
    for printer_ids in ([b1, a1], [b1, "no-such-printer"]):
        hostile = await client.post(
            "/api/v1/pools", headers=bearer(bob), json={"name": "mine", "printer_ids": printer_ids}
        )
        assert hostile.status_code == 404
        assert "you may not operate printer" in hostile.json()["message"]
    assert (await client.get("/api/v1/pools", headers=bearer(bob))).json() == []
    path = f"/api/v1/pools/{pool['id']}"
    assert (await client.get(path, headers=bearer(bob))).status_code == 404
    taken = await client.put(path, headers=bearer(bob), json={"name": "x", "printer_ids": [b1]})
    assert taken.status_code == 404
    assert (await client.delete(path, headers=bearer(bob))).status_code == 404
    bobs_file = (await upload(client, bob)).json()
    into = await submit(client, bob, file_id=bobs_file["id"], pool_id=pool["id"])
    assert into.status_code == 404
    # Alice's printers say which of her pools they are in; Bob's say nothing of hers.
    printers = (await client.get("/api/v1/printers", headers=bearer(alice))).json()
    assert {p["id"]: p["pools"] for p in printers} == {a1: [pool["id"]], a2: [pool["id"]]}
    assert [
        p["pools"] for p in (await client.get("/api/v1/printers", headers=bearer(bob))).json()
    ] == [[]]
    one = (await client.get(f"/api/v1/printers/{a1}", headers=bearer(alice))).json()
    assert (one["materials"], one["nozzle_um"], one["simulated"]) == ([], None, False)


@pytest.mark.asyncio
async def test_a_pool_job_needs_a_printer_its_submitter_still_operates(cloud: Running) -> None:
    client = cloud.client
    alice = await sign_up(client, "alice@example.org")
    bob = await sign_up(client, "bob@example.org")
    a1 = await printer(client, alice)
    shared = await client.post(
        f"/api/v1/printers/{a1}/shares",
        headers=bearer(alice),
        json={"email": "bob@example.org", "role": "operator"},
    )
    assert shared.status_code == 201
    made = await client.post(
        "/api/v1/pools", headers=bearer(bob), json={"name": "borrowed", "printer_ids": [a1]}
    )
    assert made.status_code == 201, made.text
    pool = made.json()
    file = (await upload(client, bob)).json()
    job = await submit(client, bob, file_id=file["id"], pool_id=pool["id"])
    assert job.status_code == 201, job.text
    assert (job.json()["pool_id"], job.json()["model"], job.json()["printer_id"]) == (
        pool["id"],
        None,
        None,
    )
    # The pool cannot go while the job waits for it.
    path = f"/api/v1/pools/{pool['id']}"
    busy = await client.delete(path, headers=bearer(bob))
    assert busy.status_code == 409
    assert "not yet ended" in busy.json()["message"]

    # Alice takes the share back: nothing more goes into that pool.
    await client.delete(f"/api/v1/printers/{a1}/shares/bob@example.org", headers=bearer(alice))
    again = await submit(client, bob, file_id=file["id"], pool_id=pool["id"])
    assert again.status_code == 422
    assert "you operate no printer of pool" in again.json()["message"]
    refill = await client.put(
        path, headers=bearer(bob), json={"name": "borrowed", "printer_ids": [a1]}
    )
    assert refill.status_code == 404

    await client.post(f"/api/v1/jobs/{job.json()['id']}/cancel", headers=bearer(bob))
    gone = await client.delete(path, headers=bearer(bob))
    assert gone.status_code == 200
    assert gone.json()["id"] == pool["id"]
    assert (await client.get(path, headers=bearer(bob))).status_code == 404
