"""The activity log: recent events as X's Events Manager shows them, newest first.

Conversions come from the outbox rows (destination, event, conversion id, match signals, delivery state,
attempts, X's debug id or error); rejected events from the outbox too (:class:`RejectionLog`), which keeps
the field and the reason, never the rejected value. Events rejected only for want of an identifier X can
match (an anonymous visitor's page view) are not listed one by one: their number per source is
(:func:`unmatched_counts`), so that they never push the rejections that need a fix out of sight.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from xgate.conversion import FieldError
from xgate.errors import OutboxUnavailable
from xgate.observe.batched import BatchedWriter
from xgate.observe.counts import SharedCounts
from xgate.observe.redact import scrub
from xgate.outbox.base import Outbox, OutboxRow, RejectionRecord, minute_of

log = logging.getLogger(__name__)

#: match signals in display order
SIGNALS = ("twclid", "email", "phone", "ip_ua")
#: the events rejected for want of an identifier are counted over this window in ``/v1/activity``
UNMATCHED_WINDOW_SECONDS = 24 * 3600


def signals_text(present: Sequence[str]) -> str:
    """Every match signal in :data:`SIGNALS` order, an absent one marked with ``-``:
    ``("twclid", "email")`` gives ``"twclid email -phone -ip_ua"`` (true without colours or strike-through).
    """
    return " ".join(s if s in present else f"-{s}" for s in SIGNALS)


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    at: float
    event_name: str
    #: queued, leased, delivered, dead (outbox states) or rejected
    state: str
    destination: str | None = None
    conversion_id: str | None = None
    match_signals: tuple[str, ...] = ()
    attempts: int = 0
    debug_id: str | None = None
    #: X's error for dead / retried conversions, or the rejection reasons (field: reason; ...)
    error: str | None = None
    source: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"match_signals": list(self.match_signals)}


def entry_from_row(row: OutboxRow) -> ActivityEntry:
    return ActivityEntry(
        at=row.updated_at,
        event_name=row.event_name,
        state=row.state,
        destination=row.destination,
        conversion_id=row.conversion_id,
        match_signals=tuple(s for s in SIGNALS if s in row.match_signals),
        attempts=row.attempts,
        debug_id=row.debug_id,
        error=row.last_error,
        source=row.source or None,
    )


class RejectionLog(BatchedWriter):
    """Rejected events (field and reason only, scrubbed), kept in the outbox so that every node's console
    and ``/activity`` show the rejections of every node (:meth:`~xgate.outbox.base.Outbox.
    record_rejections`: the newest :data:`~xgate.outbox.base.REJECTIONS_KEPT` of each source, so a flood
    sent with a browser source's public key never pushes a server source's out of sight; docs/security.md).
    Those refused only for want of an identifier X can match never come here: they are counted
    (:func:`unmatched_counts`), or a shop's anonymous page views would push out the errors to fix.

    :meth:`add` only buffers (it runs on the event loop, and a rejected request must not cost a write of its
    own): a thread writes the buffer in one transaction at most every ``flush_seconds``. While the outbox
    is unavailable, at most ``buffered`` rejections wait (the oldest go first) and a failed write is
    dropped with a warning: rejections are a diagnostic, not data. Thread-safe."""

    def __init__(self, outbox: Outbox, *, flush_seconds: float = 0.25, buffered: int = 1000) -> None:
        super().__init__(flush_seconds=flush_seconds, name="xgate-rejections")
        self._outbox = outbox
        self._pending: deque[RejectionRecord] = deque(maxlen=buffered)

    def add(
        self,
        source: str | None,
        event_name: str | None,
        errors: Sequence[FieldError],
        *,
        destination: str | None = None,
        at: float | None = None,
    ) -> None:
        """Buffer one rejected event (never blocks; written within ``flush_seconds``)."""
        record = RejectionRecord(
            at=time.time() if at is None else at,
            source=source or "",
            event_name=scrub(event_name[:200]) if isinstance(event_name, str) and event_name else "(none)",
            destination=destination,
            error="; ".join(scrub(str(e)) for e in errors)[:1000],
        )
        with self._wake:
            if self._closed:
                return
            self._pending.append(record)
            self._started()

    def _pending_work(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Write what is buffered now (blocking: one transaction); a failed write is dropped, logged."""
        with self._wake:
            batch = list(self._pending)
            self._pending.clear()
        if not batch:
            return
        try:
            self._outbox.record_rejections(batch)
        except OutboxUnavailable as e:
            log.warning(
                "rejected events not kept for the console: %s", e, extra={"fields": {"events": len(batch)}}
            )

    def recent(self, limit: int) -> list[ActivityEntry]:
        """Up to ``limit`` rejections recorded by any node, newest first, this process's own buffered ones
        written first (blocking: a write when some are buffered, and a read of the outbox)."""
        self.flush()
        return [entry_from_rejection(r) for r in self._outbox.rejections(limit)] if limit > 0 else []


def entry_from_rejection(record: RejectionRecord) -> ActivityEntry:
    return ActivityEntry(
        at=record.at,
        event_name=record.event_name,
        state="rejected",
        destination=record.destination,
        error=record.error,
        source=record.source or None,
    )


def unmatched_counts(outbox: Outbox, since: float) -> dict[str, int]:
    """``{source: n}``: the events each source sent from the minute of ``since`` on that were rejected only
    for want of an identifier X can match (every node's: the outbox's counts of kind ``rejection``, outcome
    ``unmatched``, :meth:`~xgate.outbox.base.Outbox.counts`); sources with none are absent."""
    return {
        name: n
        for (kind, name, outcome), n in sorted(outbox.counts(since).items())
        if kind == "rejection" and outcome == "unmatched"
    }


class ActivityLog:
    """Recent conversions merged with recent rejections, both from the outbox (every node's); a gateway
    passes its :class:`RejectionLog` so that its own buffered rejections are written first, and its
    :class:`SharedCounts` so that its own counts are in :meth:`unmatched`."""

    def __init__(
        self, outbox: Outbox, rejections: RejectionLog | None = None, counts: SharedCounts | None = None
    ) -> None:
        self.outbox = outbox
        self.rejections = rejections if rejections is not None else RejectionLog(outbox)
        self.counts = counts

    def unmatched(self, *, now: float | None = None) -> dict[str, Any]:
        """The events rejected only for want of an identifier X can match over the last
        :data:`UNMATCHED_WINDOW_SECONDS` (from the start of that minute), every node's: ``since`` (epoch
        s), ``events`` in all and per source (``sources``). Blocking: writes this process's counts first."""
        since = minute_of((time.time() if now is None else now) - UNMATCHED_WINDOW_SECONDS)
        if self.counts is not None:
            self.counts.flush()
        sources = unmatched_counts(self.outbox, since)
        return {"since": since, "events": sum(sources.values()), "sources": sources}

    def recent(self, limit: int = 50) -> list[ActivityEntry]:
        rows = [entry_from_row(r) for r in self.outbox.rows(limit=limit)]
        merged = rows + self.rejections.recent(limit)
        merged.sort(key=lambda e: e.at, reverse=True)
        return merged[:limit]
