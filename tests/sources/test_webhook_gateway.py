"""Shopify, WooCommerce and Stripe webhooks posted to a running gateway: signed payloads (in each platform's
documented shape, tests/sources/fixtures/) arrive at the sandbox as purchases; a bad or stale signature is
answered 401 and stores nothing; a redelivery queues nothing new; unpaid and refunded orders send nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sourcekit import SourceGateway, source_config, source_gateway, wait_for_conversions
from typer.testing import CliRunner
from webhookkit import (
    SHOPIFY_SECRET,
    STRIPE_SECRET,
    WOO_SECRET,
    body,
    fixture,
    fresh_shopify,
    fresh_stripe,
    fresh_woo,
    shopify_headers,
    stripe_headers,
    woo_headers,
)

from xgate.cli import app
from xgate.testing import RunningSandbox

SECRETS = {
    "TEST_SHOPIFY_SECRET": SHOPIFY_SECRET,
    "TEST_WOO_SECRET": WOO_SECRET,
    "TEST_STRIPE_WHSEC": STRIPE_SECRET,
}
SOURCES = [
    {"name": "shop", "kind": "shopify", "signing_secret_env": "TEST_SHOPIFY_SECRET"},
    {"name": "woo", "kind": "woocommerce", "signing_secret_env": "TEST_WOO_SECRET"},
    {"name": "pay", "kind": "stripe", "signing_secret_env": "TEST_STRIPE_WHSEC"},
]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def delivering(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SourceGateway]:
    """A gateway with a source of each webhook kind, its dispatcher delivering to the sandbox."""
    for name, value in {**SECRETS, **sandbox.env}.items():
        monkeypatch.setenv(name, value)
    with source_gateway(source_config(tmp_path, SOURCES, sandbox=sandbox)) as gateway:
        yield gateway


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SourceGateway]:
    """The same gateway without a dispatcher: what it stores stays in the outbox to be looked at."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with source_gateway(source_config(tmp_path, SOURCES)) as gw:
        yield gw


def post(gw: SourceGateway, path: str, raw: bytes, headers: dict[str, str]) -> Any:
    return gw.http.post(path, content=raw, headers=headers)


