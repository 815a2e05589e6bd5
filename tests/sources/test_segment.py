"""The ``segment`` kind: Segment's tracking API in, xgate events out (docs/sources.md, "segment")."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sourcekit import PIXEL, source_config, source_gateway, wait_for_conversions
from typer.testing import CliRunner

from xgate.cli import app
from xgate.collect.kinds import Converted, Ignored, Inbound, Keyed, Refusal, kind_for
from xgate.collect.kinds.segment import EVENT_NAMES, KIND, convert_message
from xgate.config import parse_config
from xgate.testing import RunningSandbox

WRITE_KEY = "seg-write-key-4d1c9a"
SEGMENT = {"name": "seg", "kind": "segment", "write_key": WRITE_KEY}


def convert(message: dict[str, Any]) -> dict[str, Any]:
    outcome = convert_message(message, EVENT_NAMES)
    assert isinstance(outcome, Converted), outcome
    return outcome.event


def track(event: str, properties: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "properties": properties or {}, **extra}


ORDER = {
    "checkout_id": "chk-9",
    "order_id": "ord-1001",
    "total": 27.5,
    "revenue": 25,
    "shipping": 3,
    "tax": 2,
    "discount": 2.5,
    "currency": "EUR",
    "products": [
        {
            "product_id": "507f1f77",
            "sku": "45790-32",
            "name": "Monopoly",
            "price": 19,
            "quantity": 1,
            "category": "Games",
            "brand": "Hasbro",
            "variant": "3rd edition",
        },
        {"sku": "46493-32", "name": "Uno", "price": 3, "quantity": 2},
    ],
}


def test_order_completed_is_a_purchase_with_order_id_total_currency_and_products() -> None:
    assert convert(track("Order Completed", ORDER)) == {
        "event_name": "purchase",
        "id": "ord-1001",
        "value": 27.5,
        "revenue": 25.0,
        "currency": "EUR",
        "items": [
            {
                "id": "507f1f77",
                "quantity": 1,
                "price": 19.0,
                "product": {
                    "id": "507f1f77",
                    "name": "Monopoly",
                    "category_1": "Games",
                    "sku": "45790-32",
                    "brand": "Hasbro",
                    "variant": "3rd edition",
                },
            },
            {
                "id": "46493-32",
                "quantity": 2,
                "price": 3.0,
                "product": {"id": "46493-32", "name": "Uno", "sku": "46493-32"},
            },
        ],
    }


@pytest.mark.parametrize(
    ("properties", "value", "revenue"),
    [
        ({"total": 30, "value": 28, "revenue": 25}, 30.0, 25.0),  # total: what the customer paid
        ({"value": 28, "revenue": 25}, 28.0, 25.0),  # Checkout Started's value
        ({"revenue": "25.00"}, None, 25.0),  # revenue alone: the mapper sends it as value
    ],
)
def test_value_is_total_else_value_and_revenue_stays_revenue(
    properties: dict[str, Any], value: float | None, revenue: float
) -> None:
    event = convert(track("Order Completed", properties))
    assert event.get("value") == value
    assert event["revenue"] == revenue


@pytest.mark.parametrize(("segment_name", "xgate_name"), sorted(EVENT_NAMES.items()))
def test_each_spec_event_name_becomes_its_xgate_event(segment_name: str, xgate_name: str) -> None:
    assert convert(track(segment_name))["event_name"] == xgate_name


def test_a_track_event_outside_the_table_keeps_its_name_as_a_custom_event() -> None:
    assert convert(track("Video Played"))["event_name"] == "Video Played"


def test_a_sources_event_names_rename_its_own_events() -> None:
    outcome = convert_message(track("Order Placed"), {**EVENT_NAMES, "Order Placed": "purchase"})
    assert isinstance(outcome, Converted) and outcome.event["event_name"] == "purchase"


@pytest.mark.parametrize("name", ["Product Viewed", "Product Added", "Product Added to Wishlist"])
def test_a_single_product_event_is_its_own_item_worth_price_times_quantity(name: str) -> None:
    event = convert(
        track(
            name,
            {
                "product_id": "p-1",
                "name": "Tee",
                "price": 9.5,
                "quantity": 2,
                "category": "Apparel",
                "currency": "USD",
            },
        )
    )
    assert event["items"] == [
        {
            "id": "p-1",
            "quantity": 2,
            "price": 9.5,
            "product": {"id": "p-1", "name": "Tee", "category_1": "Apparel"},
        }
    ]
    assert event["value"] == 19.0 and event["currency"] == "USD"
    assert convert(track(name, {"product_id": "p-1", "price": 9.5, "value": 8}))["value"] == 8.0


def test_products_searched_gives_its_query_as_search_term() -> None:
    event = convert(track("Products Searched", {"query": "blue roses"}))
    assert event["event_name"] == "search" and event["search_term"] == "blue roses"
    assert "search_term" not in convert(track("Products Searched", {"query": {"color": "blue"}}))


def test_a_page_call_is_a_page_view_at_its_url() -> None:
    page = {"type": "page", "name": "Home", "context": {"page": {"url": "https://shop.example/?twclid=tw1"}}}
    assert convert(page) == {
        "event_name": "page_view",
        "context": {"page_url": "https://shop.example/?twclid=tw1"},
    }
    bare = convert({"type": "page", "properties": {"url": "https://shop.example/b"}})
    assert bare["context"]["page_url"] == "https://shop.example/b"


def test_identifiers_come_from_traits_properties_and_the_context() -> None:
    message = track(
        "Signed Up",
        {"email": "props@example.com"},
        userId=1234,
        messageId="m-1",
        timestamp="2026-11-30T10:00:00.000Z",
        context={
            "traits": {"email": "Shopper@Example.com", "phone": "+1 415 555 0100"},
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
            "page": {"url": "https://shop.example/welcome?twclid=tw-abc"},
        },
    )
    assert convert(message) == {
        "event_name": "sign_up",
        "user": {"id": "1234", "email": "Shopper@Example.com", "phone": "+1 415 555 0100"},
        "context": {
            "event_timestamp": "2026-11-30T10:00:00.000Z",
            "ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "page_url": "https://shop.example/welcome?twclid=tw-abc",
        },
    }
    only_props = convert(track("Signed Up", {"email": "props@example.com", "phone": "0161 496 0000"}))
    assert only_props["user"] == {"email": "props@example.com", "phone": "0161 496 0000"}
    identify_traits = convert(track("Lead", traits={"email": "t@example.com"}))
    assert identify_traits["user"] == {"email": "t@example.com"}


def test_the_original_timestamp_serves_when_there_is_no_timestamp() -> None:
    event = convert(track("Lead", originalTimestamp="2026-11-30T09:59:58.000Z"))
    assert event["context"]["event_timestamp"] == "2026-11-30T09:59:58.000Z"


def test_consent_category_preferences_become_the_granted_categories() -> None:
    granted = track(
        "Lead", context={"consent": {"categoryPreferences": {"Advertising": True, "Analytics": False}}}
    )
    assert convert(granted)["user"] == {"consent_categories": ["advertising"]}
    denied = track("Lead", context={"consent": {"categoryPreferences": {"Advertising": False}}})
    assert convert(denied)["user"] == {"consent_categories": []}


def test_the_message_id_is_the_idempotency_key() -> None:
    outcome = convert_message(track("Lead", messageId="ajs-next-1"), EVENT_NAMES)
    assert isinstance(outcome, Converted) and outcome.idempotency_key == "ajs-next-1"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "identify", "traits": {"email": "a@example.com"}}, "identify calls carry no conversion"),
        ({"type": "group", "groupId": "g"}, "group calls carry no conversion"),
        ({"type": "alias", "previousId": "a"}, "alias calls carry no conversion"),
        ({"type": "screen", "name": "Home"}, "screen calls carry no conversion"),
        (track("Order Refunded", {"order_id": "o"}), "a refund is not a conversion: recorded, not sent"),
        (
            track("Order Cancelled", {"order_id": "o"}),
            "a cancellation is not a conversion: recorded, not sent",
        ),
        ({"type": "track", "properties": {}}, "a track call without an event name"),
    ],
)
def test_calls_that_are_no_conversion_are_ignored_with_the_reason(
    message: dict[str, Any], reason: str
) -> None:
    outcome = convert_message(message, EVENT_NAMES)
    assert isinstance(outcome, Ignored) and outcome.reason == reason


def test_the_write_key_is_the_basic_user_or_the_bodys_write_key() -> None:
    [source] = parse_config(
        {"sources": [SEGMENT], "destinations": [{"name": "x", "pixel_id": PIXEL, "default_event": "o87ne"}]}
    ).sources
    keyed = [Keyed(source, WRITE_KEY)]
    basic = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert KIND.authenticate(Inbound("/v1/track", b"{}", {"authorization": basic}), keyed) is source
    body = json.dumps({"writeKey": WRITE_KEY}).encode()
    assert KIND.authenticate(Inbound("/v1/t", body), keyed) is source
    wrong = "Basic " + base64.b64encode(b"other-key:").decode()
    refusal = KIND.authenticate(Inbound("/v1/track", b"{}", {"authorization": wrong}), keyed)
    assert isinstance(refusal, Refusal) and refusal.status == 401


def test_one_call_takes_its_type_from_the_path_and_a_batch_shares_its_context() -> None:
    assert KIND.messages(Inbound("/v1/p", b'{"name": "Home"}')) == [{"name": "Home", "type": "page"}]
    batch = {
        "batch": [{"type": "track", "event": "Lead", "context": {"ip": "203.0.113.1"}}],
        "context": {"ip": "198.51.100.1", "userAgent": "ua"},
    }
    [message] = KIND.messages(Inbound("/v1/batch", json.dumps(batch).encode()))  # type: ignore[misc]
    assert message["context"] == {"ip": "203.0.113.1", "userAgent": "ua"}
    refusal = KIND.messages(Inbound("/v1/batch", b'{"batch": [{"event": "Lead"}]}'))
    assert (
        isinstance(refusal, Refusal)
        and refusal.message == "batch[0]: must be a Segment message with its type"
    )


# --- over HTTP, through the gateway ----------------------------------------------------------------------


def test_analytics_python_delivers_its_order_completed_to_x(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segment.analytics import Client

    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    config = source_config(tmp_path, [SEGMENT], sandbox=sandbox)
    with source_gateway(config) as gw:
        errors: list[Any] = []
        client = Client(WRITE_KEY, host=gw.url, sync_mode=True, on_error=lambda e, batch: errors.append(e))
        client.track(
            user_id="user-42",
            event="Order Completed",
            properties=ORDER,
            context={
                "traits": {"email": " Shopper@Example.com ", "phone": "+1 (415) 555-0100"},
                "ip": "203.0.113.9",
                "userAgent": "Mozilla/5.0 (X11)",
                "page": {"url": "https://shop.example/thanks?twclid=2-7z8w4k"},
            },
        )
        assert errors == []
        [conversion] = wait_for_conversions(sandbox, 1)
    body = dict(conversion)
    assert body.pop("pixel_id") == PIXEL
    assert body["event_id"] == f"tw-{PIXEL}-o87ne"
    assert body["conversion_id"] == "ord-1001"
    assert body["value"] == 27.5 and body["price_currency"] == "EUR"
    assert body["number_items"] == 3
    assert body["contents"] == [
        {
            "content_id": "507f1f77",
            "content_name": "Monopoly",
            "content_price": 19,
            "content_type": "Games",
            "num_items": 1,
        },
        {"content_id": "46493-32", "content_name": "Uno", "content_price": 3, "num_items": 2},
    ]
    assert body["identifiers"] == [
        {"twclid": "2-7z8w4k"},
        {"hashed_email": hashlib.sha256(b"shopper@example.com").hexdigest()},
        {"hashed_phone_number": hashlib.sha256(b"+14155550100").hexdigest()},
        {"ip_address": "203.0.113.9", "user_agent": "Mozilla/5.0 (X11)"},
    ]


def _batch(*messages: dict[str, Any]) -> bytes:
    """A batch as analytics-node sends it; each message with an e-mail (X needs an identifier)."""
    for m in messages:
        m.setdefault("context", {}).setdefault("traits", {"email": "shopper@example.com"})
    return json.dumps({"batch": list(messages), "writeKey": WRITE_KEY}).encode()


def test_a_redelivered_message_queues_nothing_new(tmp_path: Path) -> None:
    with source_gateway(source_config(tmp_path, [SEGMENT])) as gw:
        body = _batch(
            track("Product Viewed", {"product_id": "p-1", "price": 5}, messageId="m-77"),
            track("Order Completed", ORDER, messageId="m-78"),
        )
        first = gw.http.post("/v1/batch", content=body)
        again = gw.http.post("/v1/batch", content=body)
        assert first.status_code == 200 and first.json()["accepted"] == 2
        assert again.status_code == 200 and again.json()["duplicates"] == 2
        assert [c["conversion_id"] for c in gw.queued()] == ["m-77", "ord-1001"]


def test_a_request_without_a_known_write_key_gets_401_and_stores_nothing(tmp_path: Path) -> None:
    with source_gateway(
        source_config(tmp_path, [SEGMENT, {"name": "web", "write_key": "xgate-key-1"}])
    ) as gw:
        message = json.dumps(track("Order Completed", ORDER)).encode()
        for auth in ("Basic " + base64.b64encode(b"xgate-key-1:").decode(), "Bearer " + WRITE_KEY, None):
            headers = {"Authorization": auth} if auth else {}
            answer = gw.http.post("/v1/track", content=message, headers=headers)
            assert answer.status_code == 401, auth
            assert "HTTP Basic user" in answer.json()["message"]
        assert (
            gw.http.post(
                "/v1/events",
                json={"event_name": "purchase"},
                headers={"Authorization": f"Bearer {WRITE_KEY}"},
            ).status_code
            == 401
        )
        assert gw.queued() == []


def test_a_gzip_batch_is_read_and_ignored_calls_are_reported(tmp_path: Path) -> None:
    with source_gateway(source_config(tmp_path, [SEGMENT])) as gw:
        body = gzip.compress(
            _batch(
                {"type": "identify", "traits": {"email": "a@example.com"}, "messageId": "i"},
                track("Lead", messageId="l-1"),
            )
        )
        answer = gw.http.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"})
        assert answer.status_code == 200
        report = answer.json()
        assert (report["accepted"], report["skipped"]) == (1, 1)
        assert report["results"][0] == {
            "index": 0,
            "status": "skipped",
            "skipped": {"source": "identify calls carry no conversion"},
        }
        bomb = gzip.compress(b" " * 2_000_000)
        assert (
            gw.http.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"}).status_code == 400
        )


SHOP = "https://shop.example"
BROWSER_SEGMENT = {**SEGMENT, "allowed_origins": [SHOP]}


def test_the_preflight_lets_analytics_js_retry_with_its_retry_count(tmp_path: Path) -> None:
    """analytics.js sends a call again with ``X-Retry-Count`` (after a 5xx): a preflight answer without that
    header would make the browser block every retry (tests/browser/test_analyticsjs.py sees it happen)."""
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        preflight = gw.http.options(
            "/v1/t",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,x-retry-count",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == SHOP
        allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-retry-count"} <= allowed
        basic = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        message = track("Order Completed", ORDER, context={"traits": {"email": "shopper@example.com"}})
        retry = gw.http.post(
            "/v1/t",
            content=json.dumps(message),
            headers={
                "Origin": SHOP,
                "Authorization": basic,
                "Content-Type": "text/plain",
                "X-Retry-Count": "1",
            },
        )
        assert retry.status_code == 200 and retry.json()["accepted"] == 1


def test_a_refused_key_is_answered_with_cors_headers_to_an_allowed_origin(tmp_path: Path) -> None:
    """A page must be able to read the 401: analytics.js drops a call refused with a 4xx, but retries one
    whose answer the browser hides (no CORS headers) as if the network had failed."""
    message = json.dumps(track("Order Completed", ORDER))
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        refused = gw.http.post("/v1/t", content=message, headers={"Origin": SHOP})
        assert refused.status_code == 401 and "HTTP Basic user" in refused.json()["message"]
        assert refused.headers["access-control-allow-origin"] == SHOP
        other = gw.http.post("/v1/t", content=message, headers={"Origin": "https://elsewhere.example"})
        assert other.status_code == 401 and "access-control-allow-origin" not in other.headers


def test_the_preflight_lets_rudderstacks_sdk_send_and_retry_with_its_own_headers(tmp_path: Path) -> None:
    """RudderStack's JavaScript SDK v3 puts ``AnonymousId`` and ``SentAt`` on every call and ``Rsa-*`` on a
    retry (or a call recovered from an earlier page): a preflight answer without them made the browser block
    every call (tests/browser/test_rudderstack.py)."""
    rudderstack = (
        "anonymousid,authorization,content-type,rsa-recovered,rsa-retry-attempt,rsa-retry-reason,"
        "rsa-since-first-attempt,rsa-since-last-attempt,sentat"
    )
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        preflight = gw.http.options(
            "/v1/track",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": rudderstack,
            },
        )
        assert preflight.status_code == 204
        allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert set(rudderstack.split(",")) <= allowed


def test_rudderstacks_beacon_batch_takes_the_write_key_from_the_url(tmp_path: Path) -> None:
    """``useBeacon``: ``navigator.sendBeacon`` posts ``{"batch", "sentAt"}`` as ``text/plain`` to
    ``/beacon/v1/batch?writeKey=KEY``, no header, no key in the body."""
    message = track(
        "Order Completed", ORDER, context={"traits": {"email": "shopper@example.com"}}, messageId="m-1"
    )
    body = json.dumps({"batch": [message], "sentAt": "2026-12-01T10:53:11.356Z"})
    headers = {"Origin": SHOP, "Content-Type": "text/plain"}
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        sent = gw.http.post(f"/beacon/v1/batch?writeKey={WRITE_KEY}", content=body, headers=headers)
        assert sent.status_code == 200 and sent.json()["accepted"] == 1
        assert sent.headers["access-control-allow-origin"] == SHOP
        refused = gw.http.post("/beacon/v1/batch?writeKey=not-the-key", content=body, headers=headers)
        assert refused.status_code == 401 and "?writeKey=" in refused.json()["message"]
        assert len(gw.queued()) == 1


def test_analytics_js_metrics_at_v1_m_are_answered_and_stored_nowhere(tmp_path: Path) -> None:
    """analytics.js posts its delivery metrics to ``<apiHost>/m``, keyless: 204 (a 404 left a failed request
    and a CORS error on the shop's pages), nothing queued; a page on an origin not allowed gets 403."""
    series = json.dumps({"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1}]})
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        answer = gw.http.post("/v1/m", content=series, headers={"Origin": SHOP, "Content-Type": "text/plain"})
        assert (answer.status_code, answer.content) == (204, b"")
        assert answer.headers["access-control-allow-origin"] == SHOP
        assert gw.http.post("/v1/m", content=series).status_code == 204  # a server-side library: no Origin
        other = gw.http.post("/v1/m", content=series, headers={"Origin": "https://elsewhere.example"})
        assert other.status_code == 403 and other.json()["error"] == "origin_not_allowed"
        assert gw.queued() == []


ELSEWHERE = "https://elsewhere.example"  # allowed by no source
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def _segment_call(gw: Any, case: str, origin: str) -> Any:
    """One analytics.js-like request of ``case`` from a page at ``origin``, answered before anything is
    stored."""
    headers = {"Origin": origin, "Content-Type": "text/plain"}
    keyed = {**headers, "Authorization": BASIC}
    message = json.dumps(track("Order Completed", ORDER))
    if case == "no key":
        return gw.http.post("/v1/t", content=message, headers=headers)
    if case == "body too large":  # source_config's server: the default 1,000,000 bytes
        return gw.http.post("/v1/t", content=b" " * 1_000_001, headers=keyed)
    if case == "not gzip":
        return gw.http.post("/v1/b", content=b"plain", headers={**keyed, "Content-Encoding": "gzip"})
    if case == "not JSON":
        return gw.http.post("/v1/t", content=b"{", headers=keyed)
    if case == "a batch message without its type":
        return gw.http.post("/v1/b", content=b'{"batch": [{"event": "Lead"}]}', headers=keyed)
    if case == "batch too large":  # source_config's max_batch_events: 50
        batch = {"batch": [track("Lead", messageId=f"m-{i}") for i in range(51)]}
        return gw.http.post("/v1/b", content=json.dumps(batch), headers=keyed)
    if case == "a method the path does not take":
        return gw.http.get("/v1/t", headers=headers)
    raise AssertionError(case)


SEGMENT_CASES = {
    "no key": (401, "unauthorized"),
    "body too large": (413, "body_too_large"),
    "not gzip": (400, "invalid_body"),
    "not JSON": (400, "invalid_json"),
    "a batch message without its type": (400, "invalid_batch"),
    "batch too large": (413, "batch_too_large"),
    "a method the path does not take": (405, "method_not_allowed"),
}


def test_every_error_answer_of_the_segment_paths_is_readable_by_an_allowed_page_only(tmp_path: Path) -> None:
    """analytics.js drops a call refused with a readable 4xx and retries one whose answer the browser hides
    (no CORS headers) ten times as a network failure; a page no source allows reads nothing."""
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        for case, (status, error) in SEGMENT_CASES.items():
            allowed = _segment_call(gw, case, SHOP)
            assert allowed.status_code == status, case
            assert allowed.headers["access-control-allow-origin"] == SHOP, case
            assert allowed.headers["access-control-allow-credentials"] == "true", case
            assert "Origin" in allowed.headers["vary"], case
            if error:
                assert allowed.json()["error"] == error, case
            other = _segment_call(gw, case, ELSEWHERE)  # refused at once (403) when the key is known
            assert other.status_code in (status, 403), case
            assert "access-control-allow-origin" not in other.headers, case
        assert gw.queued() == []


def test_a_key_whose_own_source_does_not_allow_the_page_gets_a_403_the_page_reads(tmp_path: Path) -> None:
    """docs/security.md, "Browsers and CORS": the page's origin is one a segment source allows, so it reads
    why the key it sent is refused there, and analytics.js stops instead of retrying."""
    server = {"name": "seg-backend", "kind": "segment", "write_key": "seg-server-key-77"}
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT, server])) as gw:
        basic = "Basic " + base64.b64encode(b"seg-server-key-77:").decode()
        message = json.dumps(track("Order Completed", ORDER))
        refused = gw.http.post("/v1/t", content=message, headers={"Origin": SHOP, "Authorization": basic})
        assert refused.status_code == 403
        assert refused.json()["message"] == (
            f"origin '{SHOP}' is not in the allowed_origins of source 'seg-backend'"
        )
        assert refused.headers["access-control-allow-origin"] == SHOP
        hidden = gw.http.post("/v1/t", content=message, headers={"Origin": ELSEWHERE, "Authorization": basic})
        assert hidden.status_code == 403 and "access-control-allow-origin" not in hidden.headers
        assert gw.queued() == []


