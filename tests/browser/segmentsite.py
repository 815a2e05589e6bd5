"""What the tests of a real analytics library in Chromium against xgate's ``segment`` source share
(test_analyticsjs.py: Segment's analytics.js; test_rudderstack.py: RudderStack's SDK): the X pixel and
events, the shopper, :class:`Traffic` (what the page did), :class:`SegmentSite` (one test's shop and gateway,
and what X, the sandbox, accepted), the gateway's configuration, :func:`site_maker`, which serves both,
and :func:`outbox_busy`.

Each test module keeps what is its own: its write key, its order id, its library fixture and the ways its
pages load the library (methods of its ``Site``, a :class:`SegmentSite`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from browserkit import Recorder
from segmentshop import SegmentShop, segment_shop_app

from xgate.config import Config, parse_config
from xgate.gateway import build_gateway
from xgate.testing import RunningSandbox, free_port, serve_app

PIXEL = "o8z6j"
PURCHASE = f"tw-{PIXEL}-o87ne"
ADD_TO_CART = f"tw-{PIXEL}-o87nf"
PAGE_VIEW = f"tw-{PIXEL}-o87nh"
EMAIL = " Shopper@Example.com "
HASHED_EMAIL = hashlib.sha256(b"shopper@example.com").hexdigest()
TWCLID = "2-7z8w4kq1"


def order(order_id: str) -> dict[str, Any]:
    """The purchase both libraries send (``Order Completed``'s properties), with ``order_id``."""
    return {
        "order_id": order_id,
        "total": 27.5,
        "currency": "EUR",
        "products": [
            {"product_id": "507f1f77", "name": "Monopoly", "price": 19, "quantity": 1, "category": "Games"},
            {"sku": "46493-32", "name": "Uno", "price": 3, "quantity": 2},
        ],
    }


@dataclass
class Traffic:
    """What the page did, from Playwright's events (no routes): requests, failures and console errors."""

    requests: list[Any] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, page: Any) -> Traffic:
        seen = cls()
        page.on("request", lambda r: seen.requests.append(r))
        page.on("requestfailed", lambda r: seen.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("console", lambda m: m.type == "error" and seen.console_errors.append(m.text))
        return seen

    def to(self, url_prefix: str, method: str = "POST") -> list[Any]:
        return [r for r in self.requests if r.method == method and r.url.startswith(url_prefix)]


@dataclass
class SegmentSite:
    """One test's shop and gateway, and what X (the sandbox) accepted."""

    shop: SegmentShop
    shop_url: str
    gateway_url: str
    gateway: Any
    #: what the gateway's listener received
    recorder: Recorder
    sandbox: RunningSandbox
    db: Path

    def delivered(self, event_id: str = PURCHASE) -> list[dict[str, Any]]:
        return [c for c in self.sandbox.conversions() if c["pixel_id"] == PIXEL and c["event_id"] == event_id]

    def queued(self) -> list[dict[str, Any]]:
        return [r.body for r in self.gateway.outbox.rows(limit=100)]


def gateway_config(tmp: Path, shop_url: str, sandbox_url: str, write_key: str, **storage: Any) -> Config:
    """xgate with a ``segment`` source ``shop`` (``write_key``, the shop's origin allowed) sending the
    purchase, the add to cart and the page view to the pixel; its outbox ``tmp/outbox.db``."""
    tmp.mkdir(parents=True, exist_ok=True)
    return parse_config(
        {
            "x": {"api_url": sandbox_url},
            "storage": {"url": f"sqlite:///{tmp / 'outbox.db'}", **storage},
            "dispatch": {"linger_ms": 20, "poll_interval_ms": 20, "backoff_base_seconds": 0.1},
            "sources": [
                {"name": "shop", "kind": "segment", "write_key": write_key, "allowed_origins": [shop_url]}
            ],
            "destinations": [
                {
                    "name": "x-main",
                    "pixel_id": PIXEL,
                    "events": {"purchase": PURCHASE, "add_to_cart": ADD_TO_CART, "page_view": PAGE_VIEW},
                }
            ],
        }
    )


S = TypeVar("S", bound=SegmentSite)


@contextmanager
def site_maker(
    site: type[S],
    write_key: str,
    new_shop: Callable[[], SegmentShop],
    tmp_path: Path,
    sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., S]]:
    """A ``make_site(**storage)`` fixture's body: each call builds the gateway (``storage`` added to its
    outbox's settings), serves it behind a :class:`Recorder` and ``new_shop()`` on its own origin, and
    returns them as a ``site``; all of it stopped in reverse order on the way out."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    with ExitStack() as stack:

        def make(**storage: Any) -> S:
            shop = new_shop()
            port = free_port()
            # the shop listens at once: the gateway's configuration names its origin, and the port is
            # free only until something else binds it
            stack.enter_context(serve_app(segment_shop_app(shop), port=port))
            shop_url = f"http://127.0.0.1:{port}"
            gateway = build_gateway(gateway_config(tmp_path, shop_url, sandbox.url, write_key, **storage))
            stack.callback(gateway.close)
            recorder = Recorder(gateway.app)
            gateway_url = stack.enter_context(serve_app(recorder))
            return site(shop, shop_url, gateway_url, gateway, recorder, sandbox, tmp_path / "outbox.db")

        yield make


@contextmanager
def outbox_busy(site: SegmentSite) -> Iterator[None]:
    """Another process writing the site's outbox (a write transaction held open): xgate answers 503
    meanwhile."""
    blocker = sqlite3.connect(site.db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def identifiers(conversion: dict[str, Any]) -> dict[str, Any]:
    return {k: v for i in conversion["identifiers"] for k, v in i.items()}


def assert_raw_email_never_stored(site: SegmentSite) -> None:
    """Neither the outbox's file nor its write-ahead log holds the e-mail in any case."""
    files = [p for p in site.db.parent.iterdir() if p.name.startswith(site.db.name)]
    assert site.db in files
    for path in files:
        assert b"shopper@example.com" not in path.read_bytes().lower(), path
