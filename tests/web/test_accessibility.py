"""What the README claims for people who use a keyboard or see less contrast: the dashboard
can be used without a mouse, and every piece of text on its pages meets WCAG AA contrast."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from tests.web.conftest import log_in

from printfleet.demo import RunningDemo

# Every element with its own visible text: its colour against the first opaque background
# behind it, as WCAG 2 defines contrast (relative luminance of sRGB).
CONTRAST = """
() => {
  const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const color = rgb(getComputedStyle(node).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color;
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const node of document.querySelectorAll("body *")) {
    const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
    const box = node.getBoundingClientRect();
    if (!own || box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(node);
    const unseen = node.closest("[hidden], .skip, .toast, dialog:not([open])");
    if (style.visibility === "hidden" || unseen) continue;
    const fg = luminance(rgb(style.color));
    const bg = luminance(background(node));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const text = node.textContent.trim().slice(0, 40);
    found.push({ text, ratio: Math.round(ratio * 100) / 100 });
  }
  return found;
}
"""


@pytest.mark.asyncio
async def test_every_text_on_every_page_meets_aa_contrast(demo: RunningDemo, page: Page) -> None:
    await log_in(page, demo)
    checked = 0
    # Each page with its data filled in (the event stream keeps the network busy for ever).
    pages = {
        "#/": "li.printer",
        "#/printers/p1-02": ".screen .prompt",
        "#/jobs": "table.jobs tbody tr",
        "#/alerts": "ul.alerts li",
        "#/settings": "section tbody tr",
    }
    for path, filled in pages.items():
        await page.goto(f"{demo.url}/{path}")
        await expect(page.locator(filled).first).to_be_visible()
        texts = await page.evaluate(CONTRAST)
        low = [t for t in texts if t["ratio"] < 4.5]
        assert low == [], (path, low)
        checked += len(texts)
    assert checked > 100


@pytest.mark.asyncio
async def test_log_in_and_confirm_a_plate_with_the_keyboard_alone(
    demo: RunningDemo, page: Page
) -> None:
    await page.goto(f"{demo.url}/")
    # The form takes focus itself; Tab moves through it in reading order.
    await expect(page.get_by_label("E-mail")).to_be_focused()
    await page.keyboard.type(demo.email)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type(demo.password)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Fleet")).to_be_focused()

    link = page.get_by_role("link", name="Demo P1 #02")
    card = await page.locator('li.printer[data-printer-id="p1-02"]').element_handle()
    await link.focus()
    # A live update rebuilds the fleet list: the link keeps the keyboard focus.
    await page.wait_for_function("card => !card.isConnected", arg=card)
    await expect(link).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Demo P1 #02")).to_be_focused()
    button = page.get_by_role("button", name="Plate is clear")
    await button.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    # The safe choice has focus, and Escape backs out without sending anything.
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    audit = await demo.context.store.audit.for_printer("p1-02", limit=100)
    assert "plate.confirmed" not in [entry.action for entry in audit]

    await button.focus()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Yes, the plate is clear")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#toast")).to_have_text("Plate confirmed clear")
    audit = await demo.context.store.audit.for_printer("p1-02", limit=100)
    assert [entry.action for entry in audit].count("plate.confirmed") == 1
