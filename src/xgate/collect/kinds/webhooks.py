"""What the commerce platforms' order webhooks (``shopify``, ``woocommerce``, ``stripe``) share: a signature
over the raw body, checked before anything is read, and a delivery that becomes one purchase or is recorded
as skipped with its reason (docs/sources.md).

Each platform module holds pure functions, tested row by row, and a :class:`WebhookKind` subclass naming
them:

- ``verify(raw, headers, secret)``: raises :class:`~xgate.errors.WebhookSignatureError` unless the
  platform's signature header signs the raw body as the platform documents it; the kind answers 401 and
  stores nothing;
- ``read(payload, headers)``: the :class:`Delivery` — the xgate ``purchase`` event of a paid order (or
  payment), or the reason nothing converts (unpaid, refunded, cancelled, another topic) — with the
  platform's id of the delivery (its idempotency key).

A redelivery maps to the same conversion id (the order's or payment's id), so the outbox, keyed by pixel,
X event and conversion id, queues nothing new for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import orjson

from xgate.collect.kinds import Converted, Endpoint, Ignored, Inbound, Keyed, Outcome, Refusal, json_object
from xgate.config import Source
from xgate.errors import WebhookSignatureError
from xgate.tag.twclid import clean_twclid, twclid_from_url

__all__ = [
    "Delivery",
    "WebhookKind",
    "WebhookMessage",
    "as_dict",
    "as_list",
    "count",
    "header",
    "hmac_sha256_base64",
    "money",
    "twclid_in",
    "verify_base64_hmac",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one verified webhook delivery became.

    ``event``: the xgate ``purchase`` event (REFERENCE.md's shape), or None when nothing converts;
    ``skipped``: then the reason, for the response, the log and the metrics (never personal data);
    ``key``: the platform's id of this delivery or event (the same on a redelivery), None when it sent none;
    ``topic``: the platform's name for what happened (``orders/paid``, ``order.updated``,
    ``checkout.session.completed``): the kind's ``event_names`` name the xgate event by it.
    """

    topic: str
    key: str | None
    event: dict[str, Any] | None = None
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """A verified delivery between :meth:`WebhookKind.messages` and :meth:`WebhookKind.convert`: the parsed
    body and the request headers the platform puts the topic and delivery id in (lower-case names)."""

    payload: dict[str, Any]
    headers: Mapping[str, str]


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in any case, stripped; None when absent or blank."""
    lowered = name.lower()
    value = headers.get(lowered)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    value = value.strip() if value else None
    return value or None


def hmac_sha256_base64(secret: str, raw: bytes) -> str:
    """Base64 of HMAC-SHA256(``raw``) keyed with the UTF-8 bytes of ``secret``: the digest Shopify sends in
    ``X-Shopify-Hmac-Sha256`` and WooCommerce in ``X-WC-Webhook-Signature``."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def verify_base64_hmac(raw: bytes, presented: str | None, secret: str, header_name: str) -> None:
    """Raise :class:`WebhookSignatureError` unless ``presented`` is :func:`hmac_sha256_base64` of ``raw``
    (compared in constant time). The message names the header, never the secret or a digest."""
    if not presented:
        raise WebhookSignatureError(f"{header_name}: missing; the platform signs every delivery with it")
    expected = hmac_sha256_base64(secret, raw)
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise WebhookSignatureError(
            f"{header_name}: does not match the body signed with the source's secret "
            "(another secret, or the body was changed on the way)"
        )


