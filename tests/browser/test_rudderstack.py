"""RudderStack's JavaScript SDK v3, the real library (``@rudderstack/analytics-js``, pinned in
rudderstackshop.py), in Chromium, sending to xgate's ``segment`` source as its data plane, as
docs/sources.md tells users to set it up, on to the sandbox standing in for X.

The shop (its own origin, serving the SDK's bundled build and the page: nothing is fetched from RudderStack,
the source configuration comes from ``getSourceConfig``) and the gateway (another origin: every call is a
cross-origin request with ``Authorization: Basic`` and RudderStack's own headers, so the browser asks
xgate's CORS preflight first) are served on loopback. The browser context has no Playwright routes
(tests/browser/conftest.py's ``page``): with one, Playwright answers every CORS preflight itself and
xgate's would go untested.
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
from rudderstackshop import BUNDLED_UMD, RUDDERSTACK_JS, loader
from segmentshop import SegmentShop
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

WRITE_KEY = "2kUq6tQ3Xc8shopWriteKey"
ORDER = order("ord-2002")
#: the purchase as docs/sources.md writes it: the e-mail in the call's traits (``context.traits``)
ORDER_COMPLETED = (
    f'rudderanalytics.track("Order Completed", {json.dumps(ORDER)}, '
    f"{{context: {{traits: {{email: {json.dumps(EMAIL)}}}}}}});"
)
#: the checkout page's calls
CHECKOUT = f"""
rudderanalytics.identify("u-42", {{email: {json.dumps(EMAIL)}}});
rudderanalytics.page();
{ORDER_COMPLETED}
"""


@pytest.fixture(scope="module")
def library() -> dict[str, bytes]:
    """The SDK's bundled browser build, from the cache or the npm registry."""
    try:
        return RUDDERSTACK_JS.files(BUNDLED_UMD)
    except PackageUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the RudderStack SDK tests: {e}")
        pytest.skip(f"offline: {e}")


@pytest.fixture
def traffic(page: Any) -> Traffic:
    return Traffic.watch(page)


class Site(SegmentSite):
    """A :class:`SegmentSite` whose pages load RudderStack's SDK."""

    def use_sdk(self, **load_options: Any) -> None:
        """The shop's page loads the SDK with xgate as its data plane and ``load_options``."""
        self.shop.loader = lambda origin: loader(WRITE_KEY, self.gateway_url, load_options)

    def calls(self) -> list[Any]:
        return [r for r in self.recorder.received if r.method == "POST"]


@pytest.fixture
def make_site(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch, library: dict[str, bytes]
) -> Iterator[Callable[..., Site]]:
    with site_maker(Site, WRITE_KEY, lambda: SegmentShop(library), tmp_path, sandbox, monkeypatch) as make:
        yield make


