"""``PUT /printers/{id}/materials/{slot}`` and ``PUT /printers/{id}/nozzle``: who may say what is
loaded, what is refused as input, and that a real printer (a simulated x1 and its agent, over the
shared Mosquitto) records what it is told."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from tests.cloud.test_api import (
    Running,
    _running,
    api_database_url,
    bearer,
    eventually,
    serving,
    settings_for,
    sign_up,
    unique,
)

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import Loadout, MaterialSlot
from printfleet.agent.runtime import PrinterAgent, monotonic_ms
from printfleet.sim.printer import SimulatedPrinter
from printfleet.sim.thermal import HeaterFault
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cloud(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[Running]:
    """A cloud on this test's database against the shared Mosquitto, its link verified."""
    async with serving(settings_for(tmp_path, api_database_url, mosquitto.url)) as running:
        await running.link_verified()
        yield running


async def _farm(cloud: Running) -> tuple[dict[str, str], str, dict[str, Any]]:
    """Alice owns an x1, Carol operates it, Dave views it, Bob is a stranger: their tokens,
    the printer id and its provisioning answer."""
    client = cloud.client
    emails = {who: f"{unique(who)}@example.org" for who in ("alice", "bob", "carol", "dave")}
    tokens = {who: await sign_up(client, email) for who, email in emails.items()}
    printer_id = unique("x1")
    made = await client.post(
        "/api/v1/printers",
        headers=bearer(tokens["alice"]),
        json={"id": printer_id, "name": "Alice's X1", "model": "x1"},
    )
    assert made.status_code == 201, made.text
    for who, role in (("carol", "operator"), ("dave", "viewer")):
        shared = await client.post(
            f"/api/v1/printers/{printer_id}/shares",
            headers=bearer(tokens["alice"]),
            json={"email": emails[who], "role": role},
        )
        assert shared.status_code == 201, shared.text
    return tokens, printer_id, made.json()


async def test_an_operator_says_what_is_loaded_and_the_printer_records_it(
    cloud: Running, tmp_path: Path
) -> None:
    client = cloud.client
    tokens, printer_id, provisioned = await _farm(cloud)
    settings = tomllib.loads(provisioned["agent_config"])
    config = AgentConfig.model_validate({**settings, "data_dir": tmp_path / "agent"})
    start = Loadout(4, (MaterialSlot(slot=1, material="PLA"),), 400)
    async with SimulatedPrinter(
        "x1", storage_dir=tmp_path / "sd", watchdog_timeout=None, loadout=start
    ) as hardware:
        agent = PrinterAgent(config, hardware)
        async with _running(agent.run()):
            await agent.ready.wait()

            async def synced() -> bool | None:
                return agent.core.clock_synced(monotonic_ms()) or None

            await eventually(synced)

            async def put(who: str, path: str, body: dict[str, Any]) -> httpx.Response:
                return await client.put(
                    f"/api/v1/printers/{printer_id}/{path}", headers=bearer(tokens[who]), json=body
                )

            sent = await put("carol", "materials/2", {"material": "petg", "colour": "#FF0000"})
            assert sent.status_code == 202, sent.text
            assert sent.json()["action"] == "set_material"
            assert sent.json()["command_id"]

            async def loaded(expected: Loadout) -> bool | None:
                return hardware.loadout() == expected or None

            petg = MaterialSlot(slot=2, material="PETG", colour="#ff0000")
            await eventually(lambda: loaded(Loadout(4, (start.materials[0], petg), 400)))

            assert (await put("alice", "nozzle", {"nozzle_um": 600})).status_code == 202
            await eventually(lambda: loaded(Loadout(4, (start.materials[0], petg), 600)))
            emptied = await put("carol", "materials/1", {"material": None})
            assert emptied.status_code == 202, emptied.text
            await eventually(lambda: loaded(Loadout(4, (petg,), 600)))

            # A viewer may not; a stranger does not even learn the printer exists.
            assert (await put("dave", "materials/1", {"material": "PLA"})).status_code == 403
            assert (await put("dave", "nozzle", {"nozzle_um": 400})).status_code == 403
            assert (await put("bob", "materials/1", {"material": "PLA"})).status_code == 404
            assert (await put("bob", "nozzle", {"nozzle_um": 400})).status_code == 404
            assert hardware.loadout() == Loadout(4, (petg,), 600)

            # A simulated printer takes a fault through the cloud, and its repair.
            fault = await client.post(
                f"/api/v1/printers/{printer_id}/simulate",
                headers=bearer(tokens["carol"]),
                json={"action": "fault", "fault": "heater-disconnected"},
            )
            assert fault.status_code == 202, fault.text

            async def struck() -> bool | None:
                return bool(hardware.board.hotend.faults) or None

            await eventually(struck)
            assert hardware.board.hotend.faults == {HeaterFault.HEATER_DISCONNECTED}
            viewer = await client.post(
                f"/api/v1/printers/{printer_id}/simulate",
                headers=bearer(tokens["dave"]),
                json={"action": "clear_fault"},
            )
            assert viewer.status_code == 403

    audit = await client.get(
        "/api/v1/audit", params={"printer_id": printer_id}, headers=bearer(tokens["alice"])
    )
    entries = [(e["action"], e["detail"]) for e in audit.json() if e["action"].endswith(".set")]
    assert entries == [
        ("material.set", {"slot": 2, "material": "PETG", "colour": "#ff0000", "outcome": "sent"}),
        ("nozzle.set", {"nozzle_um": 600, "outcome": "sent"}),
        ("material.set", {"slot": 1, "material": None, "colour": None, "outcome": "sent"}),
    ]
    simulated = [(e["action"], e["detail"]) for e in audit.json() if e["action"].startswith("sim")]
    assert simulated == [
        (
            "simulate.fault",
            {"action": "fault", "fault": "heater-disconnected", "outcome": "sent"},
        )
    ]


