"""The dashboard in a real browser against a real cloud, real Mosquitto and simulated printers:
log in, upload and print, watch the print finish without reloading, confirm a plate with the
button, see a thermal fault within 2 s and acknowledge it, and the fleet view on a phone."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, FilePayload, Page, ViewportSize, expect
from tests.web.conftest import ARTIFACTS, log_in

from printfleet.agent.hardware import HeaterId
from printfleet.cloud.store import Severity
from printfleet.demo import RunningDemo
from printfleet.protocol.lifecycle import JobState
from printfleet.sim.samples import make_sample_gcode
from printfleet.sim.thermal import HeaterFault

GCODE = make_sample_gcode(12, heat=False).encode()
"""About 32 s of hardware time: 6 s at the demo's 5x, long enough to be seen printing."""


async def submit_print(page: Page, printer_id: str, name: str = "cube.gcode") -> None:
    """Upload a file and print it on ``printer_id`` through the Jobs page."""
    await page.get_by_role("link", name="Jobs").click()
    await expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": GCODE}
    await page.get_by_label("G-code file").set_input_files(files=[payload])
    await page.get_by_label("This printer").check()
    await page.get_by_label("Printer", exact=True).select_option(printer_id)
    await page.get_by_role("button", name="Upload and print").click()
    await expect(page.locator("#upload-progress-text")).to_contain_text(f"{name} uploaded")
    assert await page.locator("#upload-progress").evaluate("bar => bar.value") == 100
    # The job was created once it is in the queue.
    await expect(page.locator("table.jobs tbody tr", has_text=name)).to_have_count(1)


async def job_id_of(demo: RunningDemo, name: str) -> str:
    jobs = await demo.context.service.jobs.jobs_for(demo.principal)
    return next(job.view.id for job in jobs if job.name == name)


@pytest.mark.asyncio
async def test_log_in_upload_print_and_watch_it_complete_without_reloading(
    demo: RunningDemo, page: Page
) -> None:
    await log_in(page, demo)
    await page.evaluate("window.notReloaded = true")
    await submit_print(page, "x1-01")
    row = page.locator("tr", has_text="cube.gcode")
    # An x1-like printer's sensor sees a clear plate: the job starts by itself.
    await expect(row).to_have_attribute("data-state", "printing", timeout=20_000)
    await expect(row.get_by_role("button", name="Cancel cube.gcode")).to_be_visible()
    await expect(row).to_have_attribute("data-state", "completed", timeout=30_000)

    await page.get_by_role("link", name="Fleet", exact=True).click()
    card = page.locator('li.printer[data-printer-id="x1-01"]')
    await expect(card).to_have_attribute("data-state", "idle")
    # The finished print is still on the plate, and the sensor says so.
    await expect(card.locator('[data-field="plate"]')).to_have_text("Occupied")
    assert await page.evaluate("window.notReloaded") is True
    job = await demo.context.store.jobs.load(await job_id_of(demo, "cube.gcode"))
    assert job.view.state is JobState.COMPLETED


@pytest.mark.asyncio
async def test_a_p1_job_waits_until_the_plate_is_confirmed_with_the_button(
    demo: RunningDemo, page: Page
) -> None:
    printer = demo.printers["p1-02"]
    await log_in(page, demo)
    await submit_print(page, printer.id, name="bracket.gcode")
    job_id = await job_id_of(demo, "bracket.gcode")
    await page.goto(f"{demo.url}/#/printers/{printer.id}")
    await expect(page.get_by_role("heading", name="Demo P1 #02")).to_be_visible()
    await expect(page.get_by_label("Printer screen")).to_contain_text("Is the plate clear?")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(row).to_have_attribute("data-state", "staged", timeout=20_000)
    # Staged and ready, but nobody said the plate is clear: rounds of planning start nothing.
    assert demo.context.core is not None
    async with asyncio.timeout(15):
        await demo.context.core.dispatcher.wait_ticks(3)
    assert printer.hardware.current_print() is None
    await expect(row).to_have_attribute("data-state", "staged")

    await page.get_by_role("button", name="Plate is clear").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Is the plate clear?")
    # Cancelling the dialog sends nothing.
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert printer.hardware.current_print() is None
    await page.get_by_role("button", name="Plate is clear").click()
    await dialog.get_by_role("button", name="Yes, the plate is clear").click()
    await expect(row).to_have_attribute("data-state", "printing", timeout=20_000)
    assert printer.hardware.current_print() is not None
    audit = await demo.context.store.audit.for_printer(printer.id, limit=1000)
    assert [entry.action for entry in audit].count("plate.confirmed") == 1


