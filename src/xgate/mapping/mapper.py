"""The map stage: one generic event → one X conversion per destination that takes it.

Order per destination: filter → consent → prebuilt mapping (shared/events/REFERENCE.md) → field overrides
→ personal data out of the clear-text fields (:mod:`xgate.mapping.privacy`) → normalize + hash identifiers →
validate by X's rules. The destination-independent part is computed once
per event and shared, with the event's own warnings (a key spelled almost like a known field,
:func:`xgate.event_reader.near_misses`), which every conversion carries.

An unusable value of a field X can do without is dropped with a warning and the conversion kept (an
identifier here, the others by :func:`xgate.validation.drop_unusable`); only what X requires refuses the
event. When no identifier is left, the refusal names each one that was given and why it was unusable.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from xgate.config import Config, Destination, event_id_pixel
from xgate.conversion import FieldError, MappedConversion, MappingResult, Rejection
from xgate.event_reader import EventData, format_x_time, near_misses
from xgate.events import Event, read_event
from xgate.identifiers import hash_email, hash_phone, normalize_ip
from xgate.mapping.filters import ConsentRule, EventFilter
from xgate.mapping.overrides import resolve
from xgate.mapping.privacy import personal_kind, remove_personal_text
from xgate.validation import (
    EVENT_ID,
    MAX_LENGTH,
    drop_unusable,
    text_problem,
    usable_twclid,
    validate_conversion,
)

_USER_AGENT_MAX = MAX_LENGTH["user_agent"]
#: event fields that feed an identifier: dropped ones are named when no identifier is left
_IDENTIFIER_FIELDS = frozenset(
    {"user.email", "user.phone", "partners.twitter.twclid", "context.ip", "context.user_agent"}
)

#: override keys that feed the identifier pipeline instead of a body field
IDENTIFIER_SOURCES = ("twclid", "email", "phone", "ip_address", "user_agent")


class _Sources:
    """Raw identifier sources of one event (never stored: only their hashes leave the mapper)."""

    __slots__ = ("email", "ip_address", "phone", "twclid", "user_agent")

    def __init__(self, twclid: Any, email: Any, phone: Any, ip_address: Any, user_agent: Any) -> None:
        self.twclid = twclid
        self.email = email
        self.phone = phone
        self.ip_address = ip_address
        self.user_agent = user_agent


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


_CATEGORIES = ("category_1", "category_2", "category_3", "category_4", "category_5")


def _content(item: dict[str, Any]) -> dict[str, Any]:
    product: dict[str, Any] | None = item.get("product")
    content: dict[str, Any] = {}
    content_id = item.get("id")
    if not content_id and product:
        content_id = product.get("id")
    if content_id:
        content["content_id"] = content_id
    price = item.get("price")
    if product:
        group = product.get("group_id")
        if group:
            content["content_group_id"] = group
        name = product.get("name")
        if name:
            content["content_name"] = name
        if price is None:
            price = product.get("price")
    if price is not None:
        content["content_price"] = _number(price)
    if product:
        present = []
        for key in _CATEGORIES:
            category = product.get(key)
            if category:
                present.append(category)
        if present:
            content["content_type"] = ">".join(present)
    quantity = item.get("quantity")
    if quantity is not None:
        content["num_items"] = quantity
    return content


def default_body(event: EventData, received_at: datetime) -> dict[str, Any]:
    """X's fields from REFERENCE.md's default mapping, without event_id and identifiers."""
    ctx = event.get("context")
    timestamp = ctx.get("event_timestamp") if ctx else None
    body: dict[str, Any] = {"conversion_time": format_x_time(timestamp or received_at)}
    if event.get("id"):
        body["conversion_id"] = event["id"]
    value = event.get("value")
    if value is None:
        value = event.get("revenue")
    if value is not None:
        body["value"] = _number(value)
    currency = event.get("currency")
    if currency:
        body["price_currency"] = currency.strip().upper()
    items: list[dict[str, Any]] | None = event.get("items")
    if items:
        number_items = 0
        contents = []
        for item in items:
            quantity = item.get("quantity")
            number_items += 1 if quantity is None else quantity
            content = _content(item)
            if content:
                contents.append(content)
        body["number_items"] = number_items
        if contents:
            body["contents"] = contents
    if event.get("type"):
        body["description"] = event["type"]
    if event.get("search_term"):
        body["search_string"] = event["search_term"]
    return body


def _sources(event: EventData) -> _Sources:
    user = event.get("user") or {}
    ctx = event.get("context") or {}
    twitter = (event.get("partners") or {}).get("twitter") or {}
    return _Sources(
        twclid=twitter.get("twclid"),
        email=user.get("email"),
        phone=user.get("phone"),
        ip_address=ctx.get("ip"),
        user_agent=ctx.get("user_agent"),
    )


def stable_conversion_id(event_name: str, conversion_time: str, identifiers: list[dict[str, str]]) -> str:
    """A conversion id for events without ``id``: the same event ingested twice gets the same id."""
    key = "\x1f".join(
        [event_name, conversion_time, *sorted(f"{k}={v}" for i in identifiers for k, v in i.items())]
    )
    return "xg-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class _Plan:
    """One destination, compiled: its filter, event ids, overrides and consent policy."""

    def __init__(self, destination: Destination, config: Config) -> None:
        self.name = destination.name
        self.pixel_id = destination.pixel_id
        self.filter = EventFilter(destination)
        self.consent = ConsentRule(destination.consent)
        self.region = config.identity.default_region
        self.settings = config.x
        self.identifier_overrides = {k: v for k, v in destination.mapping.items() if k in IDENTIFIER_SOURCES}
        self.field_overrides = {
            k: v for k, v in destination.mapping.items() if k not in IDENTIFIER_SOURCES and k != "event_id"
        }
        self.event_id_override = destination.mapping.get("event_id")
        self.restricted_extra = dict(destination.consent.restricted_extra)
        self.allowed_extra = frozenset(self.restricted_extra)

    def routed_event_id(self, event: EventData) -> tuple[str | None, FieldError | None]:
        """The X event id the event names for itself at ``mapping.event_id``'s path (None: it names none),
        or the error that refuses it: not an X event id, or one of another pixel."""
        override = self.event_id_override
        if override is None:
            return None, None
        value, error = resolve("event_id", override, event)
        if error is not None or value is None or value == "":
            return None, error
        where = override.path or "mapping.event_id"
        if not isinstance(value, str) or not EVENT_ID.match(value):
            return None, FieldError(
                where,
                "is not an X event id (tw-PIXEL-EVENT or EVENT: base-36, lower-case letters and digits)",
            )
        pixel = event_id_pixel(value)
        if pixel is not None and pixel != self.pixel_id:
            return None, FieldError(
                where, f"{value!r} belongs to pixel {pixel!r}, not {self.name}'s pixel {self.pixel_id!r}"
            )
        return value, None

    def build(
        self,
        event: EventData,
        base: dict[str, Any],
        sources: _Sources,
        result: MappingResult,
        now: datetime,
        dropped: list[FieldError],
    ) -> None:
        """Add this destination's conversion, rejection or skip to ``result``; the conversion's warnings
        start with the event's own (``result.warnings``)."""
        routed, routing_error = self.routed_event_id(event)
        refusal = self.filter.refusal(event, routed is not None or routing_error is not None)
        if refusal:
            result.skipped[self.name] = refusal
            return
        action = self.consent.action(event)
        if action == "drop":
            result.skipped[self.name] = f"consent: {self.consent.category!r} not granted (policy: drop)"
            return
        if routing_error is not None:
            result.rejections.append(Rejection(self.name, (routing_error,)))
            return
        event_name: str = event["event_name"]
        event_id = routed or self.filter.event_id(event_name)
        assert event_id is not None  # the filter refuses events without one
        errors: list[FieldError] = []
        warnings: list[str] = list(result.warnings)
        unusable: list[FieldError] = []
        for given in dropped:  # fields of the wrong type, dropped by read_event
            if given.field in _IDENTIFIER_FIELDS:
                unusable.append(given)
            else:
                warnings.append(f"{given.field}: {given.reason}; dropped")
        body = {**base, "event_id": event_id}

        src = sources
        if self.identifier_overrides:
            src = _Sources(src.twclid, src.email, src.phone, src.ip_address, src.user_agent)
            for key, override in self.identifier_overrides.items():
                value, error = resolve(key, override, event)
                if error:
                    errors.append(error)
                setattr(src, key, value)
        for key, override in self.field_overrides.items():
            value, error = resolve(key, override, event)
            if error:
                errors.append(error)
            elif value is None:
                body.pop(key, None)
            else:
                body[key] = value

        personal_errors, personal_warnings = remove_personal_text(body)
        errors.extend(personal_errors)
        warnings.extend(personal_warnings)

        identifiers: list[dict[str, str]] = []
        signals: set[str] = set()
        if src.twclid:
            twclid = str(src.twclid).strip()
            kind = personal_kind(twclid) if "@" in twclid or "+" in twclid else None
            if kind:
                unusable.append(
                    FieldError("partners.twitter.twclid", f"holds {kind}, which X would receive in clear")
                )
            elif usable_twclid(twclid):
                identifiers.append({"twclid": twclid})
                signals.add("twclid")
            else:
                unusable.append(
                    FieldError(
                        "partners.twitter.twclid",
                        "not a click id as X generates it (1 to 256 ASCII letters, digits and - _ . ~)",
                    )
                )
        if src.email:
            hashed = hash_email(str(src.email))
            if hashed:
                identifiers.append({"hashed_email": hashed})
                signals.add("email")
            else:
                unusable.append(FieldError("user.email", "not a usable e-mail address"))
        if src.phone:
            hashed = hash_phone(str(src.phone), self.region)
            if hashed:
                identifiers.append({"hashed_phone_number": hashed})
                signals.add("phone")
            else:
                unusable.append(FieldError("user.phone", "not a possible phone number"))
        restricted = action == "restricted"
        if not restricted and (src.ip_address or src.user_agent):
            network: dict[str, str] = {}
            if src.ip_address:
                ip = normalize_ip(str(src.ip_address))
                if ip:
                    network["ip_address"] = ip
                else:
                    unusable.append(FieldError("context.ip", "not an IP address"))
            if src.user_agent:
                user_agent = str(src.user_agent).strip()
                # stripped already: any length up to the bound and printable is text X takes
                fine = 0 < len(user_agent) <= _USER_AGENT_MAX and user_agent.isprintable()
                problem = None if fine else text_problem(user_agent, _USER_AGENT_MAX)
                if problem:
                    unusable.append(FieldError("context.user_agent", problem))
                elif src.ip_address and not network:
                    unusable.append(FieldError("context.user_agent", "left without its unusable IP address"))
                else:
                    network["user_agent"] = user_agent
            if network:
                identifiers.append(network)
            if len(network) == 2:
                signals.add("ip_ua")
        for given in unusable:
            warnings.append(f"{given.field}: {given.reason}; identifier dropped")
        body["identifiers"] = identifiers
        if restricted:
            if "contents" in body:
                body["contents"] = [
                    {k: v for k, v in c.items() if k != "content_name"} for c in body["contents"]
                ]
            body.update(self.restricted_extra)
        if "conversion_id" not in body:
            body["conversion_id"] = stable_conversion_id(event_name, body["conversion_time"], identifiers)

        problems = validate_conversion(body, self.settings, now=now, allowed_extra=self.allowed_extra)
        if problems:  # the slow path: drop what X can do without, then ask again
            warnings.extend(drop_unusable(body))
            problems = validate_conversion(body, self.settings, now=now, allowed_extra=self.allowed_extra)
            if unusable and any(p.field == "identifiers" for p in problems):
                problems.extend(unusable)  # name each identifier given and why it could not be used
            errors.extend(problems)
        if errors:
            result.rejections.append(Rejection(self.name, tuple(errors)))
            return
        result.conversions.append(
            MappedConversion(
                destination=self.name,
                pixel_id=self.pixel_id,
                event_id=event_id,
                conversion_id=str(body["conversion_id"]),
                body=body,
                match_signals=frozenset(signals),
                event_name=event_name,
                warnings=tuple(warnings),
                restricted=restricted,
            )
        )


class Mapper:
    """Maps events for every configured destination: ``Mapper(config).map(event)``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._plans = [_Plan(d, config) for d in config.destinations]

    def map(
        self,
        event: Event | dict[str, Any],
        *,
        received_at: datetime | None = None,
        now: datetime | None = None,
    ) -> MappingResult:
        """Raises :class:`xgate.events.InvalidEvent` when ``event`` is not an event at all."""
        ev, dropped = read_event(event)
        now = now or datetime.now(UTC)
        received = received_at or now
        base = default_body(ev, received)
        sources = _sources(ev)
        result = MappingResult()
        result.warnings = near_misses(ev)
        for plan in self._plans:
            plan.build(ev, base, sources, result, now, dropped)
        return result


__all__ = ["IDENTIFIER_SOURCES", "Mapper", "default_body", "stable_conversion_id"]