def money(value: Any, *, minor_units: int = 0) -> Any:
    """A money amount as a float: decimal text (``"199.00"``, as Shopify and WooCommerce write them) or a
    number; with ``minor_units``, an integer count of the currency's smallest unit (Stripe's
    ``amount_total``) divided by 10**minor_units. None when absent. Anything else is returned as it came, so
    that the event's validation refuses it naming the field (``value``, ``items.0.price``)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return value
    if not number.is_finite():
        return value
    return float(number.scaleb(-minor_units))


def twclid_in(*candidates: str | None, urls: Sequence[str | None] = ()) -> str | None:
    """The first click id found: each candidate as a bare twclid, then each URL's ``twclid`` parameter
    (relative URLs such as Shopify's ``landing_site``, ``/products/x?twclid=…``, included)."""
    for value in candidates:
        found = clean_twclid(value)
        if found:
            return found
    for url in urls:
        found = twclid_from_url(url)
        if found:
            return found
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a part of the wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def count(value: Any) -> int | None:
    """A quantity: a non-negative integer, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class WebhookKind:
    """A platform's webhook endpoint: :meth:`authenticate` verifies the signature with each source's secret,
    :meth:`messages` parses the body, :meth:`convert` reads it. Subclasses name the platform's pieces."""

    name: ClassVar[str]
    endpoints: ClassVar[tuple[Endpoint, ...]]
    event_names: ClassVar[Mapping[str, str]]
    #: an order without any identifier X can match (a shop-counter sale, no e-mail) is answered 200 and kept
    #: as rejected: a 4xx is retried by the platform for days, and endpoints that keep failing get
    #: disabled, though no retry can add the identifier. A value that is wrong is still a 422
    unmatched_ok: ClassVar[bool] = True
    #: the platform's name for its signing secret, for the 401 of a source whose variable is unset
    secret_name: ClassVar[str]
    #: the header the platform names the topic in (None: the body names it) ...
    topic_header: ClassVar[str | None] = None
    #: ... and the topic ``xgate map --source`` reads a file's body as
    file_topic: ClassVar[str | None] = None

    def verify(self, inbound: Inbound, secret: str, source: Source) -> None:
        """Raise :class:`WebhookSignatureError` unless ``inbound`` is signed with ``secret``."""
        raise NotImplementedError

    def read(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
        raise NotImplementedError

    def accepts_unsigned(self, inbound: Inbound) -> bool:
        """Whether this request is one the platform sends unsigned and that stores nothing (a ping)."""
        return False

    def authenticate(self, inbound: Inbound, sources: Sequence[Keyed]) -> Source | Refusal:
        """The source whose secret signs this delivery; 401 naming the header and the reason otherwise."""
        if self.accepts_unsigned(inbound) and sources:
            return sources[0].source
        reasons: list[str] = []
        for keyed in sources:
            if not keyed.secret:
                env = getattr(keyed.source, "signing_secret_env", "?")
                reason = (
                    f"source {keyed.source.name!r} has no signing secret: set {env} to {self.secret_name}"
                )
            else:
                try:
                    self.verify(inbound, keyed.secret, keyed.source)
                except WebhookSignatureError as e:
                    reason = str(e)
                else:
                    return keyed.source
            if reason not in reasons:
                reasons.append(reason)
        return Refusal(401, "bad_signature", "; ".join(reasons) or f"no {self.name} source is configured")

    def messages(self, inbound: Inbound) -> list[Any] | Refusal:
        if self.accepts_unsigned(inbound):
            return []
        payload = json_object(inbound.body)
        if isinstance(payload, Refusal):
            return payload
        return [WebhookMessage(payload, inbound.headers)]

    def read_file(self, data: bytes) -> list[Any] | Refusal:
        """A file holding one delivery's body (or an array of them), read as the :attr:`file_topic`."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            return Refusal(400, "invalid_json", f"not valid JSON ({e})")
        bodies = parsed if isinstance(parsed, list) else [parsed]
        headers = (
            {self.topic_header.lower(): self.file_topic} if self.file_topic and self.topic_header else {}
        )
        messages: list[Any] = []
        for i, body in enumerate(bodies):
            if not isinstance(body, dict):
                return Refusal(
                    400, "invalid_body", f"delivery {i}: must be a JSON object (a {self.name} payload)"
                )
            messages.append(WebhookMessage(body, headers))
        return messages

    def convert(self, message: Any, names: Mapping[str, str]) -> list[Outcome]:
        assert isinstance(message, WebhookMessage)
        delivery = self.read(message.payload, message.headers)
        if delivery.event is None:
            return [Ignored(delivery.topic, delivery.skipped or f"{delivery.topic} does not convert")]
        event = {**delivery.event, "event_name": names.get(delivery.topic, delivery.event["event_name"])}
        return [Converted(event, message.payload, delivery.key)]
