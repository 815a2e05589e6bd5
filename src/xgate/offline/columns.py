"""The column mapping of an import: which column of a file becomes which field of the event, and how
each cell is read (text, numbers with decimal commas, money with a currency, dates in several formats
and time zones, lists, JSON).

A mapping is a TOML file (see docs/offline.md); :func:`load_column_mapping` reads it and reports every
mistake by its TOML path, like ``xgate config check``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xgate.config import ConfigError, ConfigProblem, config_problems, not_utf8, phone_region, read_toml_text
from xgate.errors import CellError as CellError
from xgate.validation import MAX_AMOUNT

CellType = Literal["text", "decimal", "integer", "money", "datetime", "list", "json"]

#: fields whose values are personal data: a report never quotes their cells
PERSONAL_PREFIXES = ("user.", "partners.")

#: currency symbols read in money cells, beside ISO 4217 codes (``12.50 EUR``)
CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "US$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR", "CHF": "CHF"}
_MONEY = re.compile(r"^(?P<pre>[^\d\-+.,]*)\s*(?P<amount>[-+]?[\d.,' \u00a0\u202f]*\d)\s*(?P<post>[^\d]*)$")
_EVENT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TIME_FORMATS = ("iso", "epoch_s", "epoch_ms")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One column: where its value goes (``to``, a dotted event path) and how its cells are read."""

    to: str
    type: CellType = "text"
    #: decimal and money: the decimal separator, and the thousands separators to ignore
    decimal: Literal[".", ","] = "."
    thousands: str | None = None
    #: datetime: strftime patterns tried in order, or iso / epoch_s / epoch_ms
    formats: list[str] = Field(default_factory=lambda: ["iso"])
    #: datetime: the zone of cells without an offset (default: the mapping's ``timezone``)
    timezone: str | None = None
    #: list: the separator between items
    separator: str = ","
    #: cells translated before they are read ("Sale" → "purchase"); other cells are refused
    values: dict[str, str] | None = None
    #: money: where the currency found in the cell goes
    currency_to: str | None = "currency"
    #: refuse the row when the cell is empty
    required: bool = False

    @field_validator("to", "currency_to")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not _EVENT_PATH.match(v):
            raise ValueError("must be a dotted event path such as user.email or context.event_timestamp")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            _zone(v)
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one format")
        for f in v:
            if f not in _TIME_FORMATS and "%" not in f:
                raise ValueError(f"{f!r} is neither a strftime pattern (%d/%m/%Y) nor one of {_TIME_FORMATS}")
        return v

    @model_validator(mode="after")
    def _separators(self) -> Column:
        if self.thousands is not None and self.decimal in self.thousands:
            raise ValueError(f"thousands separators {self.thousands!r} contain the decimal separator")
        return self

    @property
    def personal(self) -> bool:
        return self.to.startswith(PERSONAL_PREFIXES)


class ColumnMapping(_Strict):
    """A whole mapping file: the file's format and one :class:`Column` per column read."""

    format: Literal["csv", "jsonl"] | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    #: the zone of dates without an offset, unless their column names another
    timezone: str = "UTC"
    #: the region of this file's phone numbers written without a country code (a French CRM export: FR);
    #: None: the configuration's ``[identity] default_region``
    default_region: str | None = None
    #: columns by their name in the file (JSONL: a key, or a dotted path into the line's object); none:
    #: each JSONL line already is an event
    columns: dict[str, Column] = Field(default_factory=dict)
    #: event fields set on every row (``event_name = "purchase"``, ``currency = "EUR"``)
    constants: dict[str, Any] = Field(default_factory=dict)
    #: columns whose values identify a row when no column maps to ``id`` (default: every mapped column)
    identity: list[str] | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        _zone(v)
        return v

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return None if v is None else phone_region(v)

    @field_validator("constants")
    @classmethod
    def _constant_paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path in v:
            if not _EVENT_PATH.match(path):
                raise ValueError(f"{path!r} is not a dotted event path such as currency or context.ip")
        return v

    @model_validator(mode="after")
    def _whole(self) -> ColumnMapping:
        targets = [c.to for c in self.columns.values()]
        if self.columns and "event_name" not in targets and "event_name" not in self.constants:
            raise ValueError(
                'no event_name: map a column to it (to = "event_name") or set constants.event_name'
            )
        for name in self.identity or []:
            if name not in self.columns:
                raise ValueError(f"identity names {name!r}, which is not a mapped column")
        return self

    @property
    def id_column(self) -> str | None:
        return next((name for name, c in self.columns.items() if c.to == "id"), None)

    def identity_columns(self) -> list[str]:
        return list(self.identity) if self.identity else sorted(self.columns)


def parse_column_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> ColumnMapping:
    try:
        return ColumnMapping.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, config_problems(e, data)) from None


def load_column_mapping(path: str | Path) -> ColumnMapping:
    p = Path(path)
    try:
        data = tomllib.loads(read_toml_text(p))
    except FileNotFoundError:
        raise ConfigError(str(p), [ConfigProblem("", "mapping file not found")]) from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(p), [ConfigProblem("", not_utf8(e))]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), [ConfigProblem("", f"not valid TOML: {e}")]) from None
    return parse_column_mapping(data, str(p))


# -- reading cells ------------------------------------------------------------------------------------
_DIGITS = frozenset("0123456789")


