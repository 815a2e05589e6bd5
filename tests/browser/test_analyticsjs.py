"""Segment's analytics.js, the real library (``@segment/analytics-next``, pinned in segmentshop.py), in
Chromium, sending to xgate's ``segment`` source as docs/sources.md tells users to set it up, on to the
sandbox standing in for X.

The shop (its own origin, where analytics.js and its CDN settings are self-hosted: nothing is fetched from
Segment) and the gateway (another origin: every call is a cross-origin request with ``Authorization: Basic``,
so the browser asks xgate's CORS preflight first) are served on loopback. The browser context has no
Playwright routes (tests/browser/conftest.py's ``page``): with one, Playwright answers every CORS preflight
itself and xgate's would go untested.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from browserkit import needs_chromium, wait_for
from npmkit import PackageUnavailable
from segmentshop import ANALYTICS_NEXT, SegmentShop, cdn_settings, npm_loader, snippet
from segmentsite import (
    ADD_TO_CART,
    EMAIL,
    HASHED_EMAIL,
    PAGE_VIEW,
    TWCLID,
    SegmentSite,
    Traffic,
    assert_raw_email_never_stored,
    identifiers,
    order,
    outbox_busy,
    site_maker,
)

from xgate.testing import RunningSandbox

pytestmark = needs_chromium

WRITE_KEY = "seg-shop-key-3f7a"
ORDER = order("ord-1001")
#: the purchase as docs/sources.md writes it: the e-mail goes with the call, as its traits (analytics.js
#: does not copy identify's traits onto later calls)
ORDER_COMPLETED = (
    f'analytics.track("Order Completed", {json.dumps(ORDER)}, {{traits: {{email: {json.dumps(EMAIL)}}}}});'
)
#: the checkout page's calls
CHECKOUT = f"""
analytics.identify("u-42", {{email: {json.dumps(EMAIL)}}});
analytics.page();
{ORDER_COMPLETED}
"""


@pytest.fixture(scope="module")
def library() -> dict[str, bytes]:
    """analytics-next's browser builds (``dist/umd``), from the cache or the npm registry."""
    try:
        return ANALYTICS_NEXT.files("dist/umd")
    except PackageUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the analytics.js tests: {e}")
        pytest.skip(f"offline: {e}")


@pytest.fixture
def traffic(page: Any) -> Traffic:
    return Traffic.watch(page)


class Site(SegmentSite):
    """A :class:`SegmentSite` whose pages load analytics.js."""

    @property
    def api_host(self) -> str:
        """``apiHost`` as docs/sources.md writes it: the gateway's host and ``/v1``, no scheme."""
        return f"{urlsplit(self.gateway_url).netloc}/v1"

    def load_options(self, **segmentio: Any) -> dict[str, Any]:
        """docs/sources.md's load options (``protocol`` is http on loopback) plus ``segmentio``."""
        return {"integrations": {"Segment.io": {"apiHost": self.api_host, "protocol": "http", **segmentio}}}

    def use_snippet(self, **segmentio: Any) -> None:
        """Segment's snippet, ``analytics.load(WRITE_KEY, load options)``; the CDN settings from the shop."""
        options = self.load_options(**segmentio)
        self.shop.loader = lambda origin: snippet(origin, WRITE_KEY, options)


@pytest.fixture
def make_site(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch, library: dict[str, bytes]
) -> Iterator[Callable[..., Site]]:
    def new_shop() -> SegmentShop:
        return SegmentShop(library, settings={WRITE_KEY: cdn_settings(WRITE_KEY)})

    with site_maker(Site, WRITE_KEY, new_shop, tmp_path, sandbox, monkeypatch) as make:
        yield make


