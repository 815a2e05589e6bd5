"""An outbox wrapper that counts delivery outcomes per destination as the dispatcher records them.

The dispatcher only speaks to the :class:`~xgate.outbox.base.Outbox` protocol; wrapping the outbox it is given
lets the metrics see every ``mark_*`` call without the dispatcher knowing about metrics.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Sequence

from xgate.conversion import MappedConversion
from xgate.observe.metrics import Metrics
from xgate.outbox.base import (
    EnqueueOutcome,
    HandoffLease,
    LeasedRow,
    Outbox,
    OutboxRow,
    OutboxStats,
    RowState,
)


class MeteredOutbox:
    """Delegates to ``inner``; records delivered / retry / dead per destination in ``metrics``."""

    def __init__(self, inner: Outbox, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self._leased: dict[int, str] = {}
        self._lock = threading.Lock()

    def _settle(self, row_ids: Sequence[int], outcome: str) -> None:
        with self._lock:
            destinations = Tally(self._leased.pop(i, "unknown") for i in row_ids)
        for destination, count in destinations.items():
            self._metrics.record_delivery(destination, outcome, count)

    def enqueue(
        self, conversions: Sequence[MappedConversion], *, now: float | None = None
    ) -> list[EnqueueOutcome]:
        return self.inner.enqueue(conversions, now=now)

    def enqueue_leased(
        self, conversions: Sequence[MappedConversion], lease: HandoffLease, *, now: float | None = None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        outcomes, rows = self.inner.enqueue_leased(conversions, lease, now=now)
        self._held(rows)
        return outcomes, rows

    def _held(self, rows: Sequence[LeasedRow]) -> None:
        with self._lock:
            self._leased.update((r.id, r.destination) for r in rows)

    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        rows = self.inner.lease(limit, lease_seconds, now=now)
        self._held(rows)
        return rows

    def mark_delivered(
        self, row_ids: Sequence[int], lease_token: str, debug_id: str | None, *, now: float | None = None
    ) -> None:
        self.inner.mark_delivered(row_ids, lease_token, debug_id, now=now)
        self._settle(row_ids, "delivered")

    def mark_retry(
        self,
        row_ids: Sequence[int],
        lease_token: str,
        next_attempt_at: float,
        error: str,
        *,
        now: float | None = None,
        count_attempt: bool = True,
    ) -> None:
        self.inner.mark_retry(
            row_ids, lease_token, next_attempt_at, error, now=now, count_attempt=count_attempt
        )
        self._settle(row_ids, "retry" if count_attempt else "deferred")

    def mark_dead(
        self, row_ids: Sequence[int], lease_token: str, error: str, *, now: float | None = None
    ) -> None:
        self.inner.mark_dead(row_ids, lease_token, error, now=now)
        self._settle(row_ids, "dead")

    def release(self, row_ids: Sequence[int], lease_token: str) -> None:
        self.inner.release(row_ids, lease_token)
        with self._lock:
            for i in row_ids:
                self._leased.pop(i, None)

    def stats(self, *, now: float | None = None) -> OutboxStats:
        return self.inner.stats(now=now)

    def rows(
        self, *, state: RowState | None = None, destination: str | None = None, limit: int = 50
    ) -> list[OutboxRow]:
        return self.inner.rows(state=state, destination=destination, limit=limit)

    def row(self, row_id: int) -> OutboxRow | None:
        return self.inner.row(row_id)

    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        return self.inner.replay(row_ids)

    def purge(self, *, now: float | None = None) -> int:
        return self.inner.purge(now=now)

    def close(self) -> None:
        self.inner.close()
