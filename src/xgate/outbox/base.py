"""The outbox: a durable queue of mapped conversions, unique on (pixel_id, event_id, conversion_id).

Backends (SQLite now, PostgreSQL next) implement :class:`Outbox`. All times are epoch seconds (float).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import orjson

from xgate.conversion import MappedConversion

RowState = Literal["queued", "leased", "delivered", "dead"]


class EnqueueOutcome(NamedTuple):
    """Per conversion: ``queued`` (new row) or ``duplicate`` (already in the outbox within the window).

    Named tuples (here and :class:`LeasedRow`): made once per conversion, and a frozen dataclass's
    ``__init__`` costs several times a tuple's."""

    status: Literal["queued", "duplicate"]
    row_id: int
    conversion_id: str
    destination: str


class LeasedRow(NamedTuple):
    """A row handed out for delivery; its body stays the JSON stored at ingest (sent as it is)."""

    id: int
    destination: str
    pixel_id: str
    event_id: str
    conversion_id: str
    body_json: bytes
    attempts: int
    lease_token: str

    @property
    def body(self) -> dict[str, object]:
        parsed: dict[str, object] = orjson.loads(self.body_json)
        return parsed


@dataclass(frozen=True, slots=True)
class HandoffLease:
    """Terms for leasing new rows to the storing process's own dispatcher in the commit that stores them:
    up to ``limit`` rows, held with ``token`` for ``seconds`` (then they return to the queue as any lease)."""

    token: str
    seconds: float
    limit: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A row as shown by status / dlq commands (body holds hashed identifiers only)."""

    id: int
    destination: str
    pixel_id: str
    event_id: str
    conversion_id: str
    event_name: str
    state: RowState
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float
    last_error: str | None
    debug_id: str | None
    match_signals: tuple[str, ...]
    body: dict[str, object]


@dataclass(slots=True)
class OutboxStats:
    #: (destination, state) -> count
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    delivered_last_minute: int = 0
    oldest_queued_at: float | None = None
    #: rows leased whose lease has expired (will return to the queue)
    expired_leases: int = 0


class Outbox(Protocol):
    def enqueue(
        self, conversions: Sequence[MappedConversion], *, now: float | None = None
    ) -> list[EnqueueOutcome]:
        """Store conversions durably (committed before return); duplicates are reported, not stored."""
        ...

    def enqueue_leased(
        self, conversions: Sequence[MappedConversion], lease: HandoffLease, *, now: float | None = None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        """:meth:`enqueue`, with the first ``lease.limit`` new rows stored already leased and returned:
        the dispatcher of the same process sends them without a round trip to the queue."""
        ...

    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        """Take up to ``limit`` due rows (queued and due, or leased with an expired lease)."""
        ...

    def mark_delivered(
        self, row_ids: Sequence[int], lease_token: str, debug_id: str | None, *, now: float | None = None
    ) -> None: ...

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
        """Back to the queue until ``next_attempt_at``; ``count_attempt=False``: not sent (429 pause)."""
        ...

    def mark_dead(
        self, row_ids: Sequence[int], lease_token: str, error: str, *, now: float | None = None
    ) -> None: ...

    def release(self, row_ids: Sequence[int], lease_token: str) -> None:
        """Return leased rows to the queue at once (graceful shutdown)."""
        ...

    def stats(self, *, now: float | None = None) -> OutboxStats: ...

    def rows(
        self, *, state: RowState | None = None, destination: str | None = None, limit: int = 50
    ) -> list[OutboxRow]: ...

    def row(self, row_id: int) -> OutboxRow | None: ...

    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        """Move dead rows (these, or all when None) back to queued with attempts reset; returns the count."""
        ...

    def purge(self, *, now: float | None = None) -> int:
        """Delete delivered rows past retention and dedup keys past the window; returns rows deleted."""
        ...

    def close(self) -> None: ...
