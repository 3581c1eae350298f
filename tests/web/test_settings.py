"""The dashboard's settings in a real browser: a webhook channel whose "send test" reaches a
real HTTP receiver with a valid signature, and API tokens created once and revoked."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.async_api import Page, expect
from tests.web.conftest import log_in

from printfleet.cloud.notify.webhook import verify
from printfleet.demo import RunningDemo

SECRET = "a webhook secret of some length"


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[tuple[dict[str, str], bytes]]]]:
    """A webhook receiver on a free 127.0.0.1 port: its URL and what it received."""
    received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.asyncio
async def test_a_webhook_channel_is_added_and_its_test_arrives_signed(
    demo: RunningDemo,
    page: Page,
    receiver: tuple[str, queue.Queue[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = receiver
    await log_in(page, demo)
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_text("No channels yet.")).to_be_visible()
    await page.get_by_label("Kind").select_option("webhook")
    await page.get_by_label("URL").fill(url)
    await page.get_by_label("Signing secret").fill(SECRET)
    await page.get_by_role("button", name="Add channel").click()
    channel = page.locator("li[data-channel-id]")
    await expect(channel).to_have_count(1)
    await channel.get_by_role("button", name="Send test").click()
    await expect(page.locator("#toast")).to_have_text("Test sent")
    headers, body = await _next(received)
    assert verify(SECRET, headers.get("X-Printfleet-Signature"), body) > 0
    assert json.loads(body)["kind"] == "test"


@pytest.mark.asyncio
async def test_a_token_is_shown_once_and_revoking_it_stops_it(
    demo: RunningDemo, page: Page
) -> None:
    await log_in(page, demo)
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_label("Name").fill("grafana")
    await page.get_by_role("button", name="Create token").click()
    token = await page.locator("#token-value code").text_content()
    assert token is not None
    assert token.startswith("pf_")
    async with httpx.AsyncClient(base_url=demo.url) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/v1/printers", headers=auth)).status_code == 200
        # Read-only unless asked: it cannot change anything.
        refused = await client.post("/api/v1/printers/x1-01/confirm-plate", headers=auth)
        assert refused.status_code == 403
        await page.get_by_role("button", name="Revoke grafana").click()
        await page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
        await expect(page.get_by_role("button", name="Revoke grafana")).to_have_count(0)
        assert (await client.get("/api/v1/printers", headers=auth)).status_code == 401


async def _next(
    received: queue.Queue[tuple[dict[str, str], bytes]],
) -> tuple[dict[str, str], bytes]:
    # The receiver runs in a thread; wait for it there, not in the event loop.
    return await asyncio.to_thread(received.get, timeout=10)
