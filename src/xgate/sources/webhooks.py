"""What the commerce platforms' order webhooks (Shopify, WooCommerce, Stripe) share: a signature over the
raw body checked before anything is read, and a delivery that becomes one purchase or is recorded as
skipped with its reason.

Each platform module (``shopify``, ``woocommerce``, ``stripe``) holds two pure functions:

- ``verify(raw, headers, secret)``: raises :class:`~xgate.errors.WebhookSignatureError` (answered 401,
  nothing stored) unless the platform's signature header matches the raw body as the platform documents it;
- ``read(payload, headers)``: the :class:`Delivery` — the xgate ``purchase`` event of a paid order, or the
  reason nothing converts (unpaid, refunded, cancelled, another topic) — and its idempotency key.

A redelivery maps to the same conversion id (the order or payment id), so the outbox queues nothing new
for it; the idempotency key (the platform's delivery or event id) names the delivery in logs and lets the
collector recognise one it has already seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from xgate.conversion import FieldError
from xgate.errors import InvalidEvent, WebhookSignatureError
from xgate.tag.twclid import clean_twclid, twclid_from_url

__all__ = [
    "Delivery",
    "amount",
    "as_dict",
    "as_list",
    "compact",
    "count",
    "header",
    "hmac_sha256_base64",
    "text",
    "twclid_in",
    "verify_base64_hmac",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one verified webhook delivery became.

    ``event``: the xgate ``purchase`` event (REFERENCE.md's shape), or None when nothing converts;
    ``skipped``: then the reason, for the response, the log and the metrics (never personal data);
    ``key``: the platform's id of this delivery or event (same on a redelivery), or None when it sent none;
    ``topic``: the platform's name for what happened (``orders/paid``, ``order.updated``,
    ``checkout.session.completed``).
    """

    topic: str
    key: str | None
    event: dict[str, Any] | None = None
    skipped: str | None = None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (any case) or None when absent or blank."""
    value = headers.get(name) or headers.get(name.lower())
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    value = value.strip() if value else None
    return value or None


def hmac_sha256_base64(secret: str, raw: bytes) -> str:
    """Base64 of HMAC-SHA256(``raw``) keyed with the UTF-8 bytes of ``secret``: the digest Shopify sends in
    ``X-Shopify-Hmac-Sha256`` and WooCommerce in ``X-WC-Webhook-Signature``."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def verify_base64_hmac(raw: bytes, presented: str | None, secret: str, header_name: str) -> None:
    """Raise :class:`WebhookSignatureError` unless ``presented`` is :func:`hmac_sha256_base64` of ``raw``
    (compared in constant time). The message names the header, never the secret or the digests."""
    if not presented:
        raise WebhookSignatureError(f"{header_name}: missing; the platform signs every delivery with it")
    expected = hmac_sha256_base64(secret, raw)
    if not hmac.compare_digest(expected.encode(), presented.strip().encode()):
        raise WebhookSignatureError(
            f"{header_name}: does not match the body signed with the source's secret "
            "(a different secret, or the body was changed on the way)"
        )


def text(value: Any) -> str | None:
    """An id or a string field as text: numbers (Shopify and WooCommerce ids) become their digits;
    blank strings, booleans and anything else become None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def amount(value: Any, field: str, *, minor_units: int = 0) -> float | None:
    """A money amount as a float: decimal text (``"199.00"``) or a number; with ``minor_units`` an integer
    count of the currency's smallest unit (Stripe's ``amount_total``) divided by 10**minor_units.

    None when absent; :class:`InvalidEvent` naming ``field`` when present but not an amount."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidEvent([FieldError(field, f"must be a decimal amount, not {type(value).__name__}")])
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidEvent([FieldError(field, f"not a decimal amount: {str(value)[:40]!r}")]) from None
    if not number.is_finite() or number < 0:
        raise InvalidEvent([FieldError(field, f"must be a finite amount ≥ 0, not {str(value)[:40]!r}")])
    return float(number.scaleb(-minor_units))


def twclid_in(*candidates: str | None, urls: tuple[str | None, ...] = ()) -> str | None:
    """The first click id found: each candidate as a bare twclid, then each URL's ``twclid`` parameter
    (relative URLs such as Shopify's ``landing_site`` ``/products/x?twclid=…`` included)."""
    for value in candidates:
        found = clean_twclid(value)
        if found:
            return found
    for url in urls:
        found = twclid_from_url(url)
        if found:
            return found
    return None


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without None values and empty dicts, at every level of nested dicts (lists kept)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = compact(value)
            if not value:
                continue
        if value is None:
            continue
        out[key] = value
    return out


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a payload part of the wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def count(value: Any) -> int | None:
    """A quantity: a non-negative integer, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
