"""Fixtures of the browser tests: headless Chromium (skipped where it is not installed, never on CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsershop import PIXEL_STUB, PIXEL_URL

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
        reason=f"{CHROMIUM} is not installed (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies, no storage) whose X pixel script is the recording stub."""
    context = browser.new_context()
    context.route(PIXEL_URL, lambda route: route.fulfill(body=PIXEL_STUB, content_type="text/javascript"))
    yield context.new_page()
    context.close()


def block_pixel(page: Any) -> None:
    """Block X's pixel script the way an ad blocker does."""
    page.context.unroute(PIXEL_URL)
    page.context.route(PIXEL_URL, lambda route: route.abort())


def tag_loaded(page: Any) -> None:
    page.wait_for_function("window.xgate && window.xgate.loaded === true")
