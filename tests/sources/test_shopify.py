"""Shopify's order webhooks: the signature as Shopify documents it, every row of the mapping table in
xgate.sources.shopify, and which topics and states convert."""

from __future__ import annotations

from typing import Any

import pytest
from webhookkit import SHOPIFY_SECRET, body, fixture, shopify_headers

from xgate.collect.kinds import Converted, shopify
from xgate.collect.kinds.webhooks import WebhookMessage
from xgate.errors import WebhookSignatureError


def order(**changes: Any) -> dict[str, Any]:
    return {**fixture("shopify_order_paid.json"), **changes}


def read(payload: dict[str, Any], topic: str = "orders/paid") -> Any:
    return shopify.read(payload, shopify_headers(body(payload), topic=topic))


def event(**changes: Any) -> dict[str, Any]:
    delivery = read(order(**changes))
    assert delivery.skipped is None
    assert delivery.event is not None
    return delivery.event


# --- signature ---------------------------------------------------------------------------------------


def test_a_body_signed_with_the_secret_verifies() -> None:
    raw = body(order())
    shopify.verify(raw, shopify_headers(raw), SHOPIFY_SECRET)


def test_header_names_are_matched_in_any_case() -> None:
    raw = body(order())
    headers = {k.lower(): v for k, v in shopify_headers(raw).items()}
    shopify.verify(raw, headers, SHOPIFY_SECRET)


def test_another_secret_is_refused_naming_the_header_not_the_secret() -> None:
    raw = body(order())
    with pytest.raises(WebhookSignatureError, match="X-Shopify-Hmac-Sha256: does not match") as e:
        shopify.verify(raw, shopify_headers(raw, secret="another-secret"), SHOPIFY_SECRET)
    assert SHOPIFY_SECRET not in str(e.value)


def test_a_changed_body_is_refused() -> None:
    raw = body(order())
    headers = shopify_headers(raw)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        shopify.verify(raw.replace(b"150.66", b"1.00"), headers, SHOPIFY_SECRET)


def test_a_missing_signature_is_refused() -> None:
    raw = body(order())
    headers = shopify_headers(raw)
    del headers["X-Shopify-Hmac-Sha256"]
    with pytest.raises(WebhookSignatureError, match="X-Shopify-Hmac-Sha256: missing"):
        shopify.verify(raw, headers, SHOPIFY_SECRET)


# --- the mapping table -------------------------------------------------------------------------------


def test_a_paid_order_is_a_purchase_with_the_order_id_as_conversion_id() -> None:
    e = event()
    assert e["event_name"] == "purchase"
    assert e["id"] == "5678901234567"


def test_value_is_total_price_and_currency_the_shop_currency() -> None:
    e = event()
    assert e["value"] == 150.66
    assert e["currency"] == "USD"


def test_line_items_become_items_by_variant_with_the_product_as_group() -> None:
    assert event()["items"] == [
        {
            "id": "45123456789012",
            "quantity": 2,
            "price": 49.75,
            "product": {"name": "Linen shirt", "group_id": "8123456789012"},
        },
        # no variant: the product id
        {
            "id": "8123456789099",
            "quantity": 1,
            "price": 40.0,
            "product": {"name": "Canvas tote", "group_id": "8123456789099"},
        },
    ]


def test_user_id_is_the_customer_id() -> None:
    assert event()["user"]["id"] == "7012345678901"


def test_email_is_the_orders_then_the_contact_email_then_the_customers() -> None:
    assert event()["user"]["email"] == "Buyer.One@Example.com"
    assert event(email=None)["user"]["email"] == "Buyer.One@Example.com"  # contact_email
    assert event(email="", contact_email=None)["user"]["email"] == "buyer.one@example.com"


def test_phone_is_the_orders_then_the_customers_then_the_billing_address() -> None:
    assert event()["user"]["phone"] == "+14155550123"
    customer = {**order()["customer"], "phone": "+14155550100"}
    assert event(phone=None, customer=customer)["user"]["phone"] == "+14155550100"
    assert event(phone=None)["user"]["phone"] == "+1 415 555 0199"  # billing_address


def test_event_time_is_processed_at_else_created_at() -> None:
    assert event()["context"]["event_timestamp"] == "2026-11-30T10:00:05-05:00"
    assert event(processed_at=None)["context"]["event_timestamp"] == "2026-11-30T10:00:00-05:00"


