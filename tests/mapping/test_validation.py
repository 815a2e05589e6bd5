"""X's rules, one by one: each error names the field in X's body and the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from xgate.config import XSettings
from xgate.validation import validate_conversion

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = XSettings()
HASH = "b" * 64


def valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "conversion_time": "2026-11-22T11:00:00.000Z",
        "event_id": "tw-o8z6j-o87ne",
        "identifiers": [{"hashed_email": HASH}],
        "conversion_id": "c1",
        "value": 10.5,
        "price_currency": "USD",
        "number_items": 2,
        "contents": [{"content_id": "a", "content_price": 5.25, "num_items": 2}],
    }
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def fields(body: dict[str, Any], **kwargs: Any) -> list[str]:
    return [e.field for e in validate_conversion(body, SETTINGS, now=NOW, **kwargs)]


def test_a_valid_conversion_has_no_errors() -> None:
    assert fields(valid()) == []
    assert (
        fields(
            valid(
                identifiers=[{"twclid": "abc"}],
                value=None,
                price_currency=None,
                contents=None,
                number_items=None,
                conversion_id=None,
            )
        )
        == []
    )


@pytest.mark.parametrize("missing", ["conversion_time", "event_id", "identifiers"])
def test_required_fields(missing: str) -> None:
    assert missing in fields(valid(**{missing: None}))


@pytest.mark.parametrize(
    ("when", "ok"),
    [
        (NOW - timedelta(days=89), True),
        (NOW - timedelta(days=91), False),
        (NOW + timedelta(seconds=200), True),
        (NOW + timedelta(seconds=400), False),
    ],
)
def test_conversion_time_window_and_clock_skew(when: datetime, ok: bool) -> None:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert (fields(valid(conversion_time=stamp)) == []) is ok


def test_conversion_time_needs_a_time_zone() -> None:
    assert fields(valid(conversion_time="2026-11-22T11:00:00")) == ["conversion_time"]
    assert fields(valid(conversion_time="yesterday")) == ["conversion_time"]


@pytest.mark.parametrize("event_id", ["o87ne", "tw-o8z6j-o87ne"])
def test_event_id_shapes(event_id: str) -> None:
    assert fields(valid(event_id=event_id)) == []


@pytest.mark.parametrize("event_id", ["TW-O8Z6J", "tw-o8z6j-", "purchase event", 42])
def test_bad_event_ids(event_id: Any) -> None:
    assert fields(valid(event_id=event_id)) == ["event_id"]


@pytest.mark.parametrize(
    ("identifiers", "field"),
    [
        ([], "identifiers"),
        ([{"ip_address": "1.2.3.4", "user_agent": "UA"}], "identifiers"),
        ([{"hashed_email": "ABC"}], "identifiers[0].hashed_email"),
        ([{"hashed_phone_number": HASH.upper()}], "identifiers[0].hashed_phone_number"),
        ([{"twclid": ""}], "identifiers[0].twclid"),
        ([{"email": "ada@example.com"}], "identifiers[0].email"),
    ],
)
def test_identifier_rules(identifiers: list[dict[str, str]], field: str) -> None:
    assert field in fields(valid(identifiers=identifiers))


def test_currency_must_be_iso_4217() -> None:
    assert fields(valid(price_currency="EUR")) == []
    assert fields(valid(price_currency="EURO")) == ["price_currency"]
    assert fields(valid(price_currency="usd")) == ["price_currency"]


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), "10", True])
def test_value_must_be_a_finite_non_negative_number(value: Any) -> None:
    assert fields(valid(value=value)) == ["value"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-45.0, "(a negative amount is a refund or a discount, not a sale)"),
        (10**13, "(a larger one is a wrong field, not a sale)"),
        ("10", ""),
    ],
)
def test_an_unusable_value_is_explained_by_what_is_wrong_with_it(value: Any, why: str) -> None:
    [error] = validate_conversion(valid(value=value), SETTINGS, now=NOW)
    assert error.reason == f"must be a number from 0 to 1,000,000,000,000 {why}".strip()


@pytest.mark.parametrize("n", [0, -2, 1.5, "3"])
def test_number_items_must_be_a_positive_integer(n: Any) -> None:
    assert fields(valid(number_items=n)) == ["number_items"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"content_id": "a", "content_price": "5"}, "contents[0].content_price"),
        ({"content_id": "a", "num_items": 0}, "contents[0].num_items"),
        ({"content_id": ""}, "contents[0].content_id"),
        ({"content_id": "a", "colour": "red"}, "contents[0].colour"),
        ({"content_name": "x" * 501}, "contents[0].content_name"),
    ],
)
def test_content_rules(content: dict[str, Any], field: str) -> None:
    assert fields(valid(contents=[content])) == [field]


def test_lengths_are_bounded() -> None:
    assert fields(valid(conversion_id="x" * 257)) == ["conversion_id"]
    assert fields(valid(description="x" * 1001)) == ["description"]


def test_unknown_fields_are_refused_unless_configured() -> None:
    assert fields(valid(restricted_data_use=True)) == ["restricted_data_use"]
    assert fields(valid(restricted_data_use=True), allowed_extra=frozenset({"restricted_data_use"})) == []


def test_errors_carry_a_reason() -> None:
    (error,) = validate_conversion(valid(price_currency="XXY"), SETTINGS, now=NOW)
    assert "ISO 4217" in error.reason and str(error).startswith("price_currency: ")
