"""What the tag does in a real browser, read from the requests Chromium sends: the twclid it keeps, the
conversion ids it gives, what it tells X's pixel, what it sends to the gateway, and consent.

The gateway here serves only the tag's routes; tests/browser/test_e2e.py runs the whole way to X."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from browserkit import Recorder, block_pixel, needs_chromium, tag_host, tag_loaded, wait_for
from browsershop import Shop, shop_app

from xgate.config import Config, parse_config
from xgate.tag.script import snippet
from xgate.testing import free_port, serve_app

pytestmark = needs_chromium

PURCHASE_EVENT = "tw-o8z6j-o87ne"
WRITE_KEY = "pub-shop-key-4a1b"


@dataclass
class Site:
    shop: Shop
    shop_url: str
    gateway_url: str
    #: what the gateway's listener received: the tag's beacons too (Chromium does not hand their Blob
    #: bodies to Playwright without a route, and a route would answer CORS preflights in the gateway's place)
    recorder: Recorder

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The bodies of the POST /v1/events requests the browser sent, in order."""
        bodies = []
        for request in self.recorder.posts("/v1/events"):
            assert request.query == f"write_key={WRITE_KEY}"
            assert request.headers["content-type"].startswith("text/plain")
            bodies.append(json.loads(request.body))
        return bodies

    def names(self) -> list[str]:
        return [e["event_name"] for e in self.sent]


def tag_config(shop_url: str, **server: Any) -> Config:
    return parse_config(
        {
            "server": server,
            "sources": [{"name": "web", "write_key": WRITE_KEY, "allowed_origins": [shop_url]}],
            "destinations": [
                {
                    "name": "x-main",
                    "pixel_id": "o8z6j",
                    "events": {"purchase": PURCHASE_EVENT, "sign_up": "o87nf"},
                }
            ],
        }
    )


@pytest.fixture
def make_site() -> Iterator[Callable[..., Site]]:
    stack: list[Any] = []

    def make(*, consent_required: bool = False, **server: Any) -> Site:
        shop = Shop()
        port = free_port()
        shop_url = f"http://127.0.0.1:{port}"
        config = tag_config(shop_url, **server)
        recorder = Recorder(tag_host(config))
        gateway, shop_server = serve_app(recorder), serve_app(shop_app(shop), port=port)
        stack.extend([gateway, shop_server])
        gateway_url = gateway.__enter__()
        shop_server.__enter__()
        shop.snippet = snippet(config, "web", gateway_url, consent_required=consent_required)
        return Site(shop, shop_url, gateway_url, recorder)

    yield make
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def barrier(page: Any, site: Site, marker: str) -> None:
    """Track a sign-up and wait until it is sent: whatever the page sent before has been seen by then."""
    page.evaluate("id => xgate.track('sign_up', {id: id})", marker)
    wait_for(f"the sign-up {marker}", lambda: any(e.get("id") == marker for e in site.sent), page=page)


def test_landing_keeps_twclid_in_server_and_script_cookies(make_site: Callable[..., Site], page: Any) -> None:
    site = make_site(twclid_cookie="xg_server_twclid", twclid_cookie_days=30)
    with page.expect_response(re.compile(r"/v1/twclid\?")) as landing:
        page.goto(f"{site.shop_url}/?twclid=abc")
    assert landing.value.status == 204
    assert landing.value.headers["access-control-allow-origin"] == site.shop_url
    cookies = {c["name"]: c for c in page.context.cookies()}
    server, script = cookies["xg_server_twclid"], cookies["_xgate_twclid"]
    assert server["value"] == script["value"] == "abc"
    assert server["sameSite"] == script["sameSite"] == "Lax"
    assert page.evaluate("JSON.parse(localStorage._xgate_twclid).v") == "abc"


