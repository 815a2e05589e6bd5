"""Source kinds: the shapes xgate takes conversions in besides its own event (docs/sources.md).

A kind (:class:`Kind`) declares, as its ecosystem does it:

- its **endpoints** (``/v1/batch``, ``/mp/collect``, ``/webhooks/shopify`` …);
- how a request **authenticates** (:meth:`Kind.authenticate`: a write key as HTTP Basic user, a webhook
  signature over the raw body …), choosing the source among those of its kind;
- how a request splits into **messages** (:meth:`Kind.messages`) and how one message **converts** into zero
  or more xgate events (:meth:`Kind.convert`) — pure functions of their input, tested row by row;
- an **idempotency key** per converted event (Segment's ``messageId``, a webhook's event id): it becomes the
  event's ``id`` when the payload names no conversion id, so a redelivery maps to the same conversion id and
  the outbox (keyed by pixel, X event and conversion id) queues nothing new.

Everything after the conversion is what ``POST /v1/events`` does (:class:`xgate.collect.ingest.Ingest`):
enrich, filters, destination overrides, hashing, validation, the outbox. Between the two sits the source's
own configuration (:func:`apply_source`): ``event_names`` extends the kind's name table and ``mapping`` sets
xgate event fields from the kind's payload, read like a destination's overrides
(:mod:`xgate.mapping.overrides`).

Kinds register themselves in :data:`KINDS` by name (the ``kind`` of ``[[sources]]``); :func:`kind_for` finds
one. A kind's module imports only this one and the standard library / its platform's library.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from xgate.config import Source
from xgate.conversion import FieldError
from xgate.mapping.overrides import resolve


@dataclass(frozen=True, slots=True)
class Inbound:
    """One request to a kind's endpoint, as the kind sees it (no web framework): the path, the headers by
    lower-case name, the query parameters (the first of each name), the raw body."""

    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not taken: an HTTP status, an error code and a message naming the field."""

    status: int
    error: str
    message: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A path a kind takes requests at, and the methods (``POST``; ``GET`` for gtag's hits).

    ``telemetry``: the path where the kind's library reports on itself (analytics.js's delivery metrics),
    not events: answered ``204`` with no key asked and nothing read or stored, so the library's pages are
    not left with a failed request on every visit."""

    path: str
    methods: tuple[str, ...] = ("POST",)
    summary: str = ""
    telemetry: bool = False


@dataclass(slots=True)
class Converted:
    """One xgate event made from a kind's message.

    ``payload`` is what the source's ``mapping`` paths read (the Segment message, the GA4 event with its
    envelope, the order …); ``idempotency_key`` identifies the delivery (None: the payload has none)."""

    event: dict[str, Any]
    payload: dict[str, Any]
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message that converts to no event, and why (an ``identify`` call, a refund: recorded, not sent)."""

    name: str | None
    reason: str


Outcome = Converted | Ignored


@dataclass(frozen=True, slots=True)
class Keyed:
    """A source of the kind with its secret (write key or signing secret; None when it has none or its
    environment variable is unset), resolved at start."""

    source: Source
    secret: str | None


class Kind(Protocol):
    """What a source kind declares. Implementations are plain classes with class attributes."""

    #: the ``kind`` of ``[[sources]]``
    name: ClassVar[str]
    endpoints: ClassVar[tuple[Endpoint, ...]]
    #: the kind's event names -> xgate event names (others are kept as they come: custom events)
    event_names: ClassVar[Mapping[str, str]]
    #: answer 200, not 422, to a request whose events are all rejected only for want of an identifier X
    #: can match (:meth:`xgate.collect.ingest.IngestReport.status`): True where the kind's senders take
    #: every 4xx for their own error or retry it — Segment's tracking API and GA4's endpoints answer 2xx
    #: to every well-formed call, analytics.js and gtag write any other answer into the page's console,
    #: and the webhook platforms retry a 4xx for days and disable an endpoint that keeps failing. The
    #: events are still reported, logged, kept in the activity log and counted as rejected; a malformed
    #: request is still a 4xx.
    unmatched_ok: ClassVar[bool]

    def authenticate(self, inbound: Inbound, sources: Sequence[Keyed]) -> Source | Refusal:
        """The source (of this kind) the request comes from, or a 401 naming what was missing."""
        ...

    def messages(self, inbound: Inbound) -> list[Any] | Refusal:
        """The messages in a request (a batch is several), or a 400 naming the field."""
        ...

    def read_file(self, data: bytes) -> list[Any] | Refusal:
        """The messages in a file, for ``xgate map --source`` (no authentication)."""
        ...

    def convert(self, message: Any, names: Mapping[str, str]) -> list[Outcome]:
        """One message as xgate events; ``names`` is the kind's table merged with the source's."""
        ...