def test_the_snippet_delivers_order_completed_to_x_with_the_hashed_email(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    site.use_snippet()
    site.shop.page_script = CHECKOUT
    page.goto(f"{site.shop_url}/checkout?twclid={TWCLID}")

    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    assert conversion["conversion_id"] == "ord-1001"
    assert (conversion["value"], conversion["price_currency"]) == (27.5, "EUR")
    assert conversion["number_items"] == 3
    assert [c["content_id"] for c in conversion["contents"]] == ["507f1f77", "46493-32"]
    user_agent = page.evaluate("navigator.userAgent")
    assert identifiers(conversion) == {
        "twclid": TWCLID,  # from context.page.url
        "hashed_email": HASHED_EMAIL,
        "ip_address": "127.0.0.1",  # a browser source's request (allowed_origins)
        "user_agent": user_agent,
    }
    [page_view] = wait_for("the page call delivered as a page view", lambda: site.delivered(PAGE_VIEW))
    assert identifiers(page_view)["twclid"] == TWCLID
    assert "shopper@example.com" not in json.dumps(site.sandbox.conversions()).lower()
    assert_raw_email_never_stored(site)

    # what analytics.js really sent: one call per path, each a text/plain body with the write key in the
    # body and as the Basic user, from the shop's origin, each after xgate's own preflight
    basic = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    calls = [r for r in site.recorder.received if r.method == "POST"]
    assert sorted(r.path for r in calls) == ["/v1/i", "/v1/p", "/v1/t"]
    for call in calls:
        assert (call.headers["content-type"], call.headers["authorization"]) == ("text/plain", basic)
        assert call.headers["origin"] == site.shop_url
        assert json.loads(call.body)["writeKey"] == WRITE_KEY
        assert call.status == 200
    preflights = [r for r in site.recorder.received if r.method == "OPTIONS"]
    assert sorted(r.path for r in preflights) == ["/v1/i", "/v1/p", "/v1/t"]
    assert {r.headers["access-control-request-headers"] for r in preflights} == {"authorization"}
    assert {r.status for r in preflights} == {204}
    # the library, its settings and the page came from the shop; nothing from Segment or anywhere else
    assert site.shop.served == ["standalone.js"]
    assert {f"{urlsplit(r.url).scheme}://{urlsplit(r.url).netloc}" for r in traffic.requests} == {
        site.shop_url,
        site.gateway_url,
    }
    assert traffic.to(f"{site.shop_url}/v1/projects/{WRITE_KEY}/settings", "GET")
    assert (traffic.failed, traffic.console_errors) == ([], [])


def test_the_npm_build_with_its_cdn_settings_inline_fetches_no_settings(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    # docs/sources.md's npm settings; metrics flushed in 0.2 s, not 30 s, to see analytics.js post them
    settings = {"integrations": {"Segment.io": {"apiKey": WRITE_KEY}}, "metrics": {"flushTimer": 200}}
    site.shop.loader = lambda origin: npm_loader(WRITE_KEY, settings, site.load_options())
    site.shop.page_script = CHECKOUT
    page.goto(f"{site.shop_url}/checkout?twclid={TWCLID}")

    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    assert identifiers(conversion)["hashed_email"] == HASHED_EMAIL
    assert site.shop.served == ["index.js"]
    assert not traffic.to(f"{site.shop_url}/v1/projects/", "GET")
    # analytics.js's own delivery metrics go to <apiHost>/m: answered, stored nowhere
    [metrics] = wait_for("analytics.js's metrics", lambda: site.recorder.posts("/v1/m"), page=page)
    assert metrics.status == 204
    assert json.loads(metrics.body)["series"][0]["metric"] == "analytics_js.invoke"
    assert_raw_email_never_stored(site)
    assert (traffic.failed, traffic.console_errors) == ([], [])


def test_a_page_view_without_an_identifier_leaves_the_console_quiet_and_stays_on_record(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    """``analytics.page()`` on every page, for a visitor with no click id and no e-mail: X cannot attribute
    the page view, but the call is well formed, so xgate answers 200 as Segment does (a 422 was a red line
    in the shop's console on every page load); the metrics keep it as rejected, and the activity log counts
    it, not listed one by one (a page load each would push the rejections to fix out of sight)."""
    site = make_site()
    site.use_snippet()
    site.shop.page_script = "analytics.page();"
    page.goto(f"{site.shop_url}/checkout")

    [call] = wait_for(
        "the page call answered", lambda: [r for r in site.recorder.posts("/v1/p") if r.status], page=page
    )
    assert call.status == 200
    page.wait_for_timeout(500)  # a console error would have been reported by now
    assert (traffic.failed, traffic.console_errors) == ([], [])
    assert len(site.recorder.posts("/v1/p")) == 1
    assert site.queued() == []
    services = site.gateway.app.state.services
    assert services.rejections.recent(10) == []
    assert services.activity.unmatched()["sources"] == {"shop": 1}
    assert site.gateway.metrics.value("xgate_events_total", source="shop", status="rejected") == 1


def test_a_keepalive_call_still_in_flight_when_the_page_unloads_arrives(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    site.use_snippet(deliveryStrategy={"strategy": "standard", "config": {"keepalive": True}})
    site.shop.page_script = ORDER_COMPLETED
    site.recorder.hold["/v1/t"] = 1.0
    page.goto(f"{site.shop_url}/checkout")
    wait_for("the call on its way", lambda: site.recorder.posts("/v1/t"), page=page)
    page.goto(f"{site.shop_url}/elsewhere")  # the shopper leaves before the gateway has answered

    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    assert identifiers(conversion)["hashed_email"] == HASHED_EMAIL
    [call] = site.recorder.posts("/v1/t")
    assert call.status == 200


def test_batching_sends_the_calls_left_in_its_batch_when_the_page_unloads(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    batching = {"strategy": "batching", "config": {"size": 10, "timeout": 60_000}}
    site.use_snippet(deliveryStrategy=batching)
    product = {"product_id": "507f1f77", "price": 19, "quantity": 1, "currency": "EUR"}
    traits = json.dumps({"traits": {"email": EMAIL}})
    site.shop.page_script = f"""
analytics.ready(function () {{
  analytics.track("Product Added", {json.dumps(product)}, {traits});
  analytics.track("Order Completed", {json.dumps(ORDER)}, {traits});
  setTimeout(function () {{ location.href = "/elsewhere"; }}, 300);
}});
"""
    page.goto(f"{site.shop_url}/checkout")
    page.wait_for_url(f"{site.shop_url}/elsewhere")

    [purchase] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    [added] = wait_for("the add to cart delivered", lambda: site.delivered(ADD_TO_CART))
    assert identifiers(purchase)["hashed_email"] == identifiers(added)["hashed_email"] == HASHED_EMAIL
    # one batch, sent with keepalive as the page went (its preflight too), which Playwright no longer reports
    [call] = [r for r in site.recorder.received if r.method == "POST"]
    assert (call.path, call.status) == ("/v1/b", 200)
    assert [r.path for r in site.recorder.received if r.method == "OPTIONS"] == ["/v1/b"]
    body = json.loads(call.body)
    assert body["writeKey"] == WRITE_KEY
    assert [m["event"] for m in body["batch"]] == ["Product Added", "Order Completed"]
    assert_raw_email_never_stored(site)


def test_a_call_retried_after_a_503_passes_the_preflight_with_its_retry_count(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site(write_timeout_seconds=0.3)
    site.use_snippet()
    site.shop.page_script = ORDER_COMPLETED
    with outbox_busy(site):  # another process writing the outbox: xgate answers 503
        page.goto(f"{site.shop_url}/checkout")
        [first] = wait_for(
            "the first attempt answered",
            lambda: [r for r in site.recorder.posts("/v1/t") if r.status],
            page=page,
        )
        assert first.status == 503 and "x-retry-count" not in first.headers

    [conversion] = wait_for("the retry delivered to the sandbox", site.delivered, page=page)
    assert conversion["conversion_id"] == "ord-1001"
    # the retry carries X-Retry-Count, a header the browser lets through only if xgate's preflight allows it
    [_, retry] = site.recorder.posts("/v1/t")
    assert (retry.headers["x-retry-count"], retry.status) == ("1", 200)
    assert traffic.failed == []


def test_a_page_on_an_origin_not_allowed_is_refused_at_the_preflight(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    site.use_snippet()
    site.shop.page_script = CHECKOUT
    elsewhere = site.shop_url.replace("127.0.0.1", "localhost")  # the same shop, an origin not listed
    page.goto(f"{elsewhere}/checkout?twclid={TWCLID}")

    wait_for("the calls refused", lambda: len(traffic.failed) >= 3, page=page)
    assert all("ERR_FAILED" in f for f in traffic.failed)  # the browser's CORS refusal
    assert any("blocked by CORS policy" in e for e in traffic.console_errors)
    received = site.recorder.received
    assert {(r.method, r.status) for r in received} == {("OPTIONS", 403)}  # the calls never left the browser
    assert {r.headers["origin"] for r in received} == {elsewhere}
    assert site.queued() == []


def test_settings_without_the_key_get_a_401_the_page_can_read_and_no_retries(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    settings = {"integrations": {"Segment.io": {}}}  # no apiKey: analytics.js sends no write key
    site.shop.loader = lambda origin: npm_loader(WRITE_KEY, settings, site.load_options())
    site.shop.page_script = ORDER_COMPLETED
    page.goto(f"{site.shop_url}/checkout")

    [call] = wait_for("the call refused", lambda: site.recorder.posts("/v1/t"), page=page)
    assert "authorization" not in call.headers and "writeKey" not in json.loads(call.body)
    wait_for("the 401 read by the page", lambda: traffic.console_errors, page=page)
    assert traffic.console_errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    page.wait_for_timeout(3000)  # analytics.js's first retry would come after about a second
    assert len(site.recorder.posts("/v1/t")) == 1  # a readable 4xx is dropped; a CORS failure was retried
    assert site.queued() == []
