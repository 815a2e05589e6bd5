"""Reading events without the model: timestamps, X's time format, and the fast reader for plain dicts.

Kept free of pydantic so that it compiles with mypyc (see ``docs/performance.md``); tests pin every
function here, and :data:`KNOWN_FIELDS`, to the :class:`xgate.events.Event` model. Also here, compiled for
the same reason: :func:`near_misses`, the warning for a key spelled almost like a known field.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from xgate.observe.redact import excerpt

#: An event as plain data: the values an :class:`Event` holds (ids as text, amounts as float, the
#: timestamp as an aware datetime), unknown properties kept as sent. What the mapper reads.
EventData = dict[str, Any]


def parse_timestamp(value: Any) -> datetime:
    """Parse ISO 8601 text or epoch milliseconds into an aware UTC datetime.

    Naive ISO text is taken as UTC. Raises ``ValueError`` with the reason otherwise.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool):
        raise ValueError("must be ISO 8601 text or epoch milliseconds, not a boolean")
    elif isinstance(value, int | float):
        if value < 0 or value > 32503680000000:  # year 3000 in ms
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_timestamp(int(text))
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {excerpt(value)}") from None
    else:
        raise ValueError("must be ISO 8601 text or epoch milliseconds")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))
_THREE_DIGITS = tuple(f"{n:03d}" for n in range(1000))


