"""Helpers of the browser tests."""

from __future__ import annotations

import time
from typing import Any


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
