"""Statistics of ended jobs: the figures for a known set of jobs, through the real API over
real prints, on SQLite and PostgreSQL; one tenant never sees another's; the arithmetic on
rows whose every figure is known."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from tests.cloud.test_api import api_database_url, bearer, sign_up
from tests.cloud.test_e2e_jobs import SHORT, Shop, shop, until

from printfleet.cloud.api.stats import parse_time
from printfleet.cloud.store.stats import START_ACTIONS, JobHistoryRow
from printfleet.cloud.usecases.stats import CostRates, GroupBy, summarize
from printfleet.protocol.lifecycle import JobState
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

HOUR = 3_600_000
PETG = SHORT + b"; filament used [g] = 40.00\n; filament_type = petg\n"
"""The sample with a slicer footer that names its material: the later grams line is the one read."""


async def _ends_in(s: Shop, job_id: str, state: str) -> dict[str, Any]:
    async def ended() -> bool:
        return bool((await s.job(job_id))["state"] == state)

    await until(ended, within=30)
    return await s.job(job_id)


async def _cancel(s: Shop, job_id: str) -> None:
    # Once: the cloud reads the job again if the dispatcher wrote it meanwhile.
    response = await s.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(s.token))
    assert response.status_code == 200, response.text


def _sample_grams(metadata: list[dict[str, Any]]) -> float:
    """The grams of the plain sample, after checking what the uploads stored."""
    sample, petg = metadata
    assert (sample["material"], petg["material"], petg["filament_g"]) == (None, "PETG", 40.0)
    grams = sample["filament_g"]
    assert isinstance(grams, float)
    assert grams > 0
    return grams


def _printed_ms(job: dict[str, Any]) -> int:
    starts: list[int] = [e["at"] for e in job["audit"] if e["action"] in START_ACTIONS]
    ended_at: int = job["ended_at"]
    return ended_at - max(starts)


@pytest.mark.asyncio
async def test_stats_count_the_jobs_that_ran_and_only_the_callers(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with shop(tmp_path, api_database_url, mosquitto, email="stats@example.org") as s:
        x1 = await s.printer("x1")
        p1 = await s.printer("p1", power_on=False)  # offline: its job never leaves the queue
        completed = []
        for gcode in (SHORT, PETG):
            # Any material: what the simulated printer has loaded is not what this counts.
            job_id = await s.submit(x1.id, gcode, material=None)
            completed.append(await _ends_in(s, job_id, "completed"))
            assert x1.hardware.remove_print() == 1
        queued = await s.submit(p1.id, SHORT)
        await _cancel(s, queued)
        cancelled = await _ends_in(s, queued, "cancelled")

        files = {f["id"]: f for f in await s.call("GET", "/api/v1/files")}
        filament_mm = [files[job["file_id"]]["metadata"]["filament_mm"] for job in completed]
        assert all(isinstance(mm, float) and mm > 0 for mm in filament_mm)
        grams = _sample_grams([files[job["file_id"]]["metadata"] for job in completed])
        printed_ms = sum(_printed_ms(job) for job in completed)
        assert printed_ms > 0
        hours = printed_ms / HOUR
        kwh = printed_ms * 100.0 / HOUR / 1000  # the default 100 W for every model

        by_printer = await s.call("GET", "/api/v1/stats", params={"by": "printer"})
        assert by_printer["by"] == "printer"
        assert by_printer["currency"] == "EUR"
        groups = {g["key"]: g for g in by_printer["groups"]}
        assert set(groups) == {x1.id, p1.id}
        on_x1 = groups[x1.id]
        assert on_x1["jobs"] == {
            "completed": 2,
            "failed": 0,
            "cancelled": 0,
            "expired": 0,
            "rejected": 0,
        }
        assert on_x1["total_jobs"] == 2
        assert on_x1["success_rate"] == 1.0
        assert on_x1["print_hours"] == round(hours, 4)
        assert on_x1["filament_mm"] == round(sum(filament_mm), 2)
        # Grams and material flow from the uploads' metadata; the sample names no material:
        # its grams go under "unknown", not under a made-up one.
        assert on_x1["filament_g"] == {"PETG": 40.0, "unknown": round(grams, 2)}
        assert on_x1["filament_unknown_jobs"] == 0
        assert on_x1["energy_kwh"] == round(kwh, 4)
        assert on_x1["energy_cost"] == round(kwh * 0.30, 2)
        material_cost = (40.0 + grams) / 1000 * 25.0  # the default price per kg
        assert (on_x1["material_cost"], on_x1["cost"]) == pytest.approx(
            (material_cost, kwh * 0.30 + material_cost), abs=0.005
        )
        on_p1 = groups[p1.id]
        assert on_p1["jobs"]["cancelled"] == 1
        assert (on_p1["total_jobs"], on_p1["success_rate"], on_p1["print_hours"]) == (1, None, 0)
        assert by_printer["total"]["total_jobs"] == 3
        assert by_printer["total"]["key"] == "all"

        by_user = await s.call("GET", "/api/v1/stats", params={"by": "user"})
        assert [(g["key"], g["total_jobs"]) for g in by_user["groups"]] == [
            ("stats@example.org", 3)
        ]
        by_model = await s.call("GET", "/api/v1/stats", params={"by": "model"})
        assert [(g["key"], g["total_jobs"]) for g in by_model["groups"]] == [("p1", 1), ("x1", 2)]

        # A range that ends before the cancellation leaves it out; one after every end, all.
        window = await s.call("GET", "/api/v1/stats", params={"until": str(cancelled["ended_at"])})
        assert window["total"]["total_jobs"] == 2
        later = await s.call(
            "GET", "/api/v1/stats", params={"since": str(cancelled["ended_at"] + 1)}
        )
        assert later["total"]["total_jobs"] == 0

        await _csv_says_the_same(s, [x1.id, p1.id], round(hours, 4))
        await _another_tenant_sees_none_of_it(s)


async def _csv_says_the_same(s: Shop, printers: list[str], hours: float) -> None:
    x1, p1 = printers
    # CSV, asked for by header or by parameter: one line per group, then the total.
    asked: list[tuple[dict[str, str], dict[str, str]]] = [
        ({**bearer(s.token), "Accept": "text/csv"}, {}),
        (bearer(s.token), {"format": "csv"}),
    ]
    for headers, params in asked:
        response = await s.client.get("/api/v1/stats", headers=headers, params=params)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [(r["group"], r["completed"], r["cancelled"]) for r in rows] == [
            *sorted([(x1, "2", "0"), (p1, "0", "1")]),
            ("all", "2", "1"),
        ]
        assert rows[-1]["print_hours"] == str(hours)

    bad = await s.client.get(
        "/api/v1/stats", headers=bearer(s.token), params={"since": "last tuesday"}
    )
    assert bad.status_code == 422


async def _another_tenant_sees_none_of_it(s: Shop) -> None:
    # A second tenant with a job of their own: each sees their own figures, never the other's.
    other = await sign_up(s.client, "other-tenant@example.org")
    theirs = Shop(s.cloud, other, s.tmp_path, s.stack)
    printer = await theirs.printer("p1", power_on=False)
    job_id = await theirs.submit(printer.id, SHORT)
    await _cancel(theirs, job_id)
    await _ends_in(theirs, job_id, "cancelled")

    seen = await theirs.call("GET", "/api/v1/stats", params={"by": "user"})
    assert [(g["key"], g["total_jobs"]) for g in seen["groups"]] == [
        ("other-tenant@example.org", 1)
    ]
    assert seen["total"]["jobs"]["cancelled"] == 1
    assert seen["total"]["print_hours"] == 0
    mine = await s.call("GET", "/api/v1/stats", params={"by": "printer"})
    assert printer.id not in {g["key"] for g in mine["groups"]}
    assert mine["total"]["total_jobs"] == 3


def _row(
    state: JobState,
    *,
    printer: str = "a",
    model: str = "x1",
    who: str = "ann@example.org",
    printed_h: float | None = 1.0,
    mm: float | None = None,
    grams: float | None = None,
    material: str | None = None,
) -> JobHistoryRow:
    ended_at = 10 * HOUR
    return JobHistoryRow(
        job_id=f"job-{state}-{printer}-{printed_h}",
        state=state,
        submitter_id=who,
        submitter_email=who,
        printer_id=printer,
        model=model,
        started_at=None if printed_h is None else ended_at - int(printed_h * HOUR),
        ended_at=ended_at,
        filament_mm=mm,
        filament_g=grams,
        material=material,
    )


def test_figures_for_known_rows_are_exact() -> None:
    rates = CostRates(
        currency="CHF",
        price_per_kwh=0.25,
        material_price_per_kg=20.0,
        material_prices={"petg": 30.0},
        power_w=100.0,
        model_power_w={"x1": 200.0},
    )
    rows = [
        _row(JobState.COMPLETED, printed_h=2.0, mm=1000.0, grams=50.0, material="PLA"),
        _row(JobState.COMPLETED, printed_h=1.5, mm=500.0, grams=100.0, material="PETG"),
        _row(JobState.COMPLETED, printed_h=0.5, mm=200.0),  # the slicer gave no grams
        _row(JobState.FAILED, printed_h=1.0, mm=999.0, grams=99.0, material="PLA"),
        _row(JobState.CANCELLED, printed_h=None),  # cancelled while queued
        _row(JobState.EXPIRED, printed_h=None),
        _row(JobState.REJECTED, printed_h=3.0),  # a start sent, refused: never printed
        _row(JobState.COMPLETED, printer="b", model="p1", printed_h=1.0, grams=10.0),
    ]
    report = summarize(rows, by=GroupBy.PRINTER, rates=rates)
    a, b = report.groups
    assert a.key == "a"
    assert dict(a.jobs) == {
        "completed": 3,
        "failed": 1,
        "cancelled": 1,
        "expired": 1,
        "rejected": 1,
    }
    assert a.total_jobs == 7
    assert a.success_rate == 0.75
    assert a.print_hours == 5.0  # 2 + 1.5 + 0.5 + 1 (the failed print ran an hour)
    assert a.filament_mm == 1700.0  # completed jobs only
    assert dict(a.filament_g) == {"PETG": 100.0, "PLA": 50.0}
    assert a.filament_unknown_jobs == 1
    assert a.energy_kwh == 1.0  # 5 h at 200 W
    assert a.energy_cost == 0.25
    assert a.material_cost == 4.0  # 0.05 kg PLA at 20 + 0.1 kg PETG at 30
    assert a.cost == 4.25
    assert (b.key, b.print_hours, b.energy_kwh) == ("b", 1.0, 0.1)  # p1: the default 100 W
    assert dict(b.filament_g) == {"unknown": 10.0}
    assert b.cost == round(0.1 * 0.25 + 0.01 * 20.0, 2)
    assert report.total.total_jobs == 8
    assert report.total.cost == round(4.25 + b.cost, 2)

    by_model = summarize(rows, by=GroupBy.MODEL, rates=rates)
    assert [g.key for g in by_model.groups] == ["p1", "x1"]


def test_times_are_milliseconds_or_iso_8601_in_utc() -> None:
    assert parse_time(1_700_000_000_000) == 1_700_000_000_000
    assert parse_time(datetime(2026, 12, 1)) == 1_796_083_200_000  # noqa: DTZ001 - naive is UTC
    moment = datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert parse_time(moment) == 1_796_083_200_000
    # The first year of the calendar, east of UTC: before 1970, so negative, and no overflow.
    assert parse_time(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))) == -62_135_614_800_000
    assert parse_time(None) is None
