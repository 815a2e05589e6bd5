"""What the map stage produces and every later stage consumes: one X conversion for one destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: identifiers present on a conversion, as shown in the activity log: twclid, email, phone, ip_ua
MatchSignal = Literal["twclid", "email", "phone", "ip_ua"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """A reason an event or conversion is refused, naming the field (dotted path) it concerns; both are
    scrubbed and bounded when made (:func:`xgate.observe.redact.error_text`)."""

    field: str
    reason: str

    def __post_init__(self) -> None:
        # every error text passes here: no raw e-mail, phone or secret, and no value quoted at length,
        # whoever formed it (docs/security.md, "Personal data"). Imported here: xgate.observe imports this
        # module, and errors are the rare path
        from xgate.observe.redact import error_text

        object.__setattr__(self, "field", error_text(self.field, 200))
        object.__setattr__(self, "reason", error_text(self.reason))

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class MappedConversion:
    """One conversion ready for X: ``body`` is the exact object placed in ``{"conversions": [...]}``.

    Identifiers in ``body`` are already normalized and hashed; nothing here is raw PII. Treat it as
    immutable (but for :attr:`public` and :attr:`source`, which the receiving stage sets before storing).
    A plain class rather than a dataclass: one is built per event and destination, and a dataclass's
    generated ``__init__`` stays interpreted Python when this module is compiled.
    """

    __slots__ = (
        "body",
        "conversion_id",
        "destination",
        "event_id",
        "event_name",
        "match_signals",
        "pixel_id",
        "public",
        "restricted",
        "source",
        "warnings",
    )

    def __init__(
        self,
        destination: str,
        pixel_id: str,
        event_id: str,
        conversion_id: str,
        body: dict[str, Any],
        match_signals: frozenset[str],
        event_name: str,
        warnings: tuple[str, ...] = (),
        restricted: bool = False,
        source: str = "",
    ) -> None:
        self.destination = destination
        self.pixel_id = pixel_id
        self.event_id = event_id
        self.conversion_id = conversion_id
        self.body = body
        self.match_signals = match_signals
        self.event_name = event_name
        #: non-fatal notes, e.g. an unusable phone that was dropped (never the raw value)
        self.warnings = warnings
        self.restricted = restricted
        #: sent with a public key (a browser source's): its dedup key never blocks a conversion from a
        #: secret key (docs/security.md, "Deduplication and trust"). Set by the collector before storing.
        self.public = False
        #: who sent it, stored with the row: the ``[[sources]]`` name, or ``import:<file name>``. The
        #: mapper leaves it empty; the stage that received the event sets it (:mod:`xgate.collect.ingest`,
        #: :mod:`xgate.offline.importer`) before storing, the one write after construction.
        self.source = source

    def _key(self) -> tuple[Any, ...]:
        return (
            self.destination,
            self.pixel_id,
            self.event_id,
            self.conversion_id,
            self.body,
            self.match_signals,
            self.event_name,
            self.warnings,
            self.restricted,
            self.public,
            self.source,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MappedConversion) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # compares by value, holds a dict

    def __repr__(self) -> str:
        return (
            f"MappedConversion(destination={self.destination!r}, pixel_id={self.pixel_id!r}, "
            f"event_id={self.event_id!r}, conversion_id={self.conversion_id!r}, "
            f"match_signals={sorted(self.match_signals)!r}, restricted={self.restricted!r})"
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """A destination that would take the event but cannot: the event is invalid for it."""

    destination: str
    errors: tuple[FieldError, ...]


class MappingResult:
    """The outcome of mapping one event to every configured destination (a plain class, for the reason
    given on :class:`MappedConversion`)."""

    __slots__ = ("conversions", "rejections", "skipped", "warnings")

    def __init__(self) -> None:
        self.conversions: list[MappedConversion] = []
        self.rejections: list[Rejection] = []
        #: destinations that did not take the event, with why (filter, no event id, consent drop)
        self.skipped: dict[str, str] = {}
        #: what concerns the event whatever became of it (a key spelled almost like a known field); each
        #: conversion repeats these in its own ``warnings``
        self.warnings: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.rejections

    def __repr__(self) -> str:
        return (
            f"MappingResult(conversions={self.conversions!r}, rejections={self.rejections!r}, "
            f"skipped={self.skipped!r})"
        )
