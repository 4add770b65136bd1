"""Debian's headless Chromium driven by Playwright, for page tests. Never downloads a browser."""
from __future__ import annotations

import os
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("HALL_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, timezone: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", timezone_id=timezone, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    yield from _page(browser, "Asia/Shanghai")


@pytest.fixture
def utc_page(browser):  # type: ignore[no-untyped-def]
    """A page on a PC whose clock is set to UTC, not to the hall's time zone (Asia/Shanghai)."""
    yield from _page(browser, "UTC")
