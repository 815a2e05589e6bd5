"""The activity log: recent events as X's Events Manager shows them, newest first.

Conversions come from the outbox rows (destination, event, conversion id, match signals, delivery state,
attempts, X's debug id or error); rejected events from an in-memory ring that keeps the field and the reason,
never the rejected value.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from xgate.conversion import FieldError
from xgate.observe.redact import scrub
from xgate.outbox.base import Outbox, OutboxRow

#: match signals in display order
SIGNALS = ("twclid", "email", "phone", "ip_ua")


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
    )


class RejectionRing:
    """The last ``size`` rejected events of each source (field and reason only), safe to share between
    threads. One ring per source: a flood of rejections sent with a browser source's public key never
    pushes a server source's rejections out of sight (docs/security.md)."""

    def __init__(self, size: int = 200) -> None:
        self._size = size
        self._by_source: dict[str | None, deque[ActivityEntry]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        source: str | None,
        event_name: str | None,
        errors: Sequence[FieldError],
        *,
        destination: str | None = None,
        at: float | None = None,
    ) -> None:
        reasons = "; ".join(scrub(str(e)) for e in errors)[:1000]
        entry = ActivityEntry(
            at=time.time() if at is None else at,
            event_name=scrub(event_name[:200]) if isinstance(event_name, str) and event_name else "(none)",
            state="rejected",
            destination=destination,
            error=reasons,
            source=source,
        )
        with self._lock:
            ring = self._by_source.get(source)
            if ring is None:  # sources are the configuration's: a bounded number of rings
                ring = self._by_source[source] = deque(maxlen=self._size)
            ring.append(entry)

    def recent(self, limit: int) -> list[ActivityEntry]:
        """Up to ``limit`` rejections of every source, newest first."""
        if limit <= 0:
            return []
        with self._lock:
            entries = [e for ring in self._by_source.values() for e in list(ring)[-limit:]]
        entries.sort(key=lambda e: e.at, reverse=True)
        return entries[:limit]


class ActivityLog:
    """Recent conversions from the outbox merged with recent rejections."""

    def __init__(self, outbox: Outbox, rejections: RejectionRing | None = None) -> None:
        self.outbox = outbox
        self.rejections = rejections if rejections is not None else RejectionRing()

    def recent(self, limit: int = 50) -> list[ActivityEntry]:
        rows = [entry_from_row(r) for r in self.outbox.rows(limit=limit)]
        merged = rows + self.rejections.recent(limit)
        merged.sort(key=lambda e: e.at, reverse=True)
        return merged[:limit]