@pytest.mark.asyncio
async def test_a_resolved_alert_says_how_long_it_lasted_and_needs_nobody(
    demo: RunningDemo, page: Page
) -> None:
    printer_id = next(iter(demo.printers))
    alerts = demo.context.store.alerts
    raised = await alerts.add(
        printer_id, kind="printer_offline", severity=Severity.WARNING, message="lost"
    )
    (resolved,) = await alerts.resolve(
        printer_id, kind="printer_offline", resolution=f"{printer_id} is back online"
    )
    assert resolved.id == raised.id
    await log_in(page, demo)
    await page.get_by_role("link", name="Alerts").click()
    item = page.locator(f'li.alert.resolved[data-alert-id="{raised.id}"]')
    await expect(item).to_contain_text(
        re.compile(rf"Resolved after \d+ s: {re.escape(printer_id)} is back online")
    )
    await expect(item.get_by_role("button")).to_have_count(0)
    # Not counted as needing attention: the count is the open alerts'.
    open_now = await page.locator("li.alert.open").count()
    await expect(page.locator("#favicon")).to_have_attribute("data-count", str(open_now))


@pytest.mark.asyncio
async def test_a_thermal_fault_shows_an_alert_within_two_seconds_and_can_be_acknowledged(
    demo: RunningDemo, page: Page
) -> None:
    await log_in(page, demo)
    # Through the event stream, which the header says is live.
    await expect(page.locator("#live-mode")).to_have_text("Live")
    await page.get_by_role("link", name="Alerts").click()
    await expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    open_before = await page.locator("li.alert.open").count()
    fault = page.locator('li.alert.open[data-kind="thermal_fault"]')
    await expect(fault).to_have_count(0)

    injected = time.monotonic()
    demo.printers["x1-03"].hardware.inject_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
    await expect(fault).to_be_visible(timeout=2_000)
    assert time.monotonic() - injected < 2.0
    await expect(fault).to_contain_text("Demo X1 #03")
    await expect(page).to_have_title(f"({open_before + 1}) printfleet")
    favicon = page.locator("#favicon")
    await expect(favicon).to_have_attribute("data-count", str(open_before + 1))

    await fault.get_by_role("button", name="Acknowledge thermal fault on Demo X1 #03").click()
    acked = page.locator('li.alert.acked[data-kind="thermal_fault"]')
    await expect(acked).to_contain_text("Acknowledged")
    await expect(favicon).to_have_attribute("data-count", str(open_before))
    alerts = await demo.context.service.alerts.alerts_for(demo.principal)
    thermal = [alert for alert in alerts if alert.kind == "thermal_fault"]
    assert len(thermal) == 1
    assert thermal[0].acked_by == demo.principal.user.id

    # The fleet view shows the latched fault until a person clears it.
    await page.get_by_role("link", name="Fleet", exact=True).click()
    card = page.locator('li.printer[data-printer-id="x1-03"]')
    await expect(card).to_have_attribute("data-state", "error")
    # Once the sensor is mended, a person clears the fault, past a warning.
    demo.printers["x1-03"].hardware.clear_fault(HeaterId.HOTEND, HeaterFault.SENSOR_OPEN)
    await card.get_by_role("link", name="Demo X1 #03").click()
    await expect(page.get_by_role("group", name="Printer screen")).to_contain_text("THERMAL FAULT")
    await page.get_by_role("button", name="Clear thermal fault").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Warning: the printer turned its heaters off")
    await dialog.get_by_role("button", name="I have checked it: clear the fault").click()
    await expect(page.locator(".status-line .badge")).to_have_text("Idle", timeout=10_000)
    await expect(page.get_by_role("button", name="Clear thermal fault")).to_be_hidden()


