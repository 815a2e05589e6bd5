"""Stripe's payment events as xgate purchases (docs/sources.md, "Stripe").

Signature: ``Stripe-Signature: t=TIMESTAMP,v1=HEX[,v1=…]``, HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with
the endpoint's signing secret (``whsec_…``), refused when ``t`` is older than the tolerance (Stripe's
default, 300 s; the source's ``tolerance_seconds``). Checked by Stripe's own library
(``stripe.WebhookSignature.verify_header``, what ``stripe.Webhook.construct_event`` runs); this module, and
so the library, is imported only by a gateway with a Stripe source.

Idempotency: the event's ``id`` (``evt_…``), the same on every retry. Conversion id: the PaymentIntent's
id (``pi_…``; a session's ``payment_intent``), so an account that sends both
``checkout.session.completed`` and ``payment_intent.succeeded`` for one payment queues one conversion.

Event types: ``checkout.session.completed`` and ``checkout.session.async_payment_succeeded`` convert when
the session's ``payment_status`` is ``paid``; ``payment_intent.succeeded`` converts; ``charge.refunded``
is recorded as skipped, as are failed payments, unpaid sessions and test-mode events (``livemode`` false).

What is read (all of it overridable by the source's ``mapping``, as dotted paths into the event, such as
``data.object.client_reference_id``):

============================  ========================================================================
xgate event                   Stripe event (``data.object`` is the Checkout Session or PaymentIntent)
============================  ========================================================================
``id``                        session: ``payment_intent``, else the session's ``id``; PaymentIntent: ``id``
``value``                     session: ``amount_total``; PaymentIntent: ``amount_received``; in the
                              currency's minor units (cents; none for JPY and the other zero-decimal
                              currencies; thousandths for BHD, JOD, KWD, OMR, TND)
``currency``                  ``currency``, upper-cased
``items``                     none: Stripe leaves a session's ``line_items`` out of its events
``user.id``                   ``customer`` (never sent to X)
``user.email``                session: ``customer_details.email``, else ``customer_email``;
                              PaymentIntent: ``receipt_email``
``user.phone``                session: ``customer_details.phone``; PaymentIntent: ``shipping.phone``
``context.event_timestamp``   the event's ``created`` (when Stripe recorded the payment)
``partners.twitter.twclid``   ``metadata.twclid`` (set it when creating the session or PaymentIntent)
============================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import stripe

from xgate.collect.kinds import Endpoint, Inbound, prune, register, text
from xgate.collect.kinds.webhooks import Delivery, WebhookKind, as_dict, header, money, twclid_in
from xgate.config import Source, StripeSource
from xgate.errors import WebhookSignatureError

SIGNATURE_HEADER = "Stripe-Signature"
#: seconds a signature's timestamp may lag behind the clock: Stripe's own default
DEFAULT_TOLERANCE_SECONDS = 300

SESSION_PAID = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
PAYMENT_SUCCEEDED = "payment_intent.succeeded"
CONVERTING = SESSION_PAID | {PAYMENT_SUCCEEDED}
FAILED = frozenset(
    {"checkout.session.async_payment_failed", "payment_intent.payment_failed", "payment_intent.canceled"}
)

#: currencies Stripe counts in whole units (docs.stripe.com/currencies, "Zero-decimal currencies")
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
#: currencies Stripe counts in thousandths (docs.stripe.com/currencies, "Three-decimal currencies")
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def minor_units(currency: str | None) -> int:
    """How many decimal places Stripe's integer amounts in ``currency`` carry (2 unless listed above)."""
    code = (currency or "").upper()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def verify(
    raw: bytes, headers: Mapping[str, str], secret: str, *, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
) -> None:
    """Raise :class:`~xgate.errors.WebhookSignatureError` unless ``Stripe-Signature`` signs ``raw`` with
    ``secret`` and its timestamp is at most ``tolerance_seconds`` old (Stripe's library decides)."""
    presented = header(headers, SIGNATURE_HEADER)
    if presented is None:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER}: missing; Stripe signs every event with it")
    try:
        stripe.WebhookSignature.verify_header(raw, presented, secret, tolerance_seconds)
    except stripe.SignatureVerificationError as e:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER}: {e.user_message or e}") from None
    except UnicodeDecodeError:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER}: the body is not UTF-8 text") from None


