"""The ``segment`` kind: Segment's HTTP tracking API, so analytics.js, analytics-python, analytics-node and
RudderStack's SDKs send to xgate by changing their host.

Endpoints, authentication and message shapes are Segment's ("HTTP API Source", segment.com/docs): ``POST
/v1/track``, ``/v1/page``, ``/v1/identify``, ``/v1/screen``, ``/v1/group``, ``/v1/alias`` (one message;
its ``type`` is the path's), ``/v1/batch`` and ``/v1/import`` (``{"batch": [...]}``, messages with
``type``), and analytics.js's short paths ``/v1/t``, ``/v1/p``, ``/v1/i``, ``/v1/s``, ``/v1/g``, ``/v1/a``,
``/v1/b``; and RudderStack's beacon batch, ``/beacon/v1/batch?writeKey=KEY`` (what its JavaScript SDK's
``useBeacon`` sends with ``navigator.sendBeacon``: no header can go with it, so the key is in the URL). The
write key is the HTTP Basic user name (password empty), the body's ``writeKey`` or the ``writeKey`` query
parameter, as Segment and RudderStack take it. analytics.js also posts its own delivery metrics to
``/v1/m`` (``{"series": [...]}``, no key): answered ``204``, not read
(:attr:`~xgate.collect.kinds.Endpoint.telemetry`).

One message becomes at most one xgate event (:func:`convert`, docs/sources.md's table): ``track`` calls by
Segment's E-commerce spec v2 (``Order Completed`` → ``purchase`` …), B2B SaaS spec (``Signed Up``, ``Trial
Started``) and the lead names; ``page`` calls → ``page_view``; ``identify``, ``group``, ``alias``,
``screen``, ``Order Refunded`` and ``Order Cancelled`` convert to nothing. ``messageId`` is the idempotency
key: a message sent twice queues its conversion once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson

from xgate.collect.kinds import (
    Converted,
    Endpoint,
    Ignored,
    Inbound,
    Keyed,
    Outcome,
    Refusal,
    first,
    number,
    prune,
    register,
    text,
)
from xgate.config import Source

#: Segment's event names (E-commerce spec v2, B2B SaaS spec) -> xgate event names
EVENT_NAMES: dict[str, str] = {
    "Order Completed": "purchase",
    "Product Added": "add_to_cart",
    "Product Viewed": "view_item",
    "Checkout Started": "begin_checkout",
    "Payment Info Entered": "add_payment_info",
    "Product Added to Wishlist": "add_to_wishlist",
    "Products Searched": "search",
    "Signed Up": "sign_up",
    "Trial Started": "start_trial",
    "Lead": "generate_lead",
    "Lead Generated": "generate_lead",
    "Form Submitted": "generate_lead",
}
#: track events that undo a conversion: recorded (in the report and the log), never sent as one
NOT_CONVERSIONS = {
    "Order Refunded": "a refund is not a conversion: recorded, not sent",
    "Order Cancelled": "a cancellation is not a conversion: recorded, not sent",
}
#: events about one product, whose properties are the product itself (spec v2)
SINGLE_PRODUCT = frozenset({"Product Viewed", "Product Added", "Product Added to Wishlist"})
#: message types by endpoint (analytics.js posts to the first letter)
_TYPES = {
    "track": "track",
    "t": "track",
    "page": "page",
    "p": "page",
    "identify": "identify",
    "i": "identify",
    "screen": "screen",
    "s": "screen",
    "group": "group",
    "g": "group",
    "alias": "alias",
    "a": "alias",
}
_BATCH = ("batch", "import", "b")


def _basic_user(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _body_write_key(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = data.get("writeKey") if isinstance(data, dict) else None
    return key if isinstance(key, str) and key else None


def _product(p: Mapping[str, Any]) -> dict[str, Any]:
    """A spec v2 product as an xgate item: ``product_id`` (else ``sku``) is the id; ``category`` the first
    category; ``sku``, ``brand`` and ``variant`` kept for a destination's overrides."""
    product_id = text(first(p.get("product_id"), p.get("sku"), p.get("id")))
    quantity = number(p.get("quantity"))
    return prune(
        {
            "id": product_id,
            "quantity": int(quantity) if quantity is not None and quantity >= 0 else None,
            "price": number(p.get("price")),
            "product": {
                "id": product_id,
                "name": p.get("name") if isinstance(p.get("name"), str) else None,
                "category_1": p.get("category") if isinstance(p.get("category"), str) else None,
                "sku": text(p.get("sku")),
                "brand": p.get("brand") if isinstance(p.get("brand"), str) else None,
                "variant": p.get("variant") if isinstance(p.get("variant"), str) else None,
            },
        }
    )


