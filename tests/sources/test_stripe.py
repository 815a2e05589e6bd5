"""Stripe's payment events: Stripe-Signature with its timestamp tolerance, every row of the mapping table in
xgate.sources.stripe, and which event types convert."""

from __future__ import annotations

import time
from typing import Any

import pytest
from webhookkit import STRIPE_SECRET, body, fixture, stripe_headers

from xgate.collect.kinds import stripe
from xgate.errors import WebhookSignatureError


def session_event(**changes: Any) -> dict[str, Any]:
    payload = fixture("stripe_checkout_session_completed.json")
    payload["data"]["object"].update(changes)
    return payload


def intent_event(**changes: Any) -> dict[str, Any]:
    payload = fixture("stripe_payment_intent_succeeded.json")
    payload["data"]["object"].update(changes)
    return payload


def converted(payload: dict[str, Any]) -> dict[str, Any]:
    delivery = stripe.read(payload, {})
    assert delivery.skipped is None
    assert delivery.event is not None
    return delivery.event


# --- signature ---------------------------------------------------------------------------------------


def test_a_fresh_signature_verifies() -> None:
    raw = body(session_event())
    stripe.verify(raw, stripe_headers(raw), STRIPE_SECRET)


def test_a_signature_older_than_the_tolerance_is_refused() -> None:
    raw = body(session_event())
    stale = stripe_headers(raw, timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookSignatureError, match="Stripe-Signature: Timestamp outside the tolerance"):
        stripe.verify(raw, stale, STRIPE_SECRET)


def test_the_tolerance_is_a_setting() -> None:
    raw = body(session_event())
    ten_minutes_old = stripe_headers(raw, timestamp=int(time.time()) - 600)
    stripe.verify(raw, ten_minutes_old, STRIPE_SECRET, tolerance_seconds=900)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        stripe.verify(raw, ten_minutes_old, STRIPE_SECRET)


def test_another_secret_is_refused_without_naming_it() -> None:
    raw = body(session_event())
    with pytest.raises(WebhookSignatureError, match="Stripe-Signature: No signatures found matching") as e:
        stripe.verify(raw, stripe_headers(raw, secret="whsec_other"), STRIPE_SECRET)
    assert STRIPE_SECRET not in str(e.value)


def test_a_missing_or_malformed_header_is_refused() -> None:
    raw = body(session_event())
    with pytest.raises(WebhookSignatureError, match="Stripe-Signature: missing"):
        stripe.verify(raw, {}, STRIPE_SECRET)
    with pytest.raises(WebhookSignatureError, match="Stripe-Signature: Unable to extract timestamp"):
        stripe.verify(raw, {"Stripe-Signature": "v1=abc"}, STRIPE_SECRET)


# --- the mapping table -------------------------------------------------------------------------------


def test_a_paid_checkout_session_is_a_purchase_with_the_payment_intent_as_conversion_id() -> None:
    e = converted(session_event())
    assert e["event_name"] == "purchase"
    assert e["id"] == "pi_3QpayIntent0001"


def test_a_session_without_a_payment_intent_uses_its_own_id() -> None:
    assert converted(session_event(payment_intent=None))["id"] == "cs_live_a1B2c3D4e5F6g7H8i9J0"


def test_an_expanded_payment_intent_gives_its_id() -> None:
    assert converted(session_event(payment_intent={"id": "pi_expanded"}))["id"] == "pi_expanded"


def test_a_payment_intent_is_a_purchase_under_its_own_id() -> None:
    assert converted(intent_event())["id"] == "pi_3QpayIntent0002"


def test_value_is_amount_total_in_minor_units_and_currency_upper_cased() -> None:
    e = converted(session_event())
    assert e["value"] == 99.0
    assert e["currency"] == "USD"


@pytest.mark.parametrize(
    ("currency", "minor", "value"),
    [("jpy", 12000, 12000.0), ("krw", 5000, 5000.0), ("kwd", 12340, 12.34), ("eur", 1999, 19.99)],
)
def test_minor_units_follow_stripes_zero_and_three_decimal_currencies(
    currency: str, minor: int, value: float
) -> None:
    e = converted(session_event(currency=currency, amount_total=minor))
    assert e["value"] == value


