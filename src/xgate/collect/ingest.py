"""The ingest step of ``POST /v1/events``: enrich and map a batch, then say what became of each event."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from xgate.collect.enrich import RequestFacts, enrich
from xgate.conversion import FieldError, MappedConversion, MappingResult
from xgate.events import InvalidEvent, get_path
from xgate.observe.activity import RejectionLog
from xgate.observe.metrics import Metrics
from xgate.outbox.base import EnqueueOutcome
from xgate.tag.twclid import clean_twclid

log = logging.getLogger("xgate.collect")

EventStatus = Literal["accepted", "duplicate", "skipped", "rejected"]
#: the field of the refusal of an event with no identifier X can match (a twclid, an e-mail, a phone:
#: :func:`xgate.validation.validate_conversion`): nothing in the event is wrong, X just cannot attribute it
UNMATCHED_FIELD = "identifiers"


class EventMapper(Protocol):
    def map(self, event: Any, *, received_at: datetime | None = None) -> MappingResult: ...


class EventReport:
    """What became of one event of a request (a plain class: mypyc compiles its ``__init__``, not a
    dataclass's, and one is made per event)."""

    __slots__ = ("conversions", "errors", "event_name", "index", "skipped", "status", "twclid", "warnings")

    def __init__(
        self,
        index: int,
        status: EventStatus,
        event_name: str | None,
        *,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        self.index = index
        self.status: EventStatus = status
        self.event_name = event_name
        self.twclid: str | None = None
        self.conversions: list[dict[str, str]] = []
        self.skipped: dict[str, str] = {}
        self.errors: list[dict[str, str]] = errors if errors is not None else []
        #: what was dropped or cleaned, per the policy for unusable values (never a value)
        self.warnings: list[str] = []

    def unmatched(self) -> bool:
        """Rejected only for want of an identifier X can match (:data:`UNMATCHED_FIELD`), not for a value
        that is wrong: an e-mail that is no e-mail address is named by its own field, and is not this."""
        return (
            self.status == "rejected"
            and bool(self.errors)
            and all(e["field"] == UNMATCHED_FIELD for e in self.errors)
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.conversions:
            out["conversions"] = self.conversions
        if self.skipped:
            out["skipped"] = self.skipped
        if self.errors:
            out["errors"] = self.errors
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class Settled:
    """An event a source kind settled before mapping (:mod:`xgate.collect.kinds`): ignored, with why (an
    ``identify`` call, a refund: recorded, not sent), or refused by the source's own mapping, with the
    errors. It takes its place in a batch's report without being mapped."""

    __slots__ = ("errors", "event_name", "ignored")

    def __init__(
        self, event_name: str | None, *, ignored: str | None = None, errors: Sequence[FieldError] = ()
    ) -> None:
        self.event_name = event_name
        self.ignored = ignored
        self.errors = list(errors)

    def report(self, index: int) -> EventReport:
        if self.errors:
            return EventReport(index, "rejected", self.event_name, errors=_errors(self.errors))
        report = EventReport(index, "skipped", self.event_name)
        report.skipped = {"source": self.ignored or "ignored"}
        return report


@dataclass(slots=True)
class IngestReport:
    events: list[EventReport]

    def count(self, status: EventStatus) -> int:
        return sum(1 for e in self.events if e.status == status)

    @property
    def all_rejected(self) -> bool:
        return all(e.status == "rejected" for e in self.events)

    def status(self, *, unmatched_ok: bool = False) -> int:
        """The HTTP status of the answer: 200 when at least one event is not rejected, 422 when all are.
        ``unmatched_ok``: 200 as well when every rejection is only for want of an identifier X can match
        (:meth:`EventReport.unmatched`), for senders that take any 4xx for their own error (a Segment
        library); the events are still reported, logged and counted as rejected."""
        if not self.all_rejected:
            return 200
        if unmatched_ok and all(e.unmatched() for e in self.events):
            return 200
        return 422

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "skipped": self.count("skipped"),
            "rejected": self.count("rejected"),
            "results": [e.as_json() for e in self.events],
        }


def _errors(errors: Sequence[FieldError], destination: str | None = None) -> list[dict[str, str]]:
    out = []
    for e in errors:
        item = {"field": e.field, "reason": e.reason}
        if destination:
            item["destination"] = destination
        out.append(item)
    return out


@dataclass(slots=True)
class Prepared:
    """Mapped events waiting for the outbox: reports in order, and the conversions to enqueue."""

    reports: list[EventReport] = field(default_factory=list)
    pending: list[tuple[EventReport, list[MappedConversion]]] = field(default_factory=list)
    conversions: list[MappedConversion] = field(default_factory=list)


class Ingest:
    """Enrich → map (:meth:`prepare`), then settle by the outbox's outcomes (:meth:`finish`)."""

    def __init__(self, mapper: EventMapper, metrics: Metrics, rejections: RejectionLog) -> None:
        self._mapper = mapper
        self._metrics = metrics
        self._rejections = rejections

    def _map_one(
        self, index: int, raw: Any, facts: RequestFacts, source: str
    ) -> tuple[EventReport, list[MappedConversion]]:
        if not isinstance(raw, dict):
            if isinstance(raw, Settled):
                return raw.report(index), []
            errors = [FieldError("event", "must be a JSON object")]
            return EventReport(index, "rejected", None, errors=_errors(errors)), []
        name = raw.get("event_name")
        report = EventReport(index, "rejected", name if isinstance(name, str) else None)
        event = enrich(raw, facts)
        try:
            result = self._mapper.map(event, received_at=facts.received_at)
        except InvalidEvent as e:
            report.errors = _errors(e.errors)
            return report, []
        except Exception:  # a mapper bug must not cost the other events of the batch
            log.exception(
                "mapping failed", extra={"fields": {"index": index, "event_name": report.event_name}}
            )
            report.errors = [{"field": "event", "reason": "could not be mapped (internal error, logged)"}]
            return report, []
        report.warnings.extend(result.warnings)  # whatever became of the event: a rejected one too
        for rejection in result.rejections:
            report.errors.extend(_errors(rejection.errors, rejection.destination))
        report.skipped = dict(result.skipped)
        for c in result.conversions:
            c.source = source
        if result.conversions:
            report.status = "accepted"  # settled by the enqueue outcome
            for c in result.conversions:
                for warning in c.warnings:
                    if warning not in report.warnings:
                        report.warnings.append(warning)
            twclid = get_path(event, "partners.twitter.twclid")
            report.twclid = clean_twclid(twclid) if isinstance(twclid, str) else None
        elif not result.rejections:
            report.status = "skipped"
        return report, result.conversions

    def prepare(
        self, events: Sequence[Any], facts: RequestFacts, source: str = "", *, public: bool = False
    ) -> Prepared:
        """Enrich and map every event (CPU only: nothing is stored yet); a :class:`Settled` entry is
        reported as it says. ``source``: the ``[[sources]]`` name the events came with, stored on each
        conversion. ``public``: sent with a public key (a browser source's), so the conversions never
        pre-empt a server's in the outbox (:attr:`MappedConversion.public`)."""
        prepared = Prepared()
        for index, raw in enumerate(events):
            report, conversions = self._map_one(index, raw, facts, source)
            prepared.reports.append(report)
            if conversions:
                if public:
                    for c in conversions:
                        c.public = True
                prepared.pending.append((report, conversions))
                prepared.conversions.extend(conversions)
        return prepared

    def finish(self, prepared: Prepared, outcomes: Sequence[EnqueueOutcome], source: str) -> IngestReport:
        """Settle each event by the outbox's outcomes; record metrics, rejections and logs.

        A rejection only for want of an identifier X can match (:meth:`EventReport.unmatched`: an
        anonymous visitor's page view, on every page load of a shop) is counted (the shared counts' kind
        ``rejection``), not kept one by one: the rejection log keeps a bounded window per source, which
        such events would fill, pushing out the rejections an operator must read (a wrong value)."""
        position = 0
        queued: dict[str, int] = {}
        for report, conversions in prepared.pending:
            mine = outcomes[position : position + len(conversions)]
            position += len(conversions)
            report.conversions = []
            report.status = "duplicate"
            for c, o in zip(conversions, mine, strict=True):
                report.conversions.append(
                    {
                        "destination": c.destination,
                        "pixel_id": c.pixel_id,
                        "conversion_id": c.conversion_id,
                        "status": o.status,
                    }
                )
                if o.status == "queued":
                    report.status = "accepted"
                    queued[o.destination] = queued.get(o.destination, 0) + 1
        self._metrics.record_queued(queued)
        statuses: dict[str, int] = {}
        unmatched = 0
        for report in prepared.reports:
            statuses[report.status] = statuses.get(report.status, 0) + 1
            if report.errors:
                if report.unmatched():
                    unmatched += 1
                else:
                    errors = [FieldError(e["field"], e["reason"]) for e in report.errors]
                    destination = report.errors[0].get("destination")
                    self._rejections.add(source, report.event_name, errors, destination=destination)
                log.info(
                    "event rejected",
                    extra={
                        "fields": {
                            "source": source,
                            "event_name": report.event_name,
                            "status": report.status,
                            "errors": report.errors,
                        }
                    },
                )
        self._metrics.record_events(source, statuses, unmatched=unmatched)
        return IngestReport(prepared.reports)
