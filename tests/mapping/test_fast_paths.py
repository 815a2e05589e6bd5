"""The hot path's shortcuts agree with the reference paths they skip, for generated input of every shape.

- ``read_well_formed`` (plain dicts) must read every event exactly as the :class:`Event` model does, or
  step aside (None) so the model decides, errors included;
- ``validate_conversion``'s quick acceptance must never accept a body the detailed checks refuse;
- ``format_x_time`` writes what ``isoformat`` writes;
- ``normalize_ip``'s shortcut for canonical IPv4 text gives what the ``ipaddress`` parse gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xgate.config import XSettings
from xgate.events import Event, InvalidEvent, event_data, format_x_time, parse_event, read_well_formed
from xgate.identifiers import _normalize_ip, normalize_ip
from xgate.validation import _plainly_valid, validate_conversion

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# values of the types the model coerces, refuses or keeps: the fast reader must get each one right
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["", " ", "12.5", "2026-11-22T10:00:00Z", "1763800000000", "sku-1", "o"]),
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)


def mostly(usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a value of the field's own type (so whole events reach the fast path), now and then any."""
    return st.integers(0, 12).flatmap(lambda k: usual if k else anything)


text = mostly(st.text(max_size=6))
numbers = mostly(st.one_of(st.floats(allow_nan=False), st.integers(-5, 10**6), st.none()))
ids = mostly(st.one_of(st.text(min_size=1, max_size=6), st.integers(-5, 10**6)))
extras = st.dictionaries(st.sampled_from(["extra", "custom"]), anything, max_size=1)


