"""The statistics page: a job that ran shows in its table and charts, by printer and by model."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from tests.web.conftest import log_in
from tests.web.test_dashboard import job_id_of, submit_print

from printfleet.demo import RunningDemo


@pytest.mark.asyncio
async def test_the_statistics_page_counts_a_completed_print(demo: RunningDemo, page: Page) -> None:
    printer = demo.printers["x1-01"]
    await log_in(page, demo)
    await submit_print(page, printer.id, name="stats.gcode")
    job_id = await job_id_of(demo, "stats.gcode")
    await page.goto(f"{demo.url}/#/jobs")
    await expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_attribute(
        "data-state", "completed", timeout=60_000
    )

    await page.get_by_role("link", name="Statistics").click()
    await expect(page.get_by_role("heading", name="Statistics", level=1)).to_be_visible()
    row = page.locator(f'table.stats tr[data-group="{printer.id}"]')
    await expect(row.locator("td").first).to_have_text("1")  # completed
    await expect(page.locator('table.stats tr[data-group="all"] td').first).to_have_text("1")
    await expect(page.get_by_role("img", name="Jobs by outcome")).to_have_attribute(
        "data-bars", "1"
    )
    await expect(page.get_by_role("img", name="Print hours")).to_have_attribute("data-bars", "1")

    await page.get_by_label("Group").select_option("model")
    await expect(page.locator('table.stats tr[data-group="x1"] td').first).to_have_text("1")
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Download CSV").click()
    saved = await (await download.value).path()
    assert saved.read_text().splitlines()[1].startswith("x1,1,")
