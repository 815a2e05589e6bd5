"""Fixtures of the browser tests: headless Chromium (skipped where it is not installed, never on CI).

What the tests import lives in browserkit.py: a test module importing ``conftest`` gets whichever
directory's conftest pytest imported first under that name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browserkit import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies, no storage) without Playwright routes, and a test whose page
    calls the gateway must add none: with any route in a context, Playwright answers every CORS preflight
    itself (204, whatever was asked allowed), so the gateway's preflights would go untested
    (test_cors_in_chromium.py). A shop serves what a test would have routed (browsershop's X pixel stub);
    :func:`browserkit.block_pixel` blocks with Chromium's own URL blocking."""
    context = browser.new_context()
    yield context.new_page()
    context.close()