def part(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with any subset of ``fields`` (each from its strategy) and maybe an unknown property."""
    return st.tuples(st.fixed_dictionaries({}, optional=fields), extras).map(lambda p: {**p[1], **p[0]})


timestamps = mostly(
    st.one_of(
        st.integers(min_value=-5, max_value=33_000_000_000_000),
        st.floats(min_value=0, max_value=4e12),
        st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22 10:00:00+02:00", "not a time", "1763800000000"]),
    )
)
products = part(id=ids, name=text, price=numbers, group_id=ids, category_1=text, category_2=text)
items = mostly(
    part(
        id=ids,
        quantity=mostly(st.integers(-2, 5)),
        price=numbers,
        product=mostly(st.one_of(products, st.none())),
    )
)
users = part(id=text, email=text, phone=text, consent_categories=mostly(st.lists(text, max_size=3)))
contexts = part(event_timestamp=timestamps, ip=text, user_agent=text, page_url=text)
partners = part(twitter=mostly(part(twclid=text)))
events = st.fixed_dictionaries(
    {"event_name": mostly(st.sampled_from(["purchase", "sign_up", "lead", "", "x" * 200, "x" * 201]))},
    optional={
        "id": mostly(st.one_of(ids, st.just("i" * 200), st.just("i" * 201))),
        "value": numbers,
        "revenue": numbers,
        "currency": text,
        "type": text,
        "search_term": text,
        "user": mostly(users),
        "context": mostly(contexts),
        "partners": mostly(partners),
        "items": mostly(st.lists(items, max_size=3)),
        "extra": anything,
    },
)


def _without_none(data: Any) -> Any:
    """Absent and null read alike (the mapper reads with ``get``); compare without the nulls."""
    if isinstance(data, dict):
        return {k: _without_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_without_none(v) for v in data]
    return data


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events)
def test_the_fast_reader_reads_every_event_as_the_model_does(raw: dict[str, Any]) -> None:
    fast = read_well_formed(raw)
    try:
        model = Event.model_validate(raw).model_dump(exclude_unset=True)
    except Exception:
        assert fast is None, "the fast reader accepted an event the model refuses"
        return
    if fast is not None:
        assert _without_none(fast) == _without_none(model)
        assert all(type(a) is type(b) for a, b in zip(_leaves(fast), _leaves(model), strict=True))


def _leaves(data: Any) -> list[Any]:
    data = _without_none(data)
    if isinstance(data, dict):
        return [leaf for k in sorted(data, key=str) for leaf in _leaves(data[k])]
    if isinstance(data, list):
        return [leaf for v in data for leaf in _leaves(v)]
    return [data]


@settings(max_examples=300, deadline=None)
@given(events)
def test_invalid_events_get_the_models_errors(raw: dict[str, Any]) -> None:
    try:
        expected = parse_event(raw).model_dump(exclude_unset=True)
    except InvalidEvent as e:
        try:
            event_data(raw)
        except InvalidEvent as got:
            assert got.errors == e.errors
        else:
            raise AssertionError("event_data accepted what the model refuses") from None
        return
    assert _without_none(event_data(raw)) == _without_none(expected)


def test_the_callers_event_is_never_modified() -> None:
    raw = {
        "event_name": "purchase",
        "id": 7,
        "value": 3,
        "context": {"event_timestamp": 1763800000000},
        "items": [{"id": 1, "price": 2, "product": {"id": 3, "price": 4}}],
    }
    before = repr(raw)
    data = read_well_formed(raw)
    assert data is not None
    assert repr(raw) == before
    assert data["id"] == "7" and data["value"] == 3.0
    assert data["items"][0] == {"id": "1", "price": 2.0, "product": {"id": "3", "price": 4.0}}


# -- validation ----------------------------------------------------------------------------------------
def edge(usual: st.SearchStrategy[Any], *odd: Any) -> st.SearchStrategy[Any]:
    """Usually ``usual``; sometimes one of the ``odd`` values right at a rule's edge; rarely anything."""
    return mostly(st.integers(0, 6).flatmap(lambda k: usual if k else st.sampled_from(odd)))


hashes = edge(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), "A" * 64, "a" * 63, " ")
short_text = edge(st.text(min_size=1, max_size=5), "", " ", "t" * 300)
identifier = edge(
    st.one_of(
        st.fixed_dictionaries({"hashed_email": hashes}),
        st.fixed_dictionaries({"hashed_phone_number": hashes}),
        st.fixed_dictionaries({"twclid": short_text}),
        st.fixed_dictionaries({}, optional={"ip_address": short_text, "user_agent": short_text}),
    ),
    {},
    {"other": "x"},
)
amounts = edge(st.one_of(st.floats(min_value=0, allow_infinity=False), st.integers(0, 10**6)), -1, -0.5)
counts = edge(st.integers(1, 5), 0, -1, 2.0, True)
content = edge(
    st.fixed_dictionaries(
        {},
        optional={
            "content_id": short_text,
            "content_name": edge(st.text(min_size=1, max_size=5), "n" * 501),
            "content_price": amounts,
            "num_items": counts,
            "content_type": short_text,
            "content_group_id": short_text,
        },
    ),
    {"x": 1},
)
bodies = st.fixed_dictionaries(
    {
        "conversion_time": edge(
            st.sampled_from(["2026-11-22T11:00:00.000Z", "2026-11-22T11:30:00.000+01:00"]),
            "2026-11-22T12:04:59.000Z",
            "2026-11-22T12:10:00.000Z",
            "2026-08-24T11:59:00.000Z",
            "2026-11-22T11:00:00",
            "yesterday",
        ),
        "event_id": edge(st.sampled_from(["tw-o8z6j-o87ne", "o87ne"]), "", "TW-X"),
        "identifiers": edge(st.lists(identifier, min_size=1, max_size=3), []),
    },
    optional={
        "value": amounts,
        "price_currency": edge(st.sampled_from(["USD", "EUR"]), "usd", "XXX"),
        "number_items": counts,
        "conversion_id": short_text,
        "description": short_text,
        "search_string": short_text,
        "contents": edge(st.lists(content, max_size=3), [{}] * 1001),
        "restricted_data_use": scalars,
    },
)


