"""Fixtures of the browser tests: headless Chromium (skipped where it is not installed, never on CI).

What the tests import lives in browserkit.py: a test module importing ``conftest`` gets whichever
directory's conftest pytest imported first under that name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browserkit import CHROMIUM, CHROMIUM_ARGS
from browsershop import PIXEL_STUB, PIXEL_URL


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
