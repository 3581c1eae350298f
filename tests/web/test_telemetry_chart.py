"""The printer page's temperature chart in a real browser: it opens with the telemetry the cloud
stored before the page existed (recorded from the simulated printer's reports through Mosquitto,
and older history), then keeps appending live samples."""

from __future__ import annotations

import asyncio
import time

import pytest
from playwright.async_api import Page, expect
from tests.web.conftest import log_in

from printfleet.cloud.telemetry_history import snapshot
from printfleet.demo import RunningDemo
from printfleet.protocol.messages import HeaterTelemetry, PlateStatus, PrinterStatus, Telemetry

PRINTER = "x1-01"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.asyncio
async def test_the_chart_shows_temperatures_from_before_the_page_was_opened(
    demo: RunningDemo, page: Page
) -> None:
    store = demo.context.store
    # Five minutes ago, long before this browser saw the printer.
    earlier = _now_ms() - 5 * 60_000
    old = Telemetry(
        printer_id=PRINTER,
        seq=0,
        sent_at=earlier,
        status=PrinterStatus.PRINTING,
        plate=PlateStatus.OCCUPIED,
        hotend=HeaterTelemetry(temp_dc=2150, target_dc=2200),
        bed=HeaterTelemetry(temp_dc=650, target_dc=650),
    )
    await store.telemetry.append(PRINTER, at=earlier, data=snapshot(old))
    # And what the cloud recorded itself from the printer's reports since the demo started.
    async with asyncio.timeout(15):
        # The store has no change notification to await.
        while not await store.telemetry.for_printer(PRINTER, since=earlier + 1):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await log_in(page, demo)
    opened = _now_ms()
    async with page.expect_response(lambda r: r.url.endswith("/telemetry?last_s=600")) as info:
        await page.goto(f"{demo.url}/#/printers/{PRINTER}")
    stored = await (await info.value).json()
    assert stored[0]["at"] == earlier
    assert stored[0]["hotend"] == {"current_c": 215.0, "target_c": 220.0}
    assert any(earlier < point["at"] < opened for point in stored), stored

    chart = page.get_by_role("img", name="Hotend and bed temperature over the last 10 minutes")
    await expect(chart).to_have_attribute("data-oldest", str(earlier))
    polyline = chart.locator("polyline.series.hotend")
    await expect(polyline).to_have_count(1)
    drawn = int(await chart.get_attribute("data-points") or 0)
    assert drawn >= 2  # the stored point and at least one more
    # Live samples are appended after the stored ones, without reloading.
    await page.wait_for_function(
        "([selector, drawn]) => Number(document.querySelector(selector).dataset.points) > drawn",
        arg=["svg.chart", drawn],
    )
    await expect(chart).to_have_attribute("data-oldest", str(earlier))
