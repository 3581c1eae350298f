"""More of why a job waits, on the dashboard against a real cloud: a farm capped at one printer
heating up shows the cap on the job that waits for a slot, an expired job keeps its last
reason, and a job waiting for a printer to apply its settings offers nothing to press."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, Route, expect
from tests.web.conftest import log_in
from tests.web.farm import job_row, owner_api, plate_shown, submit, upload

from printfleet.demo import RunningDemo
from printfleet.sim.samples import make_sample_gcode


@pytest_asyncio.fixture
async def capped_demo(demo: RunningDemo) -> RunningDemo:
    """The dashboard's demo farm capped at one printer heating up at a time, as
    PRINTFLEET_MAX_HEATUPS=1 caps a cloud (the demo builds its settings itself, so the cap is
    handed to its dispatcher the way the cloud hands it the setting)."""
    core = demo.context.core
    assert core is not None
    core.dispatcher.policy = replace(core.dispatcher.policy, max_heating=1)
    return demo


@pytest.mark.asyncio
async def test_a_job_waiting_for_a_heat_up_slot_shows_the_cap(
    capped_demo: RunningDemo, page: Page
) -> None:
    demo = capped_demo
    await log_in(page, demo)
    async with owner_api(demo) as api:
        # A print that heats its hotend and bed first: x1-01 is heating up for a while.
        heated = await upload(api, "heated.gcode", make_sample_gcode(50).encode())
        first = await api.post("/jobs", json={"file_id": heated, "printer_id": "x1-01"})
        assert first.status_code == 201, first.text
    await page.get_by_role("link", name="Jobs").click()
    await expect(job_row(page, first.json()["id"])).to_have_attribute(
        "data-state", re.compile("dispatched|printing")
    )
    async with owner_api(demo) as api:
        second = await submit(api, "next.gcode", printer_id="x1-03")
    reason = job_row(page, second["id"]).locator('.wait[data-wait="heat_up_slot"]')
    await expect(reason).to_contain_text("waiting for a heat-up slot (1 of 1 printers heating)")
    await expect(job_row(page, second["id"])).to_contain_text("Heat-up cap: 1 of 1 heating")


@pytest.mark.asyncio
async def test_an_expired_job_keeps_its_last_reason(demo: RunningDemo, page: Page) -> None:
    demo.printers["x1-01"].hardware.plate.add_print()
    await log_in(page, demo)
    await plate_shown(page, demo, "x1-01", "Occupied")
    async with owner_api(demo) as api:
        expiring = await submit(api, "late.gcode", printer_id="x1-01", start_within_s=2)
    await page.get_by_role("link", name="Jobs").click()
    row = job_row(page, expiring["id"])
    await expect(row).to_have_attribute("data-state", "expired", timeout=15_000)
    await expect(row.locator(".reason")).to_contain_text("start window closed while waiting:")
    await expect(row.locator(".reason")).to_contain_text("x1-01")
    # Nothing offered to release it: it has ended.
    await expect(row.get_by_role("button", name=re.compile("Take the print off"))).to_have_count(0)


@pytest.mark.asyncio
async def test_a_job_waiting_for_settings_says_so_and_offers_nothing_to_press(
    demo: RunningDemo, page: Page
) -> None:
    # A printer that has not applied its owner's settings yet is hard to hold still in the demo
    # (it applies them in milliseconds): the cloud's answer for a real waiting job says so.
    demo.printers["p1-04"].hardware.plate.add_print()
    text = "p1-04 has not applied its settings yet: waiting for it to report them"

    async def pending(route: Route) -> None:
        response = await route.fetch()
        jobs: list[dict[str, Any]] = await response.json()
        for listed in jobs:
            if listed["state"] in {"queued", "staged"}:
                listed["wait"] = {"code": "settings_pending", "text": text}
        await route.fulfill(response=response, json=jobs)

    await page.route(re.compile(r"/api/v1/jobs\?"), pending)
    await log_in(page, demo)
    async with owner_api(demo) as api:
        waiting = await submit(api, "held.gcode", printer_id="p1-04")
    await page.get_by_role("link", name="Jobs").click()
    row = job_row(page, waiting["id"])
    await expect(row.locator('.wait[data-wait="settings_pending"]')).to_have_text(text)
    await expect(row).to_contain_text("Nothing to press: it waits for Demo P1 #04")
    await expect(row.locator(".reason").get_by_role("button")).to_have_count(0)
    await page.unroute_all(behavior="ignoreErrors")
