"""The farm's queue on the dashboard, against a real cloud, Mosquitto and simulated printers:
a waiting job says why it waits and offers what releases it (an occupied plate, a material the
printer lacks, a plate to confirm), the queue is listed as the planner takes it and reordered
with the priority buttons, and the new-job form sends copies, priority, pool and requirements."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import FilePayload, Page, Request, expect
from tests.web.conftest import log_in
from tests.web.farm import job, job_row, owner_api, plate_shown, queue_order, sample, submit

from printfleet.demo import RunningDemo

STARTED = re.compile(r"dispatched|printing|completed")


def submitted(request: Request) -> bool:
    """The new-job form's request."""
    return request.method == "POST" and request.url.endswith("/api/v1/jobs")


@pytest.mark.asyncio
async def test_a_job_waiting_for_an_occupied_plate_says_so_until_the_print_is_taken_off(
    demo: RunningDemo, page: Page
) -> None:
    printer = demo.printers["x1-01"]
    printer.hardware.plate.add_print()  # an earlier print nobody took off: its sensor sees it
    await log_in(page, demo)
    await plate_shown(page, demo, "x1-01", "Occupied")
    async with owner_api(demo) as api:
        waiting = await submit(api, "bracket.gcode", printer_id="x1-01")

    # On the printer's card in the fleet.
    card = page.locator('li.printer[data-printer-id="x1-01"]')
    on_card = card.locator(f'ul.waits li[data-job-id="{waiting["id"]}"]')
    await expect(on_card.locator('[data-wait="plate_occupied"]')).to_be_visible(timeout=10_000)
    await expect(on_card).to_contain_text("Remove the print from Demo X1 #01")

    # In the jobs list, with the simulated printer's button that takes the print off.
    await page.get_by_role("link", name="Jobs").click()
    row = job_row(page, waiting["id"])
    reason = row.locator('.wait[data-wait="plate_occupied"]')
    await expect(reason).to_be_visible()
    async with owner_api(demo) as api:
        assert (await job(api, waiting["id"]))["wait"]["text"] == await reason.inner_text()
    await expect(row).to_contain_text("Remove the print from Demo X1 #01")
    assert printer.hardware.current_print() is None
    await row.get_by_role("button", name="Take the print off Demo X1 #01 (simulated)").click()
    await expect(row).to_have_attribute("data-state", STARTED, timeout=20_000)
    await expect(row.locator(".wait")).to_have_count(0)


@pytest.mark.asyncio
async def test_a_job_needing_petg_waits_for_it_and_starts_once_loaded_and_the_plate_confirmed(
    demo: RunningDemo, page: Page
) -> None:
    # p1-02 holds PLA and has no plate sensor: a person loads PETG, then confirms the plate.
    await log_in(page, demo)
    async with owner_api(demo) as api:
        waiting = await submit(api, "vase.gcode", printer_id="p1-02", material="PETG")
    assert waiting["requirements"]["material"] == "PETG"
    await page.get_by_role("link", name="Jobs").click()
    row = job_row(page, waiting["id"])
    await expect(row.locator('.wait[data-wait="material_mismatch"]')).to_be_visible()
    await expect(row).to_contain_text("needs PETG")

    await row.get_by_role("link", name="Materials of Demo P1 #02").click()
    await expect(page).to_have_url(re.compile(r"#/printers/p1-02/materials$"))
    await expect(page.get_by_role("heading", name="Materials")).to_be_focused()
    slots = page.get_by_role("list", name="Material slots of Demo P1 #02")
    await expect(slots).to_contain_text("PLA")
    await page.get_by_label("Slot", exact=True).fill("1")
    await page.get_by_label("Material", exact=True).fill("petg")
    await page.get_by_role("button", name="Save slot").click()
    await expect(page.locator("#slot-sent")).to_contain_text("Sent to Demo P1 #02")
    await expect(slots).to_contain_text("PETG", timeout=10_000)

    # Now the plate: nobody has said it is clear, and the button for it is in the queue.
    await page.get_by_role("link", name="Jobs").click()
    await expect(row.locator('.wait[data-wait="plate_unconfirmed"]')).to_be_visible(timeout=10_000)
    await row.get_by_role("button", name="Confirm plate clear on Demo P1 #02").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Is the plate clear?")
    await dialog.get_by_role("button", name="Yes, the plate is clear").click()
    await expect(row).to_have_attribute("data-state", STARTED, timeout=20_000)


