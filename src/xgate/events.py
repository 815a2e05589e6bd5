"""The xgate event: a generic, destination-neutral conversion event (see shared/events/REFERENCE.md).

Unknown properties are kept at every level so that a destination's field overrides can read them; one that
is spelled almost like a known field (``user.emial``) is named in a warning (:func:`near_misses`).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xgate.conversion import FieldError
from xgate.errors import InvalidEvent as InvalidEvent
from xgate.event_reader import (
    EventData,
    format_x_time,
    near_misses,
    parse_timestamp,
    read_well_formed,
)


class _Open(BaseModel):
    """A model that keeps unknown properties (readable by dotted-path overrides)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _no_boolean(v: Any) -> Any:
    """An amount or count as sent, unless it is ``true`` / ``false``: pydantic would read those as 1 and 0,
    which are a wrong field rather than a sale worth 1 (docs/events.md, "What xgate does with an unusable
    value"). Numeric text (``"12.50"``) is still read as its number."""
    if isinstance(v, bool):
        raise ValueError("must be a number, not true or false")
    return v


class Product(_Open):
    id: str | None = None
    name: str | None = None
    price: float | None = None
    group_id: str | None = None
    category_1: str | None = None
    category_2: str | None = None
    category_3: str | None = None
    category_4: str | None = None
    category_5: str | None = None

    @field_validator("id", "group_id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    _price = field_validator("price", mode="before")(_no_boolean)


class Item(_Open):
    id: str | None = None
    quantity: int | None = Field(default=None, ge=0)
    price: float | None = None
    product: Product | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    _amounts = field_validator("quantity", "price", mode="before")(_no_boolean)


class User(_Open):
    id: str | None = None
    email: str | None = None
    phone: str | None = None
    consent_categories: list[str] | None = None


class Context(_Open):
    event_timestamp: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    page_url: str | None = None

    @field_validator("event_timestamp", mode="before")
    @classmethod
    def _parse_timestamp(cls, v: Any) -> Any:
        return parse_timestamp(v) if v is not None else None


class Twitter(_Open):
    twclid: str | None = None


class Partners(_Open):
    twitter: Twitter | None = None


class Event(_Open):
    """One conversion event as sources send it. Only ``event_name`` is required."""

    event_name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, max_length=200)
    value: float | None = None
    revenue: float | None = None
    currency: str | None = None
    type: str | None = None
    search_term: str | None = None
    user: User | None = None
    items: list[Item] | None = None
    context: Context | None = None
    partners: Partners | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    _amounts = field_validator("value", "revenue", mode="before")(_no_boolean)

    @property
    def twclid(self) -> str | None:
        return self.partners.twitter.twclid if self.partners and self.partners.twitter else None


def get_path(data: Any, path: str) -> Any:
    """Read a dotted path (``user.email``, ``items.0.id``, ``custom.channel``) from an event or dict.

    Returns None where any step is missing.
    """
    current: Any = data
    for part in path.split("."):
        if current is None:
            return None
        if isinstance(current, BaseModel):
            if part in type(current).model_fields:
                current = getattr(current, part)
            else:
                current = (current.model_extra or {}).get(part)
        elif isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list | tuple):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return None
        else:
            return None
    return current


def parse_event(data: Any) -> Event:
    """Validate raw JSON-like data into an :class:`Event`, or raise :class:`InvalidEvent`."""
    if isinstance(data, Event):
        return data
    if not isinstance(data, dict):
        raise InvalidEvent([FieldError("event", "must be a JSON object")])
    try:
        return Event.model_validate(data)
    except ValidationError as e:
        raise InvalidEvent(_field_errors(e.errors())) from None


#: event fields X can do without (by their path; ``items`` entries: by the path inside the entry): a value
#: of the wrong type there is dropped with a warning instead of refusing the event (docs/events.md, "What
#: xgate does with an unusable value"). ``value``, ``currency``, ``id``, the timestamp and consent are not
#: among them: dropping those would change what the conversion says.
_DROPPABLE: frozenset[tuple[str, ...]] = frozenset(
    {
        ("type",),
        ("search_term",),
        ("user", "id"),
        ("user", "email"),
        ("user", "phone"),
        ("context", "ip"),
        ("context", "user_agent"),
        ("context", "page_url"),
        ("partners", "twitter", "twclid"),
    }
)
_DROPPABLE_IN_ITEM: frozenset[tuple[str, ...]] = frozenset(
    {
        (),
        ("id",),
        ("price",),
        ("quantity",),
        ("product",),
        *(("product", key) for key in ("id", "name", "price", "group_id")),
        *(("product", f"category_{n}") for n in range(1, 6)),
    }
)


def _droppable(loc: tuple[int | str, ...]) -> bool:
    if loc in _DROPPABLE:
        return True
    return len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int) and loc[2:] in _DROPPABLE_IN_ITEM


def _drop(data: Any, loc: tuple[int | str, ...]) -> None:
    """Remove ``loc`` from ``data`` (an item of a list is marked None, then the list is compacted)."""
    *parents, last = loc
    for part in parents:
        data = data[part]
    if isinstance(data, list):
        data[int(last)] = None
    else:
        data.pop(last, None)


def read_event(data: Any) -> tuple[EventData, list[FieldError]]:
    """``data`` as :data:`EventData`, and the fields X can do without that held a value of the wrong
    type and were dropped, each with the reason (``items.0.price``: ``Input should be a valid number…``;
    never the value).

    Raises :class:`InvalidEvent` naming each field and reason when a field that cannot be dropped is
    unusable (``value``, ``currency``, ``id``, ``context.event_timestamp``, ...)."""
    try:
        return event_data(data), []
    except InvalidEvent:
        if not isinstance(data, dict):
            raise
    try:  # the rare event with an error: read the model's errors by location
        Event.model_validate(data)
        problems: list[Any] = []
    except ValidationError as e:
        problems = e.errors()
    refused = [p for p in problems if not _droppable(tuple(p["loc"]))]
    if refused:
        raise InvalidEvent(_field_errors(refused))
    cleaned = copy.deepcopy(data)
    for p in sorted(problems, key=lambda p: len(p["loc"]), reverse=True):
        _drop(cleaned, tuple(p["loc"]))
    items = cleaned.get("items")
    if isinstance(items, list):
        cleaned["items"] = [i for i in items if i is not None]
    return parse_event(cleaned).model_dump(exclude_unset=True), _field_errors(problems)


def _field_errors(problems: Any) -> list[FieldError]:
    errors = []
    for err in problems:
        path = ".".join(str(p) for p in err["loc"]) or "event"
        errors.append(FieldError(path, err["msg"].removeprefix("Value error, ")))
    return errors


def event_data(data: Any) -> EventData:
    """``data`` as :data:`EventData`, or :class:`InvalidEvent` naming each field and reason.

    Plainly well-formed input (the usual case) is read by :func:`read_well_formed`; anything else goes
    through the :class:`Event` model, whose errors are the reference. Both give the same data.
    """
    if isinstance(data, dict):
        fast = read_well_formed(data)
        if fast is not None:
            return fast
    return parse_event(data).model_dump(exclude_unset=True)


__all__ = [
    "Event",
    "EventData",
    "InvalidEvent",
    "event_data",
    "format_x_time",
    "get_path",
    "near_misses",
    "parse_event",
    "parse_timestamp",
    "read_event",
    "read_well_formed",
]
