"""``printfleet stats`` against a real cloud: the table, --json, --csv, and --since."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.cli.test_client_cli import Cli
from tests.client.live_cloud import GCODE, LiveCloud, close_people, live_cloud
from tests.client.test_stats import cancel

from printfleet.cli.stats import since_value

__all__ = ["close_people", "live_cloud"]  # fixtures, imported for pytest


def test_stats_show_the_callers_ended_jobs(live_cloud: LiveCloud, tmp_path: Path) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()  # offline: the job stays queued until cancelled
    path = tmp_path / "cube.gcode"
    path.write_bytes(GCODE)
    job = ada.client.create_job(ada.client.upload(path).id, printer_id=printer_id)
    cancel(ada.client, job.id)
    cli = Cli(tmp_path / "config", PRINTFLEET_URL=live_cloud.url, PRINTFLEET_TOKEN=ada.token)

    table = cli("stats").stdout
    assert "jobs by printer" in table
    assert printer_id in table
    assert "all" in table

    found = cli.json("stats", "--by", "user", "--since", "1d")
    assert [(g["key"], g["jobs"]["cancelled"]) for g in found["groups"]] == [(ada.email, 1)]

    rows = list(csv.DictReader(io.StringIO(cli("stats", "--csv", "--by", "model").stdout)))
    assert [(r["group"], r["cancelled"]) for r in rows] == [("p1", "1"), ("all", "1")]

    # Nothing ended in the future.
    assert cli("stats", "--since", "2999-01-01").stdout.strip() == "no ended jobs"
    assert (
        "no ended jobs"
        in Cli(
            tmp_path / "other",
            PRINTFLEET_URL=live_cloud.url,
            PRINTFLEET_TOKEN=live_cloud.person("bob").token,
        )("stats").stdout
    )


def test_since_takes_durations_ago_and_passes_the_rest_on() -> None:
    now = 10 * 86_400_000
    assert since_value("7d", now_ms=now) == 3 * 86_400_000
    assert since_value("12h", now_ms=now) == now - 12 * 3_600_000
    assert since_value("1w", now_ms=now) == now - 7 * 86_400_000
    assert since_value("2026-12-01T00:00:00Z", now_ms=now) == "2026-12-01T00:00:00Z"
    assert since_value(None) is None
