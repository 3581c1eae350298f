"""The dashboard's harness: a real cloud with simulated printers through a real Mosquitto
(`printfleet.demo.running_demo`), and Debian's Chromium driven headless by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from printfleet.demo import DemoOptions, RunningDemo, running_demo
from printfleet.testing import MosquittoBroker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Screenshots land here (gitignored)."""


@pytest_asyncio.fixture
async def demo(fresh_mosquitto: MosquittoBroker, tmp_path: Path) -> AsyncIterator[RunningDemo]:
    """Two x1-like and two p1-like printers online with a cloud whose link is verified."""
    options = DemoOptions(
        data_dir=tmp_path / "demo",
        port=0,
        broker_url=fresh_mosquitto.url,
        time_scale=5,
        telemetry_period_s=0.5,
        probe_interval_s=0.5,
        submit_sample=False,
        outbound_allow=("127.0.0.1",),  # the settings test's webhook receiver
    )
    async with running_demo(options) as running:
        await running.wait_until_online()
        yield running


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; a missing one fails the test with the way to install it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install chromium (scripts/lib/setup.sh does)",
            pytrace=False,
        )
    return CHROMIUM


@pytest_asyncio.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Headless Chromium from Debian (never a downloaded browser build)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A desktop-sized page; JavaScript errors on it fail the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert errors == [], errors


async def log_in(page: Page, demo: RunningDemo) -> None:
    """Log in through the form, as a person does."""
    await page.goto(f"{demo.url}/")
    await page.get_by_label("E-mail").fill(demo.email)
    await page.get_by_label("Password").fill(demo.password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
    await expect(page.locator("li.printer")).to_have_count(len(demo.printers))
