"""WooCommerce's order webhooks: the signature and the saving ping as WC_Webhook sends them, every row of
the mapping table in xgate.sources.woocommerce, and which topics and statuses convert."""

from __future__ import annotations

from typing import Any

import pytest
from webhookkit import WOO_SECRET, body, fixture, woo_headers

from xgate.collect.kinds import woocommerce
from xgate.errors import WebhookSignatureError


def order(**changes: Any) -> dict[str, Any]:
    return {**fixture("woocommerce_order.json"), **changes}


def read(payload: dict[str, Any], topic: str = "order.created") -> Any:
    return woocommerce.read(payload, woo_headers(body(payload), topic=topic))


def event(**changes: Any) -> dict[str, Any]:
    delivery = read(order(**changes))
    assert delivery.skipped is None
    assert delivery.event is not None
    return delivery.event


# --- signature and ping ------------------------------------------------------------------------------


def test_a_body_signed_with_the_webhook_secret_verifies() -> None:
    raw = body(order())
    woocommerce.verify(raw, woo_headers(raw), WOO_SECRET)


def test_another_secret_is_refused_naming_the_header() -> None:
    raw = body(order())
    with pytest.raises(WebhookSignatureError, match="X-WC-Webhook-Signature: does not match"):
        woocommerce.verify(raw, woo_headers(raw, secret="not-it"), WOO_SECRET)


def test_a_missing_signature_is_refused() -> None:
    raw = body(order())
    headers = woo_headers(raw)
    del headers["X-WC-Webhook-Signature"]
    with pytest.raises(WebhookSignatureError, match="X-WC-Webhook-Signature: missing"):
        woocommerce.verify(raw, headers, WOO_SECRET)


def test_the_unsigned_ping_sent_when_saving_a_webhook_is_recognised() -> None:
    ping_headers = {"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"}
    assert woocommerce.is_ping(b"webhook_id=3", ping_headers)
    assert not woocommerce.is_ping(b'{"id": 3}', ping_headers)
    raw = b"webhook_id=3"
    assert not woocommerce.is_ping(raw, woo_headers(raw))  # a signed body is a delivery, verified as one


# --- the mapping table -------------------------------------------------------------------------------


def test_a_processing_order_is_a_purchase_with_the_order_id_as_conversion_id() -> None:
    e = event()
    assert e["event_name"] == "purchase"
    assert e["id"] == "4750"


def test_value_is_total_and_currency_the_orders() -> None:
    e = event()
    assert e["value"] == 94.40
    assert e["currency"] == "EUR"


def test_line_items_become_items_by_variation_else_product() -> None:
    assert event()["items"] == [
        {
            "id": "101",
            "quantity": 2,
            "price": 25.21,
            "product": {"name": "Espresso cups - Blue", "group_id": "93"},
        },
        # variation_id 0: a simple product
        {
            "id": "40",
            "quantity": 1,
            "price": 23.74,
            "product": {"name": "Coffee beans 1kg", "group_id": "40"},
        },
    ]


def test_user_id_is_the_customer_id_and_a_guest_has_none() -> None:
    assert event()["user"]["id"] == "12"
    assert "id" not in event(customer_id=0)["user"]


def test_email_and_phone_come_from_billing() -> None:
    user = event()["user"]
    assert user["email"] == "grace.client@example.org"
    assert user["phone"] == "+49 30 901820"


def test_event_time_is_date_paid_gmt_else_date_created_gmt() -> None:
    assert event()["context"]["event_timestamp"] == "2026-11-30T15:20:14"
    assert event(date_paid_gmt=None)["context"]["event_timestamp"] == "2026-11-30T15:20:11"


def test_ip_and_user_agent_are_the_customers() -> None:
    context = event()["context"]
    assert context["ip"] == "198.51.100.23"
    assert context["user_agent"].startswith("Mozilla/5.0 (X11; Linux x86_64)")


def test_twclid_comes_from_the_meta_data_first() -> None:
    assert event()["partners"]["twitter"]["twclid"] == "2-meta8fz1"
    underscored = [{"id": 1, "key": "_twclid", "value": "2-under5"}]
    assert event(meta_data=underscored)["partners"]["twitter"]["twclid"] == "2-under5"


def test_twclid_else_from_the_order_attribution_entry_page() -> None:
    meta = [m for m in order()["meta_data"] if m["key"] != "twclid"]
    assert event(meta_data=meta)["partners"]["twitter"]["twclid"] == "2-entry9pq4"


def test_no_click_id_leaves_partners_out() -> None:
    assert "partners" not in event(meta_data=[])


# --- what converts -----------------------------------------------------------------------------------


def test_the_delivery_id_is_the_idempotency_key() -> None:
    payload = order()
    delivery = woocommerce.read(payload, woo_headers(body(payload), delivery_id="d-9"))
    assert delivery.key == "d-9"


@pytest.mark.parametrize("topic", ["order.created", "order.updated"])
@pytest.mark.parametrize("status", ["processing", "completed"])
def test_paid_statuses_convert_on_both_order_topics(topic: str, status: str) -> None:
    assert read(order(status=status), topic).event is not None


@pytest.mark.parametrize("status", ["refunded", "cancelled"])
def test_refunded_and_cancelled_orders_are_recorded_not_sent(status: str) -> None:
    delivery = read(order(status=status), "order.updated")
    assert delivery.event is None
    assert delivery.skipped == f"order 4750 {status}: recorded, not sent"


@pytest.mark.parametrize("status", ["pending", "on-hold", "failed", "checkout-draft"])
def test_unpaid_orders_are_skipped_with_their_status(status: str) -> None:
    delivery = read(order(status=status))
    assert delivery.event is None
    assert f"order 4750 not paid (status {status})" in (delivery.skipped or "")


def test_other_topics_are_skipped_naming_the_topic() -> None:
    delivery = read({"id": 4750}, "order.deleted")
    assert delivery.skipped == "topic order.deleted does not convert (order.created and order.updated do)"