def test_a_payment_intents_value_is_amount_received() -> None:
    e = converted(intent_event(amount=15000, amount_received=12000))
    assert e["value"] == 12000.0  # JPY: zero-decimal
    assert e["currency"] == "JPY"


def test_no_items_stripe_leaves_line_items_out_of_its_events() -> None:
    assert "items" not in converted(session_event())


def test_user_id_is_the_customer() -> None:
    assert converted(session_event())["user"]["id"] == "cus_QxYz123456"
    assert "id" not in converted(intent_event())["user"]


def test_session_email_is_customer_details_then_customer_email() -> None:
    assert converted(session_event())["user"]["email"] == "payer@example.net"
    assert (
        converted(session_event(customer_details=None, customer_email="given@example.net"))["user"]["email"]
        == "given@example.net"
    )


def test_session_phone_is_customer_details_phone() -> None:
    assert converted(session_event())["user"]["phone"] == "+15125550147"


def test_payment_intent_email_is_receipt_email_and_phone_the_shipping_phone() -> None:
    user = converted(intent_event())["user"]
    assert user["email"] == "tanaka@example.jp"
    assert user["phone"] == "+81 3-1234-5678"


def test_event_time_is_the_events_created_in_epoch_ms() -> None:
    assert converted(session_event())["context"]["event_timestamp"] == 1796050000 * 1000


def test_twclid_is_metadata_twclid() -> None:
    assert converted(session_event())["partners"]["twitter"]["twclid"] == "2-stripe4mn8"
    assert converted(intent_event())["partners"]["twitter"]["twclid"] == "2-intent6hw2"
    assert "partners" not in converted(session_event(metadata={}))


# --- what converts -----------------------------------------------------------------------------------


def test_the_event_id_is_the_idempotency_key() -> None:
    delivery = stripe.read(session_event(), {})
    assert delivery.key == "evt_1QcheckoutCompleted01"
    assert delivery.topic == "checkout.session.completed"


def test_an_async_payment_that_succeeds_later_converts() -> None:
    payload = session_event()
    payload["type"] = "checkout.session.async_payment_succeeded"
    assert stripe.read(payload, {}).event is not None


@pytest.mark.parametrize("status", ["unpaid", "no_payment_required"])
def test_a_session_that_is_not_paid_is_skipped_with_its_status(status: str) -> None:
    delivery = stripe.read(session_event(payment_status=status), {})
    assert delivery.event is None
    assert f"not paid (payment_status {status})" in (delivery.skipped or "")


def test_a_refund_is_recorded_not_sent() -> None:
    delivery = stripe.read(fixture("stripe_charge_refunded.json"), {})
    assert delivery.event is None
    assert (
        delivery.skipped
        == "charge ch_3QpayCharge0001 of payment pi_3QpayIntent0001 refunded: recorded, not sent"
    )


@pytest.mark.parametrize(
    "kind",
    ["payment_intent.payment_failed", "payment_intent.canceled", "checkout.session.async_payment_failed"],
)
def test_failed_payments_are_skipped(kind: str) -> None:
    payload = intent_event(status="requires_payment_method")
    payload["type"] = kind
    assert "did not succeed" in (stripe.read(payload, {}).skipped or "")


def test_test_mode_events_are_skipped() -> None:
    payload = session_event()
    payload["livemode"] = False
    assert "test-mode event (livemode false)" in (stripe.read(payload, {}).skipped or "")


def test_other_event_types_are_skipped_naming_the_type() -> None:
    payload = {
        "id": "evt_1",
        "type": "customer.created",
        "livemode": True,
        "data": {"object": {"id": "cus_1"}},
    }
    assert stripe.read(payload, {}).skipped == (
        "event type customer.created does not convert "
        "(checkout.session.completed and payment_intent.succeeded do)"
    )