BAD_INPUT = [
    ("materials/1", {"material": "pla!"}, 'e.g. "PLA", "PETG" or "PA-CF"'),
    ("materials/1", {"material": "A" * 17}, 'e.g. "PLA"'),
    ("materials/1", {"material": "PLA", "colour": "red"}, '"#ff0000"'),
    ("materials/1", {"colour": "#ff0000"}, "body.material"),
    ("materials/17", {"material": "PLA"}, "path.slot"),
    ("materials/0", {"material": "PLA"}, "path.slot"),
    ("nozzle", {"nozzle_um": 40}, "e.g. 400 for a 0.4 mm nozzle"),
    ("nozzle", {"nozzle_um": 0.4}, "body.nozzle_um"),
    ("nozzle", {"nozzle_um": 400, "extra": 1}, "body.extra"),
    ("simulate", {"action": "fault"}, 'needs a fault: KIND[:ARG], e.g. "heater-disconnected"'),
    ("simulate", {"action": "fault", "fault": "meltdown"}, "kinds: heater-disconnected, "),
    ("simulate", {"action": "fault", "fault": "sensor-open:nozzle"}, '"sensor-open:bed" or'),
    ("simulate", {"action": "clear_fault", "fault": "sensor-open"}, 'only action "fault"'),
    ("simulate", {"action": "explode"}, "body.action"),
]
"""Requests refused as input, and what the message must say."""


async def test_bad_input_is_422_and_says_what_to_give(cloud: Running) -> None:
    tokens, printer_id, _ = await _farm(cloud)
    for path, body, says in BAD_INPUT:
        response = await cloud.client.request(
            "POST" if path == "simulate" else "PUT",
            f"/api/v1/printers/{printer_id}/{path}",
            headers=bearer(tokens["carol"]),
            json=body,
        )
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["error"] == "invalid_request"
        assert says in response.json()["message"], (path, body, response.json())


async def test_a_printer_not_known_to_be_simulated_is_409(cloud: Running) -> None:
    """No state report says the printer is simulated (it never reported at all): refused before
    anything is sent, and audited as nothing."""
    tokens, printer_id, _ = await _farm(cloud)
    response = await cloud.client.post(
        f"/api/v1/printers/{printer_id}/simulate",
        headers=bearer(tokens["carol"]),
        json={"action": "remove_print"},
    )
    assert response.status_code == 409, response.text
    assert "not a simulated printer" in response.json()["message"]
    audit = await cloud.client.get(
        "/api/v1/audit", params={"printer_id": printer_id}, headers=bearer(tokens["alice"])
    )
    assert not [e for e in audit.json() if e["action"].startswith("simulate")]