def test_the_sdk_delivers_order_completed_to_x_with_the_hashed_email(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    site.use_sdk()
    site.shop.page_script = CHECKOUT
    page.goto(f"{site.shop_url}/checkout?twclid={TWCLID}")

    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    assert conversion["conversion_id"] == "ord-2002"
    assert (conversion["value"], conversion["price_currency"]) == (27.5, "EUR")
    assert conversion["number_items"] == 3
    assert [c["content_id"] for c in conversion["contents"]] == ["507f1f77", "46493-32"]
    assert identifiers(conversion) == {
        "twclid": TWCLID,  # from context.page.url
        "hashed_email": HASHED_EMAIL,
        "ip_address": "127.0.0.1",  # a browser source's request (allowed_origins)
        "user_agent": page.evaluate("navigator.userAgent"),
    }
    # the SDK copies identify's traits onto the later calls: the page view carries the e-mail too
    [page_view] = wait_for("the page call delivered as a page view", lambda: site.delivered(PAGE_VIEW))
    assert identifiers(page_view)["hashed_email"] == HASHED_EMAIL
    assert "shopper@example.com" not in json.dumps(site.sandbox.conversions()).lower()
    assert_raw_email_never_stored(site)

    # what the SDK really sent: one call per path, JSON, the write key as the Basic user, RudderStack's
    # AnonymousId (base64) and SentAt headers, from the shop's origin, each after xgate's own preflight
    basic = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    calls = site.calls()
    assert sorted(r.path for r in calls) == ["/v1/identify", "/v1/page", "/v1/track"]
    for call in calls:
        body = json.loads(call.body)
        assert call.headers["content-type"] == "application/json;charset=UTF-8"
        assert call.headers["authorization"] == basic
        assert base64.b64decode(call.headers["anonymousid"]).decode() == body["anonymousId"]
        assert call.headers["sentat"] == body["sentAt"]
        assert (body["channel"], body["context"]["library"]["version"]) == ("web", RUDDERSTACK_JS.version)
        assert "writeKey" not in body and "timestamp" not in body  # originalTimestamp and sentAt only
        assert call.headers["origin"] == site.shop_url
        assert call.status == 200
    preflights = [r for r in site.recorder.received if r.method == "OPTIONS"]
    assert sorted(r.path for r in preflights) == ["/v1/identify", "/v1/page", "/v1/track"]
    assert {r.headers["access-control-request-headers"] for r in preflights} == {
        "anonymousid,authorization,content-type,sentat"
    }
    assert {r.status for r in preflights} == {204}
    # the library and the page came from the shop; nothing from RudderStack (no source configuration, no
    # plugin, no polyfill) or anywhere else
    assert site.shop.served == ["index.js"]
    assert {f"{urlsplit(r.url).scheme}://{urlsplit(r.url).netloc}" for r in traffic.requests} == {
        site.shop_url,
        site.gateway_url,
    }
    assert (traffic.failed, traffic.console_errors) == ([], [])


def test_batching_sends_the_calls_to_v1_batch(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    site.use_sdk(queueOptions={"batch": {"enabled": True, "maxItems": 10, "flushInterval": 300}})
    product = {"product_id": "507f1f77", "price": 19, "quantity": 1, "currency": "EUR"}
    site.shop.page_script = f"""
rudderanalytics.identify("u-42", {{email: {json.dumps(EMAIL)}}});
rudderanalytics.track("Product Added", {json.dumps(product)});
{ORDER_COMPLETED}
"""
    page.goto(f"{site.shop_url}/checkout")

    [purchase] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    [added] = wait_for("the add to cart delivered", lambda: site.delivered(ADD_TO_CART))
    assert identifiers(purchase)["hashed_email"] == identifiers(added)["hashed_email"] == HASHED_EMAIL
    [call] = site.calls()
    assert (call.path, call.status) == ("/v1/batch", 200)
    body = json.loads(call.body)
    assert [m["type"] for m in body["batch"]] == ["identify", "track", "track"]
    assert call.headers["sentat"] == body["sentAt"]
    assert_raw_email_never_stored(site)
    assert (traffic.failed, traffic.console_errors) == ([], [])


def test_use_beacon_sends_its_batch_with_the_write_key_in_the_url(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    """``useBeacon``: ``navigator.sendBeacon`` to ``/beacon/v1/batch?writeKey=KEY``, a ``text/plain`` body
    without a key or a header: no preflight; it arrives though the shopper has left."""
    site = make_site()
    site.use_sdk(useBeacon=True, beaconQueueOptions={"flushQueueInterval": 60_000})
    site.shop.page_script = f"""
rudderanalytics.identify("u-42", {{email: {json.dumps(EMAIL)}}});
{ORDER_COMPLETED}
rudderanalytics.ready(function () {{ setTimeout(function () {{ location.href = "/elsewhere"; }}, 300); }});
"""
    page.goto(f"{site.shop_url}/checkout")
    page.wait_for_url(f"{site.shop_url}/elsewhere")

    [conversion] = wait_for("the purchase delivered to the sandbox", site.delivered, page=page)
    assert identifiers(conversion)["hashed_email"] == HASHED_EMAIL
    [call] = site.calls()
    assert (call.path, call.query, call.status) == ("/beacon/v1/batch", f"writeKey={WRITE_KEY}", 200)
    assert call.headers["content-type"] == "text/plain"
    assert "authorization" not in call.headers
    assert [m["type"] for m in json.loads(call.body)["batch"]] == ["identify", "track"]
    assert [r for r in site.recorder.received if r.method == "OPTIONS"] == []
    assert_raw_email_never_stored(site)


def test_a_call_retried_after_a_503_passes_the_preflight_with_its_retry_headers(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site(write_timeout_seconds=0.3)
    site.use_sdk()
    site.shop.page_script = ORDER_COMPLETED
    with outbox_busy(site):  # another process writing the outbox: xgate answers 503
        page.goto(f"{site.shop_url}/checkout")
        [first] = wait_for(
            "the first attempt answered",
            lambda: [r for r in site.recorder.posts("/v1/track") if r.status],
            page=page,
        )
        assert first.status == 503 and "rsa-retry-attempt" not in first.headers

    [conversion] = wait_for("the retry delivered to the sandbox", site.delivered, page=page)
    assert conversion["conversion_id"] == "ord-2002"
    # the retry carries RudderStack's Rsa-* headers, which the browser lets through only if xgate's
    # preflight allows them
    [_, retry] = site.recorder.posts("/v1/track")
    assert retry.status == 200
    assert retry.headers["rsa-retry-attempt"] == "1"
    # (3.34.1 gives its default reason, client-network, for a readable 503 too)
    assert {"rsa-retry-reason", "rsa-since-first-attempt", "rsa-since-last-attempt"} <= set(retry.headers)
    # one preflight: its answer, kept by the browser, already allowed the retry's headers
    [preflight] = [r for r in site.recorder.received if r.method == "OPTIONS"]
    allowed = {h.strip().lower() for h in preflight.answer["access-control-allow-headers"].split(",")}
    assert {h for h in retry.headers if h.startswith("rsa-")} <= allowed
    assert traffic.failed == []


def test_an_unknown_write_key_gets_a_401_the_page_reads_and_no_retries(
    make_site: Callable[..., Site], page: Any, traffic: Traffic
) -> None:
    site = make_site()
    site.shop.loader = lambda origin: loader("not-the-key", site.gateway_url, {})
    site.shop.page_script = ORDER_COMPLETED
    page.goto(f"{site.shop_url}/checkout")

    [call] = wait_for(
        "the call refused", lambda: [r for r in site.recorder.posts("/v1/track") if r.status], page=page
    )
    assert call.status == 401
    page.wait_for_timeout(3000)  # the SDK's first retry would come after about a second
    assert len(site.recorder.posts("/v1/track")) == 1  # a readable 4xx is dropped
    assert not any("CORS" in e for e in traffic.console_errors)
    assert site.queued() == []
