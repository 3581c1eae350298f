"""The farm queue's parts of the dashboard meet what the README claims for the rest: every text
meets WCAG AA contrast (waiting jobs' reasons, materials, maintenance, the simulation menu,
pools), every form control has a label, and the queue can be reordered with the keyboard."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from tests.web.conftest import log_in
from tests.web.farm import job_row, owner_api, plate_shown, submit
from tests.web.test_accessibility import CONTRAST

from printfleet.demo import RunningDemo

UNLABELLED = """
() => [...document.querySelectorAll("main input, main select, main button, main a")]
  .filter((node) => node.getClientRects().length > 0)
  .filter((node) => {
    const labels = node.labels ? [...node.labels].map((l) => l.textContent.trim()) : [];
    const name = node.getAttribute("aria-label") || labels.join(" ") || node.textContent.trim();
    return !name;
  })
  .map((node) => node.outerHTML.slice(0, 120))
"""


@pytest.mark.asyncio
async def test_the_farm_pages_meet_aa_contrast_and_label_every_control(
    demo: RunningDemo, page: Page
) -> None:
    demo.printers["x1-01"].hardware.plate.add_print()
    await log_in(page, demo)
    await plate_shown(page, demo, "x1-01", "Occupied")
    async with owner_api(demo) as api:
        created = await api.post("/pools", json={"name": "PLA farm", "printer_ids": ["x1-03"]})
        assert created.status_code == 201, created.text
        await submit(api, "held.gcode", printer_id="x1-01")
        await submit(api, "petg.gcode", printer_id="p1-02", material="PETG")
    pages = {
        "#/": "ul.waits .wait",
        "#/jobs": "table.jobs .wait",
        "#/pools": "li.pool",
        "#/printers/x1-01": "table.maintenance tbody tr",
    }
    checked = 0
    for path, filled in pages.items():
        await page.goto(f"{demo.url}/{path}")
        await expect(page.locator(filled).first).to_be_visible(timeout=10_000)
        texts = await page.evaluate(CONTRAST)
        low = [t for t in texts if t["ratio"] < 4.5]
        assert low == [], (path, low)
        assert await page.evaluate(UNLABELLED) == [], path
        checked += len(texts)
    await expect(page.get_by_role("heading", name="Simulation")).to_be_visible()
    await expect(page.get_by_role("heading", name="Materials")).to_be_visible()
    assert checked > 100


@pytest.mark.asyncio
async def test_raise_a_job_with_the_keyboard_and_keep_the_focus_through_updates(
    demo: RunningDemo, page: Page
) -> None:
    demo.printers["x1-03"].hardware.plate.add_print()
    await log_in(page, demo)
    await plate_shown(page, demo, "x1-03", "Occupied")
    async with owner_api(demo) as api:
        await submit(api, "older.gcode", printer_id="x1-03")
        newer = await submit(api, "newer.gcode", printer_id="x1-03")
    await page.get_by_role("link", name="Jobs").click()
    raise_newer = page.get_by_role("button", name="Raise priority of newer.gcode")
    await raise_newer.focus()
    await page.keyboard.press("Enter")
    await expect(job_row(page, newer["id"]).locator(".priority")).to_have_text("1")
    # The list was rebuilt with the new order: the button still has the keyboard focus.
    await expect(raise_newer).to_be_focused()