def _consent(context: Mapping[str, Any]) -> list[str] | None:
    """Segment's ``context.consent.categoryPreferences`` (category id -> bool) as the granted categories,
    lower case (``Advertising`` grants xgate's default ``advertising``)."""
    consent = context.get("consent")
    prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(prefs, dict):
        return None
    return sorted(str(k).lower() for k, v in prefs.items() if v is True)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def convert_message(message: Mapping[str, Any], names: Mapping[str, str]) -> Outcome:
    """One Segment message as one xgate event, or why it is none (docs/sources.md, "segment")."""
    kind = message.get("type")
    event_name = message.get("event")
    if kind == "track":
        if not isinstance(event_name, str) or not event_name:
            return Ignored(None, "a track call without an event name")
        if event_name in NOT_CONVERSIONS and event_name not in names:
            return Ignored(event_name, NOT_CONVERSIONS[event_name])
        name = names.get(event_name, event_name)
    elif kind == "page":
        name = names.get("page", "page_view")
    else:
        label = str(kind) if kind else "a message without a type"
        return Ignored(str(kind) if kind else None, f"{label} calls carry no conversion")
    context = _dict(message.get("context"))
    properties = _dict(message.get("properties"))
    traits = {**_dict(message.get("traits")), **_dict(context.get("traits"))}
    page = _dict(context.get("page"))
    if kind == "track" and event_name in SINGLE_PRODUCT:
        items = [_product(properties)]
        price, quantity = number(properties.get("price")), number(properties.get("quantity"))
        value = first(
            number(properties.get("value")),
            price * (quantity if quantity is not None else 1) if price is not None else None,
        )
    else:
        products = properties.get("products")
        items = [_product(p) for p in products if isinstance(p, dict)] if isinstance(products, list) else []
        value = first(number(properties.get("total")), number(properties.get("value")))
    query = properties.get("query")
    event = prune(
        {
            "event_name": name,
            "id": text(properties.get("order_id")),
            "value": value,
            "revenue": number(properties.get("revenue")),
            "currency": properties.get("currency") if isinstance(properties.get("currency"), str) else None,
            "search_term": query if isinstance(query, str) else None,
            "items": [i for i in items if i],
            "user": {
                "id": text(message.get("userId")),
                "email": first(traits.get("email"), properties.get("email")),
                "phone": first(traits.get("phone"), properties.get("phone")),
                "consent_categories": _consent(context),
            },
            "context": {
                "event_timestamp": first(message.get("timestamp"), message.get("originalTimestamp")),
                "ip": context.get("ip"),
                "user_agent": context.get("userAgent"),
                "page_url": first(page.get("url"), properties.get("url") if kind == "page" else None),
            },
        }
    )
    consent = _consent(context)
    if consent == []:  # no category granted is an answer, not an absence
        event.setdefault("user", {})["consent_categories"] = []
    return Converted(event, dict(message), text(message.get("messageId")))


class SegmentKind:
    """Segment's tracking API (see the module's docstring)."""

    name: ClassVar[str] = "segment"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        *(
            Endpoint(f"/v1/{path}", summary=f"Segment {_TYPES.get(path, 'batch')} call")
            for path in (*_TYPES, *_BATCH)
        ),
        Endpoint("/beacon/v1/batch", summary="RudderStack's beacon batch (?writeKey=)"),
        Endpoint("/v1/m", summary="analytics.js's delivery metrics: answered, not stored", telemetry=True),
    )
    event_names: ClassVar[Mapping[str, str]] = EVENT_NAMES
    unmatched_ok: ClassVar[bool] = True  # Segment answers 200 to every well-formed call

    def authenticate(self, inbound: Inbound, sources: Sequence[Keyed]) -> Source | Refusal:
        key = (
            _basic_user(inbound.headers.get("authorization"))
            or _body_write_key(inbound.body)
            or inbound.query.get("writeKey")
        )
        if key:
            presented = key.encode()
            found: Source | None = None
            for keyed in sources:  # every key compared, in constant time
                if keyed.secret and hmac.compare_digest(keyed.secret.encode(), presented):
                    found = keyed.source
            if found is not None:
                return found
        return Refusal(
            401,
            "unauthorized",
            "unknown or missing write key: send a segment source's write key as the HTTP Basic user "
            "(Authorization: Basic base64(KEY:)), as the body's writeKey or as ?writeKey=",
        )

    def messages(self, inbound: Inbound) -> list[Any] | Refusal:
        endpoint = inbound.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            data = orjson.loads(inbound.body)
        except orjson.JSONDecodeError as e:
            return Refusal(400, "invalid_json", f"body: not valid JSON ({e})")
        if not isinstance(data, dict):
            return Refusal(400, "invalid_body", "body: must be a JSON object (a Segment message or batch)")
        if endpoint in _BATCH:
            return _batch(data)
        return [{**data, "type": _TYPES[endpoint]}]

    def read_file(self, data: bytes) -> list[Any] | Refusal:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            return Refusal(400, "invalid_json", f"not valid JSON ({e})")
        if isinstance(parsed, dict) and "batch" in parsed:
            return _batch(parsed)
        messages = parsed if isinstance(parsed, list) else [parsed]
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("type"), str):
                return Refusal(400, "invalid_body", f"message {i}: a Segment message with its type")
        return messages

    def convert(self, message: Any, names: Mapping[str, str]) -> list[Outcome]:
        return [convert_message(message, names)]


def _batch(data: dict[str, Any]) -> list[Any] | Refusal:
    """The messages of a batch body; the batch's own ``context`` under each message's (Segment's
    ``/v1/batch`` takes one for all)."""
    batch = data.get("batch")
    if not isinstance(batch, list) or not batch:
        return Refusal(400, "invalid_batch", "batch: must be a non-empty array of Segment messages")
    shared = _dict(data.get("context"))
    out: list[Any] = []
    for i, message in enumerate(batch):
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return Refusal(400, "invalid_batch", f"batch[{i}]: must be a Segment message with its type")
        if shared:
            message = {**message, "context": {**shared, **_dict(message.get("context"))}}
        out.append(message)
    return out


KIND = register(SegmentKind())