def identifiers(conversion: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for identifier in conversion["identifiers"]:
        merged.update(identifier)
    return merged


# --- signed payloads arrive as purchases -------------------------------------------------------------


def test_a_paid_shopify_order_arrives_at_the_sandbox_as_a_purchase(
    delivering: SourceGateway, sandbox: RunningSandbox
) -> None:
    raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
    answer = post(delivering, "/webhooks/shopify", raw, shopify_headers(raw))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    [conversion] = wait_for_conversions(sandbox, 1)
    assert conversion["conversion_id"] == "5678901234567"
    assert conversion["value"] == 150.66
    assert conversion["price_currency"] == "USD"
    assert conversion["number_items"] == 3
    assert conversion["contents"] == [
        {
            "content_id": "45123456789012",
            "content_group_id": "8123456789012",
            "content_name": "Linen shirt",
            "content_price": 49.75,
            "num_items": 2,
        },
        {
            "content_id": "8123456789099",
            "content_group_id": "8123456789099",
            "content_name": "Canvas tote",
            "content_price": 40.0,
            "num_items": 1,
        },
    ]
    got = identifiers(conversion)
    assert got["twclid"] == "2-attribute3x5w"
    assert got["hashed_email"] == sha256("buyer.one@example.com")
    assert got["hashed_phone_number"] == sha256("+14155550123")
    assert got["ip_address"] == "203.0.113.7"
    assert got["user_agent"].startswith("Mozilla/5.0 (Macintosh")


def test_a_processing_woocommerce_order_arrives_at_the_sandbox_as_a_purchase(
    delivering: SourceGateway, sandbox: RunningSandbox
) -> None:
    raw = body(fresh_woo(fixture("woocommerce_order.json")))
    answer = post(delivering, "/webhooks/woocommerce", raw, woo_headers(raw))
    assert answer.status_code == 200, answer.text
    [conversion] = wait_for_conversions(sandbox, 1)
    assert conversion["conversion_id"] == "4750"
    assert conversion["value"] == 94.40
    assert conversion["price_currency"] == "EUR"
    assert [c["content_id"] for c in conversion["contents"]] == ["101", "40"]
    got = identifiers(conversion)
    assert got["twclid"] == "2-meta8fz1"
    assert got["hashed_email"] == sha256("grace.client@example.org")
    assert got["hashed_phone_number"] == sha256("+4930901820")
    assert got["ip_address"] == "198.51.100.23"


def test_a_paid_stripe_checkout_session_arrives_at_the_sandbox_as_a_purchase(
    delivering: SourceGateway, sandbox: RunningSandbox
) -> None:
    raw = body(fresh_stripe(fixture("stripe_checkout_session_completed.json")))
    answer = post(delivering, "/webhooks/stripe", raw, stripe_headers(raw))
    assert answer.status_code == 200, answer.text
    [conversion] = wait_for_conversions(sandbox, 1)
    assert conversion["conversion_id"] == "pi_3QpayIntent0001"
    assert conversion["value"] == 99.0
    assert conversion["price_currency"] == "USD"
    assert "contents" not in conversion
    got = identifiers(conversion)
    assert got["twclid"] == "2-stripe4mn8"
    assert got["hashed_email"] == sha256("payer@example.net")
    assert got["hashed_phone_number"] == sha256("+15125550147")


def test_a_stripe_payment_intent_in_yen_arrives_in_whole_yen(
    delivering: SourceGateway, sandbox: RunningSandbox
) -> None:
    raw = body(fresh_stripe(fixture("stripe_payment_intent_succeeded.json")))
    assert post(delivering, "/webhooks/stripe", raw, stripe_headers(raw)).status_code == 200
    [conversion] = wait_for_conversions(sandbox, 1)
    assert (conversion["conversion_id"], conversion["value"], conversion["price_currency"]) == (
        "pi_3QpayIntent0002",
        12000.0,
        "JPY",
    )


# --- bad and stale signatures ------------------------------------------------------------------------


def test_a_shopify_order_signed_with_another_secret_gets_401_and_stores_nothing(
    gateway: SourceGateway,
) -> None:
    raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
    answer = post(gateway, "/webhooks/shopify", raw, shopify_headers(raw, secret="not-the-app-secret"))
    assert answer.status_code == 401
    assert answer.json()["message"].startswith("X-Shopify-Hmac-Sha256: does not match")
    assert SHOPIFY_SECRET not in answer.text
    assert gateway.queued() == []


def test_a_woocommerce_order_changed_after_signing_gets_401_and_stores_nothing(
    gateway: SourceGateway,
) -> None:
    raw = body(fresh_woo(fixture("woocommerce_order.json")))
    headers = woo_headers(raw)
    answer = post(gateway, "/webhooks/woocommerce", raw.replace(b'"94.40"', b'"940.40"'), headers)
    assert answer.status_code == 401
    assert answer.json()["message"].startswith("X-WC-Webhook-Signature: does not match")
    assert gateway.queued() == []


def test_an_unsigned_delivery_gets_401_naming_the_header(gateway: SourceGateway) -> None:
    raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
    answer = post(gateway, "/webhooks/shopify", raw, {"X-Shopify-Topic": "orders/paid"})
    assert answer.status_code == 401
    assert answer.json()["message"] == (
        "X-Shopify-Hmac-Sha256: missing; the platform signs every delivery with it"
    )
    assert gateway.queued() == []


def test_a_stale_stripe_signature_gets_401_and_stores_nothing(gateway: SourceGateway) -> None:
    raw = body(fresh_stripe(fixture("stripe_checkout_session_completed.json")))
    answer = post(gateway, "/webhooks/stripe", raw, stripe_headers(raw, timestamp=int(time.time()) - 301))
    assert answer.status_code == 401
    assert "Stripe-Signature: Timestamp outside the tolerance zone" in answer.json()["message"]
    assert gateway.queued() == []


def test_a_stripe_source_can_allow_an_older_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_STRIPE_WHSEC", STRIPE_SECRET)
    lenient = [{**SOURCES[2], "tolerance_seconds": 900}]
    with source_gateway(source_config(tmp_path, lenient)) as gw:
        raw = body(fresh_stripe(fixture("stripe_checkout_session_completed.json")))
        answer = post(gw, "/webhooks/stripe", raw, stripe_headers(raw, timestamp=int(time.time()) - 600))
        assert answer.status_code == 200, answer.text
        assert len(gw.queued()) == 1


def test_a_source_whose_secret_variable_is_unset_gets_401_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SHOPIFY_SECRET", raising=False)
    with source_gateway(source_config(tmp_path, SOURCES[:1])) as gw:
        raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
        answer = post(gw, "/webhooks/shopify", raw, shopify_headers(raw))
        assert answer.status_code == 401
        assert answer.json()["message"] == (
            "source 'shop' has no signing secret: set TEST_SHOPIFY_SECRET to the app's client secret"
        )
        assert gw.queued() == []


def test_each_source_of_a_kind_is_tried_with_its_own_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SHOP_A", "secret-of-shop-a")
    monkeypatch.setenv("TEST_SHOP_B", SHOPIFY_SECRET)
    two_shops = [
        {"name": "shop-a", "kind": "shopify", "signing_secret_env": "TEST_SHOP_A"},
        {"name": "shop-b", "kind": "shopify", "signing_secret_env": "TEST_SHOP_B"},
    ]
    with source_gateway(source_config(tmp_path, two_shops)) as gw:
        raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
        assert post(gw, "/webhooks/shopify", raw, shopify_headers(raw)).json()["accepted"] == 1
        metrics = gw.http.get("/metrics").text
        assert 'source="shop-b"' in metrics
        assert 'source="shop-a"' not in metrics


# --- redeliveries ------------------------------------------------------------------------------------


def test_a_redelivered_shopify_webhook_queues_nothing_new(gateway: SourceGateway) -> None:
    raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
    headers = shopify_headers(raw)
    assert post(gateway, "/webhooks/shopify", raw, headers).json()["accepted"] == 1
    again = post(gateway, "/webhooks/shopify", raw, headers).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    # orders/create of the same paid order, another delivery: the same conversion
    created = post(
        gateway, "/webhooks/shopify", raw, shopify_headers(raw, topic="orders/create", webhook_id="w2")
    )
    assert created.json()["duplicates"] == 1
    assert len(gateway.queued()) == 1


def test_woocommerce_updates_of_a_paid_order_queue_nothing_new(gateway: SourceGateway) -> None:
    order = fresh_woo(fixture("woocommerce_order.json"))
    raw = body(order)
    assert post(gateway, "/webhooks/woocommerce", raw, woo_headers(raw)).json()["accepted"] == 1
    completed = body({**order, "status": "completed"})
    answer = post(gateway, "/webhooks/woocommerce", completed, woo_headers(completed, "order.updated", "d-2"))
    assert answer.json()["duplicates"] == 1
    assert len(gateway.queued()) == 1


def test_a_redelivered_stripe_event_and_its_payment_intent_event_queue_nothing_new(
    gateway: SourceGateway,
) -> None:
    raw = body(fresh_stripe(fixture("stripe_checkout_session_completed.json")))
    assert post(gateway, "/webhooks/stripe", raw, stripe_headers(raw)).json()["accepted"] == 1
    # Stripe retries with a new signature (a new t=) over the same event
    assert (
        post(gateway, "/webhooks/stripe", raw, stripe_headers(raw, int(time.time()) + 1)).json()["duplicates"]
        == 1
    )
    intent = fresh_stripe(fixture("stripe_payment_intent_succeeded.json"))
    intent["data"]["object"].update(id="pi_3QpayIntent0001", currency="usd", amount_received=9900)
    raw_intent = body(intent)
    assert post(gateway, "/webhooks/stripe", raw_intent, stripe_headers(raw_intent)).json()["duplicates"] == 1
    assert len(gateway.queued()) == 1


# --- unpaid, refunded, cancelled: recorded, not sent -------------------------------------------------


def skipped(answer: Any) -> str:
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["accepted"], report["skipped"]) == (0, 1)
    return str(report["results"][0]["skipped"]["source"])


