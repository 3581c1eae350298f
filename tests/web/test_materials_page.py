"""A printer's page on the dashboard, against a real cloud, Mosquitto and simulated printers:
its material slots and nozzle are changed through the forms (checked as the API checks them),
its parts' maintenance is read and marked serviced, and a simulated printer takes faults from
the Simulation menu, which a printer that is not simulated does not show."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, Request, Route, expect
from tests.web.conftest import log_in
from tests.web.farm import owner_api, submit

from printfleet.demo import RunningDemo


@pytest.mark.asyncio
async def test_slots_and_nozzle_change_from_the_printer_page_and_bad_input_is_refused_inline(
    demo: RunningDemo, page: Page
) -> None:
    await log_in(page, demo)
    puts: list[str] = []

    def record(request: Request) -> None:
        if request.method == "PUT":
            puts.append(request.url)

    page.on("request", record)
    await page.goto(f"{demo.url}/#/printers/x1-01/materials")
    slots = page.get_by_role("list", name="Material slots of Demo X1 #01")
    await expect(slots.locator('li[data-slot="1"]')).to_contain_text("PLA")

    # Slot 3 of its material system is empty.
    await page.get_by_label("Slot", exact=True).fill("3")
    await expect(page.get_by_label("Material", exact=True)).to_have_value("")
    material = page.get_by_label("Material", exact=True)
    await material.fill("PLA CF")
    await page.get_by_role("button", name="Save slot").click()
    await expect(page.locator("#slot-error")).to_contain_text("“PLA CF” is not a material name")
    await expect(material).to_have_attribute("aria-invalid", "true")
    assert puts == []

    await material.fill("pa-cf")
    await page.get_by_label("Colour").fill("#ff0000")
    await page.get_by_role("button", name="Save slot").click()
    await expect(page.locator("#slot-error")).to_have_text("")
    slot = slots.locator('li[data-slot="3"]')
    await expect(slot).to_contain_text("PA-CF", timeout=10_000)
    await expect(slot.locator(".swatch")).to_have_css("background-color", "rgb(255, 0, 0)")
    assert puts == [f"{demo.url}/api/v1/printers/x1-01/materials/3"]

    nozzle = page.get_by_label("Nozzle diameter (mm)")
    await nozzle.fill("3")
    await page.get_by_role("button", name="Save nozzle").click()
    await expect(page.locator("#nozzle-error")).to_contain_text("write 0.1 to 2 mm")
    await nozzle.fill("0.6")
    await page.get_by_role("button", name="Save nozzle").click()
    await expect(page.locator(".nozzle-now")).to_have_text("Nozzle: 0.6 mm", timeout=10_000)

    await slot.get_by_role("button", name="Empty slot 3").click()
    await expect(slot).to_have_count(0, timeout=10_000)
    async with owner_api(demo) as api:
        printer = (await api.get("/printers/x1-01")).json()
    assert printer["nozzle_um"] == 600
    assert 3 not in [m["slot"] for m in printer["materials"]]

    # The fleet's card says the same.
    await page.get_by_role("link", name="Fleet", exact=True).click()
    card = page.locator('li.printer[data-printer-id="x1-01"]')
    await expect(card.locator('[data-field="nozzle"]')).to_have_text("0.6 mm")
    await expect(card.locator('[data-field="materials"]')).to_contain_text("PLA")


@pytest.mark.asyncio
async def test_a_part_falls_due_after_printing_and_is_marked_serviced(
    demo: RunningDemo, page: Page
) -> None:
    async with owner_api(demo) as api:
        printed = await submit(api, "short.gcode", printer_id="x1-01")
    await log_in(page, demo)
    await page.goto(f"{demo.url}/#/printers/x1-01/maintenance")
    await expect(page.get_by_role("heading", name="Maintenance")).to_be_focused()
    nozzle = page.locator('table.maintenance tr[data-part="nozzle"]')
    await expect(nozzle).to_contain_text("never")
    await expect(page.locator('table.maintenance tr[data-part="belts"]')).to_be_visible()
    printed_row = page.locator(f'tr[data-job-id="{printed["id"]}"]')
    await expect(printed_row).to_have_attribute("data-state", "completed", timeout=30_000)

    # Owner: a very short interval makes the nozzle due after that one print.
    await page.get_by_label("Part").select_option("nozzle")
    await page.get_by_label("Every (print hours)").fill("0.0001")
    await page.get_by_role("button", name="Save interval").click()
    await expect(nozzle).to_have_attribute("data-due", "true", timeout=10_000)
    await expect(nozzle).to_contain_text("Service due")
    await expect(nozzle).to_contain_text("0.0001 h")

    await nozzle.get_by_role("button", name="Mark nozzle serviced").click()
    await expect(page.locator("#toast")).to_have_text("Nozzle marked serviced")
    await expect(nozzle).to_have_attribute("data-due", "false", timeout=10_000)
    await expect(nozzle).not_to_contain_text("never")
    async with owner_api(demo) as api:
        parts = (await api.get("/printers/x1-01/maintenance")).json()
    (state,) = [p for p in parts if p["part"] == "nozzle"]
    assert state["serviced_at"] is not None
    assert state["due"] is False


@pytest.mark.asyncio
async def test_a_simulated_fault_is_injected_and_cleared_from_the_simulation_menu(
    demo: RunningDemo, page: Page
) -> None:
    await log_in(page, demo)
    card = page.locator('li.printer[data-printer-id="x1-03"]')
    await expect(card.get_by_text("Simulated", exact=True)).to_be_visible()
    await page.goto(f"{demo.url}/#/printers/x1-03/simulation")
    await expect(page.get_by_role("heading", name="Simulation")).to_be_focused()
    await page.get_by_label("Fault", exact=True).select_option("sensor-open")
    await page.get_by_label("Heater").select_option("hotend")
    await page.get_by_role("button", name="Simulate a fault").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Simulate sensor-open on Demo X1 #03?")
    await dialog.get_by_role("button", name="Simulate the fault").click()
    status = page.locator(".status-line .badge")
    await expect(status).to_have_text("Fault", timeout=10_000)

    # The sensor mended (the simulation's clear), then a person clears the latched fault.
    await page.get_by_role("button", name="Clear fault", exact=True).click()
    await expect(page.locator("#toast")).to_have_text("Simulated fault cleared")
    await page.get_by_role("button", name="Clear thermal fault").click()
    await dialog.get_by_role("button", name="I have checked it: clear the fault").click()
    await expect(status).to_have_text("Idle", timeout=10_000)


@pytest.mark.asyncio
async def test_a_printer_that_is_not_simulated_shows_no_simulation_menu(
    demo: RunningDemo, page: Page
) -> None:
    # Every demo printer is simulated: the cloud's answer is changed to a real printer's.
    async with owner_api(demo) as api:
        assert {p["simulated"] for p in (await api.get("/printers")).json()} == {True}

    async def real(route: Route) -> None:
        response = await route.fetch()
        printers = await response.json()
        for printer in printers:
            printer["simulated"] = False
        await route.fulfill(response=response, json=printers)

    await page.route(re.compile(r"/api/v1/printers$"), real)
    await log_in(page, demo)
    await expect(page.get_by_text("Simulated", exact=True)).to_have_count(0)
    await page.goto(f"{demo.url}/#/printers/x1-01")
    await expect(page.get_by_role("heading", name="Materials")).to_be_visible()
    await expect(page.get_by_role("heading", name="Simulation")).to_have_count(0)
    await expect(page.get_by_role("button", name="Simulate a fault")).to_have_count(0)
    await page.unroute_all(behavior="ignoreErrors")
