"""End to end, with two people sharing one cloud: a job for a pool starts only on a printer of
the pool that its submitter may operate at the moment of dispatch (S1). A pool never widens
anyone's reach: a share taken back while a pool job waits takes that printer from it, whatever
the pool still lists, and nothing of the job reaches the printer (seen on the wire).

Real Mosquitto, real agents on simulated printers, the real cloud app, SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cloud.test_api import api_database_url
from tests.cloud.test_e2e_jobs import command_spy, shop, starts_of
from tests.cloud.test_e2e_tenants import job_state, neighbour, rounds_pass, upload

from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name


@pytest.mark.asyncio
async def test_a_pool_job_never_reaches_a_printer_its_submitter_lost(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, "xavier@example.org") as xavier:
        yvonne = await neighbour(xavier, "yvonne@example.org")
        hers = await yvonne.printer("p1")
        await yvonne.call(
            "POST",
            f"/api/v1/printers/{hers.id}/shares",
            json={"email": "xavier@example.org", "role": "operator"},
        )
        pool = await xavier.call(
            "POST", "/api/v1/pools", json={"name": "borrowed", "printer_ids": [hers.id]}
        )
        async with command_spy(mosquitto, hers.id) as to_hers:
            job = await xavier.call(
                "POST",
                "/api/v1/jobs",
                json={"file_id": await upload(xavier), "pool_id": pool["id"]},
            )
            # Staged on her printer, waiting for someone to confirm its plate.
            staged = await job_state(xavier, job["id"], "staged")
            assert staged["assigned_printer"] == hers.id

            await yvonne.call("DELETE", f"/api/v1/printers/{hers.id}/shares/xavier@example.org")
            requeued = await job_state(xavier, job["id"], "queued")
            assert requeued["assigned_printer"] is None
            # The pool still lists her printer; the job still may not go there.
            listed = await xavier.call("GET", f"/api/v1/pools/{pool['id']}")
            assert listed["printer_ids"] == [hers.id]

            await yvonne.call("POST", f"/api/v1/printers/{hers.id}/confirm-plate")
            await rounds_pass(xavier)
            assert starts_of(to_hers, job["id"]) == []
            assert hers.hardware.current_print() is None
            waiting = await xavier.job(job["id"])
            assert waiting["state"] == "queued"
            assert waiting["wait"] is not None
            assert waiting["wait"]["code"] in {"no_printer", "not_permitted"}