#: module of each kind, imported on first use
_MODULES = {
    "segment": "xgate.collect.kinds.segment",
    "ga4": "xgate.collect.kinds.ga4",
    "shopify": "xgate.collect.kinds.shopify",
    "woocommerce": "xgate.collect.kinds.woocommerce",
    "stripe": "xgate.collect.kinds.stripe",
}
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add ``kind`` to :data:`KINDS` (each kind module calls it once at import)."""
    KINDS[kind.name] = kind
    return kind


def kind_for(name: str) -> Kind | None:
    """The kind called ``name`` (None for ``xgate``, which ``/v1/events`` takes, or a kind not built)."""
    if name not in KINDS and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name != _MODULES[name]:
                raise
    return KINDS.get(name)


def names_for(kind: Kind, source: Source) -> dict[str, str]:
    """The kind's event-name table with the source's ``event_names`` over it."""
    return {**kind.event_names, **source.event_names}


def _set_path(event: dict[str, Any], path: str, value: Any) -> None:
    node = event
    *parents, last = path.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else child
            if not isinstance(child, dict):  # a scalar where an object belongs: the override wins
                child = {}
            node[part] = child = dict(child)
        node = child
    node[last] = value


def apply_source(source: Source, converted: Converted) -> tuple[dict[str, Any], list[FieldError]]:
    """The converted event with the idempotency key as its ``id`` when it has none, then the source's
    ``mapping`` applied: each field read from the payload (a path the payload lacks leaves the kind's
    value). Returns the event and the errors of transforms that could not apply (``mapping.value`` …)."""
    event = dict(converted.event)
    if event.get("id") in (None, "") and converted.idempotency_key:
        event["id"] = converted.idempotency_key
    errors: list[FieldError] = []
    for target, override in source.mapping.items():
        value, error = resolve(target, override, converted.payload)
        if error is not None:
            errors.append(FieldError(f"sources.{source.name}.mapping.{target}", error.reason))
        elif value is not None:
            _set_path(event, target, value)
    return event, errors


@dataclass(slots=True)
class SourceEvent:
    """What one converted message became: an xgate event ready for ingest, or a settled outcome (ignored,
    or refused by the source's mapping) that the report states without mapping it."""

    event: dict[str, Any] | None
    name: str | None
    ignored: str | None = None
    errors: list[FieldError] = field(default_factory=list)


def source_events(
    kind: Kind, source: Source, messages: Sequence[Any], names: Mapping[str, str] | None = None
) -> list[SourceEvent]:
    """Every message of a request through :meth:`Kind.convert` and :func:`apply_source`, in order.

    Two events of one message with one idempotency key get ``#2``, ``#3`` … after theirs, so they stay
    apart in the outbox while a redelivery still matches."""
    names = names_for(kind, source) if names is None else names
    out: list[SourceEvent] = []
    for message in messages:
        seen: dict[str, int] = {}
        for outcome in kind.convert(message, names):
            if isinstance(outcome, Ignored):
                out.append(SourceEvent(None, outcome.name, ignored=outcome.reason))
                continue
            key = outcome.idempotency_key
            if key is not None:
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > 1:
                    outcome.idempotency_key = f"{key}#{seen[key]}"
            event, errors = apply_source(source, outcome)
            name = event.get("event_name")
            out.append(SourceEvent(event, name if isinstance(name, str) else None, errors=errors))
    return out


def first(*values: Any) -> Any:
    """The first value that is neither None nor an empty string (payloads spell "absent" both ways)."""
    for v in values:
        if v is not None and v != "":
            return v
    return None


def number(value: Any) -> float | None:
    """A payload's amount as a number: JSON numbers, and numbers written as text (``"42.50"``), as
    platforms and query strings send them; None for anything else (the mapper then leaves it out)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def text(value: Any) -> str | None:
    """An id as text (``1234`` and ``"1234"`` alike); None when absent or not a scalar."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int | float | str):
        return str(value) if not isinstance(value, float) or not value.is_integer() else str(int(value))
    return None


def json_object(body: bytes, what: str = "a JSON object") -> dict[str, Any] | Refusal:
    """``body`` parsed as a JSON object; else the 400 naming why (``invalid_json``: not JSON, with the
    parser's reason; ``invalid_body``: JSON but not an object, "body: must be ``what``")."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return Refusal(400, "invalid_json", f"body: not valid JSON ({e})")
    if not isinstance(data, dict):
        return Refusal(400, "invalid_body", f"body: must be {what}")
    return data


def prune(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without None values and empty objects / lists, recursively (a converted event names only
    what the payload had)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            v = prune(v)
        if v is None or v == {} or v == []:
            continue
        out[k] = v
    return out


__all__ = [
    "KINDS",
    "Converted",
    "Endpoint",
    "Ignored",
    "Inbound",
    "Keyed",
    "Kind",
    "Outcome",
    "Refusal",
    "SourceEvent",
    "apply_source",
    "first",
    "json_object",
    "kind_for",
    "names_for",
    "number",
    "prune",
    "register",
    "source_events",
    "text",
]