def test_an_unpaid_shopify_order_sends_nothing(
    gateway: SourceGateway, caplog: pytest.LogCaptureFixture
) -> None:
    raw = body(fresh_shopify({**fixture("shopify_order_paid.json"), "financial_status": "pending"}))
    with caplog.at_level(logging.INFO, logger="xgate.collect"):
        reason = skipped(post(gateway, "/webhooks/shopify", raw, shopify_headers(raw, topic="orders/create")))
    assert reason.startswith("order 5678901234567 not paid (financial_status pending)")
    assert gateway.queued() == []
    [record] = [r for r in caplog.records if r.getMessage() == "recorded, not sent"]
    assert record.fields == {  # type: ignore[attr-defined]
        "source": "shop",
        "kind": "shopify",
        "name": "orders/create",
        "reason": reason,
    }


def test_a_shopify_refund_and_cancellation_send_nothing(gateway: SourceGateway) -> None:
    refund = body(fixture("shopify_refund.json"))
    assert "refund 987654321012" in skipped(
        post(gateway, "/webhooks/shopify", refund, shopify_headers(refund, topic="refunds/create"))
    )
    cancelled = body({**fixture("shopify_order_paid.json"), "cancelled_at": "2026-12-01T08:00:00-05:00"})
    assert "cancelled" in skipped(
        post(gateway, "/webhooks/shopify", cancelled, shopify_headers(cancelled, topic="orders/cancelled"))
    )
    assert gateway.queued() == []
    assert 'xgate_events_total{source="shop",status="skipped"} 2.0' in gateway.http.get("/metrics").text