def format_x_time(dt: datetime) -> str:
    """X's conversion_time: ISO 8601 UTC with milliseconds, e.g. ``2026-03-15T14:30:00.000Z``.

    Assembled from digit tables: ``isoformat`` took a tenth of the whole mapping."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    two = _TWO_DIGITS
    year = dt.year
    return (
        f"{two[year // 100]}{two[year % 100]}-{two[dt.month]}-{two[dt.day]}"
        f"T{two[dt.hour]}:{two[dt.minute]}:{two[dt.second]}.{_THREE_DIGITS[dt.microsecond // 1000]}Z"
    )


class _NotPlain(Exception):
    """The input needs the model: a coercion, a bound or a type the fast reader does not decide."""


_FLOAT_SAFE = 2**53


def _text(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    raise _NotPlain


def _id(v: Any, max_length: int | None = None) -> Any:
    if type(v) is int:
        v = str(v)
    elif v is not None and type(v) is not str:
        raise _NotPlain
    if max_length is not None and v is not None and len(v) > max_length:
        raise _NotPlain
    return v


def _float(v: Any) -> float | None:
    if v is None or type(v) is float:
        return v
    if type(v) is int and -_FLOAT_SAFE < v < _FLOAT_SAFE:
        return float(v)
    raise _NotPlain


def _product(p: Any) -> Any:
    if p is None:
        return None
    if type(p) is not dict:
        raise _NotPlain
    for key in ("name", "category_1", "category_2", "category_3", "category_4", "category_5"):
        if key in p:
            _text(p[key])
    pid, group, price = p.get("id"), p.get("group_id"), p.get("price")
    if type(pid) is int or type(group) is int or type(price) is int:
        p = dict(p)
        if "id" in p:
            p["id"] = _id(pid)
        if "group_id" in p:
            p["group_id"] = _id(group)
        if "price" in p:
            p["price"] = _float(price)
        return p
    _id(pid), _id(group), _float(price)
    return p


def _item(i: Any) -> Any:
    if type(i) is not dict:
        raise _NotPlain
    q = i.get("quantity")
    if q is not None and (type(q) is not int or q < 0):
        raise _NotPlain
    iid, price, product = i.get("id"), i.get("price"), i.get("product")
    clean = _product(product)
    if type(iid) is int or type(price) is int or clean is not product:
        i = dict(i)
        if "id" in i:
            i["id"] = _id(iid)
        if "price" in i:
            i["price"] = _float(price)
        if "product" in i:
            i["product"] = clean
        return i
    _id(iid), _float(price)
    return i


def _user(u: Any) -> dict[str, Any] | None:
    if u is None:
        return None
    if type(u) is not dict:
        raise _NotPlain
    for key in ("id", "email", "phone"):
        if key in u:
            _text(u[key])
    categories = u.get("consent_categories")
    if categories is not None and (
        type(categories) is not list or any(type(c) is not str for c in categories)
    ):
        raise _NotPlain
    return u


def _context(c: Any) -> dict[str, Any] | None:
    if c is None:
        return None
    if type(c) is not dict:
        raise _NotPlain
    for key in ("ip", "user_agent", "page_url"):
        if key in c:
            _text(c[key])
    ts = c.get("event_timestamp")
    if ts is None:
        return c
    try:
        return {**c, "event_timestamp": parse_timestamp(ts)}
    except ValueError:
        raise _NotPlain from None


def _partners(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    if type(p) is not dict:
        raise _NotPlain
    twitter = p.get("twitter")
    if twitter is not None:
        if type(twitter) is not dict:
            raise _NotPlain
        _text(twitter.get("twclid"))
    return p


def read_well_formed(data: dict[str, Any]) -> EventData | None:
    """:data:`EventData` for input whose every known field already has its model type; else None.

    The caller's dicts are never modified: a part that changes (parsed timestamp, ids as text, amounts
    as float) is a copy; the others are shared, so the mapper only reads them. Tests pin this reader
    to :class:`Event`: whatever it reads, the model reads alike.
    """
    try:
        name = data.get("event_name")
        if type(name) is not str or not 1 <= len(name) <= 200:
            return None
        out = dict(data)
        if "id" in data:
            out["id"] = _id(data["id"], 200)
        for key in ("value", "revenue"):
            if key in data:
                out[key] = _float(data[key])
        for key in ("currency", "type", "search_term"):
            if key in data:
                _text(data[key])
        if "user" in data:
            out["user"] = _user(data["user"])
        if "context" in data:
            out["context"] = _context(data["context"])
        if "partners" in data:
            out["partners"] = _partners(data["partners"])
        items = data.get("items")
        if items is not None:
            if type(items) is not list:
                return None
            out["items"] = [_item(i) for i in items]
        return out
    except _NotPlain:
        return None


#: how alike (difflib's ratio, case ignored) an unknown key must be to a known field to be taken for a
#: misspelling of it: 0.8 catches one letter swapped, missing or added (``emial``, ``phon``, ``valeu``)
#: and leaves names merely sharing a word alone (``page`` / ``page_url``, ``timestamp``)
NEAR_MISS_RATIO = 0.8

#: the levels checked for misspelled keys, with the fields REFERENCE.md gives each: the fields of the
#: ``Event``, ``User`` and ``Context`` models, written out so that this module stays free of pydantic (a
#: test keeps them equal)
KNOWN_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "",
        (
            "event_name",
            "id",
            "value",
            "revenue",
            "currency",
            "type",
            "search_term",
            "user",
            "items",
            "context",
            "partners",
        ),
    ),
    ("user.", ("id", "email", "phone", "consent_categories")),
    ("context.", ("event_timestamp", "ip", "user_agent", "page_url")),
)
#: per level: its prefix, the key holding it (top level: none) and its fields as a set, which settles a
#: known key (nearly every key) without the search below
_LEVELS: tuple[tuple[str, str, frozenset[str]], ...] = tuple(
    (prefix, prefix[:-1], frozenset(known)) for prefix, known in KNOWN_FIELDS
)
_BY_PREFIX: dict[str, tuple[str, ...]] = dict(KNOWN_FIELDS)


@lru_cache(maxsize=4096)  # the same few custom keys come with every event of a site
def _near_miss(prefix: str, key: str) -> str | None:
    known = _BY_PREFIX[prefix]
    if key in known:
        return None
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=NEAR_MISS_RATIO)
    return close[0] if close else None


def near_misses(data: Mapping[str, Any]) -> list[str]:
    """A warning for each key of the event (top level, ``user``, ``context``) that is not a known field but
    is spelled almost like one: ``"user.emial is not a known field; did you mean user.email?"``.

    The key is kept as every unknown property is (REFERENCE.md: "anything else is kept as is"), so the
    event is never refused for it; but a misspelled identifier is a match signal lost without a word. The
    warning names the key, never its value."""
    warnings: list[str] = []
    for prefix, name, known in _LEVELS:
        level = data.get(name) if name else data
        if type(level) is not dict and not isinstance(level, Mapping):
            continue
        for key in level:
            if key not in known and isinstance(key, str):
                meant = _near_miss(prefix, key)
                if meant is not None:
                    warnings.append(f"{prefix}{key} is not a known field; did you mean {prefix}{meant}?")
    return warnings
