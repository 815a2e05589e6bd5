"""X's rules for one conversion (shared/x-capi/SPEC.md), checked before anything is queued or sent.

Errors name the field as a path into X's body (``identifiers``, ``contents[1].content_price``) and the
reason. String bounds are ours (X documents none): generous enough for real data, small enough to catch a
field filled with the wrong thing.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pycountry

from xgate.config import XSettings
from xgate.conversion import FieldError
from xgate.observe.redact import excerpt

CURRENCIES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)
EVENT_ID = re.compile(r"^(?:tw-[0-9a-z]+-)?[0-9a-z]+$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MATCH_KEYS = ("twclid", "hashed_email", "hashed_phone_number")
IDENTIFIER_KEYS = frozenset({*MATCH_KEYS, "ip_address", "user_agent"})
CONTENT_KEYS = frozenset(
    {"content_id", "content_group_id", "content_name", "content_price", "content_type", "num_items"}
)
TOP_KEYS = frozenset(
    {
        "conversion_time",
        "event_id",
        "identifiers",
        "number_items",
        "price_currency",
        "value",
        "conversion_id",
        "description",
        "search_string",
        "contents",
    }
)
MAX_LENGTH = {
    "conversion_id": 256,
    "description": 1000,
    "search_string": 1000,
    "twclid": 256,
    "user_agent": 1024,
    "ip_address": 64,
    "content_id": 256,
    "content_group_id": 256,
    "content_name": 500,
    "content_type": 500,
}
MAX_CONTENTS = 1000


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _text(errors: list[FieldError], path: str, key: str, v: Any) -> None:
    if not isinstance(v, str) or not v.strip():
        errors.append(FieldError(path, "must be non-empty text"))
    elif len(v) > MAX_LENGTH[key]:
        errors.append(FieldError(path, f"longer than {MAX_LENGTH[key]} characters"))


def parse_conversion_time(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value)  # reads a trailing Z as UTC (Python 3.11+)
    except ValueError:
        return None
    return dt if dt.tzinfo else None


def validate_conversion(
    body: dict[str, Any],
    settings: XSettings,
    *,
    now: datetime | None = None,
    allowed_extra: frozenset[str] = frozenset(),
) -> list[FieldError]:
    """Every way ``body`` breaks X's rules; an empty list when X would accept it.

    ``allowed_extra``: fields beyond X's documented ones that the configuration adds on purpose (a
    destination's consent ``restricted_extra``).
    """
    now = now or datetime.now(UTC)
    max_age, max_skew = _margins(settings.max_conversion_age_days, settings.max_clock_skew_seconds)
    if _plainly_valid(body, now - max_age, now + max_skew, allowed_extra):
        return []
    errors: list[FieldError] = []
    for key in sorted(body.keys() - TOP_KEYS - allowed_extra):
        errors.append(FieldError(key, "not a field of X's conversion"))

    ct = body.get("conversion_time")
    if ct is None:
        errors.append(FieldError("conversion_time", "required"))
    elif not isinstance(ct, str) or (when := parse_conversion_time(ct)) is None:
        errors.append(
            FieldError("conversion_time", "must be ISO 8601 with a time zone (2026-03-15T14:30:00.000Z)")
        )
    else:
        if when < now - timedelta(days=settings.max_conversion_age_days):
            errors.append(
                FieldError("conversion_time", f"older than X's {settings.max_conversion_age_days}-day window")
            )
        if when > now + timedelta(seconds=settings.max_clock_skew_seconds):
            errors.append(FieldError("conversion_time", "in the future"))

    event_id = body.get("event_id")
    if not event_id:
        errors.append(FieldError("event_id", "required"))
    elif not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        errors.append(FieldError("event_id", "must be a base-36 event id such as o87ne or tw-o8z6j-o87ne"))

    _identifiers(errors, body.get("identifiers"))

    if "value" in body and not (_is_number(body["value"]) and body["value"] >= 0):
        errors.append(FieldError("value", "must be a finite number ≥ 0"))
    currency = body.get("price_currency")
    if currency is not None and (not isinstance(currency, str) or currency not in CURRENCIES):
        errors.append(FieldError("price_currency", f"{excerpt(currency)} is not an ISO 4217 currency code"))
    if "number_items" in body and not (_is_int(body["number_items"]) and body["number_items"] > 0):
        errors.append(FieldError("number_items", "must be an integer > 0"))
    for key in ("conversion_id", "description", "search_string"):
        if key in body:
            _text(errors, key, key, body[key])
    if "contents" in body:
        _contents(errors, body["contents"])
    return errors


def _amount(v: Any) -> bool:
    return (type(v) is int or (type(v) is float and math.isfinite(v))) and v >= 0


def _short_text(v: Any, limit: int) -> bool:
    return type(v) is str and 0 < len(v) <= limit and not v.isspace()


_TWCLID_MAX = MAX_LENGTH["twclid"]


def _sha256_hex(v: Any) -> bool:
    return type(v) is str and SHA256_HEX.match(v) is not None


@lru_cache(maxsize=16)
def _margins(max_age_days: int, max_skew_seconds: int) -> tuple[timedelta, timedelta]:
    return timedelta(days=max_age_days), timedelta(seconds=max_skew_seconds)


def _plainly_valid(
    body: dict[str, Any], oldest: datetime, latest: datetime, allowed_extra: frozenset[str]
) -> bool:
    """True when ``body`` breaks none of the rules below: the common case, decided without building
    errors. Any doubt answers False and the detailed checks decide (tests pin the two together)."""
    if not (body.keys() <= TOP_KEYS or body.keys() <= TOP_KEYS | allowed_extra):
        return False
    ct = body.get("conversion_time")
    if type(ct) is not str:
        return False
    when = parse_conversion_time(ct)
    if when is None or not oldest <= when <= latest:
        return False
    event_id = body.get("event_id")
    if type(event_id) is not str or not EVENT_ID.match(event_id):
        return False
    identifiers = body.get("identifiers")
    if type(identifiers) is not list or not identifiers:
        return False
    matchable = False
    for ident in identifiers:
        if type(ident) is not dict or not ident:
            return False
        for key, value in ident.items():
            if key == "hashed_email" or key == "hashed_phone_number":
                if not _sha256_hex(value):
                    return False
                matchable = True
            elif key == "twclid":
                if not _short_text(value, _TWCLID_MAX):
                    return False
                matchable = True
            elif key in IDENTIFIER_KEYS:
                if not _short_text(value, MAX_LENGTH[key]):
                    return False
            else:
                return False
    if not matchable:
        return False
    if "value" in body and not _amount(body["value"]):
        return False
    currency = body.get("price_currency")
    if currency is not None and (type(currency) is not str or currency not in CURRENCIES):
        return False
    if "number_items" in body:
        n = body["number_items"]
        if type(n) is not int or n <= 0:
            return False
    for key in ("conversion_id", "description", "search_string"):
        if key in body and not _short_text(body[key], MAX_LENGTH[key]):
            return False
    if "contents" in body:
        contents = body["contents"]
        if type(contents) is not list or len(contents) > MAX_CONTENTS:
            return False
        for content in contents:
            if type(content) is not dict:
                return False
            for key, value in content.items():
                if key == "content_price":
                    if not _amount(value):
                        return False
                elif key == "num_items":
                    if type(value) is not int or value <= 0:
                        return False
                elif key not in CONTENT_KEYS or not _short_text(value, MAX_LENGTH[key]):
                    return False
    return True


def _identifiers(errors: list[FieldError], identifiers: Any) -> None:
    if not isinstance(identifiers, list) or not identifiers:
        errors.append(FieldError("identifiers", "at least one user identifier must be provided"))
        return
    matchable = False
    for i, ident in enumerate(identifiers):
        path = f"identifiers[{i}]"
        if not isinstance(ident, dict) or not ident:
            errors.append(FieldError(path, "must be an object with one identifier"))
            continue
        for key, value in ident.items():
            if key not in IDENTIFIER_KEYS:
                errors.append(FieldError(f"{path}.{key}", "not an X identifier"))
            elif key in ("hashed_email", "hashed_phone_number"):
                if not isinstance(value, str) or not SHA256_HEX.match(value):
                    errors.append(FieldError(f"{path}.{key}", "must be a SHA-256 hash (64 lower-case hex)"))
                else:
                    matchable = True
            else:
                _text(errors, f"{path}.{key}", key, value)
                matchable = matchable or key == "twclid"
    if not matchable:
        errors.append(
            FieldError(
                "identifiers",
                "needs twclid, hashed_email or hashed_phone_number (ip address and user agent only help "
                "alongside one of them)",
            )
        )


def _contents(errors: list[FieldError], contents: Any) -> None:
    if not isinstance(contents, list):
        errors.append(FieldError("contents", "must be a list"))
        return
    if len(contents) > MAX_CONTENTS:
        errors.append(FieldError("contents", f"more than {MAX_CONTENTS} items"))
    for i, content in enumerate(contents):
        path = f"contents[{i}]"
        if not isinstance(content, dict):
            errors.append(FieldError(path, "must be an object"))
            continue
        for key, value in content.items():
            if key not in CONTENT_KEYS:
                errors.append(FieldError(f"{path}.{key}", "not a content field"))
            elif key == "content_price":
                if not (_is_number(value) and value >= 0):
                    errors.append(FieldError(f"{path}.content_price", "must be a finite number ≥ 0"))
            elif key == "num_items":
                if not (_is_int(value) and value > 0):
                    errors.append(FieldError(f"{path}.num_items", "must be an integer > 0"))
            else:
                _text(errors, f"{path}.{key}", key, value)
