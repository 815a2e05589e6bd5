"""The console's event and delivery counts for every node: each process counts in memory (beside its
Prometheus counters) and a thread adds what it counted since its last write to the outbox's per-minute
totals (:meth:`~xgate.outbox.base.Outbox.add_counts`), so the overview of any node reads the sum of all."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from xgate.errors import OutboxUnavailable
from xgate.observe.batched import BatchedWriter
from xgate.outbox.base import CountKind, Outbox, OutcomeCount, minute_of

log = logging.getLogger(__name__)

_Key = tuple[int, CountKind, str, str]


class SharedCounts(BatchedWriter):
    """Deltas per (minute, kind, name, outcome) (:class:`~xgate.outbox.base.OutcomeCount`), written by a
    thread of its own in one transaction at most every ``flush_seconds``.

    :meth:`add` only adds to a dict under a lock (it runs on the event loop once per request, and in the
    dispatcher's threads once per settle). A write that fails (the outbox unavailable) keeps its deltas to
    add with the next one, up to ``kept`` keys (then the oldest minutes go, with a warning): counts are
    a diagnostic, ingest never waits for them. Thread-safe."""

    def __init__(self, outbox: Outbox, *, flush_seconds: float = 1.0, kept: int = 10_000) -> None:
        super().__init__(flush_seconds=flush_seconds, name="xgate-counts")
        self._outbox = outbox
        self._kept = kept
        self._pending: dict[_Key, int] = {}
        self._failing = False

    def add(self, kind: CountKind, name: str, counts: Mapping[str, int], *, at: float | None = None) -> None:
        """Count ``counts`` (``{outcome: n}``) of the source or destination ``name`` in the minute of
        ``at`` (default now). Never blocks on the outbox."""
        minute = minute_of(time.time() if at is None else at)
        with self._wake:
            if self._closed:
                return
            pending = self._pending
            idle = not pending
            for outcome, n in counts.items():
                key = (minute, kind, name, outcome)
                pending[key] = pending.get(key, 0) + n
            if idle:
                self._started()

    def _pending_work(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Add what is counted now to the outbox's totals (blocking: one transaction). On failure the
        deltas wait for the next write, and the first failure of a run is logged."""
        with self._wake:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            self._outbox.add_counts([OutcomeCount(*key, n) for key, n in batch.items()])
        except OutboxUnavailable as e:
            self._keep(batch, e)
            return
        if self._failing:
            self._failing = False
            log.info("event and delivery counts written to the outbox again")

    def _keep(self, batch: dict[_Key, int], error: OutboxUnavailable) -> None:
        with self._wake:
            for key, n in batch.items():
                self._pending[key] = self._pending.get(key, 0) + n
            dropped = len(self._pending) - self._kept
            if dropped > 0:
                for key in sorted(self._pending)[:dropped]:  # the oldest minutes first
                    del self._pending[key]
        if dropped > 0:
            log.warning(
                "event and delivery counts dropped: the outbox is unavailable and the buffer is full",
                extra={"fields": {"counts": dropped}},
            )
        if not self._failing:
            self._failing = True
            log.warning("event and delivery counts wait for the outbox (kept for the next write): %s", error)
