"""The ``ga4`` kind: GA4 event data as gtag and server-side GTM carry it, so a site's ``transport_url`` /
``server_container_url`` (or an sGTM HTTP request tag) can point at xgate.

- ``POST /mp/collect?api_secret=KEY``: a Measurement Protocol body (``client_id``, ``user_id``,
  ``timestamp_micros``, ``user_data``, ``events[{name, params}]``); the ``api_secret`` is the source's write
  key.
- ``GET|POST /g/collect?v=2&tid=G-…&en=…``: gtag's hits; the query holds the shared parameters and each
  line of a POST body one event's (``en`` the name, ``ep.NAME`` / ``epn.NAME`` text / number parameters,
  ``cu`` the currency, ``dl`` the page, ``uid`` the user id, ``pr1``… the items as
  ``idSKU~nmName~pr9.99~qt1``). Taken for a source whose ``measurement_ids`` hold ``tid``, from its
  ``allowed_origins``.

Both become sGTM's event data (one flat dict per event: ``event_name``, the parameters, ``user_data``,
``page_location``, ``ip_override``, ``user_agent`` …), which :func:`convert_event_data` maps as X's
server-side tag reads it (docs/sources.md, "ga4"): ``transaction_id`` (else ``event_id``) → conversion id,
``value``, ``currency``, ``items[]``, ``user_data`` e-mail and phone, plain or ``sha256_`` (passed on as
hashed), ``page_location`` and its twclid, ``ip_override``, ``user_agent``, ``conversion_timestamp`` in
epoch milliseconds (else ``timestamp_micros``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from xgate.collect.kinds import (
    Converted,
    Endpoint,
    Ignored,
    Inbound,
    Keyed,
    Outcome,
    Refusal,
    first,
    json_object,
    number,
    prune,
    register,
    text,
)
from xgate.config import GA4Source, Source

#: GA4's recommended event names that xgate names alike (REFERENCE.md); others are kept as custom events
EVENT_NAMES: dict[str, str] = {
    name: name
    for name in (
        "purchase",
        "add_to_cart",
        "view_item",
        "page_view",
        "begin_checkout",
        "add_payment_info",
        "add_to_wishlist",
        "generate_lead",
        "sign_up",
        "search",
    )
}
NOT_CONVERSIONS = {"refund": "a refund is not a conversion: recorded, not sent"}
#: gtag's item fields (``pr1=idSKU~nmName~…``) -> GA4 item parameters
_ITEM_KEYS = {
    "id": "item_id",
    "nm": "item_name",
    "pr": "price",
    "qt": "quantity",
    "ca": "item_category",
    "c2": "item_category2",
    "c3": "item_category3",
    "c4": "item_category4",
    "c5": "item_category5",
    "br": "item_brand",
    "va": "item_variant",
}
_CATEGORIES = ("item_category", "item_category2", "item_category3", "item_category4", "item_category5")


def _one(value: Any) -> Any:
    """The Measurement Protocol's ``sha256_email_address[]`` and the like are arrays: their first entry."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _item(item: Mapping[str, Any]) -> dict[str, Any]:
    item_id = text(item.get("item_id"))
    quantity = number(item.get("quantity"))
    categories = {
        f"category_{i}": item.get(key) if isinstance(item.get(key), str) else None
        for i, key in enumerate(_CATEGORIES, start=1)
    }
    return prune(
        {
            "id": item_id,
            "quantity": int(quantity) if quantity is not None and quantity >= 0 else None,
            "price": number(item.get("price")),
            "product": {
                "id": item_id,
                "name": item.get("item_name") if isinstance(item.get("item_name"), str) else None,
                **categories,
            },
        }
    )


def _timestamp(data: Mapping[str, Any]) -> int | None:
    """When it happened, in epoch ms: ``conversion_timestamp`` (ms), else ``timestamp_micros``."""
    ms = number(data.get("conversion_timestamp"))
    if ms is not None:
        return int(ms)
    micros = number(data.get("timestamp_micros"))
    return int(micros // 1000) if micros is not None else None


def convert_event_data(data: Mapping[str, Any], names: Mapping[str, str]) -> Outcome:
    """One event's data (sGTM's event data model) as an xgate event, or why it is none."""
    name = data.get("event_name")
    if not isinstance(name, str) or not name:
        return Ignored(None, "an event without a name")
    if name in NOT_CONVERSIONS and name not in names:
        return Ignored(name, NOT_CONVERSIONS[name])
    user_data = data.get("user_data") if isinstance(data.get("user_data"), dict) else {}
    assert isinstance(user_data, dict)
    items = data.get("items")
    currency = data.get("currency")
    search = data.get("search_term")
    event = prune(
        {
            "event_name": names.get(name, name),
            "id": text(first(data.get("transaction_id"), data.get("event_id"))),
            "value": number(data.get("value")),
            "currency": currency if isinstance(currency, str) else None,
            "search_term": search if isinstance(search, str) else None,
            "items": [i for i in (_item(x) for x in items if isinstance(x, dict)) if i]
            if isinstance(items, list)
            else None,
            "user": {
                "id": text(data.get("user_id")),
                "email": first(
                    _one(user_data.get("email_address")), _one(user_data.get("sha256_email_address"))
                ),
                "phone": first(
                    _one(user_data.get("phone_number")), _one(user_data.get("sha256_phone_number"))
                ),
            },
            "context": {
                "event_timestamp": _timestamp(data),
                "ip": first(data.get("ip_override")),
                "user_agent": first(data.get("user_agent")),
                "page_url": data.get("page_location") if isinstance(data.get("page_location"), str) else None,
            },
            "partners": {"twitter": {"twclid": text(data.get("twclid"))}},
        }
    )
    return Converted(event, dict(data))


def mp_event_data(body: Mapping[str, Any]) -> list[dict[str, Any]] | Refusal:
    """A Measurement Protocol body as one event data dict per event: the event's params, its name, and the
    body's ``client_id``, ``user_id``, ``user_data`` and ``timestamp_micros`` (the event's own first)."""
    events = body.get("events")
    if not isinstance(events, list) or not events:
        return Refusal(400, "invalid_body", "events: must be a non-empty array of {name, params}")
    out: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("name"), str):
            return Refusal(400, "invalid_body", f"events[{i}]: must be an object with a name")
        params = event.get("params")
        data: dict[str, Any] = {
            "client_id": body.get("client_id"),
            "user_id": body.get("user_id"),
            "user_data": body.get("user_data"),
            "timestamp_micros": first(event.get("timestamp_micros"), body.get("timestamp_micros")),
            **(params if isinstance(params, dict) else {}),
            "event_name": event["name"],
        }
        out.append({k: v for k, v in data.items() if v is not None})
    return out


