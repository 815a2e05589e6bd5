"""X's rules for one conversion (shared/x-capi/SPEC.md), checked before anything is queued or sent.

Errors name the field as a path into X's body (``identifiers``, ``contents[1].content_price``) and the
reason. String bounds are ours (X documents none): generous enough for real data, small enough to catch a
field filled with the wrong thing. Numbers are bounded the same way: X types amounts as doubles and counts
as integers, and a value beyond :data:`MAX_AMOUNT` or :data:`MAX_COUNT` is a wrong field (an id, a phone
number, cents read as units), never a sale; text X receives holds no control or invisible characters
(``str.isprintable``: no NUL, no zero-width space).

One policy for an unusable value (docs/events.md, "What xgate does with an unusable value"): a field X can
do without is dropped with a warning and the conversion kept (:func:`drop_unusable`); what X requires, and
what would change the conversion's meaning if dropped (its value, currency and dedup key), refuses it
(:func:`validate_conversion`).
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
#: the largest amount (``value``, ``content_price``) passed to X: a trillion in any currency is no one
#: conversion, and the bound keeps every amount an exact double and a 64-bit integer
MAX_AMOUNT = 1_000_000_000_000
#: the largest count (``number_items``, ``num_items``) passed to X (an integer in X's reference)
MAX_COUNT = 1_000_000
#: fields X can do without: an unusable one is dropped (:func:`drop_unusable`), not a reason to refuse
DROPPABLE_TEXT = ("description", "search_string")


_AMOUNT_RULE = f"must be a number from 0 to {MAX_AMOUNT:,}"


def _amount_problem(v: Any) -> str:
    """Why ``v`` is no amount X takes (``v`` failed :func:`usable_amount`): the rule, and for a number out
    of range what such a number usually is."""
    if type(v) in (int, float) and v < 0:
        return f"{_AMOUNT_RULE} (a negative amount is a refund or a discount, not a sale)"
    if type(v) in (int, float) and v > MAX_AMOUNT:
        return f"{_AMOUNT_RULE} (a larger one is a wrong field, not a sale)"
    return _AMOUNT_RULE


_COUNT_RULE = f"must be an integer from 1 to {MAX_COUNT:,}"
_INVISIBLE = "holds control or invisible characters (such as NUL, a line break or a zero-width space)"


def text_problem(v: Any, limit: int) -> str | None:
    """Why ``v`` cannot be text X receives (at most ``limit`` characters), or None when it can."""
    if not isinstance(v, str) or not v.strip():
        return "must be non-empty text"
    if len(v) > limit:
        return f"longer than {limit} characters"
    if not v.isprintable():
        return _INVISIBLE
    return None


def _text(errors: list[FieldError], path: str, key: str, v: Any) -> None:
    problem = text_problem(v, MAX_LENGTH[key])
    if problem is not None:
        errors.append(FieldError(path, problem))


def usable_amount(v: Any) -> bool:
    """An amount X takes: an int or finite float from 0 to :data:`MAX_AMOUNT` (not a bool)."""
    return (type(v) is int or (type(v) is float and math.isfinite(v))) and 0 <= v <= MAX_AMOUNT


def usable_count(v: Any) -> bool:
    """A count X takes: an int from 1 to :data:`MAX_COUNT` (not a bool)."""
    return type(v) is int and 0 < v <= MAX_COUNT


#: characters of a twclid besides ASCII letters and digits (X's format is undocumented: what its
#: URLs and the pixel's cookie have carried, read as URL-safe text)
_TWCLID_MARKS = str.maketrans("", "", "-_.~")
_TWCLID_MAX = MAX_LENGTH["twclid"]


def usable_twclid(v: Any) -> bool:
    """A twclid as X generates it: 1 to 256 ASCII letters, digits and ``- _ . ~`` (string calls, not a
    regex: this runs per event; one of letters and digits only needs no translation)."""
    return (
        type(v) is str
        and 0 < len(v) <= _TWCLID_MAX
        and v.isascii()
        and (v.isalnum() or v.translate(_TWCLID_MARKS).isalnum())
    )


def clean_text(v: Any, limit: int) -> tuple[str | None, str | None]:
    """Free text made fit for X: (text, None) unchanged when it already is; (cleaned, note) with runs
    of white space made one space and invisible characters removed; (None, reason) when nothing usable
    is left or it is longer than ``limit``. Only met on the slow path (``isprintable`` failed)."""
    if type(v) is not str:
        return None, "must be text"
    problem = text_problem(v, limit)
    if problem is None:
        return v, None
    if problem != _INVISIBLE:
        return None, problem
    cleaned = "".join(ch for ch in " ".join(v.split()) if ch.isprintable())
    if not cleaned.strip():
        return None, _INVISIBLE
    return cleaned, "control or invisible characters removed"


def drop_unusable(body: dict[str, Any]) -> list[str]:
    """Drop from ``body`` (in place; ``contents`` is replaced, never changed, as the mapper shares it
    between destinations) every field X can do without that holds an unusable value; one warning
    per field, naming it and why (never the value). Free text with invisible characters is cleaned.

    Fields X can do without: ``description``, ``search_string``, ``number_items`` and every field of a
    ``contents`` entry (an entry left empty goes too). Identifiers are the mapper's (each is dropped
    there); the rest stays for :func:`validate_conversion` to refuse."""
    warnings: list[str] = []
    for key in DROPPABLE_TEXT:
        if key in body:
            text, note = clean_text(body[key], MAX_LENGTH[key])
            if text is None:
                del body[key]
                warnings.append(f"{key}: {note}; dropped")
            elif note is not None:
                body[key] = text
                warnings.append(f"{key}: {note}")
    if "number_items" in body and not usable_count(body["number_items"]):
        del body["number_items"]
        warnings.append(f"number_items: {_COUNT_RULE}; dropped")
    contents = body.get("contents")
    if type(contents) is list:
        kept: list[Any] = []
        for i, content in enumerate(contents):
            if type(content) is not dict:
                kept.append(content)
                continue
            fixed: dict[str, Any] = {}
            for key, value in content.items():
                path = f"contents[{i}].{key}"
                if key == "content_price":
                    if usable_amount(value):
                        fixed[key] = value
                    else:
                        warnings.append(f"{path}: {_amount_problem(value)}; dropped")
                elif key == "num_items":
                    if usable_count(value):
                        fixed[key] = value
                    else:
                        warnings.append(f"{path}: {_COUNT_RULE}; dropped")
                elif key in CONTENT_KEYS:
                    text, note = clean_text(value, MAX_LENGTH[key])
                    if text is None:
                        warnings.append(f"{path}: {note}; dropped")
                    else:
                        fixed[key] = text
                        if note is not None:
                            warnings.append(f"{path}: {note}")
                else:
                    fixed[key] = value
            if fixed:
                kept.append(fixed)
        if kept:
            body["contents"] = kept[:MAX_CONTENTS]
            if len(kept) > MAX_CONTENTS:
                warnings.append(f"contents: more than {MAX_CONTENTS} items; the rest dropped")
        else:
            del body["contents"]
    return warnings


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

    if "value" in body and not usable_amount(body["value"]):
        errors.append(FieldError("value", _amount_problem(body["value"])))
    currency = body.get("price_currency")
    if currency is not None and (not isinstance(currency, str) or currency not in CURRENCIES):
        errors.append(FieldError("price_currency", f"{excerpt(currency)} is not an ISO 4217 currency code"))
    if "number_items" in body and not usable_count(body["number_items"]):
        errors.append(FieldError("number_items", _COUNT_RULE))
    for key in ("conversion_id", "description", "search_string"):
        if key in body:
            _text(errors, key, key, body[key])
    if "contents" in body:
        _contents(errors, body["contents"])
    return errors


@lru_cache(maxsize=16)
def _margins(max_age_days: int, max_skew_seconds: int) -> tuple[timedelta, timedelta]:
    return timedelta(days=max_age_days), timedelta(seconds=max_skew_seconds)


#: the text fields the quick acceptance checks, with their bounds (MAX_LENGTH's, looked up once)
_TOP_TEXT = tuple((key, MAX_LENGTH[key]) for key in ("conversion_id", "description", "search_string"))
_NETWORK_TEXT = {key: MAX_LENGTH[key] for key in IDENTIFIER_KEYS.difference(MATCH_KEYS)}
_CONTENT_TEXT = {key: MAX_LENGTH[key] for key in CONTENT_KEYS.difference({"content_price", "num_items"})}


def _plainly_valid(
    body: dict[str, Any], oldest: datetime, latest: datetime, allowed_extra: frozenset[str]
) -> bool:
    """True when ``body`` breaks none of the rules below: the common case, decided without building
    errors. Any doubt answers False and the detailed checks decide (tests pin the two together).

    The per-field checks are written out here rather than called (:func:`usable_amount`,
    :func:`usable_count`, :func:`usable_twclid`, :func:`text_problem`): this runs for every conversion,
    and a float's ``0 <= v <= MAX_AMOUNT`` already refuses NaN and the infinities."""
    keys = body.keys()
    if not (keys <= TOP_KEYS or keys <= TOP_KEYS | allowed_extra):
        return False
    ct = body.get("conversion_time")
    if type(ct) is not str:
        return False
    try:
        when = datetime.fromisoformat(ct)
    except ValueError:
        return False
    if not when.tzinfo or not oldest <= when <= latest:
        return False
    event_id = body.get("event_id")
    if type(event_id) is not str or EVENT_ID.match(event_id) is None:
        return False
    identifiers = body.get("identifiers")
    if type(identifiers) is not list or not identifiers:
        return False
    matchable = False
    for ident in identifiers:
        if type(ident) is not dict or not ident:
            return False
        for key, v in ident.items():
            if key == "hashed_email" or key == "hashed_phone_number":
                if type(v) is not str or SHA256_HEX.match(v) is None:
                    return False
                matchable = True
            elif key == "twclid":
                if not (
                    type(v) is str
                    and 0 < len(v) <= _TWCLID_MAX
                    and v.isascii()
                    and (v.isalnum() or v.translate(_TWCLID_MARKS).isalnum())
                ):
                    return False
                matchable = True
            else:
                limit = _NETWORK_TEXT.get(key)
                if limit is None or not (
                    type(v) is str and 0 < len(v) <= limit and v.isprintable() and not v.isspace()
                ):
                    return False
    if not matchable:
        return False
    if "value" in body:
        v = body["value"]
        if not ((type(v) is float or type(v) is int) and 0 <= v <= MAX_AMOUNT):
            return False
    currency = body.get("price_currency")
    if currency is not None and (type(currency) is not str or currency not in CURRENCIES):
        return False
    if "number_items" in body:
        v = body["number_items"]
        if not (type(v) is int and 0 < v <= MAX_COUNT):
            return False
    for key, limit in _TOP_TEXT:
        if key in body:
            v = body[key]
            if not (type(v) is str and 0 < len(v) <= limit and v.isprintable() and not v.isspace()):
                return False
    if "contents" in body:
        contents = body["contents"]
        if type(contents) is not list or len(contents) > MAX_CONTENTS:
            return False
        for content in contents:
            if type(content) is not dict:
                return False
            for key, v in content.items():
                if key == "content_price":
                    if not ((type(v) is float or type(v) is int) and 0 <= v <= MAX_AMOUNT):
                        return False
                elif key == "num_items":
                    if not (type(v) is int and 0 < v <= MAX_COUNT):
                        return False
                else:
                    limit = _CONTENT_TEXT.get(key)
                    if limit is None or not (
                        type(v) is str and 0 < len(v) <= limit and v.isprintable() and not v.isspace()
                    ):
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
            elif key == "twclid":
                if usable_twclid(value):
                    matchable = True
                else:
                    errors.append(
                        FieldError(f"{path}.twclid", "must be 1 to 256 ASCII letters, digits and - _ . ~")
                    )
            else:
                _text(errors, f"{path}.{key}", key, value)
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
                if not usable_amount(value):
                    errors.append(FieldError(f"{path}.content_price", _amount_problem(value)))
            elif key == "num_items":
                if not usable_count(value):
                    errors.append(FieldError(f"{path}.num_items", _COUNT_RULE))
            else:
                _text(errors, f"{path}.{key}", key, value)
