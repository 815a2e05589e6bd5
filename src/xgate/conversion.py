"""What the map stage produces and every later stage consumes: one X conversion for one destination."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: identifiers present on a conversion, as shown in the activity log: twclid, email, phone, ip_ua
MatchSignal = Literal["twclid", "email", "phone", "ip_ua"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """A reason an event or conversion is refused, naming the field (dotted path) it concerns."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class MappedConversion:
    """One conversion ready for X: ``body`` is the exact object placed in ``{"conversions": [...]}``.

    Identifiers in ``body`` are already normalized and hashed; nothing here is raw PII.
    """

    destination: str
    pixel_id: str
    event_id: str
    conversion_id: str
    body: dict[str, Any]
    match_signals: frozenset[str]
    event_name: str
    #: non-fatal notes, e.g. an unusable phone that was dropped (never the raw value)
    warnings: tuple[str, ...] = ()
    restricted: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    """A destination that would take the event but cannot: the event is invalid for it."""

    destination: str
    errors: tuple[FieldError, ...]


@dataclass(slots=True)
class MappingResult:
    """The outcome of mapping one event to every configured destination."""

    conversions: list[MappedConversion] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    #: destinations that did not take the event, with why (filter, no event id, consent drop)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.rejections