@pytest.mark.asyncio
async def test_the_queue_is_listed_as_the_planner_takes_it_and_reordered_by_priority(
    demo: RunningDemo, page: Page
) -> None:
    demo.printers["x1-03"].hardware.plate.add_print()  # nothing starts there meanwhile
    await log_in(page, demo)
    await plate_shown(page, demo, "x1-03", "Occupied")
    async with owner_api(demo) as api:
        first = await submit(api, "first.gcode", printer_id="x1-03")
        second = await submit(api, "second.gcode", printer_id="x1-03")
        urgent = await submit(api, "urgent.gcode", printer_id="x1-03", priority=5)
    ids = {first["id"], second["id"], urgent["id"]}
    await page.get_by_role("link", name="Jobs").click()
    for created in (first, second, urgent):
        await expect(job_row(page, created["id"]).locator(".priority")).to_have_text(
            str(created["priority"])
        )
    # Highest priority first, then the oldest.
    assert await queue_order(page, ids) == [urgent["id"], first["id"], second["id"]]

    await page.get_by_role("button", name="Raise priority of second.gcode").click()
    # Just above the job ahead of it (first, at 0), so still under urgent.
    await expect(job_row(page, second["id"]).locator(".priority")).to_have_text("1")
    assert await queue_order(page, ids) == [urgent["id"], second["id"], first["id"]]
    await page.get_by_role("button", name="Lower priority of urgent.gcode").click()
    await expect(job_row(page, urgent["id"]).locator(".priority")).to_have_text("0")
    async with owner_api(demo) as api:
        assert (await job(api, urgent["id"]))["priority"] == 0
        assert (await job(api, second["id"]))["priority"] == 1
    # At equal priority the older job goes first.
    assert await queue_order(page, ids) == [second["id"], first["id"], urgent["id"]]


@pytest.mark.asyncio
async def test_the_new_job_form_sends_pool_copies_priority_and_requirements_from_the_file(
    demo: RunningDemo, page: Page
) -> None:
    async with owner_api(demo) as api:
        created = await api.post("/pools", json={"name": "PETG farm", "printer_ids": ["p1-02"]})
        assert created.status_code == 201, created.text
        pool = created.json()
    await log_in(page, demo)
    await page.get_by_role("link", name="Jobs").click()
    payload: FilePayload = {
        "name": "clips.gcode",
        "mimeType": "text/plain",
        "buffer": sample(material="PETG"),
    }
    await page.get_by_label("G-code file").set_input_files(files=[payload])
    await page.get_by_label("Any printer you may operate in pool").check()
    await page.get_by_label("Pool", exact=True).select_option(pool["id"])
    await page.get_by_label("Copies").fill("3")
    await page.get_by_label("Priority", exact=True).fill("7")
    await page.get_by_label("Nozzle").select_option("400")
    async with page.expect_request(submitted) as first:
        await page.get_by_role("button", name="Upload and print").click()
    await expect(page.locator("#toast")).to_have_text("3 copies of clips.gcode queued")
    sent = json.loads((await first.value).post_data or "{}")
    # The material is left out, so the cloud takes it from what the slicer wrote.
    assert sent == {
        "file_id": sent["file_id"],
        "start_within_s": 3600,
        "pool_id": pool["id"],
        "copies": 3,
        "priority": 7,
        "nozzle_um": 400,
    }
    rows = page.locator("table.jobs tbody tr", has_text="clips.gcode")
    await expect(rows).to_have_count(3)
    await expect(rows.first).to_contain_text("pool PETG farm")
    async with owner_api(demo) as api:
        listed = (await api.get("/jobs", params={"limit": 10})).json()
    copies = [j for j in listed if j["name"].startswith("clips.gcode")]
    assert sorted(j["copy_index"] for j in copies) == [1, 2, 3]
    assert {j["priority"] for j in copies} == {7}
    assert {json.dumps(j["requirements"]) for j in copies} == {
        json.dumps({"material": "PETG", "nozzle_um": 400})
    }
    # p1-02 holds PLA: every copy says so.
    for j in copies:
        await expect(job_row(page, j["id"]).locator(".wait")).to_have_attribute(
            "data-wait", "material_mismatch"
        )

    # A file uploaded before: its material fills the form, and "any" clears the requirement.
    await page.get_by_label("Or a file uploaded before").select_option(label="clips.gcode")
    await expect(page.get_by_label("Material", exact=True)).to_contain_text(
        "As the file says (PETG)"
    )
    await expect(page.get_by_label("Material name")).to_have_value("PETG")
    await page.get_by_label("Material", exact=True).select_option("any")
    await page.get_by_label("Copies").fill("1")
    await page.get_by_label("This printer").check()
    await page.get_by_label("Printer", exact=True).select_option("p1-04")
    async with page.expect_request(submitted) as second:
        await page.get_by_role("button", name="Upload and print").click()
    body = json.loads((await second.value).post_data or "{}")
    assert body["material"] is None
    assert body["printer_id"] == "p1-04"
    assert "copies" not in body
