"""Helpers of the webhook source tests: the platforms' payloads (tests/sources/fixtures/, written in each
platform's documented shape) made fresh, and signed the way each platform documents it.

The signers are written from the platforms' documentation, not from xgate's code or Stripe's library, so
that a verifier that drifts from the documented scheme fails these tests.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

SHOPIFY_SECRET = "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"
WOO_SECRET = "wc-hook-secret-8d1e44f0"
STRIPE_SECRET = "whsec_test9Qm2Vx7Lp4Rt8Kz1"


def fixture(name: str) -> dict[str, Any]:
    """A fixture payload, parsed (a fresh copy each call)."""
    return copy.deepcopy(json.loads((FIXTURES / name).read_text()))


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def minutes_ago(minutes: float = 5) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def fresh_shopify(payload: dict[str, Any], when: datetime | None = None) -> dict[str, Any]:
    """The order with its times moved to ``when`` (default: five minutes ago), in Shopify's local-offset
    ISO form, so X's 90-day window never ages a fixture out."""
    when = (when or minutes_ago()).astimezone(datetime.now().astimezone().tzinfo)
    for key in ("created_at", "processed_at", "updated_at"):
        if key in payload:
            payload[key] = when.isoformat(timespec="seconds")
    return payload


def fresh_woo(payload: dict[str, Any], when: datetime | None = None) -> dict[str, Any]:
    """The order with its GMT times moved to ``when`` (WooCommerce's naive ``…_gmt`` form)."""
    when = when or minutes_ago()
    stamp = when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    for key in ("date_created_gmt", "date_modified_gmt", "date_paid_gmt"):
        if payload.get(key):
            payload[key] = stamp
    return payload


def fresh_stripe(payload: dict[str, Any], when: datetime | None = None) -> dict[str, Any]:
    """The event with its ``created`` (epoch seconds) moved to ``when``."""
    payload["created"] = int((when or minutes_ago()).timestamp())
    return payload


def shopify_headers(
    raw: bytes,
    topic: str = "orders/paid",
    webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    secret: str = SHOPIFY_SECRET,
) -> dict[str, str]:
    """Headers as Shopify sends them: X-Shopify-Hmac-Sha256 is base64(HMAC-SHA256(raw, client secret))."""
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": "example-goods.myshopify.com",
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
    }


def woo_headers(
    raw: bytes,
    topic: str = "order.created",
    delivery_id: str = "36e520ebabc2fa725092ff4a47acedf2",
    secret: str = WOO_SECRET,
) -> dict[str, str]:
    """Headers as WC_Webhook::deliver sends them: the signature is base64(HMAC-SHA256(raw, secret))."""
    resource, _, event = topic.partition(".")
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
        "X-WC-Webhook-Source": "https://shop.example.org/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


def stripe_headers(raw: bytes, timestamp: int | None = None, secret: str = STRIPE_SECRET) -> dict[str, str]:
    """Stripe-Signature as docs.stripe.com/webhooks/signature documents it: ``t=TIMESTAMP,v1=HEX`` with
    HEX = hex(HMAC-SHA256("{t}.{raw}", endpoint secret))."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + raw
    v1 = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": f"t={t},v1={v1}",
    }
