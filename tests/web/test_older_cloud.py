"""The dashboard against a cloud that predates the farm's queue: printers without materials,
nozzle or simulation flag, jobs without wait codes or priorities, no pools and no maintenance.
Every new part of the page stays out of the way and a plain job is still submitted as before.

The older cloud is the real one with those fields and routes taken out of its answers."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import FilePayload, Page, Request, Route, expect
from tests.web.conftest import log_in

from printfleet.demo import RunningDemo
from printfleet.sim.samples import make_sample_gcode

NEW_PRINTER_FIELDS = ("materials", "nozzle_um", "pools", "simulated")
NEW_JOB_FIELDS = ("priority", "pool_id", "requirements", "wait", "batch_id", "copy_index", "copies")
NOT_FOUND = {"error": "not_found", "message": "Not Found"}


def _without(body: Any, fields: tuple[str, ...]) -> Any:
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict):
            for field in fields:
                item.pop(field, None)
    return body


async def act_as_an_older_cloud(page: Page) -> None:
    """Take the farm queue's fields and routes out of the real cloud's answers."""

    def stripping(fields: tuple[str, ...]) -> Callable[[Route], Awaitable[None]]:
        async def handle(route: Route) -> None:
            response = await route.fetch()
            if response.ok and route.request.method == "GET":
                body = _without(await response.json(), fields)
                await route.fulfill(response=response, json=body)
            else:
                await route.fulfill(response=response)

        return handle

    async def not_found(route: Route) -> None:
        await route.fulfill(status=404, json=NOT_FOUND)

    printers = re.compile(r"/api/v1/printers(/[^/?]+)?(\?.*)?$")
    await page.route(printers, stripping(NEW_PRINTER_FIELDS))
    await page.route(re.compile(r"/api/v1/jobs(\?.*)?$"), stripping(NEW_JOB_FIELDS))
    await page.route(re.compile(r"/api/v1/pools(/.*)?$"), not_found)
    await page.route(re.compile(r"/api/v1/printers/[^/]+/maintenance"), not_found)


@pytest.mark.asyncio
async def test_an_older_cloud_shows_no_farm_controls_and_takes_plain_jobs(
    demo: RunningDemo, page: Page
) -> None:
    await act_as_an_older_cloud(page)
    await log_in(page, demo)
    card = page.locator('li.printer[data-printer-id="x1-01"]')
    await expect(card.locator('[data-field="hotend"]')).not_to_have_text("\u2013")
    await expect(card.locator('[data-field="materials"]')).to_have_count(0)
    await expect(card.locator('[data-field="nozzle"]')).to_have_count(0)
    await expect(card.get_by_text("Simulated", exact=True)).to_have_count(0)

    await page.goto(f"{demo.url}/#/printers/x1-01")
    await expect(page.get_by_role("heading", name="Demo X1 #01")).to_be_visible()
    await expect(page.get_by_role("heading", name="Jobs on this printer")).to_be_visible()
    for hidden in ("Materials", "Maintenance", "Simulation"):
        await expect(page.get_by_role("heading", name=hidden)).to_have_count(0)

    await page.get_by_role("link", name="Pools").click()
    await expect(page.get_by_text("This cloud does not offer pools yet.")).to_be_visible()
    await expect(page.get_by_role("button", name="Create pool")).to_be_hidden()

    # The job form sends only what an older cloud knows when its new fields keep their defaults.
    await page.get_by_role("link", name="Jobs").click()
    await expect(page.get_by_label("Any printer you may operate in pool")).to_be_hidden()
    sent: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/v1/jobs"):
            sent.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    payload: FilePayload = {
        "name": "plain.gcode",
        "mimeType": "text/plain",
        "buffer": make_sample_gcode(3, heat=False).encode(),
    }
    await page.get_by_label("G-code file").set_input_files(files=[payload])
    await page.get_by_label("Printer", exact=True).select_option("x1-01")
    await page.get_by_role("button", name="Upload and print").click()
    row = page.locator("table.jobs tbody tr", has_text="plain.gcode")
    await expect(row).to_have_count(1)
    assert len(sent) == 1
    assert set(sent[0]) == {"file_id", "start_within_s", "printer_id"}
    await expect(row.get_by_role("button", name=re.compile("priority"))).to_have_count(0)
    # Requests still in the handlers when the page closes are let go.
    await page.unroute_all(behavior="ignoreErrors")