def test_a_refunded_or_pending_woocommerce_order_sends_nothing(gateway: SourceGateway) -> None:
    for status in ("refunded", "pending"):
        raw = body(fresh_woo({**fixture("woocommerce_order.json"), "status": status}))
        assert "order 4750" in skipped(
            post(gateway, "/webhooks/woocommerce", raw, woo_headers(raw, "order.updated"))
        )
    assert gateway.queued() == []


def test_a_stripe_refund_and_an_unpaid_session_send_nothing(gateway: SourceGateway) -> None:
    refund = body(fixture("stripe_charge_refunded.json"))
    assert "refunded: recorded, not sent" in skipped(
        post(gateway, "/webhooks/stripe", refund, stripe_headers(refund))
    )
    unpaid = fresh_stripe(fixture("stripe_checkout_session_completed.json"))
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    raw = body(unpaid)
    assert "payment_status unpaid" in skipped(post(gateway, "/webhooks/stripe", raw, stripe_headers(raw)))
    assert gateway.queued() == []


# --- the rest of the exchange ------------------------------------------------------------------------


def test_woocommerces_ping_when_saving_a_webhook_is_answered_200_and_stores_nothing(
    gateway: SourceGateway,
) -> None:
    answer = gateway.http.post(
        "/webhooks/woocommerce",
        content=b"webhook_id=3",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "WooCommerce/9.4.2 Hookshot",
        },
    )
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 0
    assert gateway.queued() == []


def test_an_order_total_that_is_not_an_amount_is_rejected_naming_value(gateway: SourceGateway) -> None:
    raw = body(fresh_shopify({**fixture("shopify_order_paid.json"), "total_price": "a lot"}))
    answer = post(gateway, "/webhooks/shopify", raw, shopify_headers(raw))
    assert answer.status_code == 422
    assert answer.json()["results"][0]["errors"][0]["field"] == "value"
    assert gateway.queued() == []


def test_a_paid_order_without_any_identifier_is_answered_200_and_kept_as_rejected(
    gateway: SourceGateway,
) -> None:
    """A shop-counter sale: no e-mail, no phone, no browser, no click id. X cannot match it and no retry
    can change that, so the platform gets a 200 (a 4xx is retried for days and can get the endpoint
    disabled); the order is still reported and kept as rejected, naming the reason."""
    order = fresh_shopify(fixture("shopify_order_paid.json"))
    for field in ("email", "contact_email", "phone", "browser_ip", "client_details", "landing_site"):
        order.pop(field, None)
    order["customer"], order["billing_address"], order["note_attributes"] = {}, {}, []
    raw = body(order)
    answer = post(gateway, "/webhooks/shopify", raw, shopify_headers(raw))
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 0 and answer.json()["rejected"] == 1
    assert answer.json()["results"][0]["errors"][0]["field"] == "identifiers"
    assert gateway.queued() == []