@pytest.mark.asyncio
async def test_the_fleet_view_fits_a_phone_and_a_desktop(
    demo: RunningDemo, browser: Browser
) -> None:
    # Something to show: one printer heating for a print, the p1-like ones asking for a person.
    sample = make_sample_gcode(200).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield sample

    file = await demo.context.files.save(demo.principal.user.id, "benchy.gcode", chunks())
    await demo.context.service.jobs.submit_job(demo.principal, file_id=file.id, printer_id="x1-01")
    ARTIFACTS.mkdir(exist_ok=True)
    viewports: list[tuple[str, ViewportSize]] = [
        ("phone", {"width": 390, "height": 844}),
        ("desktop", {"width": 1440, "height": 900}),
    ]
    for label, viewport in viewports:
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        try:
            await log_in(page, demo)
            card = page.locator('li.printer[data-printer-id="x1-01"]')
            await expect(card).to_have_attribute("data-state", "printing", timeout=20_000)
            await expect(card.locator('[data-field="hotend"]')).not_to_have_text("\u2013")
            # Nothing wider than the screen: no sideways scrolling on a phone.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], (label, width)
            path = ARTIFACTS / f"dashboard-fleet-{label}.png"
            await page.screenshot(path=path, full_page=True)
            assert path.stat().st_size > 10_000
        finally:
            await context.close()


@pytest.mark.asyncio
async def test_without_the_event_stream_the_page_polls_and_still_shows_a_fault_in_time(
    demo: RunningDemo, page: Page
) -> None:
    # A proxy that breaks streaming, or an older cloud: the stream is not there.
    await page.route(
        "**/api/v1/events",
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"error":"not_found"}'
        ),
    )
    await log_in(page, demo)
    await expect(page.locator("#live-mode")).to_have_text("Polling")
    await page.get_by_role("link", name="Alerts").click()
    fault = page.locator('li.alert.open[data-kind="thermal_fault"]')
    injected = time.monotonic()
    demo.printers["x1-01"].hardware.inject_fault(HeaterId.BED, HeaterFault.SENSOR_OPEN)
    await expect(fault).to_be_visible(timeout=2_000)
    assert time.monotonic() - injected < 2.0


@pytest.mark.asyncio
async def test_pause_resume_cancel_and_the_plate_check_from_the_printer_page(
    demo: RunningDemo, page: Page
) -> None:
    long_print = make_sample_gcode(200, heat=False).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield long_print

    file = await demo.context.files.save(demo.principal.user.id, "long.gcode", chunks())
    created = await demo.context.service.jobs.submit_job(
        demo.principal, file_id=file.id, printer_id="x1-01"
    )
    job_row = page.locator(f'tr[data-job-id="{created.job.view.id}"]')
    await log_in(page, demo)
    await page.goto(f"{demo.url}/#/printers/x1-01")
    await expect(job_row).to_have_attribute("data-state", "printing", timeout=20_000)
    status = page.locator(".status-line .badge")

    await page.get_by_role("button", name="Pause").click()
    await expect(status).to_have_text("Paused")
    await expect(job_row).to_have_attribute("data-state", "paused")
    await page.get_by_role("button", name="Resume").click()
    await expect(status).to_have_text("Printing")
    await page.get_by_role("button", name="Cancel print").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel the print").click()
    await expect(job_row).to_have_attribute("data-state", "cancelled")
    await expect(status).to_have_text("Idle", timeout=10_000)
    assert demo.printers["x1-01"].hardware.current_print() is None

    # Turning the plate check off asks first; backing out leaves it on.
    check = page.get_by_label("Check the plate before every print")
    await check.uncheck()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Turn the plate check off?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(check).to_be_checked()
    assert (await demo.context.store.printers.get("x1-01")).plate_check is True
    await check.uncheck()
    await dialog.get_by_role("button", name="Turn the plate check off").click()
    await expect(page.locator("#toast")).to_have_text("Plate check off")
    assert (await demo.context.store.printers.get("x1-01")).plate_check is False
    audit = await demo.context.store.audit.for_printer("x1-01", limit=1000)
    assert "plate_check.off" in [entry.action for entry in audit]
