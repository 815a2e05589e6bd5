"""Shopify's order webhooks as xgate purchases (docs/sources.md, "Shopify").

Signature: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw body keyed with the app's client
secret (shopify.dev, "Webhooks delivery structure" and "Verify webhooks"). Idempotency:
``X-Shopify-Webhook-Id``, "a unique composite key per delivery", the same on every retry of it (not
``X-Shopify-Event-Id``, which one merchant action shares across topics).

Topics (``X-Shopify-Topic``): ``orders/create``, ``orders/paid`` and ``orders/updated`` carry the order
(REST ``Order`` resource) and convert when its ``financial_status`` is ``paid`` or ``partially_refunded``
and it is neither cancelled nor a test order; ``orders/cancelled`` and ``refunds/create`` are recorded as
skipped. Every conversion of one order has the order's id as conversion id, so ``orders/create`` (paid at
once) and ``orders/paid`` of the same order queue one conversion.

What is read (all of it overridable by the source's ``mapping``):

============================  ===================================================================
xgate event                   Shopify order
============================  ===================================================================
``id``                        ``id``
``value``                     ``total_price`` (shop currency, before refunds)
``currency``                  ``currency``
``items[].id``                ``line_items[].variant_id``, else ``line_items[].product_id``
``items[].quantity``          ``line_items[].quantity``
``items[].price``             ``line_items[].price``
``items[].product.name``      ``line_items[].title``
``items[].product.group_id``  ``line_items[].product_id``
``user.id``                   ``customer.id`` (never sent to X)
``user.email``                ``email``, else ``contact_email``, else ``customer.email``
``user.phone``                ``phone``, else ``customer.phone``, else ``billing_address.phone``
``context.event_timestamp``   ``processed_at``, else ``created_at``
``context.ip``                ``browser_ip``, else ``client_details.browser_ip``
``context.user_agent``        ``client_details.user_agent``
``partners.twitter.twclid``   ``note_attributes[]`` named ``twclid`` (or ``_twclid``), else the
                              ``twclid`` parameter of ``landing_site``
============================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from xgate.collect.kinds import Endpoint, Inbound, prune, register, text
from xgate.collect.kinds.webhooks import (
    Delivery,
    WebhookKind,
    as_dict,
    as_list,
    count,
    header,
    money,
    twclid_in,
    verify_base64_hmac,
)
from xgate.config import Source

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
DELIVERY_HEADER = "X-Shopify-Webhook-Id"

#: topics whose payload is an order that converts once paid
ORDER_TOPICS = frozenset({"orders/create", "orders/paid", "orders/updated"})
#: financial statuses of an order that was paid (a partial refund does not undo the purchase)
PAID_STATUSES = frozenset({"paid", "partially_refunded"})
#: note attribute names a storefront may keep the click id under
TWCLID_ATTRIBUTES = ("twclid", "_twclid")


def verify(raw: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Raise :class:`~xgate.errors.WebhookSignatureError` unless ``X-Shopify-Hmac-Sha256`` signs ``raw``."""
    verify_base64_hmac(raw, header(headers, SIGNATURE_HEADER), secret, SIGNATURE_HEADER)


def read(payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
    """The purchase of a paid order, or why this delivery does not convert (see the module's table)."""
    topic = header(headers, TOPIC_HEADER) or "(no X-Shopify-Topic)"
    key = header(headers, DELIVERY_HEADER)
    order_id = text(payload.get("id"))
    if topic == "refunds/create":
        return Delivery(
            topic,
            key,
            skipped=f"refund {order_id} of order {text(payload.get('order_id'))} recorded, not sent: "
            "X counts purchases, not refunds",
        )
    if topic == "orders/cancelled":
        return Delivery(topic, key, skipped=f"order {order_id} cancelled: recorded, not sent")
    if topic not in ORDER_TOPICS:
        return Delivery(
            topic, key, skipped=f"topic {topic} does not convert (orders/paid and orders/create do)"
        )
    if payload.get("cancelled_at"):
        return Delivery(topic, key, skipped=f"order {order_id} cancelled: recorded, not sent")
    if payload.get("test") is True:
        return Delivery(topic, key, skipped=f"order {order_id} is a test order (test: true): not sent")
    status = payload.get("financial_status")
    if status not in PAID_STATUSES:
        return Delivery(
            topic,
            key,
            skipped=f"order {order_id} not paid (financial_status {status}): "
            "orders/paid converts it once paid",
        )
    return Delivery(topic, key, event=purchase(payload))


def purchase(order: dict[str, Any]) -> dict[str, Any]:
    """The xgate ``purchase`` event of a Shopify order (the module's table)."""
    customer = as_dict(order.get("customer"))
    billing = as_dict(order.get("billing_address"))
    client = as_dict(order.get("client_details"))
    attributes = {
        a.get("name"): a.get("value") for a in as_list(order.get("note_attributes")) if isinstance(a, dict)
    }
    twclid = twclid_in(
        *(text(attributes.get(name)) for name in TWCLID_ATTRIBUTES),
        urls=(text(order.get("landing_site")),),
    )
    items = [_item(line) for line in as_list(order.get("line_items"))]
    return prune(
        {
            "event_name": "purchase",
            "id": text(order.get("id")),
            "value": money(order.get("total_price")),
            "currency": text(order.get("currency")),
            "items": [i for i in items if i],
            "user": {
                "id": text(customer.get("id")),
                "email": text(order.get("email"))
                or text(order.get("contact_email"))
                or text(customer.get("email")),
                "phone": text(order.get("phone"))
                or text(customer.get("phone"))
                or text(billing.get("phone")),
            },
            "context": {
                "event_timestamp": text(order.get("processed_at")) or text(order.get("created_at")),
                "ip": text(order.get("browser_ip")) or text(client.get("browser_ip")),
                "user_agent": text(client.get("user_agent")),
            },
            "partners": {"twitter": {"twclid": twclid}},
        }
    )


def _item(line: Any) -> dict[str, Any] | None:
    if not isinstance(line, dict):
        return None
    product_id = text(line.get("product_id"))
    return prune(
        {
            "id": text(line.get("variant_id")) or product_id,
            "quantity": count(line.get("quantity")),
            "price": money(line.get("price")),
            "product": {"name": text(line.get("title")), "group_id": product_id},
        }
    )


class ShopifyKind(WebhookKind):
    """Shopify's order webhooks at ``POST /webhooks/shopify`` (see the module's docstring)."""

    name: ClassVar[str] = "shopify"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("/webhooks/shopify", summary="Shopify order webhooks (X-Shopify-Hmac-Sha256)"),
    )
    event_names: ClassVar[Mapping[str, str]] = dict.fromkeys(sorted(ORDER_TOPICS), "purchase")
    secret_name: ClassVar[str] = "the app's client secret"
    topic_header: ClassVar[str | None] = TOPIC_HEADER
    file_topic: ClassVar[str | None] = "orders/paid"

    def verify(self, inbound: Inbound, secret: str, source: Source) -> None:
        verify(inbound.body, inbound.headers, secret)

    def read(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
        return read(payload, headers)


KIND = register(ShopifyKind())