def test_ip_is_browser_ip_else_client_details_and_user_agent_from_client_details() -> None:
    e = event()
    assert e["context"]["ip"] == "203.0.113.7"
    assert e["context"]["user_agent"].startswith("Mozilla/5.0 (Macintosh")
    client = {**order()["client_details"], "browser_ip": "203.0.113.9"}
    assert event(browser_ip=None, client_details=client)["context"]["ip"] == "203.0.113.9"


def test_twclid_comes_from_the_note_attributes_first() -> None:
    assert event()["partners"]["twitter"]["twclid"] == "2-attribute3x5w"
    underscored = [{"name": "_twclid", "value": "2-underscored1"}]
    assert event(note_attributes=underscored)["partners"]["twitter"]["twclid"] == "2-underscored1"


def test_twclid_else_from_the_landing_sites_query() -> None:
    assert event(note_attributes=[])["partners"]["twitter"]["twclid"] == "2-landing7kq9"


def test_no_click_id_anywhere_leaves_partners_out() -> None:
    assert "partners" not in event(note_attributes=[], landing_site="/products/linen-shirt")


def test_a_total_that_is_not_an_amount_is_passed_on_for_the_events_validation_to_refuse() -> None:
    assert event(total_price="a lot")["value"] == "a lot"  # refused naming `value` (test_webhook_gateway)


# --- what converts -----------------------------------------------------------------------------------


def test_the_webhook_id_is_the_idempotency_key() -> None:
    payload = order()
    delivery = shopify.read(payload, shopify_headers(body(payload), webhook_id="wh-77"))
    assert delivery.key == "wh-77"
    assert delivery.topic == "orders/paid"


@pytest.mark.parametrize("topic", ["orders/create", "orders/paid", "orders/updated"])
def test_order_topics_with_a_paid_order_convert(topic: str) -> None:
    assert read(order(), topic).event is not None


def test_a_partially_refunded_order_still_converts() -> None:
    assert read(order(financial_status="partially_refunded")).event is not None


@pytest.mark.parametrize("status", ["pending", "authorized", "partially_paid", "refunded", "voided"])
def test_an_order_that_is_not_paid_is_skipped_with_its_status(status: str) -> None:
    delivery = read(order(financial_status=status), "orders/create")
    assert delivery.event is None
    assert f"order 5678901234567 not paid (financial_status {status})" in (delivery.skipped or "")


def test_a_cancelled_order_is_skipped() -> None:
    delivery = read(
        order(cancelled_at="2026-12-01T08:00:00-05:00", cancel_reason="customer"), "orders/cancelled"
    )
    assert delivery.event is None
    assert delivery.skipped == "order 5678901234567 cancelled: recorded, not sent"
    # the same order on another topic, already cancelled
    assert read(order(cancelled_at="2026-12-01T08:00:00-05:00")).skipped == delivery.skipped


def test_a_refund_is_recorded_not_sent() -> None:
    refund = fixture("shopify_refund.json")
    delivery = read(refund, "refunds/create")
    assert delivery.event is None
    assert delivery.skipped is not None
    assert delivery.skipped.startswith("refund 987654321012 of order 5678901234567 recorded, not sent")


def test_a_test_order_is_skipped() -> None:
    assert "test order" in (read(order(test=True)).skipped or "")


def test_other_topics_are_skipped_naming_the_topic() -> None:
    delivery = read({"id": 1, "title": "T-Shirt"}, "products/update")
    assert delivery.skipped == "topic products/update does not convert (orders/paid and orders/create do)"


def test_the_topic_names_the_event_and_a_sources_event_names_can_rename_it() -> None:
    payload = order()
    message = WebhookMessage(payload, {k.lower(): v for k, v in shopify_headers(body(payload)).items()})
    kind = shopify.ShopifyKind()
    [converted] = kind.convert(message, kind.event_names)
    assert isinstance(converted, Converted)
    assert converted.event["event_name"] == "purchase"
    assert converted.payload is payload  # what a source's mapping reads
    [renamed] = kind.convert(message, {**kind.event_names, "orders/paid": "order_paid"})
    assert isinstance(renamed, Converted)
    assert renamed.event["event_name"] == "order_paid"
