"""The Pools page against a real cloud: a pool is created from the printers one may operate,
renamed and changed, refused inline without a name, and deleted behind a confirmation."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from tests.web.conftest import log_in
from tests.web.farm import owner_api

from printfleet.demo import RunningDemo


@pytest.mark.asyncio
async def test_create_edit_and_delete_a_pool(demo: RunningDemo, page: Page) -> None:
    await log_in(page, demo)
    await page.get_by_role("link", name="Pools").click()
    await expect(page.get_by_role("heading", name="Pools", exact=True)).to_be_visible()
    await expect(page.get_by_text("No pools yet.")).to_be_visible()

    await page.get_by_role("button", name="Create pool").click()
    await expect(page.locator("#pool-error")).to_contain_text("Give the pool a name")
    await page.get_by_label("Name").fill("PETG farm")
    await page.get_by_label("Demo X1 #01 (x1)").check()
    await page.get_by_label("Demo P1 #02 (p1)").check()
    await page.get_by_role("button", name="Create pool").click()
    pool = page.locator("li.pool", has_text="PETG farm")
    await expect(pool).to_contain_text("Demo P1 #02, Demo X1 #01")
    async with owner_api(demo) as api:
        (created,) = (await api.get("/pools")).json()
    assert created["name"] == "PETG farm"
    assert sorted(created["printer_ids"]) == ["p1-02", "x1-01"]
    # The form is empty again, for the next pool.
    await expect(page.get_by_label("Name")).to_have_value("")
    await expect(page.get_by_label("Demo X1 #01 (x1)")).not_to_be_checked()

    await pool.get_by_role("button", name="Edit pool PETG farm").click()
    await expect(page.get_by_role("heading", name="Edit pool PETG farm")).to_be_visible()
    await expect(page.get_by_label("Name")).to_have_value("PETG farm")
    await expect(page.get_by_label("Demo P1 #02 (p1)")).to_be_checked()
    await page.get_by_label("Name").fill("Fast farm")
    await page.get_by_label("Demo P1 #02 (p1)").uncheck()
    await page.get_by_label("Demo X1 #03 (x1)").check()
    await page.get_by_role("button", name="Save pool").click()
    renamed = page.locator(f'li.pool[data-pool-id="{created["id"]}"]')
    await expect(renamed).to_contain_text("Fast farm")
    await expect(renamed).to_contain_text("Demo X1 #01, Demo X1 #03")
    async with owner_api(demo) as api:
        changed = (await api.get(f"/pools/{created['id']}")).json()
    assert changed["name"] == "Fast farm"
    assert sorted(changed["printer_ids"]) == ["x1-01", "x1-03"]

    await renamed.get_by_role("button", name="Delete pool Fast farm").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete pool Fast farm?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(renamed).to_be_visible()
    await renamed.get_by_role("button", name="Delete pool Fast farm").click()
    await dialog.get_by_role("button", name="Delete the pool").click()
    await expect(renamed).to_have_count(0)
    async with owner_api(demo) as api:
        assert (await api.get("/pools")).json() == []