def test_a_source_mapping_overrides_what_the_kind_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SHOPIFY_SECRET", SHOPIFY_SECRET)
    presentment = [
        {
            **SOURCES[0],
            "mapping": {
                "id": "name",
                "value": "total_price_set.presentment_money.amount",
                "currency": "presentment_currency",
            },
        }
    ]
    with source_gateway(source_config(tmp_path, presentment)) as gw:
        raw = body(fresh_shopify(fixture("shopify_order_paid.json")))
        assert post(gw, "/webhooks/shopify", raw, shopify_headers(raw)).json()["accepted"] == 1
        [conversion] = gw.queued()
        assert (conversion["conversion_id"], conversion["value"], conversion["price_currency"]) == (
            "#1042",
            139.2,
            "EUR",
        )


# --- xgate map --source ------------------------------------------------------------------------------


def map_config(tmp_path: Path) -> Path:
    path = tmp_path / "xgate.toml"
    path.write_text(
        "".join(
            f'[[sources]]\nname = "{s["name"]}"\nkind = "{s["kind"]}"\n'
            f'signing_secret_env = "{s["signing_secret_env"]}"\n'
            for s in SOURCES
        )
        + '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    return path


@pytest.mark.parametrize(
    ("source", "payload", "conversion_id"),
    [
        ("shop", fresh_shopify(fixture("shopify_order_paid.json")), "5678901234567"),
        ("woo", fresh_woo(fixture("woocommerce_order.json")), "4750"),
        ("pay", fresh_stripe(fixture("stripe_checkout_session_completed.json")), "pi_3QpayIntent0001"),
    ],
)
def test_xgate_map_dry_runs_a_webhook_payload(
    tmp_path: Path, source: str, payload: dict[str, Any], conversion_id: str
) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_bytes(body(payload))
    args = ["map", "--config", str(map_config(tmp_path)), "--source", source, "--json", str(payload_file)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    [out] = json.loads(result.output)
    assert out["body"]["conversions"][0]["conversion_id"] == conversion_id


def test_xgate_map_notes_a_refund_converts_to_nothing(tmp_path: Path) -> None:
    payload_file = tmp_path / "refund.json"
    payload_file.write_bytes(body(fixture("stripe_charge_refunded.json")))
    args = ["map", "--config", str(map_config(tmp_path)), "--source", "pay", str(payload_file)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "refunded: recorded, not sent" in result.output
    assert "the payload makes no event" in result.output


def test_a_webhook_endpoint_is_not_for_pages_even_on_an_origin_another_source_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Platforms post webhooks from their servers, never a page: no webhook source lists an origin, so a
    page's preflight is refused and no answer carries CORS headers, though the shop's origin may send to
    /v1/events (before, every POST path answered preflights for every source's origins)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    shop = "https://shop.example"
    web = {"name": "web", "write_key": "xgate-pub-2", "allowed_origins": [shop]}
    with source_gateway(source_config(tmp_path, [*SOURCES, web])) as gw:
        for path in ("/webhooks/shopify", "/webhooks/woocommerce", "/webhooks/stripe"):
            preflight = gw.http.options(
                path, headers={"Origin": shop, "Access-Control-Request-Method": "POST"}
            )
            assert preflight.status_code == 403, path
            assert "access-control-allow-origin" not in preflight.headers
            page = {"Origin": shop, "Content-Type": "text/plain"}
            unsigned = gw.http.post(path, content=b"{}", headers=page)
            assert unsigned.status_code == 401, path
            assert "access-control-allow-origin" not in unsigned.headers
        assert (
            gw.http.options("/v1/events", headers={"Origin": shop, "Access-Control-Request-Method": "POST"})
        ).status_code == 204
