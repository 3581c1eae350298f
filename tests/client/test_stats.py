"""The SDK's ``stats()``: the server's answer read into models, the same from both clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from tests.client.live_cloud import GCODE, PASSWORD, LiveCloud

from printfleet.client import AsyncClient, Client, Job
from printfleet.client import models as sdk
from printfleet.cloud.api import stats as server
from printfleet.protocol.lifecycle import JobState


def cancel(client: Client, job_id: str) -> Job:
    """Cancel a job: once (the cloud reads the job again if the dispatcher wrote it meanwhile)."""
    return client.cancel_job(job_id)


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (sdk.Stats, server.StatsOut),
        (sdk.StatsGroup, server.StatsGroupOut),
        (sdk.StatsRates, server.RatesOut),
    ],
)
def test_stats_models_mirror_the_servers(mine: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert set(mine.model_fields) == set(theirs.model_fields)


@pytest.mark.asyncio
async def test_both_clients_read_the_callers_stats(live_cloud: LiveCloud, tmp_path: Path) -> None:
    ada = live_cloud.person()
    printer_id = ada.printer()  # offline: the job stays queued until cancelled
    path = tmp_path / "cube.gcode"
    path.write_bytes(GCODE)
    file = ada.client.upload(path)
    job = ada.client.create_job(file.id, printer_id=printer_id)
    assert cancel(ada.client, job.id).state is JobState.CANCELLED

    stats = ada.client.stats(by="printer", since="2000-01-01")
    assert stats.by == "printer"
    assert [(g.key, g.jobs["cancelled"], g.total_jobs) for g in stats.groups] == [
        (printer_id, 1, 1)
    ]
    assert stats.total.print_hours == 0
    assert stats.total.success_rate is None
    assert stats.rates.currency == stats.currency == "EUR"
    async with AsyncClient(live_cloud.url) as client:
        await client.login(ada.email, PASSWORD)
        assert await client.stats(by="printer", since="2000-01-01") == stats
        by_user = await client.stats(by="user")
        assert [g.key for g in by_user.groups] == [ada.email]

    # Someone else's figures hold none of ada's jobs.
    bob = live_cloud.person("bob")
    assert bob.client.stats().total.total_jobs == 0
