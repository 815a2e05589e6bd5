"""The whole way in a real browser: a shop with X's pixel and the xgate snippet, the gateway as ``xgate
serve`` runs it (collector and dispatcher, real SQLite outbox) and the sandbox standing in for X."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browserkit import block_pixel, needs_chromium, tag_loaded, wait_for
from browsershop import Shop, shop_app
from prometheus_client.parser import text_string_to_metric_families

from xgate.config import Config, parse_config
from xgate.gateway import build_gateway
from xgate.tag.script import snippet
from xgate.testing import RunningSandbox, free_port, serve_app

PIXEL = "o8z6j"
PURCHASE_EVENT = f"tw-{PIXEL}-o87ne"
SIGN_UP_EVENT = f"tw-{PIXEL}-o87nf"
WRITE_KEY = "pub-shop-key-9d2e"
ADMIN_KEY_ENV, ADMIN_KEY = "XGATE_E2E_ADMIN_KEY", "adm-e2e-key-71c3"

pytestmark = needs_chromium


def gateway_config(tmp: Path, shop_url: str, sandbox_url: str) -> Config:
    tmp.mkdir(parents=True, exist_ok=True)
    return parse_config(
        {
            "x": {"api_url": sandbox_url},
            "storage": {"url": f"sqlite:///{tmp / 'outbox.db'}"},
            "dispatch": {"linger_ms": 20, "poll_interval_ms": 20, "backoff_base_seconds": 0.1},
            "server": {"admin_key_env": ADMIN_KEY_ENV},
            "sources": [{"name": "web", "write_key": WRITE_KEY, "allowed_origins": [shop_url]}],
            "destinations": [
                {
                    "name": "x-main",
                    "pixel_id": PIXEL,
                    "events": {"purchase": PURCHASE_EVENT, "sign_up": SIGN_UP_EVENT},
                    "consent": {"category": "advertising", "granted": "send", "denied": "drop"},
                }
            ],
        }
    )


def twclids(body: dict[str, Any]) -> list[str]:
    return [i["twclid"] for i in body["identifiers"] if "twclid" in i]


class Site:
    """One test's shop and gateway, and what the pixel and X (the sandbox) got."""

    def __init__(
        self, shop: Shop, shop_url: str, gateway: Any, gateway_url: str, sandbox: RunningSandbox
    ) -> None:
        self.shop = shop
        self.shop_url = shop_url
        self.gateway = gateway
        self.gateway_url = gateway_url
        self.sandbox = sandbox

    def delivered(self, event_id: str = PURCHASE_EVENT) -> list[dict[str, Any]]:
        """The conversions the sandbox accepted for our pixel with this X event id."""
        return [c for c in self.sandbox.conversions() if c["pixel_id"] == PIXEL and c["event_id"] == event_id]

    def queued_anything(self) -> bool:
        return bool(self.gateway.outbox.rows(limit=100))

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.gateway_url}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def received(self) -> float:
        """Events the collector received from the browser source."""
        return self.metric("xgate_events_received_total", source="web")


@pytest.fixture
def make_site(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Site]]:
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    stack: list[Any] = []

    def make(*, consent_required: bool = False) -> Site:
        shop = Shop()
        port = free_port()
        shop_url = f"http://127.0.0.1:{port}"
        config = gateway_config(tmp_path / f"site{len(stack)}", shop_url, sandbox.url)
        gateway = build_gateway(config)
        stack.append(gateway)
        gateway_server, shop_server = serve_app(gateway.app), serve_app(shop_app(shop), port=port)
        stack.extend([gateway_server, shop_server])
        gateway_url = gateway_server.__enter__()
        shop_server.__enter__()
        shop.snippet = snippet(config, "web", gateway_url, consent_required=consent_required)
        return Site(shop, shop_url, gateway, gateway_url, sandbox)

    yield make
    for item in reversed(stack):
        if hasattr(item, "__exit__"):
            item.__exit__(None, None, None)
        else:
            item.close()


def test_land_browse_buy_reload_delivers_one_conversion_with_the_pixels_id(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site()
    page.goto(f"{site.shop_url}/?twclid=abc")
    tag_loaded(page)
    page.click("#product")
    page.click("#buy")
    page.wait_for_url(re.compile(r"/thanks$"))

    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered)
    [pixel] = wait_for("the pixel's purchase event", site.shop.pixel_events)
    assert pixel[1] == PURCHASE_EVENT
    assert pixel[2]["conversion_id"] == conversion["conversion_id"]
    assert twclids(conversion) == ["abc"]
    assert conversion["value"] == 42.5 and conversion["price_currency"] == "EUR"

    page.reload()
    tag_loaded(page)
    page.goto(f"{site.shop_url}/signup?id=member-1")  # a later event: the reload's turn has passed by then
    wait_for("the sign-up delivered to the sandbox", lambda: site.delivered(SIGN_UP_EVENT))
    assert site.received() == 2  # the purchase and the sign-up: the reload sent nothing
    assert len(site.delivered()) == 1


def test_with_x_pixel_blocked_the_conversion_still_arrives(make_site: Callable[..., Site], page: Any) -> None:
    site = make_site()
    block_pixel(page)
    page.goto(f"{site.shop_url}/?twclid=abc")
    tag_loaded(page)
    page.goto(f"{site.shop_url}/thanks?order=ord-77")
    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered)
    assert conversion["conversion_id"] == "ord-77"
    assert twclids(conversion) == ["abc"]
    assert site.shop.pixel_hits == []


def test_refused_consent_under_a_drop_policy_sends_nothing(make_site: Callable[..., Site], page: Any) -> None:
    site = make_site(consent_required=True)
    page.goto(f"{site.shop_url}/thanks?twclid=abc")
    tag_loaded(page)
    assert page.evaluate("xgate.pending()") == 1
    page.click("#refuse")
    wait_for("the collector to judge the purchase", lambda: site.received() == 1)
    assert site.metric("xgate_events_total", source="web", status="accepted") == 0
    assert not site.queued_anything()
    assert site.sandbox.conversions() == []
    assert site.shop.pixel_events() == []
