"""The sandbox's own statement of X's request schema (shared/x-capi/SPEC.md).

Deliberately independent of :mod:`xgate.validation`: a bug in one is caught by the other. Messages follow
the 400 messages X documents. Beyond what X documents, the sandbox refuses what X's parser answers 400
for in practice (shared x-capi notes, issue 15): an integer outside 64 bits, an ``ip_address`` that is
not an address (a port, brackets, a host name), text holding control characters (NUL, line breaks), a
twclid with white space.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pycountry

MAX_CONVERSIONS = 500
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EVENT = re.compile(r"(?:tw-([0-9a-z]+)-)?([0-9a-z]+)")
_CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies)
_IDENTIFIERS = {"twclid", "hashed_email", "hashed_phone_number", "ip_address", "user_agent"}
_NUMBER = (int, float)
_CONTENT_TYPES: dict[str, type | tuple[type, ...]] = {
    "content_id": str,
    "content_group_id": str,
    "content_name": str,
    "content_type": str,
    "content_price": _NUMBER,
    "num_items": int,
}
_OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "number_items": int,
    "price_currency": str,
    "value": _NUMBER,
    "conversion_id": str,
    "description": str,
    "search_string": str,
    "contents": list,
}
_EXTRA_ALLOWED = {"restricted_data_use"}


def _err(message: str, parameter: str | None = None, code: str = "INVALID_PARAMETER") -> dict[str, Any]:
    e: dict[str, Any] = {"code": code, "message": message}
    if parameter:
        e["parameter"] = parameter
    return e


_INT64 = 2**63


def _typed(value: Any, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return kind is _NUMBER and math.isfinite(value)
    if isinstance(value, int):
        return int in (kind if isinstance(kind, tuple) else (kind,)) and -_INT64 <= value < _INT64
    if isinstance(value, str):
        return kind is str and not _has_control(value)
    return isinstance(value, kind)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def check_request(
    pixel_id: str, body: Any, *, now: datetime | None = None, max_age_days: int = 90, skew_seconds: int = 300
) -> list[dict[str, Any]]:
    """X's errors for this request body; empty when X would accept it. A 400 rejects the whole request."""
    if not isinstance(body, dict) or not isinstance(body.get("conversions"), list):
        return [_err("Request body must be a JSON object with a conversions array", "conversions")]
    conversions = body["conversions"]
    if not conversions:
        return [_err("At least one conversion must be provided", "conversions")]
    if len(conversions) > MAX_CONVERSIONS:
        return [_err(f"Conversion count limit is {MAX_CONVERSIONS}", "conversions")]
    now = now or datetime.now(UTC)
    oldest, latest = now - timedelta(days=max_age_days), now + timedelta(seconds=skew_seconds)
    errors: list[dict[str, Any]] = []
    for i, conv in enumerate(conversions):
        errors.extend(_check_conversion(pixel_id, i, conv, oldest, latest))
    return errors


def _check_conversion(
    pixel_id: str, i: int, c: Any, oldest: datetime, latest: datetime
) -> list[dict[str, Any]]:
    at = f"conversions[{i}]"
    if not isinstance(c, dict):
        return [_err("Conversion must be an object", at)]
    errors = []
    for key in c:
        if (
            key not in _OPTIONAL_TYPES
            and key not in ("conversion_time", "event_id", "identifiers")
            and key not in _EXTRA_ALLOWED
        ):
            errors.append(_err(f"Unknown parameter {key}", f"{at}.{key}"))
    event_id = c.get("event_id")
    if not event_id:
        errors.append(_err("Missing required parameter: event_id", f"{at}.event_id"))
    else:
        m = _EVENT.fullmatch(event_id) if isinstance(event_id, str) else None
        if not m or (m.group(1) and m.group(1) != pixel_id):
            errors.append(_err(f"Event_id ({event_id}) is not a single event tag (SET)", f"{at}.event_id"))
    ts = c.get("conversion_time")
    if not isinstance(ts, str):
        errors.append(_err("Missing required parameter: conversion_time", f"{at}.conversion_time"))
    else:
        try:
            when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError
        except ValueError:
            errors.append(_err(f"Invalid conversion_time: {ts}", f"{at}.conversion_time"))
        else:
            if when < oldest or when > latest:
                errors.append(_err("conversion_time is outside the accepted window", f"{at}.conversion_time"))
    errors.extend(_check_identifiers(at, c.get("identifiers")))
    for key, kind in _OPTIONAL_TYPES.items():
        if key in c and not _typed(c[key], kind):
            errors.append(_err(f"Invalid type for {key}", f"{at}.{key}"))
    if isinstance(c.get("number_items"), int) and c["number_items"] <= 0:
        errors.append(_err("number_items must be greater than 0", f"{at}.number_items"))
    if isinstance(c.get("price_currency"), str) and c["price_currency"] not in _CURRENCIES:
        errors.append(_err(f"Invalid price_currency: {c['price_currency']}", f"{at}.price_currency"))
    for j, content in enumerate(c.get("contents") or [] if isinstance(c.get("contents"), list) else []):
        where = f"{at}.contents[{j}]"
        if not isinstance(content, dict):
            errors.append(_err("Content must be an object", where))
            continue
        for key, value in content.items():
            content_kind = _CONTENT_TYPES.get(key)
            if content_kind is None:
                errors.append(_err(f"Unknown parameter {key}", f"{where}.{key}"))
            elif not _typed(value, content_kind):
                errors.append(_err(f"Invalid type for {key}", f"{where}.{key}"))
    return errors


def _check_identifiers(at: str, identifiers: Any) -> list[dict[str, Any]]:
    if not isinstance(identifiers, list) or not identifiers:
        return [_err("At least one user identifier must be provided", f"{at}.identifiers")]
    errors = []
    strong = False
    for ident in identifiers:
        if not isinstance(ident, dict):
            errors.append(_err("Identifier must be an object", f"{at}.identifiers"))
            continue
        for key, value in ident.items():
            if key not in _IDENTIFIERS:
                errors.append(_err(f"Unknown identifier {key}", f"{at}.identifiers.{key}"))
            elif key == "hashed_email":
                if not (isinstance(value, str) and _HEX64.fullmatch(value)):
                    errors.append(
                        _err("Hashed_email is not a valid SHA-256 hash", f"{at}.identifiers.hashed_email")
                    )
                strong = True
            elif key == "hashed_phone_number":
                if not (isinstance(value, str) and _HEX64.fullmatch(value)):
                    errors.append(
                        _err(
                            "Hashed_phone_number is not a valid SHA-256 hash",
                            f"{at}.identifiers.hashed_phone_number",
                        )
                    )
                strong = True
            elif not isinstance(value, str) or not value or _has_control(value):
                errors.append(_err(f"Invalid {key}", f"{at}.identifiers.{key}"))
            elif key == "ip_address" and not _ip(value):
                errors.append(_err(f"Invalid ip_address: {value}", f"{at}.identifiers.ip_address"))
            elif key == "twclid":
                if any(ch.isspace() for ch in value):
                    errors.append(_err("Invalid twclid", f"{at}.identifiers.twclid"))
                strong = True
    if not strong and not errors:
        errors.append(_err("At least one user identifier must be provided", f"{at}.identifiers"))
    return errors


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
