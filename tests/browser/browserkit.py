"""Helpers of the browser tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from browsershop import PIXEL_URL

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


def wait_for(what: str, check: Any, timeout: float = 30.0, page: Any = None) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds.

    Pass the Playwright ``page`` when ``check`` reads what its event handlers record: the sync API runs
    them only while it waits itself."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        if page is None:
            time.sleep(0.05)
        else:
            page.wait_for_timeout(50)


def block_pixel(page: Any) -> None:
    """Block X's pixel script the way an ad blocker does."""
    page.context.unroute(PIXEL_URL)
    page.context.route(PIXEL_URL, lambda route: route.abort())


def tag_loaded(page: Any) -> None:
    page.wait_for_function("window.xgate && window.xgate.loaded === true")
