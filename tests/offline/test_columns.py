"""Reading cells: numbers with decimal commas, money with currencies, dates in several formats and zones."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from xgate.config import ConfigError
from xgate.offline.columns import CellError, Column, parse_column_mapping, read_cell


def cell(raw: Any, zone: str = "UTC", **column: Any) -> Any:
    return read_cell(raw, Column(to="value", **column), zone)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "decimal", "expected"),
    [
        ("12.50", ".", 12.5),
        ("1,234.50", ".", 1234.5),
        ("12,50", ",", 12.5),
        ("1.234,50", ",", 1234.5),
        ("1 234,50", ",", 1234.5),
        ("-3", ".", -3.0),
        (7, ".", 7.0),
    ],
)
def test_decimals_with_either_separator(raw: Any, decimal: str, expected: float) -> None:
    assert cell(raw, type="decimal", decimal=decimal) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("€1.234,50", (1234.5, "EUR")),
        ("1.234,50 €", (1234.5, "EUR")),
        ("12,00 EUR", (12.0, "EUR")),
        ("12,00 eur", (12.0, "EUR")),
        ("£5", (5.0, "GBP")),
        ("9,90", (9.9, None)),
    ],
)
def test_money_reads_the_amount_and_its_currency(raw: str, expected: tuple[float, str | None]) -> None:
    assert cell(raw, type="money", decimal=",") == expected


@pytest.mark.parametrize("raw", ["oops", "12,00 Euros", "€"])
def test_money_that_is_not_money_is_refused(raw: str) -> None:
    with pytest.raises(CellError):
        cell(raw, type="money", decimal=",")


@pytest.mark.parametrize(
    ("raw", "decimal", "why"),
    [
        ("12.50", ",", "is the decimal separator '.'?"),  # not 1250.0
        ("$1,234.50", ",", "only digits may follow the decimal separator ','"),  # not 1.2345
        ("12,50", ".", "is the decimal separator ','?"),  # not 1250.0
        ("1,2345.00", ".", "not groups of three digits"),
        ("+44 20 7946 0958", ",", "a phone number?"),  # not 442079460958
        ("+442079460958", ".", "a phone number?"),
        ("44 20 7946 0958", ",", "not groups of three digits"),
        ("1.234 567,00", ",", "mixes the thousands separators"),
        ("1e20", ".", "not an amount"),
        ("20000000000000", ".", "implausible amount"),
    ],
)
def test_money_read_two_ways_or_implausible_is_refused_never_guessed(
    raw: str, decimal: str, why: str
) -> None:
    with pytest.raises(CellError, match=re.escape(why)):
        cell(raw, type="money", decimal=decimal)


def test_typed_jsonl_numbers_are_not_reread_with_the_columns_separators() -> None:
    assert cell(12.5, type="money", decimal=",") == (12.5, None)
    assert cell(3, type="integer", decimal=",") == 3
    with pytest.raises(CellError, match="implausible"):
        cell(1e20, type="money")


def test_dates_try_each_format_in_order_and_naive_ones_take_the_zone() -> None:
    column = {"type": "datetime", "formats": ["%d/%m/%Y %H:%M", "%Y-%m-%d", "iso", "epoch_s"]}
    assert cell("22/11/2026 10:30", "Europe/Paris", **column) == ms(2026, 11, 22, 9, 30)
    assert cell("2026-07-01", "Europe/Paris", **column) == ms(2026, 6, 30, 22, 0)  # summer time: UTC+2
    assert cell("2026-11-22T10:30:00-05:00", "Europe/Paris", **column) == ms(2026, 11, 22, 15, 30)
    assert cell("2026-11-22T10:30:00Z", "Europe/Paris", **column) == ms(2026, 11, 22, 10, 30)
    assert cell("1763800000", **column) == 1763800000000
    assert cell("22/11/2026 10:30", "UTC", timezone="America/New_York", **column) == ms(2026, 11, 22, 15, 30)
    with pytest.raises(CellError, match="not a date"):
        cell("31/02/2026 10:00", **column)


def test_values_translate_cells_and_refuse_the_others() -> None:
    assert cell(" Sale ", values={"Sale": "purchase"}) == "purchase"
    with pytest.raises(CellError, match="not one of the values"):
        cell("Refund", values={"Sale": "purchase"})


def test_empty_cells_are_absent_and_other_types_read() -> None:
    assert cell("   ") is None
    assert cell("a; b;;c", type="list", separator=";") == ["a", "b", "c"]
    assert cell('[{"id": "sku-1"}]', type="json") == [{"id": "sku-1"}]
    assert cell("3", type="integer") == 3
    with pytest.raises(CellError, match="whole number"):
        cell("3,5", type="integer", decimal=",")


def test_a_bad_mapping_names_each_problem_by_its_toml_path() -> None:
    with pytest.raises(ConfigError) as e:
        parse_column_mapping(
            {
                "timezone": "Mars/Olympus",
                "columns": {
                    "email": {"to": "user email"},
                    "date": {"to": "context.event_timestamp", "type": "datetime", "formats": ["dd/mm"]},
                    "amount": {"to": "value", "type": "decimals"},
                },
            }
        )
    text = "\n".join(str(p) for p in e.value.problems)
    for needle in (
        "timezone",
        "unknown time zone",
        "columns.email.to",
        "columns.date.formats",
        "columns.amount.type",
    ):
        assert needle in text
    with pytest.raises(ConfigError, match="no event_name"):
        parse_column_mapping({"columns": {"email": {"to": "user.email"}}})


def test_a_mapping_names_its_own_phone_region_and_an_unknown_one_is_refused() -> None:
    base = {"columns": {"kind": {"to": "event_name"}}}
    assert parse_column_mapping({**base, "default_region": "fr"}).default_region == "FR"
    with pytest.raises(ConfigError, match=r"default_region: 'XQ' is not a region phonenumbers knows"):
        parse_column_mapping({**base, "default_region": "XQ"})