def _thousands(column: Column) -> str:
    if column.thousands is not None:
        return column.thousands
    return ". '\u00a0\u202f" if column.decimal == "," else ", '\u00a0\u202f"


def _strict_number(text: str, column: Column) -> Decimal:
    """A number written with the column's separators, refused when it could be read two ways: a
    thousands separator must sit between groups of three digits, and only digits follow the decimal
    separator. So ``12.50`` in a column whose decimal separator is ``,`` is refused (not read as 1250),
    as is ``$1,234.50`` (not 1.2345) and ``+44 20 7946 0958`` (not 442079460958)."""
    decimal, thousands = column.decimal, _thousands(column)
    other = "." if decimal == "," else ","
    sign = ""
    if text[:1] in ("-", "+"):
        sign, text = text[0], text[1:]
    whole, _, fraction = text.partition(decimal)
    if fraction and not set(fraction) <= _DIGITS:
        raise CellError(
            f"only digits may follow the decimal separator {decimal!r} (is the decimal separator {other!r}?)"
        )
    marks = {ch for ch in whole if ch not in _DIGITS}
    if marks - set(thousands) or not (whole or fraction) or whole[:1] in marks:
        raise CellError(f"not a number (decimal separator {decimal!r})")
    if len(marks) > 1:
        raise CellError(f"mixes the thousands separators {''.join(sorted(marks))!r}")
    if marks:
        (mark,) = marks
        groups = whole.split(mark)
        if not (len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            raise CellError(
                f"{mark!r} separates thousands here, but not groups of three digits"
                + (f" (is the decimal separator {mark!r}?)" if mark == other else "")
            )
        whole = whole.replace(mark, "")
    return Decimal(f"{sign}{whole or '0'}.{fraction or '0'}")


def read_decimal(text: str, column: Column) -> float:
    return float(_strict_number(text, column))


def read_integer(text: str, column: Column) -> int:
    number = read_decimal(text, column)
    if not number.is_integer():
        raise CellError("not a whole number")
    return int(number)


def _plausible_amount(amount: float) -> float:
    if not amount <= MAX_AMOUNT:
        raise CellError(f"an implausible amount (over {MAX_AMOUNT:,}): a wrong column?")
    return amount


def read_money(text: str, column: Column) -> tuple[float, str | None]:
    """``€1.234,50`` / ``1,234.50 USD`` / ``12.5`` → (amount, ISO currency or None). Refused: a cell
    the column's separators read two ways (see :func:`_strict_number`), a leading ``+`` (a phone number),
    an amount over :data:`~xgate.validation.MAX_AMOUNT`."""
    m = _MONEY.match(text)
    if not m:
        raise CellError("not an amount such as 12.50, €12,50 or 12.50 EUR")
    if m["amount"].startswith("+"):
        raise CellError("an amount is not written with a leading + (a phone number?)")
    marks = (m["pre"].strip() + m["post"].strip()).strip()
    currency: str | None = None
    if marks:
        currency = CURRENCY_SYMBOLS.get(marks) or (
            marks.upper() if re.fullmatch(r"[A-Za-z]{3}", marks) else None
        )
        if currency is None:
            raise CellError(f"unknown currency mark {marks!r}")
    return _plausible_amount(read_decimal(m["amount"], column)), currency


def _typed_number(number: float, column: Column) -> Any:
    """A JSON number of a JSONL line: already a number, whatever the column's separators say."""
    if isinstance(number, float) and not math.isfinite(number):
        raise CellError("not a finite number")
    if column.type == "integer":
        if number != int(number):
            raise CellError("not a whole number")
        return int(number)
    if column.type == "money":
        return _plausible_amount(float(number)), None
    return float(number)


def read_datetime(text: str, column: Column, default_zone: str) -> int:
    """Epoch milliseconds of a date or time written in one of the column's formats."""
    zone = _zone(column.timezone or default_zone)
    for fmt in column.formats:
        try:
            if fmt == "epoch_ms":
                return int(Decimal(text))
            if fmt == "epoch_s":
                return int(Decimal(text) * 1000)
            if fmt == "iso":
                dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            else:
                dt = datetime.strptime(text, fmt)
        except (ValueError, InvalidOperation):
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=zone)
        return int(dt.astimezone(UTC).timestamp() * 1000)
    raise CellError(f"not a date in any of the formats {column.formats}")


def read_cell(raw: Any, column: Column, default_zone: str) -> Any:
    """The event value of one cell; None for an empty cell. Raises :class:`CellError`."""
    if raw is None:
        return None
    if not isinstance(raw, str):  # JSONL values arrive typed: only text is read further
        if column.type == "json" or not isinstance(raw, int | float) or isinstance(raw, bool):
            return raw
        if column.type in ("decimal", "money", "integer") and column.values is None:
            return _typed_number(raw, column)
        raw = str(raw)
    text = raw.strip()
    if not text:
        return None
    if column.values is not None:
        if text not in column.values:
            raise CellError("not one of the values listed in the mapping")
        text = column.values[text]
    kind = column.type
    if kind == "text":
        return text
    if kind == "decimal":
        return read_decimal(text, column)
    if kind == "integer":
        return read_integer(text, column)
    if kind == "money":
        return read_money(text, column)
    if kind == "datetime":
        return read_datetime(text, column, default_zone)
    if kind == "list":
        return [part.strip() for part in text.split(column.separator) if part.strip()]
    try:  # json
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CellError("not valid JSON") from None
