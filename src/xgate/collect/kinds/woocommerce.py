"""WooCommerce's order webhooks as xgate purchases (docs/sources.md, "WooCommerce").

Signature: ``X-WC-Webhook-Signature`` is the base64 HMAC-SHA256 of the raw body keyed with the webhook's
secret (``WC_Webhook::generate_signature``: ``base64_encode(hash_hmac('sha256', $payload, $secret, true))``).
Saving a webhook first sends an unsigned ping, ``webhook_id=N`` as a form body, and keeps the webhook only
if it is answered 200: :func:`is_ping` recognises it (nothing is stored for it).

Idempotency: ``X-WC-Webhook-Delivery-ID`` names a delivery, but WooCommerce makes a new one for every
delivery (``wp_hash`` of the webhook id and the time) and every order change sends another
``order.updated``; what keeps them from counting twice is the conversion id, the order's ``id``: the
first paid delivery of an order queues its purchase, every later one is a duplicate.

Topics (``X-WC-Webhook-Topic``): ``order.created`` and ``order.updated`` carry the order (REST API v3
order) and convert when its ``status`` is ``processing`` or ``completed`` (paid); ``refunded`` and
``cancelled`` orders are recorded as skipped, as are unpaid ones (``pending``, ``on-hold``, ``failed``…).

What is read (all of it overridable by the source's ``mapping``):

============================  ===================================================================
xgate event                   WooCommerce order
============================  ===================================================================
``id``                        ``id``
``value``                     ``total``
``currency``                  ``currency``
``items[].id``                ``line_items[].variation_id`` when not 0, else ``line_items[].product_id``
``items[].quantity``          ``line_items[].quantity``
``items[].price``             ``line_items[].price``
``items[].product.name``      ``line_items[].name``
``items[].product.group_id``  ``line_items[].product_id``
``user.id``                   ``customer_id`` when not 0 (a guest) (never sent to X)
``user.email``                ``billing.email``
``user.phone``                ``billing.phone``
``context.event_timestamp``   ``date_paid_gmt``, else ``date_created_gmt`` (UTC)
``context.ip``                ``customer_ip_address``
``context.user_agent``        ``customer_user_agent``
``partners.twitter.twclid``   ``meta_data[]`` with key ``twclid`` (or ``_twclid``), else the ``twclid``
                              parameter of ``_wc_order_attribution_session_entry`` (the entry page
                              WooCommerce's order attribution recorded)
============================  ===================================================================
"""

from __future__ import annotations

import re
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

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"
DELIVERY_HEADER = "X-WC-Webhook-Delivery-ID"

ORDER_TOPICS = frozenset({"order.created", "order.updated"})
#: order statuses WooCommerce gives a paid order
PAID_STATUSES = frozenset({"processing", "completed"})
#: meta_data keys a storefront may keep the click id under
TWCLID_META = ("twclid", "_twclid")
#: the entry page WooCommerce's order attribution (8.5+) records in the order's meta data
ATTRIBUTION_ENTRY_META = "_wc_order_attribution_session_entry"

_PING = re.compile(rb"webhook_id=\d+")


def is_ping(raw: bytes, headers: Mapping[str, str]) -> bool:
    """Whether this is the unsigned ping WooCommerce sends when a webhook is saved (``webhook_id=N``)."""
    return header(headers, SIGNATURE_HEADER) is None and _PING.fullmatch(raw.strip()) is not None


def verify(raw: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Raise :class:`~xgate.errors.WebhookSignatureError` unless ``X-WC-Webhook-Signature`` signs ``raw``."""
    verify_base64_hmac(raw, header(headers, SIGNATURE_HEADER), secret, SIGNATURE_HEADER)


def read(payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
    """The purchase of a paid order, or why this delivery does not convert (see the module's table)."""
    topic = header(headers, TOPIC_HEADER) or "(no X-WC-Webhook-Topic)"
    key = header(headers, DELIVERY_HEADER)
    if topic not in ORDER_TOPICS:
        return Delivery(
            topic, key, skipped=f"topic {topic} does not convert (order.created and order.updated do)"
        )
    order_id = text(payload.get("id"))
    status = text(payload.get("status"))
    if status in ("refunded", "cancelled"):
        return Delivery(topic, key, skipped=f"order {order_id} {status}: recorded, not sent")
    if status not in PAID_STATUSES:
        return Delivery(
            topic,
            key,
            skipped=f"order {order_id} not paid (status {status}): it converts once processing or completed",
        )
    return Delivery(topic, key, event=purchase(payload))


def purchase(order: dict[str, Any]) -> dict[str, Any]:
    """The xgate ``purchase`` event of a WooCommerce order (the module's table)."""
    billing = as_dict(order.get("billing"))
    meta = {m.get("key"): m.get("value") for m in as_list(order.get("meta_data")) if isinstance(m, dict)}
    twclid = twclid_in(
        *(text(meta.get(key)) for key in TWCLID_META),
        urls=(text(meta.get(ATTRIBUTION_ENTRY_META)),),
    )
    items = [_item(line) for line in as_list(order.get("line_items"))]
    return prune(
        {
            "event_name": "purchase",
            "id": text(order.get("id")),
            "value": money(order.get("total")),
            "currency": text(order.get("currency")),
            "items": [i for i in items if i],
            "user": {
                "id": _nonzero(order.get("customer_id")),
                "email": text(billing.get("email")),
                "phone": text(billing.get("phone")),
            },
            "context": {
                "event_timestamp": text(order.get("date_paid_gmt")) or text(order.get("date_created_gmt")),
                "ip": text(order.get("customer_ip_address")),
                "user_agent": text(order.get("customer_user_agent")),
            },
            "partners": {"twitter": {"twclid": twclid}},
        }
    )


def _item(line: Any) -> dict[str, Any] | None:
    if not isinstance(line, dict):
        return None
    product_id = _nonzero(line.get("product_id"))
    return prune(
        {
            "id": _nonzero(line.get("variation_id")) or product_id,
            "quantity": count(line.get("quantity")),
            "price": money(line.get("price")),
            "product": {"name": text(line.get("name")), "group_id": product_id},
        }
    )


def _nonzero(value: Any) -> str | None:
    """An id, where WooCommerce writes 0 for none (a guest's customer_id, a simple product's variation_id)."""
    found = text(value)
    return None if found == "0" else found


class WooCommerceKind(WebhookKind):
    """WooCommerce's order webhooks at ``POST /webhooks/woocommerce`` (see the module's docstring)."""

    name: ClassVar[str] = "woocommerce"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("/webhooks/woocommerce", summary="WooCommerce order webhooks (X-WC-Webhook-Signature)"),
    )
    event_names: ClassVar[Mapping[str, str]] = dict.fromkeys(sorted(ORDER_TOPICS), "purchase")
    secret_name: ClassVar[str] = "the webhook's secret"
    topic_header: ClassVar[str | None] = TOPIC_HEADER
    file_topic: ClassVar[str | None] = "order.updated"

    def accepts_unsigned(self, inbound: Inbound) -> bool:
        return is_ping(inbound.body, inbound.headers)

    def verify(self, inbound: Inbound, secret: str, source: Source) -> None:
        verify(inbound.body, inbound.headers, secret)

    def read(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
        return read(payload, headers)


KIND = register(WooCommerceKind())