def test_purchase_goes_to_pixel_and_gateway_with_one_conversion_id_and_never_twice(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site()
    page.goto(f"{site.shop_url}/?twclid=abc")
    page.click("#product")
    page.click("#buy")
    [event] = wait_for("the purchase beacon", lambda: site.sent, page=page)
    assert event["event_name"] == "purchase"
    assert re.fullmatch(r"xg-[0-9a-f-]{36}", event["id"])
    assert event["partners"] == {"twitter": {"twclid": "abc"}}  # kept from the landing page
    assert event["context"]["page_url"] == f"{site.shop_url}/thanks"
    assert isinstance(event["context"]["event_timestamp"], int)
    assert (event["value"], event["currency"]) == (42.5, "EUR")
    [pixel] = wait_for("the pixel event", site.shop.pixel_events)
    assert pixel == [
        "event",
        PURCHASE_EVENT,
        {
            "conversion_id": event["id"],
            "value": 42.5,
            "currency": "EUR",
            "contents": [{"content_id": "sku-1", "content_price": 21.25, "num_items": 2}],
        },
    ]

    page.reload()
    tag_loaded(page)
    barrier(page, site, "after-reload")
    assert site.names() == ["purchase", "sign_up"]
    wait_for("the pixel's sign-up", lambda: len(site.shop.pixel_events()) == 2)
    assert [hit[1] for hit in site.shop.pixel_events()] == [PURCHASE_EVENT, "tw-o8z6j-o87nf"]
    assert page.evaluate("xgate.track('purchase', {value: 42.5})") is None


def test_an_order_id_is_the_conversion_id_and_the_order_is_sent_once(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site()
    page.goto(f"{site.shop_url}/thanks?order=ord-1")
    wait_for("the purchase beacon", lambda: site.sent, page=page)
    page.goto(f"{site.shop_url}/thanks?order=ord-1&from=email")  # another URL, the same order
    tag_loaded(page)
    page.goto(f"{site.shop_url}/thanks?order=ord-2")
    tag_loaded(page)
    barrier(page, site, "m1")
    assert [e["id"] for e in site.sent] == ["ord-1", "ord-2", "m1"]
    assert "partners" not in site.sent[0]  # no click id: the gateway may still find one in its cookie
    assert page.evaluate("xgate.track('purchase', {id: 'ord-3'}, {once: false})") == "ord-3"


def test_generated_ids_differ_per_page_and_once_false_always_sends(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site()
    page.goto(f"{site.shop_url}/product")
    tag_loaded(page)
    first = page.evaluate("xgate.track('add_to_cart', {}, {once: false})")
    second = page.evaluate("xgate.track('add_to_cart', {}, {once: false})")
    assert first != second
    wait_for("both beacons", lambda: len(site.sent) == 2, page=page)


def test_without_the_x_pixel_the_gateway_still_gets_the_conversion(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site()
    block_pixel(page)
    page.goto(f"{site.shop_url}/thanks?order=ord-5&twclid=abc")
    [event] = wait_for("the purchase beacon", lambda: site.sent, page=page)
    assert (event["id"], event["partners"]["twitter"]["twclid"]) == ("ord-5", "abc")
    assert site.shop.pixel_hits == []


def test_required_consent_holds_events_until_refused_then_sends_the_refusal(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site(consent_required=True)
    page.goto(f"{site.shop_url}/thanks?order=ord-6")
    tag_loaded(page)
    assert page.evaluate("xgate.pending()") == 1
    assert page.evaluate("xgate.consentCategories()") is None
    page.click("#refuse")
    [event] = wait_for("the released purchase", lambda: site.sent, page=page)
    assert event["user"] == {"consent_categories": []}
    assert page.evaluate("xgate.pending()") == 0
    barrier(page, site, "m2")
    assert site.shop.pixel_events() == []  # the pixel needs advertising consent
    consent = {c["name"]: c["value"] for c in page.context.cookies()}["_xgate_consent"]
    assert consent == ""


def test_required_consent_granted_releases_events_and_is_remembered(
    make_site: Callable[..., Site], page: Any
) -> None:
    site = make_site(consent_required=True)
    page.goto(f"{site.shop_url}/thanks?order=ord-7")
    tag_loaded(page)
    page.click("#accept")
    [event] = wait_for("the released purchase", lambda: site.sent, page=page)
    assert event["user"] == {"consent_categories": ["advertising"]}
    wait_for("the pixel event", site.shop.pixel_events)
    page.goto(f"{site.shop_url}/thanks?order=ord-8")  # the next page sends at once
    wait_for("the second purchase", lambda: len(site.sent) == 2, page=page)
    assert site.sent[1]["user"] == {"consent_categories": ["advertising"]}
    consent = {c["name"]: c["value"] for c in page.context.cookies()}["_xgate_consent"]
    assert consent == "advertising"
