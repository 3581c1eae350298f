"""End to end, with two people sharing one cloud: a print starts only on a printer its submitter
may operate at the moment of dispatch (S1), and only under the safety settings its owner chose,
even when the printer was away while they changed (S5).

Real Mosquitto, real agents on simulated printers, the real cloud app, SQLite and PostgreSQL. A
spy subscribed to a printer's command topic sees everything the cloud sends it, so "nothing of
Xavier's reached Yvonne's printer" is checked on the wire, not only in the API's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.cloud.test_api import api_database_url, sign_up, unique
from tests.cloud.test_e2e_jobs import LONG, SHORT, Shop, command_spy, shop, starts_of, until

from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

ROUNDS = 6
"""Dispatch rounds to watch for something that must not happen (each ~0.5 s or sooner)."""


async def neighbour(s: Shop, email: str) -> Shop:
    """Another person with an account on the same cloud."""
    token = await sign_up(s.client, email)
    return Shop(s.cloud, token, s.tmp_path / email, s.stack)


async def upload(s: Shop, gcode: bytes = SHORT) -> str:
    response = await s.client.post(
        "/api/v1/files",
        headers={"Authorization": f"Bearer {s.token}"},
        files={"file": ("part.gcode", gcode, "text/plain")},
    )
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


async def rounds_pass(s: Shop, count: int = ROUNDS) -> None:
    core = s.cloud.context.core
    assert core is not None
    await core.dispatcher.wait_ticks(count)


async def job_state(s: Shop, job_id: str, *states: str, within: float = 30) -> dict[str, Any]:
    async def reached() -> bool:
        return (await s.job(job_id))["state"] in states

    await until(reached, within=within)
    return await s.job(job_id)


def about(commands: list[dict[str, Any]], job_id: str) -> list[str]:
    return [c["type"] for c in commands if c.get("job_id") == job_id]


# -- S1: who may print where -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_model_wide_job_never_runs_on_a_strangers_printer(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, "xavier@example.org") as xavier:
        yvonne = await neighbour(xavier, "yvonne@example.org")
        # Yvonne's idle p1, plate confirmed, sorts first among the p1s; it is not shared.
        hers = await yvonne.printer("p1", printer_id=f"a-{unique('p1')}")
        await yvonne.call("POST", f"/api/v1/printers/{hers.id}/confirm-plate")
        # Xavier operates a p1 too, but it is switched off.
        his = await xavier.printer("p1", printer_id=f"z-{unique('p1')}", power_on=False)

        async with command_spy(mosquitto, hers.id) as to_hers:
            job_id = (
                await xavier.call(
                    "POST", "/api/v1/jobs", json={"file_id": await upload(xavier), "model": "p1"}
                )
            )["id"]
            await rounds_pass(xavier)
            assert about(to_hers, job_id) == []
            assert hers.hardware.current_print() is None
            waiting = await xavier.job(job_id)
            assert waiting["state"] == "queued"
            assert waiting["assigned_printer"] is None
            assert "may operate" in waiting["reason"]

            # His own printer comes on: the job runs there, and only there.
            await his.power_on()
            await xavier.online(his.id)
            await xavier.call("POST", f"/api/v1/printers/{his.id}/confirm-plate")
            done = await job_state(xavier, job_id, "completed")
            assert done["assigned_printer"] == his.id
            assert about(to_hers, job_id) == []

        # Nothing of it in Yvonne's printer's audit or her job list.
        audit = await yvonne.call("GET", f"/api/v1/audit?printer_id={hers.id}")
        assert [e for e in audit if e.get("job_id") == job_id] == []
        assert await yvonne.call("GET", "/api/v1/jobs") == []


@pytest.mark.asyncio
@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "model-wide"])
async def test_a_share_revoked_while_a_job_waits_takes_the_printer_from_it(
    pinned: bool, api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, "xavier@example.org") as xavier:
        yvonne = await neighbour(xavier, "yvonne@example.org")
        hers = await yvonne.printer("p1")
        await yvonne.call(
            "POST",
            f"/api/v1/printers/{hers.id}/shares",
            json={"email": "xavier@example.org", "role": "operator"},
        )
        target = {"printer_id": hers.id} if pinned else {"model": "p1"}
        async with xavier.feed().open() as feed, command_spy(mosquitto, hers.id) as to_hers:
            job_id = (
                await xavier.call(
                    "POST", "/api/v1/jobs", json={"file_id": await upload(xavier), **target}
                )
            )["id"]
            # Staged on her printer, waiting for someone to confirm its plate.
            await job_state(xavier, job_id, "staged")

            revoked = await yvonne.call(
                "DELETE", f"/api/v1/printers/{hers.id}/shares/xavier@example.org"
            )
            assert revoked["role"] == "operator"
            if pinned:
                rejected = await feed.wait_for("job_rejected", job_id)
                assert "may no longer operate" in rejected["data"]["reason"]
            else:
                requeued = await job_state(xavier, job_id, "queued")
                assert requeued["assigned_printer"] is None

            # Now the plate is confirmed: still nothing of Xavier's starts there.
            await yvonne.call("POST", f"/api/v1/printers/{hers.id}/confirm-plate")
            await rounds_pass(xavier)
            assert starts_of(to_hers, job_id) == []
            assert hers.hardware.current_print() is None
        assert (await xavier.job(job_id))["state"] == ("rejected" if pinned else "queued")
        shares = await yvonne.call("GET", f"/api/v1/printers/{hers.id}/shares")
        assert shares == []


# -- S5: safety settings as desired and reported state ---------------------------------------------


@dataclass
class AgentProcess:
    """``printfleet agent`` in a process of its own, so it can be stopped and frozen for real."""

    config: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        # The console script installed beside this Python, as a person would run it; its log
        # is kept beside its config, for whoever reads a failure.
        with self.config.with_name("agent.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("printfleet")),
                "agent",
                "--config",
                str(self.config),
                "--time-scale",
                "30",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            await self.process.wait()
        self.process = None

    def freeze(self, frozen: bool) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


@contextlib.asynccontextmanager
async def agent_process(s: Shop, model: str) -> AsyncIterator[tuple[str, AgentProcess]]:
    printer_id = unique(model)
    provisioned = await s.call(
        "POST", "/api/v1/printers", json={"id": printer_id, "name": printer_id, "model": model}
    )
    settings = tomllib.loads(provisioned["agent_config"])
    home = s.tmp_path / printer_id
    home.mkdir(parents=True)
    lines = [f"{key} = {_toml(value)}" for key, value in settings.items()]
    lines += [
        f"data_dir = {_toml(str(home / 'agent'))}",
        "telemetry_period_s = 0.2",
        "keepalive_s = 2",
    ]
    config = home / "agent.toml"
    config.write_text("\n".join(lines) + "\n")
    agent = AgentProcess(config)
    try:
        yield printer_id, agent
    finally:
        await agent.stop()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


async def printer_state(s: Shop, printer_id: str) -> dict[str, Any]:
    state: dict[str, Any] = await s.call("GET", f"/api/v1/printers/{printer_id}")
    return state


async def reports(s: Shop, printer_id: str, **wanted: object) -> None:
    last: dict[str, Any] = {}

    async def matches() -> bool:
        last.update(await printer_state(s, printer_id))
        return all(last[key] == value for key, value in wanted.items())

    try:
        await until(matches, within=30)
    except TimeoutError:
        seen = {key: last.get(key) for key in wanted}
        raise AssertionError(f"{printer_id} never reported {wanted}; last {seen}") from None


@pytest.mark.asyncio
@pytest.mark.parametrize("away", ["stopped", "frozen"])
async def test_a_plate_check_turned_on_while_the_printer_was_away_holds_when_it_returns(
    away: str, api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with (
        shop(tmp_path, api_database_url, mosquitto) as s,
        agent_process(s, "p1") as (printer_id, agent),
    ):
        await agent.start()
        await reports(s, printer_id, online=True, plate_check_reported=True)
        # The owner turns the check off; the printer applies it and says so.
        await s.call(
            "PUT",
            f"/api/v1/printers/{printer_id}/plate-check",
            json={"enabled": False, "confirm": True},
        )
        await reports(s, printer_id, plate_check=False, plate_check_reported=False)
        # A print runs with the check off, and ends: the part is still on the plate.
        first = await s.submit(printer_id)
        await job_state(s, first, "completed")

        # The printer goes away; meanwhile the owner turns the check back on.
        if away == "stopped":
            await agent.stop()
        else:
            agent.freeze(True)
        await reports(s, printer_id, online=False)
        turned_on = await s.call(
            "PUT", f"/api/v1/printers/{printer_id}/plate-check", json={"enabled": True}
        )
        assert turned_on["plate_check"] is True
        assert turned_on["plate_check_reported"] is None  # unknown while it is away

        async with command_spy(mosquitto, printer_id) as commands:
            second = await s.submit(printer_id, LONG)
            if away == "stopped":
                await agent.start()
            else:
                agent.freeze(False)
            # Back, it is told the owner's setting again, applies it, and reports it ...
            await reports(s, printer_id, online=True, plate_check_reported=True)
            assert any(c["type"] == "set_plate_check" and c["body"]["enabled"] for c in commands)
            # ... and its plate, with last print still on it, needs a person: nothing starts.
            await reports(s, printer_id, plate="needs_confirmation")
            await rounds_pass(s)
            assert starts_of(commands, second) == []
            waiting = await s.job(second)
            assert waiting["state"] in {"queued", "staged"}
            assert "plate" in waiting["reason"]

            # Someone takes the part off and confirms: then, and only then, it prints.
            await s.call("POST", f"/api/v1/printers/{printer_id}/confirm-plate")
            await job_state(s, second, "printing", "completed")
            (start,) = starts_of(commands, second)
            assert start["body"]["plate_check"] is True


# -- who may act on a running job ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_downgraded_operator_loses_the_job_controls_and_the_owner_has_them_all(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, "yvonne@example.org") as yvonne:
        xavier = await neighbour(yvonne, "xavier@example.org")
        zoe = await neighbour(yvonne, "zoe@example.org")
        hers = await yvonne.printer("x1")
        share = {"email": "xavier@example.org", "role": "operator"}
        await yvonne.call("POST", f"/api/v1/printers/{hers.id}/shares", json=share)
        job_id = await xavier.submit(hers.id, LONG)
        await job_state(xavier, job_id, "printing")

        # Xavier is made a viewer mid-print: his pause is refused at once.
        await yvonne.call(
            "POST",
            f"/api/v1/printers/{hers.id}/shares",
            json={"email": "xavier@example.org", "role": "viewer"},
        )
        refused = await xavier.client.post(
            f"/api/v1/jobs/{job_id}/pause", headers={"Authorization": f"Bearer {xavier.token}"}
        )
        assert refused.status_code == 403, refused.text
        assert "may no longer operate" in refused.json()["message"]

        # A stranger does not even learn the job exists.
        hidden = await zoe.client.post(
            f"/api/v1/jobs/{job_id}/pause", headers={"Authorization": f"Bearer {zoe.token}"}
        )
        assert hidden.status_code == 404

        # The printer's owner answers for everything on it: she sees, pauses, resumes, cancels.
        assert (await yvonne.job(job_id))["state"] == "printing"
        await yvonne.call("POST", f"/api/v1/jobs/{job_id}/pause")
        await job_state(yvonne, job_id, "paused")
        await yvonne.call("POST", f"/api/v1/jobs/{job_id}/resume")
        await job_state(yvonne, job_id, "printing")
        async with xavier.feed().open() as feed:
            cancelled = await yvonne.call("POST", f"/api/v1/jobs/{job_id}/cancel")
            assert cancelled["state"] == "cancelled"
            told = await feed.wait_for("job_cancelled", job_id)
        assert told["data"]["reason"] == f"cancelled by the owner of {hers.id}"
        await until(lambda: _idle(hers), within=20)


async def _idle(printer: Any) -> bool:
    return bool(printer.hardware.current_print() is None)