def _gtag_item(spec: str) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for part in spec.split("~"):
        key = _ITEM_KEYS.get(part[:2])
        if key and len(part) > 2:
            item[key] = part[2:]
    return item


def hit_event_data(params: Mapping[str, str]) -> dict[str, Any]:
    """One gtag hit's parameters as event data, as sGTM's GA4 client reads them."""
    data: dict[str, Any] = {}
    items: list[tuple[int, dict[str, Any]]] = []
    for key, value in params.items():
        if key.startswith("ep."):
            data[key[3:]] = value
        elif key.startswith("epn."):
            data[key[4:]] = number(value)
        elif key.startswith("pr") and key[2:].isdigit():
            items.append((int(key[2:]), _gtag_item(value)))
    simple = {
        "en": "event_name",
        "cid": "client_id",
        "uid": "user_id",
        "cu": "currency",
        "dl": "page_location",
        "_uip": "ip_override",
    }
    for key, name in simple.items():
        if params.get(key):
            data[name] = params[key]
    if items:
        data["items"] = [item for _, item in sorted(items)]
    return data


class GA4Kind:
    """GA4 event data (see the module's docstring)."""

    name: ClassVar[str] = "ga4"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("/mp/collect", summary="GA4 Measurement Protocol events"),
        Endpoint("/g/collect", ("GET", "POST"), summary="gtag's GA4 hits (transport_url)"),
    )
    event_names: ClassVar[Mapping[str, str]] = EVENT_NAMES
    unmatched_ok: ClassVar[bool] = True  # GA4's own endpoints answer 2xx to every well-formed hit

    def authenticate(self, inbound: Inbound, sources: Sequence[Keyed]) -> Source | Refusal:
        if inbound.path.rstrip("/").endswith("/g/collect"):
            tid = inbound.query.get("tid")
            for keyed in sources:
                if isinstance(keyed.source, GA4Source) and tid and tid in keyed.source.measurement_ids:
                    return keyed.source
            return Refusal(
                401,
                "unauthorized",
                "tid: not a measurement id of a ga4 source (list it in the source's measurement_ids)",
            )
        secret = inbound.query.get("api_secret")
        found: Source | None = None
        if secret:
            for keyed in sources:  # every key compared, in constant time
                if keyed.secret and hmac.compare_digest(keyed.secret.encode(), secret.encode()):
                    found = keyed.source
        if found is None:
            return Refusal(
                401,
                "unauthorized",
                "api_secret: unknown or missing; send a ga4 source's write key as ?api_secret=",
            )
        return found

    def messages(self, inbound: Inbound) -> list[Any] | Refusal:
        if inbound.path.rstrip("/").endswith("/g/collect"):
            return _hits(inbound.query, inbound.body)
        return self.read_file(inbound.body)

    def read_file(self, data: bytes) -> list[Any] | Refusal:
        text_ = data.decode("utf-8", "replace").strip()
        if not text_.startswith("{"):  # a gtag hit: its URL or query string
            line = text_.splitlines()[0] if text_ else ""
            return _hits(dict(parse_qsl(line.split("?", 1)[1] if "?" in line else line)), b"")
        body = json_object(data, "a Measurement Protocol object")
        return body if isinstance(body, Refusal) else mp_event_data(body)

    def convert(self, message: Any, names: Mapping[str, str]) -> list[Outcome]:
        return [convert_event_data(message, names)]


def _hits(shared: Mapping[str, str], body: bytes) -> list[Any] | Refusal:
    """The hits of a request: one per body line over the query's shared parameters, else the query's
    alone (the client's IP and user agent come from the request, for a source that takes them)."""
    lines = [line for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
    hits = [{**shared, **dict(parse_qsl(line))} for line in lines] or [dict(shared)]
    out = []
    for i, hit in enumerate(hits):
        if not hit.get("en"):
            return Refusal(400, "invalid_hit", f"hit {i}: en (the event name) is missing")
        out.append(hit_event_data(hit))
    return out


KIND = register(GA4Kind())
