"""What the farm-queue page tests share: the demo cloud's HTTP API as its owner calls it
(uploads, jobs, pools), so a test sets up what the page then shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

from printfleet.demo import RunningDemo
from printfleet.sim.samples import make_sample_gcode

API_TIMEOUT_S = 10.0


@asynccontextmanager
async def owner_api(demo: RunningDemo) -> AsyncIterator[httpx.AsyncClient]:
    """The demo account's API, authenticated with its token."""
    async with httpx.AsyncClient(
        base_url=f"{demo.url}/api/v1",
        headers={"Authorization": f"Bearer {demo.token}"},
        timeout=API_TIMEOUT_S,
    ) as client:
        yield client


def sample(layers: int = 3, *, material: str | None = None) -> bytes:
    """A short print file; with `material`, its slicer wrote that filament type."""
    gcode = make_sample_gcode(layers, heat=False)
    header = f"; filament_type = {material}\n" if material else ""
    return (header + gcode.text).encode()


async def upload(api: httpx.AsyncClient, name: str, content: bytes | None = None) -> str:
    """Upload a print file; its id."""
    response = await api.post("/files", files={"file": (name, content or sample())})
    response.raise_for_status()
    file_id: str = response.json()["id"]
    return file_id


async def submit(api: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    """Upload `name` and submit it with the contract's `fields`; the job as the API returns it."""
    file_id = await upload(api, name)
    response = await api.post("/jobs", json={"file_id": file_id, **fields})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """A job as the API shows it now."""
    response = await api.get(f"/jobs/{job_id}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def job_row(page: Page, job_id: str) -> Locator:
    """A job's row in a jobs table."""
    return page.locator(f'tr[data-job-id="{job_id}"]')


async def queue_order(page: Page, job_ids: set[str]) -> list[str]:
    """The order in which the Jobs page lists these jobs."""
    rows = page.locator("table.jobs tbody tr[data-job-id]")
    listed = await rows.evaluate_all("rows => rows.map((row) => row.dataset.jobId)")
    return [job_id for job_id in listed if job_id in job_ids]


async def plate_shown(page: Page, demo: RunningDemo, printer_id: str, plate: str) -> None:
    """Until the fleet page shows the printer's plate as `plate` (as the printer reported it)."""
    await page.goto(f"{demo.url}/#/")
    card = page.locator(f'li.printer[data-printer-id="{printer_id}"]')
    await expect(card.locator('[data-field="plate"]')).to_have_text(plate, timeout=10_000)