def read(payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
    """The purchase of a successful payment, or why this event does not convert (see the module's table)."""
    del headers  # all Stripe says is in the event itself
    kind = text(payload.get("type")) or "(no type)"
    key = text(payload.get("id"))
    obj = as_dict(as_dict(payload.get("data")).get("object"))
    object_id = text(obj.get("id"))
    if payload.get("livemode") is False:
        return Delivery(
            kind, key, skipped=f"{kind} {object_id} is a test-mode event (livemode false): not sent"
        )
    if kind == "charge.refunded":
        return Delivery(
            kind,
            key,
            skipped=f"charge {object_id} of payment {_id_of(obj.get('payment_intent'))} refunded: "
            "recorded, not sent",
        )
    if kind in FAILED:
        return Delivery(kind, key, skipped=f"{kind}: payment {object_id} did not succeed, not sent")
    if kind in SESSION_PAID:
        status = obj.get("payment_status")
        if status != "paid":
            return Delivery(
                kind,
                key,
                skipped=f"checkout session {object_id} not paid (payment_status {status}): "
                "checkout.session.async_payment_succeeded converts it once paid",
            )
        return Delivery(kind, key, event=session_purchase(obj, payload.get("created")))
    if kind == PAYMENT_SUCCEEDED:
        return Delivery(kind, key, event=payment_purchase(obj, payload.get("created")))
    return Delivery(
        kind,
        key,
        skipped=f"event type {kind} does not convert "
        "(checkout.session.completed and payment_intent.succeeded do)",
    )


def session_purchase(session: dict[str, Any], created: Any) -> dict[str, Any]:
    """The xgate ``purchase`` event of a paid Checkout Session (``created``: the event's, epoch seconds)."""
    details = as_dict(session.get("customer_details"))
    currency = text(session.get("currency"))
    return _purchase(
        conversion_id=_id_of(session.get("payment_intent")) or text(session.get("id")),
        value=money(session.get("amount_total"), minor_units=minor_units(currency)),
        currency=currency,
        customer=session.get("customer"),
        email=text(details.get("email")) or text(session.get("customer_email")),
        phone=text(details.get("phone")),
        metadata=as_dict(session.get("metadata")),
        created=created,
    )


def payment_purchase(intent: dict[str, Any], created: Any) -> dict[str, Any]:
    """The xgate ``purchase`` event of a succeeded PaymentIntent (``created``: the event's, epoch seconds)."""
    currency = text(intent.get("currency"))
    received = intent.get("amount_received")
    return _purchase(
        conversion_id=text(intent.get("id")),
        value=money(
            received if received is not None else intent.get("amount"), minor_units=minor_units(currency)
        ),
        currency=currency,
        customer=intent.get("customer"),
        email=text(intent.get("receipt_email")),
        phone=text(as_dict(intent.get("shipping")).get("phone")),
        metadata=as_dict(intent.get("metadata")),
        created=created,
    )


def _purchase(
    *,
    conversion_id: str | None,
    value: Any,
    currency: str | None,
    customer: Any,
    email: str | None,
    phone: str | None,
    metadata: dict[str, Any],
    created: Any,
) -> dict[str, Any]:
    created_ms = created * 1000 if isinstance(created, int) and not isinstance(created, bool) else None
    return prune(
        {
            "event_name": "purchase",
            "id": conversion_id,
            "value": value,
            "currency": currency.upper() if currency else None,
            "user": {"id": _id_of(customer), "email": email, "phone": phone},
            "context": {"event_timestamp": created_ms},
            "partners": {"twitter": {"twclid": twclid_in(text(metadata.get("twclid")))}},
        }
    )


def _id_of(value: Any) -> str | None:
    """An object reference as Stripe sends it: its id, or the expanded object whose ``id`` it is."""
    return text(value.get("id")) if isinstance(value, dict) else text(value)


class StripeKind(WebhookKind):
    """Stripe's events at ``POST /webhooks/stripe`` (see the module's docstring)."""

    name: ClassVar[str] = "stripe"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("/webhooks/stripe", summary="Stripe events (Stripe-Signature)"),
    )
    event_names: ClassVar[Mapping[str, str]] = dict.fromkeys(sorted(CONVERTING), "purchase")
    secret_name: ClassVar[str] = "the endpoint's signing secret (whsec_…)"

    def verify(self, inbound: Inbound, secret: str, source: Source) -> None:
        tolerance = (
            source.tolerance_seconds if isinstance(source, StripeSource) else DEFAULT_TOLERANCE_SECONDS
        )
        verify(inbound.body, inbound.headers, secret, tolerance_seconds=tolerance)

    def read(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Delivery:
        return read(payload, headers)


KIND = register(StripeKind())