def test_the_segment_paths_preflight_for_their_own_sources_origins(tmp_path: Path) -> None:
    """Each path answers the preflight for the origins of its kind's sources: an origin only the xgate
    source allows is refused at the segment paths, and the other way round."""
    web = {"name": "web", "write_key": "xgate-pub-1", "allowed_origins": ["https://blog.example"]}
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT, web])) as gw:

        def preflight(path: str, origin: str) -> Any:
            asked = {"Origin": origin, "Access-Control-Request-Method": "POST"}
            return gw.http.options(path, headers={**asked, "Access-Control-Request-Headers": "authorization"})

        for path in ("/v1/t", "/v1/p", "/v1/batch", "/v1/m"):
            allowed = preflight(path, SHOP)
            assert allowed.status_code == 204, path
            assert allowed.headers["access-control-allow-origin"] == SHOP
            assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
            refused = preflight(path, "https://blog.example")
            assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
        assert preflight("/v1/events", "https://blog.example").status_code == 204
        assert preflight("/v1/events", SHOP).status_code == 403


# --- analytics.page() without an identifier: Segment's 200, xgate's rejection on record ----------------


def _anonymous_page() -> dict[str, Any]:
    """What ``analytics.page()`` sends on a page without a click id, for a visitor not known by e-mail."""
    return {
        "type": "page",
        "name": "Home",
        "messageId": "ajs-next-anon-1",
        "context": {"page": {"url": "https://shop.example/"}, "userAgent": "Mozilla/5.0"},
        "properties": {"url": "https://shop.example/"},
    }