#: the conversion_time window validate_conversion derives from XSettings' defaults at NOW
WINDOW = (
    NOW - timedelta(days=XSettings().max_conversion_age_days),
    NOW + timedelta(seconds=XSettings().max_clock_skew_seconds),
)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(bodies, st.sampled_from([frozenset(), frozenset({"restricted_data_use"})]))
def test_quick_acceptance_agrees_with_the_detailed_checks(
    body: dict[str, Any], extra: frozenset[str]
) -> None:
    quick = _plainly_valid(body, *WINDOW, extra)
    detailed = validate_conversion(
        {**body, "__force_detailed__": 1}, XSettings(), now=NOW, allowed_extra=extra
    )
    errors = [e for e in detailed if e.field != "__force_detailed__"]
    if quick:
        assert errors == []
    assert validate_conversion(body, XSettings(), now=NOW, allowed_extra=extra) == errors


VALID = {
    "conversion_time": "2026-11-22T11:00:00.000Z",
    "event_id": "tw-o8z6j-o87ne",
    "identifiers": [
        {"hashed_email": "b" * 64},
        {"twclid": "26abc"},
        {"ip_address": "1.2.3.4", "user_agent": "UA"},
    ],
    "conversion_id": "c1",
    "value": 10.5,
    "price_currency": "USD",
    "number_items": 2,
    "description": "d",
    "search_string": "s",
    "contents": [
        {"content_id": "a", "content_price": 5, "num_items": 2, "content_name": "n", "content_type": "t"}
    ],
}
ODD_VALUES: list[Any] = [
    "",
    " ",
    "t" * 1001,
    0,
    -1,
    -0.5,
    2.0,
    True,
    None,
    float("inf"),
    float("nan"),
    [],
    {},
    "usd",
]


def _one_change_bodies() -> list[dict[str, Any]]:
    """The valid body with one field (or one nested field) set to one odd value, or removed."""
    out = [dict(VALID)]
    for key in [*VALID, "unknown"]:
        out.append({k: v for k, v in VALID.items() if k != key})
        out.extend({**VALID, key: odd} for odd in ODD_VALUES)
    for i, ident in enumerate(VALID["identifiers"]):
        for key in [*ident, "other"]:
            for odd in [*ODD_VALUES, "A" * 64, "a" * 63]:
                idents = [dict(x) for x in VALID["identifiers"]]
                idents[i][key] = odd
                out.append({**VALID, "identifiers": idents})
    for key in [*VALID["contents"][0], "content_group_id", "other"]:
        for odd in ODD_VALUES:
            out.append({**VALID, "contents": [{**VALID["contents"][0], key: odd}]})
    return out


def test_quick_acceptance_agrees_at_every_rules_edge() -> None:
    for body in _one_change_bodies():
        quick = _plainly_valid(body, *WINDOW, frozenset())
        errors = [
            e
            for e in validate_conversion({**body, "__force_detailed__": 1}, XSettings(), now=NOW)
            if e.field != "__force_detailed__"
        ]
        assert quick == (errors == []), body


@given(
    st.datetimes(min_value=datetime(1, 1, 1, 12), max_value=datetime(9999, 12, 30), timezones=st.timezones())
)
def test_x_time_is_isoformat_in_utc_to_the_millisecond(when: datetime) -> None:
    expected = when.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
    assert format_x_time(when) == expected


octets = st.one_of(
    st.integers(0, 999).map(str),
    st.sampled_from(["00", "01", "007", "255", "256", "", " 1", "\u0661", "+1", "1_0"]),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(octets, min_size=3, max_size=5).map(".".join), st.sampled_from(["", ":443", ":x", " "]))
def test_the_ipv4_shortcut_gives_what_the_ipaddress_parse_gives(address: str, tail: str) -> None:
    text = address + tail
    assert normalize_ip(text) == _normalize_ip(text.strip())
