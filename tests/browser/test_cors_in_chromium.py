"""CORS as Chromium does it, against the gateway's own preflights and answers (xgate.collect.cors), for
``POST /v1/events`` and the segment paths: a call a page may make passes its preflight and the page reads
the answer, whatever its status; a preflight the gateway refuses stops the call in the browser; a page on
an origin no source allows reads no answer at all.

The page's context has no Playwright route (tests/browser/conftest.py): with one, Playwright answers every
preflight itself (204, whatever was asked allowed), and the refused preflights here would pass.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browserkit import Recorder, needs_chromium
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from xgate.config import parse_config
from xgate.gateway import build_gateway
from xgate.testing import free_port, serve_app

pytestmark = needs_chromium

PIXEL = "o8z6j"
BROWSER_KEY = "pub-cors-key-1c4e"
SERVER_KEY = "srv-cors-key-8a2f"
SEGMENT_KEY = "seg-cors-key-5d9b"
EMAIL = "shopper@example.com"

#: fetch() from the page: the status and text of the answer the page could read, or the error a call
#: whose answer it may not read (or that was never sent) ends with
FETCH = """async ([url, init]) => {
  try {
    const answer = await fetch(url, init);
    return {status: answer.status, body: await answer.text(), error: null};
  } catch (e) {
    return {status: null, body: null, error: e.name + ": " + e.message};
  }
}"""


@dataclass
class Site:
    shop_url: str
    #: the same shop on an origin no source allows (localhost for 127.0.0.1)
    elsewhere: str
    gateway_url: str
    recorder: Recorder
    gateway: Any

    def fetch(self, page: Any, origin: str, path: str, **init: Any) -> dict[str, Any]:
        """``fetch(gateway + path, init)`` run by a page at ``origin``."""
        page.goto(f"{origin}/")
        result: dict[str, Any] = page.evaluate(FETCH, [f"{self.gateway_url}{path}", init])
        return result

    def seen(self, origin: str, path: str) -> list[tuple[str, int | None]]:
        """The requests from ``origin`` to ``path`` that reached the gateway, with their status."""
        return [
            (r.method, r.status)
            for r in self.recorder.received
            if r.path == path and r.headers.get("origin") == origin
        ]

    def queued(self) -> list[str]:
        return sorted(r.conversion_id for r in self.gateway.outbox.rows(limit=100))


def shop_app() -> Starlette:
    async def home(request: Request) -> Response:
        return HTMLResponse("<!doctype html><html><head><title>Shop</title></head><body>Shop</body></html>")

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[Route("/", home), Route("/favicon.ico", favicon)])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    shop_url, elsewhere = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    config = parse_config(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
            "dispatch": {"enabled": False},
            "sources": [
                {"name": "web", "write_key": BROWSER_KEY, "allowed_origins": [shop_url]},
                {"name": "backend", "write_key": SERVER_KEY},
                {"name": "seg", "kind": "segment", "write_key": SEGMENT_KEY, "allowed_origins": [shop_url]},
            ],
            "destinations": [{"name": "x-main", "pixel_id": PIXEL, "events": {"purchase": "o87ne"}}],
        }
    )
    gateway = build_gateway(config)
    recorder = Recorder(gateway.app)
    try:
        with serve_app(recorder) as gateway_url, serve_app(shop_app(), port=port):
            yield Site(shop_url, elsewhere, gateway_url, recorder, gateway)
    finally:
        gateway.close()


def xgate_call(order: str, key: str = BROWSER_KEY) -> dict[str, Any]:
    """A fetch() init posting a purchase to /v1/events with the key in a header: a preflighted call."""
    event = {"event_name": "purchase", "id": order, "value": 5, "currency": "EUR", "user": {"email": EMAIL}}
    return {
        "method": "POST",
        "headers": {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        "body": json.dumps(event),
        "credentials": "include",  # as the tag sends: the answer must be credentialed, not "*"
    }


def segment_call(order: str, key: str = SEGMENT_KEY) -> dict[str, Any]:
    """A fetch() init as analytics.js posts a track call: text/plain, the key as the Basic user."""
    message = {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"ajs-{order}",
        "properties": {"order_id": order, "total": 5, "currency": "EUR"},
        "context": {"traits": {"email": EMAIL}},
    }
    basic = base64.b64encode(f"{key}:".encode()).decode()
    return {
        "method": "POST",
        "headers": {"Authorization": f"Basic {basic}", "Content-Type": "text/plain"},
        "body": json.dumps(message),
    }


CALLS: dict[str, Callable[..., dict[str, Any]]] = {"/v1/events": xgate_call, "/v1/t": segment_call}


@pytest.mark.parametrize("path", sorted(CALLS))
def test_a_refused_preflight_stops_the_call_and_an_allowed_one_lets_it_through(
    site: Site, page: Any, path: str
) -> None:
    call = CALLS[path]
    passed = site.fetch(page, site.shop_url, path, **call("ord-allowed"))
    assert (passed["status"], passed["error"]) == (200, None)
    assert json.loads(passed["body"])["accepted"] == 1
    assert site.seen(site.shop_url, path) == [("OPTIONS", 204), ("POST", 200)]

    stopped = site.fetch(page, site.elsewhere, path, **call("ord-elsewhere"))
    assert stopped == {"status": None, "body": None, "error": "TypeError: Failed to fetch"}
    assert site.seen(site.elsewhere, path) == [("OPTIONS", 403)]  # the call itself never left the browser
    assert site.queued() == ["ord-allowed"]


def test_a_page_reads_why_its_call_to_v1_events_was_refused(site: Site, page: Any) -> None:
    """A readable 4xx tells the page's library to stop; a hidden one looks like a network failure."""
    unknown = site.fetch(page, site.shop_url, "/v1/events", **xgate_call("ord-1", key="not-a-key"))
    assert unknown["status"] == 401 and json.loads(unknown["body"])["error"] == "unauthorized"
    # a key whose own source does not allow the page: the page's origin may call /v1/events, so it reads why
    foreign = site.fetch(page, site.shop_url, "/v1/events", **xgate_call("ord-2", key=SERVER_KEY))
    assert foreign["status"] == 403
    assert json.loads(foreign["body"])["message"] == (
        f"origin '{site.shop_url}' is not in the allowed_origins of source 'backend'"
    )
    oversized = {**xgate_call("ord-3"), "body": "x" * 1_000_001}
    too_big = site.fetch(page, site.shop_url, "/v1/events", **oversized)
    assert too_big["status"] == 413
    assert site.queued() == []


def test_a_page_no_source_allows_reads_no_answer_even_to_a_call_without_preflight(
    site: Site, page: Any
) -> None:
    """The tag's way: text/plain with the key in the URL needs no preflight, so the call reaches the
    gateway, which refuses it (403) without CORS headers: the page learns nothing."""
    event = json.dumps({"event_name": "purchase", "id": "ord-9", "user": {"email": EMAIL}})
    init = {"method": "POST", "headers": {"Content-Type": "text/plain"}, "body": event}
    result = site.fetch(page, site.elsewhere, f"/v1/events?write_key={BROWSER_KEY}", **init)
    assert result["error"] == "TypeError: Failed to fetch"
    assert site.seen(site.elsewhere, "/v1/events") == [("POST", 403)]
    allowed = site.fetch(page, site.shop_url, f"/v1/events?write_key={BROWSER_KEY}", **init)
    assert allowed["status"] == 200
    assert site.queued() == ["ord-9"]