def _events_total(gw: Any, source: str, status: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(gw.http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "xgate_events_total" and sample.labels == {"source": source, "status": status}:
                return sample.value
    return 0.0


def test_a_page_call_without_an_identifier_is_answered_200_and_counted_as_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segment answers 200 to every well-formed call, and analytics.js writes any other answer into the
    shop's console, on every page view. The call is well formed; X just cannot attribute a page view
    without a twclid, an e-mail or a phone: 200, and the report, the log and the metrics say it was
    rejected and why; the activity log counts it (one a page load: not listed, docs/gateway.md)."""
    monkeypatch.setenv("TEST_ADMIN_KEY", "adm-seg-key-1")
    config = source_config(
        tmp_path, [BROWSER_SEGMENT], server={"max_batch_events": 50, "admin_key_env": "TEST_ADMIN_KEY"}
    )
    with source_gateway(config) as gw:
        headers = {"Origin": SHOP, "Authorization": BASIC, "Content-Type": "text/plain"}
        answer = gw.http.post("/v1/p", content=json.dumps(_anonymous_page()), headers=headers)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == SHOP
        report = answer.json()
        assert (report["accepted"], report["rejected"]) == (0, 1)
        [result] = report["results"]
        assert result["status"] == "rejected"
        assert [e["field"] for e in result["errors"]] == ["identifiers"]
        assert "twclid, hashed_email or hashed_phone_number" in result["errors"][0]["reason"]
        assert gw.queued() == []
        assert _events_total(gw, "seg", "rejected") == 1
        activity = gw.http.get("/v1/activity", headers={"Authorization": "Bearer adm-seg-key-1"})
        assert [e for e in activity.json()["entries"] if e["state"] == "rejected"] == []
        assert activity.json()["unmatched"]["sources"] == {"seg": 1}


def test_malformed_segment_input_still_gets_a_4xx_naming_the_field(tmp_path: Path) -> None:
    """Only a rejection for want of an identifier is answered 200: an identifier given but unusable, or a
    value that is wrong, is the sender's error and gets the 422 (when nothing of the call was taken), a
    body that is no Segment call the 400, each naming the field."""
    with source_gateway(source_config(tmp_path, [BROWSER_SEGMENT])) as gw:
        headers = {"Origin": SHOP, "Authorization": BASIC}
        bad_email = {**_anonymous_page(), "context": {"traits": {"email": "shopper(at)example"}}}
        answer = gw.http.post("/v1/p", content=json.dumps(bad_email), headers=headers)
        assert answer.status_code == 422
        assert "user.email" in [e["field"] for e in answer.json()["results"][0]["errors"]]
        bad_time = {**_anonymous_page(), "timestamp": "yesterday", "context": {"traits": {"email": "a@b.co"}}}
        answer = gw.http.post("/v1/p", content=json.dumps(bad_time), headers=headers)
        assert answer.status_code == 422
        assert answer.json()["results"][0]["errors"][0]["field"] == "context.event_timestamp"
        mixed = json.dumps({"batch": [_anonymous_page(), bad_email]})
        answer = gw.http.post("/v1/batch", content=mixed, headers=headers)
        assert answer.status_code == 422  # nothing taken, and one of them is malformed
        answer = gw.http.post("/v1/batch", content=b'{"batch": {}}', headers=headers)
        assert answer.status_code == 400
        assert answer.json()["message"] == "batch: must be a non-empty array of Segment messages"
        assert answer.headers["access-control-allow-origin"] == SHOP
        assert gw.queued() == []


def test_xgate_s_own_api_still_answers_422_when_no_event_can_be_matched(tmp_path: Path) -> None:
    """``POST /v1/events`` keeps its rule (docs/gateway.md): 422 when every event is rejected; its callers
    (the tag, the SDK, the backend client) read the report."""
    with source_gateway(source_config(tmp_path, [{"name": "api", "write_key": "xgate-key-9"}])) as gw:
        answer = gw.http.post(
            "/v1/events",
            json={"event_name": "page_view"},
            headers={"Authorization": "Bearer xgate-key-9"},
        )
        assert answer.status_code == 422
        assert answer.json()["results"][0]["errors"][0]["field"] == "identifiers"


def test_xgate_map_dry_runs_a_segment_message(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text(
        '[[sources]]\nname = "seg"\nkind = "segment"\nwrite_key = "k"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    payload = tmp_path / "order.json"
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    message = track(
        "Order Completed",
        ORDER,
        messageId="m-1",
        timestamp=now,
        context={"traits": {"email": "shopper@example.com"}},
    )
    payload.write_text(json.dumps(message))
    result = CliRunner().invoke(
        app, ["map", "--source", "seg", str(payload), "--config", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    [out] = json.loads(result.output)
    [conversion] = out["body"]["conversions"]
    assert (conversion["conversion_id"], conversion["value"], conversion["price_currency"]) == (
        "ord-1001",
        27.5,
        "EUR",
    )
    identify = tmp_path / "identify.json"
    identify.write_text('{"type": "identify", "traits": {}}')
    result = CliRunner().invoke(app, ["map", "--source", "seg", str(identify), "--config", str(path)])
    assert result.exit_code == 0
    assert "ignored (identify calls carry no conversion)" in result.output
    assert "the payload makes no event" in result.output
    result = CliRunner().invoke(app, ["map", "--source", "nope", str(identify), "--config", str(path)])
    assert (
        result.exit_code == 1
        and "--source nope: no such source in the configuration (sources: seg)" in result.output
    )


def test_the_segment_kind_is_registered() -> None:
    assert kind_for("segment") is KIND
