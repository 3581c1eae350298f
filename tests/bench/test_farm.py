"""The farm run: a demo farm with a plate attendant prints a full queue for simulated hours, and
every job is audited. Run here short, on a real Mosquitto; ``printfleet bench farm`` runs 10."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from printfleet.bench.farm import FarmSettings, run_farm
from printfleet.testing import MosquittoBroker

CLI = (sys.executable, "-c", "from printfleet.cli import main; main()")


def test_the_quick_farm_run_completes_every_job_from_the_command_line(
    mosquitto: MosquittoBroker,
) -> None:
    """The README's command, shortened: every job completed, no plate printed on twice, the
    statistics agreeing with the jobs."""
    arguments = ("--quick", "--broker", mosquitto.url, "--json", "--check")
    done = subprocess.run(  # noqa: S603 - our own CLI, our own arguments
        [*CLI, "bench", "farm", *arguments],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    report = json.loads(done.stdout)
    figures = report["figures"]
    assert report["findings"] == []
    assert figures["prints onto an occupied plate"] == "0"
    submitted = int(figures["jobs submitted"])
    # Four printers, half an hour, ~9 simulated minutes a print: several rounds each.
    assert submitted >= 8, figures
    assert figures["jobs by outcome"] == f"{submitted} completed", figures
    assert figures["completed per printer (jobs)"] == figures["completed per printer (statistics)"]


@pytest.mark.asyncio
async def test_without_an_attendant_the_audit_finds_the_jobs_the_plates_held(
    mosquitto: MosquittoBroker,
) -> None:
    """The audit can fail: nobody clears the plates, so after one print each the queue stalls,
    and the run names every job left waiting and why."""
    settings = FarmSettings(
        printers=2, hours=0.15, attendant_after_s=None, drain_factor=1.0, broker_url=mosquitto.url
    )
    report = await run_farm(settings)
    assert not report.passed
    assert report.completed >= 1
    stalled = [f for f in report.findings if "is still" in f]
    assert stalled, report.findings
    # Each says why: the plate, or (queued behind) the job that holds the printer for it.
    assert all(not finding.endswith(": -") for finding in stalled), stalled
    assert sum("plate" in finding for finding in stalled) >= settings.printers, stalled
    assert report.prints_on_occupied_plate == 0
