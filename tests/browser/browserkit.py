"""Helpers of the browser tests."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from browsershop import PIXEL_URL
from fastapi import FastAPI

from xgate.collect.cors import BrowserPaths, CorsMiddleware
from xgate.config import Config
from xgate.tag.routes import allow_browsers, router

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
    """Block X's pixel script the way an ad blocker does: Chromium's own URL blocking (the request fails
    with ``ERR_BLOCKED_BY_CLIENT``), not a Playwright route, which would answer CORS preflights itself."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send("Network.setBlockedURLs", {"urls": [f"*{PIXEL_URL}"]})


def tag_loaded(page: Any) -> None:
    page.wait_for_function("window.xgate && window.xgate.loaded === true")


def tag_host(config: Config) -> FastAPI:
    """An app serving only the tag's routes, with the collector's CORS for them (xgate.collect.cors), as
    ``create_app`` mounts them."""
    host = FastAPI()
    host.state.config = config
    host.include_router(router)
    paths = BrowserPaths()
    allow_browsers(config, paths)
    host.add_middleware(CorsMiddleware, paths=paths)
    return host


@dataclass
class Received:
    """One request as the gateway's listener got it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    query: str = ""
    body: bytes = b""
    status: int | None = None
    #: the answer's headers, by lower-case name
    answer: dict[str, str] = field(default_factory=dict)


class Recorder:
    """The gateway app as seen from its listener: every request the browser's network stack really sent
    (preflights, and keepalive requests of a page already gone, which Playwright does not report), and the
    answer's status. ``hold[path]`` seconds delay a POST to ``path`` before the gateway sees it: a slow
    network."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received: list[Received] = []
        self.hold: dict[str, float] = {}

    def posts(self, path: str) -> list[Received]:
        return [r for r in self.received if r.method == "POST" and r.path == path]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = Received(
            scope["method"],
            scope["path"],
            {k.decode(): v.decode() for k, v in scope["headers"]},
            scope["query_string"].decode(),
        )
        self.received.append(seen)
        if seen.method == "POST" and seen.path in self.hold:  # before the body is read: a request the
            await asyncio.sleep(self.hold[seen.path])  # browser drops meanwhile ends as a disconnect
        messages = []
        while True:  # the whole body, kept for the test and replayed to the gateway
            message = await receive()
            messages.append(message)
            seen.body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        async def answer(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
                seen.answer = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            await send(message)

        await self.app(scope, replay, answer)
