"""What both engines do alike above their SQL, written once (STYLE.md: one core shared by twins, as
httpx's ``BaseClient`` serves ``Client`` and ``AsyncClient``).

:class:`OutboxEngine` is the base of :class:`~xgate.outbox.sqlite.SQLiteOutbox` and
:class:`~xgate.outbox.postgres.PostgresOutbox`. It implements the :class:`~xgate.outbox.base.Outbox` calls
whose logic does not depend on the engine: the two enqueue entry points, the four settle calls (each
turned into one :class:`Settlement` that the engine's ``_settle`` runs in its SQL), the filters of
``rows`` and the wake-ups behind ``wait_for_work``. The helpers below say how what both engines store
reads back. What each call does, returns and raises is the contract's (:mod:`xgate.outbox.base`), not
repeated here.

Identity (:func:`check_identity`): each outbox holds a random outbox id, drawn when it is created; a node
records the id of the outbox it used in a small file (SQLite: ``<db>.id`` beside the file; PostgreSQL: in
``[storage] state_dir``) and refuses to start on an outbox holding another id, raising
:class:`~xgate.errors.OutboxReplaced`: an outbox truncated, deleted, dropped, recreated or restored from
the wrong backup while the node was stopped has silently lost what it held, and starting on it would hide
that.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from xgate.conversion import MappedConversion
from xgate.errors import OutboxReplaced
from xgate.outbox.base import (
    AttemptRecord,
    CapacityReading,
    DestinationHealth,
    EnqueueOutcome,
    HandoffLease,
    LeasedRow,
    OutboxRow,
    RequestGrant,
    RowState,
    TimelineBucket,
)

#: prefix of the dedup key of a conversion from a public key (:attr:`MappedConversion.public`): stored
#: under a key of its own, it never makes a later conversion from a secret key a duplicate
PUBLIC = "public\x1f"

#: the columns :func:`outbox_row` reads, in its order
ROW_COLUMNS = (
    "id, destination, pixel_id, event_id, conversion_id, event_name, state, attempts, created_at, updated_at,"
    " next_attempt_at, last_error, debug_id, match_signals, body, leased_by, source"
)
#: the columns :func:`leased_row` reads, in its order
LEASED_COLUMNS = "id, destination, pixel_id, event_id, conversion_id, body, attempts, created_at"
#: the counted columns of the minute counts (:class:`TimelineBucket`'s), in the order the engines write them
MINUTE_COLUMNS = ("stored", "twclid", "email", "phone", "ip_ua", "delivered", "retried", "dead")
#: the match signals an enqueue counts per minute (each a minute-counts column)
SIGNAL_COLUMNS = ("twclid", "email", "phone", "ip_ua")
#: the minute-counts column a settle outcome adds to (a deferral adds to none)
OUTCOME_COLUMN = {"delivered": "delivered", "retry": "retried", "dead": "dead"}


class Settlement(NamedTuple):
    """What one settle call does, in one transaction, to the rows still held with its token: they move to
    ``state``, ``attempts`` is added to theirs and each ``(column, value)`` of ``sets`` is stored. Then,
    for the settled rows only: ``success`` records ``now`` as their destinations' last success, ``failure``
    as their last error (at ``now``); ``attempt`` is appended to each row's history and counted in the
    minute of its ``at`` under its outcome (:data:`OUTCOME_COLUMN`); ``capacity`` becomes their
    destinations' reading unless a later one is stored; ``requeued``: the rows are due at once, so the
    engine wakes the waiters it can reach (PostgreSQL: every node's, by ``NOTIFY``)."""

    doing: str
    state: RowState
    now: float
    attempts: int = 0
    sets: tuple[tuple[str, object], ...] = ()
    success: bool = False
    failure: str | None = None
    attempt: AttemptRecord | None = None
    capacity: CapacityReading | None = None
    requeued: bool = False


class OutboxEngine(ABC):
    """The calls both engines implement alike (the module docstring). An engine supplies :meth:`_store`,
    :meth:`_settle` and :meth:`_rows`, calls ``super().__init__()`` first, :meth:`_woken` (or
    :meth:`_woke_if`) when it queues rows and :meth:`_stop_waiters` in its ``close``."""

    def __init__(self) -> None:
        self._closed = False
        # wait_for_work: bumped (and waiters woken) whenever this process queues rows
        self._work = threading.Condition()
        self._work_seq = 0

    @abstractmethod
    def _store(
        self, conversions: Sequence[MappedConversion], now: float, lease: HandoffLease | None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        """:meth:`~xgate.outbox.base.Outbox.enqueue_leased` at ``now``; ``lease`` None: a plain enqueue
        (no row handed over). Wakes this process's waiters when it queued rows."""

    @abstractmethod
    def _settle(self, row_ids: Sequence[int], lease_token: str, settlement: Settlement) -> int:
        """Run ``settlement`` on the rows of ``row_ids`` still held with ``lease_token``; how many."""

    @abstractmethod
    def _rows(
        self, equal: dict[str, str], error: str | None, before: int | None, limit: int
    ) -> list[OutboxRow]:
        """:meth:`rows`: up to ``limit`` rows whose columns hold the values of ``equal``, whose
        ``last_error`` holds ``error`` (any case; None: any) and whose id is below ``before`` (None: any),
        newest first."""

    # -- ingest ------------------------------------------------------------------------------------
    def enqueue(
        self, conversions: Sequence[MappedConversion], *, now: float | None = None
    ) -> list[EnqueueOutcome]:
        return self._store(conversions, time.time() if now is None else now, None)[0]

    def enqueue_leased(
        self, conversions: Sequence[MappedConversion], lease: HandoffLease, *, now: float | None = None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        return self._store(conversions, time.time() if now is None else now, lease)

    # -- settling ----------------------------------------------------------------------------------
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
        now = time.time() if now is None else now
        return self._settle(
            row_ids,
            lease_token,
            Settlement(
                "mark_delivered",
                "delivered",
                now,
                attempts=1,
                sets=(("debug_id", debug_id), ("last_error", None), ("updated_at", now)),
                success=True,
                attempt=AttemptRecord(now, "delivered", status, None, debug_id),
                capacity=capacity,
            ),
        )

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
        now = time.time() if now is None else now
        return self._settle(
            row_ids,
            lease_token,
            Settlement(
                "mark_retry",
                "queued",
                now,
                attempts=int(count_attempt),
                sets=(("next_attempt_at", next_attempt_at), ("last_error", error), ("updated_at", now)),
                failure=error,
                attempt=AttemptRecord(now, "retry" if count_attempt else "deferred", status, error, debug_id),
                capacity=capacity,
            ),
        )

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
        now = time.time() if now is None else now
        return self._settle(
            row_ids,
            lease_token,
            Settlement(
                "mark_dead",
                "dead",
                now,
                attempts=1,
                sets=(("last_error", error), ("updated_at", now)),
                failure=error,
                attempt=AttemptRecord(now, "dead", status, error, debug_id),
                capacity=capacity,
            ),
        )

    def release(self, row_ids: Sequence[int], lease_token: str) -> int:
        now = time.time()
        settlement = Settlement("release", "queued", now, sets=(("updated_at", now),), requeued=True)
        return self._woke_if(self._settle(row_ids, lease_token, settlement))

    # -- inspection --------------------------------------------------------------------------------
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
        equal = {
            "state": state,
            "destination": destination,
            "source": source,
            "event_name": event_name,
            "conversion_id": conversion_id,
        }
        given = {column: value for column, value in equal.items() if value is not None}
        return self._rows(given, error or None, before, limit)

    # -- wake-ups ----------------------------------------------------------------------------------
    def _woken(self) -> None:
        """Rows were queued: wake this process's :meth:`wait_for_work`."""
        with self._work:
            self._work_seq += 1
            self._work.notify_all()

    def _woke_if(self, queued: int) -> int:
        """:meth:`_woken` when ``queued`` rows went to the queue; returns ``queued``."""
        if queued:
            self._woken()
        return queued

    def wait_for_work(self, timeout: float) -> bool:
        """Woken by this process's :meth:`_woken` (an engine that hears of other processes' rows calls it
        for them too)."""
        with self._work:
            seen = self._work_seq
            return self._work.wait_for(lambda: self._work_seq != seen or self._closed, timeout)

    def _stop_waiters(self) -> None:
        """Mark the outbox closed and let every :meth:`wait_for_work` return."""
        self._closed = True
        with self._work:
            self._work.notify_all()


# -- identity ------------------------------------------------------------------------------------
#: how to go on with the outbox found (the last sentence of OutboxReplaced)
ACCEPT_NEW = (
    "start once with --accept-new-outbox (xgate serve or xgate dispatch), or set [storage] accept_new_outbox"
    " = true"
)


def check_identity(
    found: str,
    record: Path,
    *,
    outbox: str,
    kind: str,
    happened: str,
    accept_new: bool,
    write: bool = True,
    note: str = "",
) -> None:
    """Compare the outbox id ``found`` in the store with the one recorded in ``record``.

    No record (a first start, an outbox of an older xgate): record ``found`` when ``write``. The same id:
    nothing to do. Another id (or an unreadable record): raise :class:`~xgate.errors.OutboxReplaced`
    naming ``outbox`` (how messages name it, never a password), the ``kind`` of store (``file``,
    ``database``), what may have ``happened`` to it, both ids and :data:`ACCEPT_NEW`; with ``accept_new``,
    record ``found`` instead (when ``write``). ``write=False`` (read-only commands) never writes a record.
    The record is the id on its first line, then ``note`` (for a reader), written to a file of its own
    name and renamed over ``record`` (atomic; several processes may record at once). Raises OSError when
    the record cannot be read or written."""
    try:
        recorded: str | None = record.read_text(encoding="utf-8").split()[0]
    except FileNotFoundError:
        recorded = None
    except (IndexError, UnicodeDecodeError):
        recorded = ""
    if recorded == found:
        return
    if recorded is not None and not accept_new:
        raise OutboxReplaced(
            f"{outbox} is not the outbox this node used: {record} records outbox"
            f" {recorded or '(unreadable)'}, the {kind} holds {found} (a new, empty one?). It was {happened}"
            " while xgate was stopped: conversions it held and not yet delivered are lost unless you restore"
            f" the {kind}. To start on this {kind} anyway: {ACCEPT_NEW}"
        )
    if not write:
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{record.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(f"{found}\n{note}\n" if note else f"{found}\n", encoding="utf-8")
        os.replace(tmp, record)
    finally:
        tmp.unlink(missing_ok=True)


# -- what the engines store, read back ------------------------------------------------------------
def outbox_row(r: Sequence[Any]) -> OutboxRow:
    """The :class:`OutboxRow` of a row selected as :data:`ROW_COLUMNS`."""
    signals: str = r[13]
    return OutboxRow(
        id=r[0],
        destination=r[1],
        pixel_id=r[2],
        event_id=r[3],
        conversion_id=r[4],
        event_name=r[5],
        state=r[6],
        attempts=r[7],
        created_at=r[8],
        updated_at=r[9],
        next_attempt_at=r[10],
        last_error=r[11],
        debug_id=r[12],
        match_signals=tuple(signals.split(",")) if signals else (),
        body=orjson.loads(r[14]),
        leased_by=r[15],
        source=r[16],
    )


def leased_row(r: Sequence[Any], token: str) -> LeasedRow:
    """The :class:`LeasedRow` of a row returned as :data:`LEASED_COLUMNS`, held with ``token``."""
    return LeasedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], token, r[7])


def destination_health(rows: Iterable[Sequence[Any]]) -> dict[str, DestinationHealth]:
    """:meth:`~xgate.outbox.base.Outbox.health` of rows (destination, last_success_at, last_error,
    last_error_at, and the capacity reading's request_limit, remaining, reset_at, scope, seen_at; NULLs
    when none was taken)."""
    return {
        r[0]: DestinationHealth(r[1], r[2], r[3], CapacityReading(*r[4:9]) if r[8] is not None else None)
        for r in rows
    }


def timeline_bucket(start: float, destination: str, event_id: str, counts: Sequence[Any]) -> TimelineBucket:
    """A :class:`TimelineBucket` of the sums of :data:`MINUTE_COLUMNS` (``counts``, in that order)."""
    return TimelineBucket(
        destination,
        event_id,
        float(start),
        **{column: int(n) for column, n in zip(MINUTE_COLUMNS, counts, strict=True)},
    )


def paused_only(paused_until: float | None, now: float) -> RequestGrant:
    """:meth:`~xgate.outbox.base.Outbox.take_requests` with ``n = 0``: the pause in force, if any."""
    return RequestGrant(0, paused_until if paused_until is not None and paused_until > now else None)


def request_grant(
    n: int, granted: int, tokens_left: float, paused_until: float, now: float, rate: float
) -> RequestGrant:
    """What :meth:`~xgate.outbox.base.Outbox.take_requests` answers when it asked for ``n`` and the bucket
    granted ``granted``, keeping ``tokens_left``, with the key paused until ``paused_until``."""
    if paused_until > now:
        return RequestGrant(0, paused_until)
    if granted < n:
        return RequestGrant(granted, None, now + (1 - tokens_left) / rate)
    return RequestGrant(granted)
