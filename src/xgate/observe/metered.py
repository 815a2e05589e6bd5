"""An outbox wrapper that counts delivery outcomes per destination as the dispatcher records them.

The dispatcher only speaks to the :class:`~xgate.outbox.base.Outbox` protocol; wrapping the outbox it is given
lets the metrics see every ``mark_*`` call without the dispatcher knowing about metrics. What is counted is
what the outbox says it settled: rows whose lease was lost (another node holds them now) are not.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Sequence

from xgate.conversion import MappedConversion
from xgate.observe.metrics import Metrics
from xgate.outbox.base import (
    AttemptRecord,
    CapacityReading,
    CountKind,
    DestinationHealth,
    DuplicateSender,
    EnqueueOutcome,
    HandoffLease,
    LeasedRow,
    Outbox,
    OutboxRow,
    OutboxStats,
    OutcomeCount,
    RejectionRecord,
    RequestGrant,
    RowState,
    TimelineBucket,
)


class MeteredOutbox:
    """Delegates to ``inner``; records delivered / retry / dead per destination in ``metrics``."""

    def __init__(self, inner: Outbox, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self._leased: dict[int, str] = {}
        self._lock = threading.Lock()

    @property
    def node_id(self) -> str:
        return self.inner.node_id

    @property
    def writers(self) -> int:
        return self.inner.writers

    def _settle(self, row_ids: Sequence[int], settled: int, outcome: str) -> int:
        """Count ``settled`` of ``row_ids`` under ``outcome`` per destination; returns ``settled``.

        The outbox says how many, not which: when some leases were lost the count goes to the batch's
        destinations in order (a dispatcher's batch holds one destination, so it is exact there)."""
        with self._lock:
            # all settled: forget them. Some not: keep the ids, the holder that has them now settles them
            # later (the same rows may be leased again by this process)
            take = self._leased.pop if settled == len(row_ids) else self._leased.get
            destinations = Tally(take(i, "unknown") for i in row_ids)
        left = settled
        # ids this wrapper no longer knows were settled before (their lease was lost to nobody): last
        for destination, count in sorted(destinations.items(), key=lambda dc: dc[0] == "unknown"):
            if left <= 0:
                break
            self._metrics.record_delivery(destination, outcome, min(count, left))
            left -= count
        return settled

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
        self,
        row_ids: Sequence[int],
        lease_token: str,
        debug_id: str | None,
        *,
        now: float | None = None,
        status: int | None = None,
        capacity: CapacityReading | None = None,
    ) -> int:
        settled = self.inner.mark_delivered(
            row_ids, lease_token, debug_id, now=now, status=status, capacity=capacity
        )
        return self._settle(row_ids, settled, "delivered")

    def mark_retry(
        self,
        row_ids: Sequence[int],
        lease_token: str,
        next_attempt_at: float,
        error: str,
        *,
        now: float | None = None,
        count_attempt: bool = True,
        status: int | None = None,
        debug_id: str | None = None,
        capacity: CapacityReading | None = None,
    ) -> int:
        settled = self.inner.mark_retry(
            row_ids,
            lease_token,
            next_attempt_at,
            error,
            now=now,
            count_attempt=count_attempt,
            status=status,
            debug_id=debug_id,
            capacity=capacity,
        )
        return self._settle(row_ids, settled, "retry" if count_attempt else "deferred")

    def mark_dead(
        self,
        row_ids: Sequence[int],
        lease_token: str,
        error: str,
        *,
        now: float | None = None,
        status: int | None = None,
        debug_id: str | None = None,
        capacity: CapacityReading | None = None,
    ) -> int:
        settled = self.inner.mark_dead(
            row_ids, lease_token, error, now=now, status=status, debug_id=debug_id, capacity=capacity
        )
        return self._settle(row_ids, settled, "dead")

    def release(self, row_ids: Sequence[int], lease_token: str) -> int:
        settled = self.inner.release(row_ids, lease_token)
        with self._lock:
            for i in row_ids:
                self._leased.pop(i, None)
        return settled

    def extend(
        self, row_ids: Sequence[int], lease_token: str, lease_seconds: float, *, now: float | None = None
    ) -> int:
        return self.inner.extend(row_ids, lease_token, lease_seconds, now=now)

    def wait_for_work(self, timeout: float) -> bool:
        return self.inner.wait_for_work(timeout)

    def reclaim(self, *, now: float | None = None) -> int:
        return self.inner.reclaim(now=now)

    def take_requests(
        self, key: str, n: int, *, rate: float, burst: float, now: float | None = None
    ) -> RequestGrant:
        return self.inner.take_requests(key, n, rate=rate, burst=burst, now=now)

    def pause(self, key: str, until: float, *, now: float | None = None) -> float:
        return self.inner.pause(key, until, now=now)

    def revoke_session(self, session_id: str, expires_at: float, *, now: float | None = None) -> None:
        self.inner.revoke_session(session_id, expires_at, now=now)

    def session_revoked(self, session_id: str, *, now: float | None = None) -> bool:
        return self.inner.session_revoked(session_id, now=now)

    def record_rejections(self, records: Sequence[RejectionRecord]) -> None:
        self.inner.record_rejections(records)

    def rejections(self, limit: int) -> list[RejectionRecord]:
        return self.inner.rejections(limit)

    def add_counts(self, counts: Sequence[OutcomeCount]) -> None:
        self.inner.add_counts(counts)

    def counts(self, since: float) -> dict[tuple[CountKind, str, str], int]:
        return self.inner.counts(since)

    def claim_duty(self, duty: str, seconds: float, *, now: float | None = None) -> bool:
        return self.inner.claim_duty(duty, seconds, now=now)

    def stats(self, *, now: float | None = None) -> OutboxStats:
        return self.inner.stats(now=now)

    def health(self) -> dict[str, DestinationHealth]:
        return self.inner.health()

    def rows(
        self,
        *,
        state: RowState | None = None,
        destination: str | None = None,
        source: str | None = None,
        event_name: str | None = None,
        conversion_id: str | None = None,
        error: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[OutboxRow]:
        return self.inner.rows(
            state=state,
            destination=destination,
            source=source,
            event_name=event_name,
            conversion_id=conversion_id,
            error=error,
            before=before,
            limit=limit,
        )

    def history(self, row_id: int) -> list[AttemptRecord]:
        return self.inner.history(row_id)

    def duplicates(self, row_id: int) -> list[DuplicateSender]:
        return self.inner.duplicates(row_id)

    def timeline(self, since: float, bucket_seconds: int = 60) -> list[TimelineBucket]:
        return self.inner.timeline(since, bucket_seconds)

    def row(self, row_id: int) -> OutboxRow | None:
        return self.inner.row(row_id)

    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        return self.inner.replay(row_ids)

    def discard(self, row_ids: Sequence[int] | None = None) -> int:
        return self.inner.discard(row_ids)

    def purge(self, *, now: float | None = None) -> int:
        return self.inner.purge(now=now)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
