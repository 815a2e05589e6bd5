"""The outbox: a durable queue of mapped conversions, unique on (pixel_id, event_id, conversion_id) per trust
class (a conversion from a public key never blocks one from a secret key: :meth:`Outbox.enqueue`).

This module is the contract every backend honours (:class:`Outbox`); ``tests/outbox/test_conformance.py``
runs each behaviour written here against each backend (SQLite in :mod:`xgate.outbox.sqlite`, PostgreSQL
in :mod:`xgate.outbox.postgres`; what the two do alike above their SQL is written once, in
:mod:`xgate.outbox.common`). A row's life::

    enqueue ──> queued ──lease──> leased ──mark_delivered──> delivered ──purge──> (gone; dedup key stays)
                  ^  ^              │ │
                  │  └─mark_retry───┘ │    (also: release, reclaim, and an expired lease is leased again)
                  └──replay── dead <──┘ mark_dead
                               └──discard──> (gone; dedup key stays)

Rules for every method:

- **Synchronous, called from several threads at once** (the collector's writer threads, the dispatcher's
  worker threads, metrics scrapes): a backend keeps a connection per thread or a pool.
- **Times are epoch seconds** (``float``, ``time.time()``); a ``now`` argument stands in for the clock
  (tests), and defaults to the clock.
- **Errors**: every driver and I/O error (locked, disk full, connection refused, ...) is raised as
  :class:`~xgate.errors.OutboxUnavailable` (its message names the engine and the reason, never a
  password); the call changed nothing (its transaction rolled back), so the caller retries later.
  :class:`~xgate.errors.OutboxSchemaMismatch` (a kind of OutboxUnavailable) when the stored schema does
  not match this code, :class:`~xgate.errors.OutboxNotFound` when opening with ``create=False`` finds no
  outbox. ``ValueError`` only for caller bugs. Nothing else escapes.
- **Writes are bounded** by ``[storage] write_timeout_seconds``: a write that cannot finish within it (a
  lock held elsewhere, a store that stopped answering) raises OutboxUnavailable naming the cause (who
  holds the lock, when the engine can tell) and changed nothing. A store the engine knows it cannot
  reach now (PostgreSQL: a connection attempt failed and none is open) fails every call at once.
- **Writes are durable when the call returns** (committed; on SQLite ``synchronous=FULL``).
- **History and timeline** (for the console): every settle call also appends one entry per settled row
  to the row's attempt history (:meth:`Outbox.history`) and adds its rows to the per-minute counts of
  their destination and X event (:meth:`Outbox.timeline`), in its own transaction: one multi-row insert
  and one upsert per (destination, X event) settled, nothing read back. Enqueue adds its rows to the
  same counts. History goes with its row (purge, discard); minute counts after :data:`TIMELINE_DAYS`.
- **Outcome counts** (the console's events received per source and X's answers per destination, for
  every node): each node counts in memory and adds what it counted to per-minute totals from a
  background thread (:meth:`Outbox.add_counts`), nothing per event; kept for :data:`TIMELINE_DAYS`.
- **Duplicate senders** (for the console's dedup diagnostics): an enqueue that answers ``duplicate`` also
  records, per kept row, who sent the copy (:meth:`Outbox.duplicates`): one upsert statement in the same
  transaction, run only when the call has duplicates. They go with their row (purge, discard) and after
  ``dedup_window_days`` without a new copy (purge).
- **A lease** is a token and an expiry over a set of rows, recorded with the leasing node's id
  (:attr:`Outbox.node_id`). Settle calls name the token: a row whose lease was lost (it expired and was
  leased again with another token, or was reclaimed or settled already) is left alone and not counted.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import orjson

from xgate.conversion import MappedConversion

RowState = Literal["queued", "leased", "delivered", "dead"]
#: what one settle call did to a row: ``delivered`` (X's 2xx), ``retry`` (a failed attempt, queued again),
#: ``deferred`` (queued again without an attempt counted: a 429 pause, missing credentials), ``dead``
AttemptOutcome = Literal["delivered", "retry", "deferred", "dead"]
#: days of per-minute counts kept (:meth:`Outbox.timeline`): a week, and the week before to compare with
TIMELINE_DAYS = 15
#: rejected events kept per source (:meth:`Outbox.record_rejections`). An event refused only for want of an
#: identifier X can match (an anonymous visitor's page view: ``xgate.collect.ingest.EventReport.unmatched``)
#: is not kept one by one, so that a busy shop's page loads never push a source's real rejections (a wrong
#: value) out of this window: it is counted per minute instead (:data:`CountKind` ``rejection``)
REJECTIONS_KEPT = 200
#: what an :class:`OutcomeCount` counts: ``event`` (per source: an event's outcome at ingest, ``accepted``,
#: ``duplicate``, ``skipped`` or ``rejected``), ``delivery`` (per destination: conversions settled, by
#: :data:`AttemptOutcome`) and ``failure`` (per destination: attempts that did not deliver, by reason:
#: ``auth``, ``forbidden``, ``not_found``, ``invalid``, ``rejected``, ``rate_limited``, ``server_error``,
#: ``timeout``, ``connection``, ``credentials``, ``unconfigured``; :attr:`xgate.dispatch.Attempt.failure`)
#: and ``rejection`` (per source: rejected events by reason, a part of its ``event`` ``rejected``: only
#: ``unmatched``, refused only for want of an identifier X can match, which are counted, not kept in
#: :meth:`Outbox.record_rejections`)
CountKind = Literal["event", "delivery", "failure", "rejection"]


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
    #: when the gateway accepted the conversion (epoch seconds): the dispatcher gives up by this age
    created_at: float

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
    #: when the conversion was stored (ingest or import)
    created_at: float
    #: the last change of state
    updated_at: float
    #: queued: when it is due (a retry's backoff); other states: the last value it had
    next_attempt_at: float
    last_error: str | None
    debug_id: str | None
    match_signals: tuple[str, ...]
    body: dict[str, object]
    #: the node holding the lease (:attr:`Outbox.node_id`) while ``state == "leased"``, else None
    leased_by: str | None = None
    #: who sent it: the ``[[sources]]`` name it was posted with, ``import:<file name>`` for ``xgate
    #: import``; ``""`` for rows stored before sources were recorded (SQLite schema version 4, PostgreSQL
    #: migration 3)
    source: str = ""


class DuplicateSender(NamedTuple):
    """A source that sent a stored conversion again (:meth:`Outbox.duplicates`): the copies it sent
    after the kept row, answered ``duplicate`` and never stored nor sent to X.

    ``source`` as :attr:`OutboxRow.source` (a ``[[sources]]`` name, ``import:<file name>``); ``public``:
    sent with a public key (a browser source: :attr:`MappedConversion.public`); ``copies`` sent, the
    first at ``first_at`` and the last at ``last_at`` (epoch seconds)."""

    source: str
    public: bool
    first_at: float
    last_at: float
    copies: int


class RejectionRecord(NamedTuple):
    """A rejected event (:meth:`Outbox.record_rejections`): when, which source, its event name and the
    first destination that refused it, and the reasons (``field: reason; ...``, already scrubbed: never
    the rejected value)."""

    at: float
    source: str
    event_name: str
    destination: str | None
    error: str


class OutcomeCount(NamedTuple):
    """``n`` more of ``outcome`` (:data:`CountKind` says which outcomes) for the source or destination
    ``name`` in the minute starting at ``minute`` (epoch seconds, a multiple of 60: :func:`minute_of`),
    as one node counted them since its last write (:meth:`Outbox.add_counts`)."""

    minute: int
    kind: CountKind
    name: str
    outcome: str
    n: int


class AttemptRecord(NamedTuple):
    """One settle of one row (:meth:`Outbox.history`): when, what it did, and X's answer when there was
    one (``status`` None: no HTTP answer, e.g. a timeout or missing credentials)."""

    at: float
    outcome: AttemptOutcome
    status: int | None
    error: str | None
    debug_id: str | None


@dataclass(frozen=True, slots=True)
class TimelineBucket:
    """Conversions of one destination and X event (``event_id``) in one time bucket starting at
    ``start`` (epoch seconds, a multiple of the bucket's length): ``stored`` by enqueue (and of those,
    how many carried each match signal), and settled by outcome (``retried``: failed attempts queued
    again, deferrals not counted)."""

    destination: str
    event_id: str
    start: float
    stored: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    twclid: int = 0
    email: int = 0
    phone: int = 0
    ip_ua: int = 0


@dataclass(slots=True)
class OutboxStats:
    """Counts and ages for ``xgate status`` and ``/metrics``; see :meth:`Outbox.stats` for the cost."""

    #: (destination, state) -> rows; a pair with no rows may be absent
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: rows that became delivered in the 60 s before ``now``
    delivered_last_minute: int = 0
    #: min ``created_at`` of queued and leased rows: the real age of the oldest undelivered conversion
    #: (None when nothing waits)
    oldest_undelivered_at: float | None = None
    #: min ``next_attempt_at`` of queued rows: when the next one is due (None when none is queued)
    next_attempt_at: float | None = None
    #: leased rows whose lease has expired (they return to the queue at the next lease)
    expired_leases: int = 0


class CapacityReading(NamedTuple):
    """X's rate-limit headers on one answer (SPEC.md, "Rate limits"): ``limit`` requests per window,
    ``remaining`` of them, the window's ``reset_at`` (epoch s), their ``scope`` (``account`` or ``user``),
    and when the answer came (``seen_at``, epoch s). None: a header X did not send."""

    limit: int | None
    remaining: int | None
    reset_at: float | None
    scope: str
    seen_at: float


@dataclass(frozen=True, slots=True)
class DestinationHealth:
    """What the last settle calls said about one destination (written in their transactions).

    The destination's current problem is ``last_error`` when it came after the last success.
    ``capacity``: X's latest rate-limit reading for it, whichever node got it (None before any)."""

    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    capacity: CapacityReading | None = None

    @property
    def problem(self) -> str | None:
        """``last_error`` if no delivery succeeded since it was recorded, else None."""
        if self.last_error is None or self.last_error_at is None:
            return None
        if self.last_success_at is not None and self.last_success_at >= self.last_error_at:
            return None
        return self.last_error


class RequestGrant(NamedTuple):
    """What :meth:`Outbox.take_requests` gave.

    ``granted`` requests (0 … n) may be sent now. ``paused_until``: the key is paused until then (X's
    reset time): nothing was granted, defer instead of waiting. ``retry_at``: when fewer than asked were
    granted and the key is not paused, the earliest time one more request will be available (epoch s);
    None when everything asked was granted."""

    granted: int
    paused_until: float | None = None
    retry_at: float | None = None


class Outbox(Protocol):
    """A durable queue of conversions shared by every process (and node) that opens the same store.

    Read the module docstring first: threads, times, errors, leases. Open one with
    :func:`xgate.outbox.open_outbox`. ``ingest`` stores with :meth:`enqueue` (or :meth:`enqueue_leased`),
    the dispatcher takes rows with :meth:`lease` and settles each with :meth:`mark_delivered`,
    :meth:`mark_retry`, :meth:`mark_dead` or :meth:`release`; ``status``, ``dlq``, ``activity`` and
    ``/metrics`` read with :meth:`stats`, :meth:`health`, :meth:`rows`, :meth:`row`. Besides the queue,
    the nodes of one store share X's rate limit (:meth:`take_requests`, :meth:`pause`), take turns at
    housekeeping (:meth:`claim_duty`) and share the console's sign-outs (:meth:`revoke_session`).
    """

    @property
    def node_id(self) -> str:
        """Who this outbox leases for: recorded on every row it leases (``OutboxRow.leased_by``) and
        used by :meth:`reclaim`. Two processes that lease at the same time must have different ids."""
        ...

    @property
    def writers(self) -> int:
        """How many threads gain from writing at once (the collector runs this many group-commit
        threads): 1 for SQLite, whose single write lock serialises writers; more for a server database."""
        ...

    # -- ingest ------------------------------------------------------------------------------------
    def enqueue(
        self, conversions: Sequence[MappedConversion], *, now: float | None = None
    ) -> list[EnqueueOutcome]:
        """Store conversions, queued and due at ``now``: the new rows in one transaction.

        Returns one outcome per conversion, in order: ``queued`` with the new row id, or ``duplicate``
        with the id of the row already stored for its (pixel_id, event_id, conversion_id) within the
        dedup window (also when two in ``conversions`` share a key: the second is the duplicate).
        Trust counts: a conversion with ``public`` set is a duplicate of any stored one with its key, but
        a stored public conversion never makes a later conversion without ``public`` a duplicate (a
        browser source's public key must not pre-empt a server's conversion; X merges the two by
        conversion_id).
        Idempotent: storing the same conversions again stores no row; each duplicate's sender is
        recorded against the kept row (:meth:`duplicates`) while that row is stored. Raises
        OutboxUnavailable; the new rows may then be stored or not (a connection lost as the commit
        was sent; on PostgreSQL, the duplicates' senders are written in a second transaction after the
        rows). Whoever retries gets those rows back as ``duplicate`` with their ids, so a caller that
        must tell them from earlier copies compares their ``created_at`` (offline/importer.py does)."""
        ...

    def enqueue_leased(
        self, conversions: Sequence[MappedConversion], lease: HandoffLease, *, now: float | None = None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        """:meth:`enqueue`, with the first ``lease.limit`` new rows stored already leased (token
        ``lease.token``, for ``lease.seconds``, by this node) and returned, sorted by id: the dispatcher
        of the same process sends them without a round trip to the queue."""
        ...

    # -- delivery ----------------------------------------------------------------------------------
    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        """Take up to ``limit`` rows in one transaction, under one new token, until ``now +
        lease_seconds``: first queued rows due at ``now`` (earliest ``next_attempt_at`` first, ties by id),
        then rows whose lease expired (their holder died or stalled). Records this node as ``leased_by``.

        Returns the rows sorted by id (empty when nothing is due). Several callers (threads, processes,
        nodes) never get the same row under live leases."""
        ...

    def extend(
        self, row_ids: Sequence[int], lease_token: str, lease_seconds: float, *, now: float | None = None
    ) -> int:
        """Push the expiry of rows still held with ``lease_token`` to ``now + lease_seconds`` (a batch that
        takes long). Returns how many rows are still held: fewer than asked means those leases were lost
        (0 = all lost; do not settle them, another holder has them)."""
        ...

    def reclaim(self, *, now: float | None = None) -> int:
        """At start: return every row leased by this :attr:`node_id` to the queue, due at once, whatever
        its expiry (the process that held them is gone: this one replaces it). Returns how many.
        Call it before this node leases anything, never while it holds live leases."""
        ...

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
        """Leased → delivered (``attempts`` + 1, X's ``debug_id`` kept, ``last_error`` cleared), and each
        settled row's destination gets ``last_success_at = now`` (:meth:`health`), in one transaction;
        ``status``: X's HTTP status, for the history; ``capacity``: X's rate-limit headers on that answer,
        kept as the settled destination's reading unless a later one is stored (every node's console
        reads it: :attr:`DestinationHealth.capacity`; no statement of its own on PostgreSQL, one small
        upsert in the transaction on SQLite). Returns how many rows were settled (rows not held with
        ``lease_token`` are left alone; when none was, no health and no reading is written)."""
        ...

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
        """Leased → queued, due at ``next_attempt_at``, with ``last_error = error``; ``attempts`` + 1 unless
        ``count_attempt=False`` (not sent: a 429 pause; history outcome ``deferred``, else ``retry``).
        Records ``error`` as each settled row's destination's last error at ``now``; ``status`` and
        ``debug_id``: X's answer, when there was one, for the history; ``capacity`` as for
        :meth:`mark_delivered`. Returns how many were settled."""
        ...

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
        """Leased → dead (a dead letter: kept until :meth:`replay` or :meth:`discard`), ``attempts`` + 1,
        ``last_error = error``, recorded as the destination's last error; ``status`` / ``debug_id`` /
        ``capacity`` as for :meth:`mark_retry`. Returns how many were settled."""
        ...

    def release(self, row_ids: Sequence[int], lease_token: str) -> int:
        """Leased → queued at once, attempts unchanged (graceful shutdown; rows a stopped dispatcher
        cannot take). Returns how many rows were settled."""
        ...

    def wait_for_work(self, timeout: float) -> bool:
        """Block until rows may have become due, or ``timeout`` seconds passed: an idle dispatcher calls
        it between empty leases instead of sleeping its poll interval. Returns early, True, when rows were
        queued (enqueued, released, reclaimed, replayed) after the call began — on PostgreSQL by any node
        (``LISTEN``/``NOTIFY``), on SQLite by this process (another process's rows wait for the timeout);
        False when the timeout passed. A wake-up is a hint, not a promise: lease again and wait again when
        nothing came. Rows that become due by the clock (a retry's backoff) wake no one: poll for those.
        Never raises (while the store is unreachable it waits the timeout); returns True at once after
        :meth:`close`."""
        ...

    # -- shared between nodes: X's rate limit, housekeeping -------------------------------------------
    def take_requests(
        self, key: str, n: int, *, rate: float, burst: float, now: float | None = None
    ) -> RequestGrant:
        """Take up to ``n`` requests from the token bucket ``key`` (e.g. ``account:18ce54d4x5t``) that
        every node of this store shares, and say whether ``key`` is paused (:meth:`pause`), in one
        transaction. The bucket holds at most ``burst`` tokens (a new key starts full) and refills at
        ``rate`` tokens a second of ``now`` (nodes' clocks are assumed in sync, as for leases; a clock
        behind the last taker's refills nothing). While ``key`` is paused nothing is granted.

        ``n = 0`` only reads the pause (a read: no write lock on SQLite, no row lock on PostgreSQL).
        Callers sharing a key must pass the same ``rate`` and ``burst``. Raises ValueError when ``n < 0``,
        ``rate <= 0`` or ``burst < 1``; OutboxUnavailable. Cost: one small transaction on one row."""
        ...

    def pause(self, key: str, until: float, *, now: float | None = None) -> float:
        """Pause ``key`` until ``until`` (X's rate-limit reset) for every node: :meth:`take_requests`
        grants nothing before then. A pause only ever grows (the later of this and the one in force).
        Returns the pause now in force (epoch s). Raises OutboxUnavailable."""
        ...

    def revoke_session(self, session_id: str, expires_at: float, *, now: float | None = None) -> None:
        """Record the console session ``session_id`` (an opaque id, at most 128 characters; the console
        passes a hash of its cookie's nonce) as signed out, for every node, until ``expires_at`` (epoch s,
        when the session would have ended anyway); also deletes the records that expired by ``now``. One
        small transaction. Raises ValueError for an empty or longer id; OutboxUnavailable."""
        ...

    def session_revoked(self, session_id: str, *, now: float | None = None) -> bool:
        """Whether :meth:`revoke_session` recorded ``session_id`` (on any node) and its record has not
        expired by ``now``. A read by primary key: the console calls it on every request with a
        session. Raises OutboxUnavailable (the caller must then refuse the session, not accept it)."""
        ...

    def record_rejections(self, records: Sequence[RejectionRecord]) -> None:
        """Keep rejected events for the console of every node, in one transaction: one multi-row insert,
        then each source named in ``records`` is trimmed to its newest :data:`REJECTIONS_KEPT` (so a
        flood from one source never pushes another's out). The caller batches (a rejected request must
        not cost a transaction of its own) and passes only the rejections an operator must read one by
        one: those refused only for want of an identifier X can match are counted instead
        (:meth:`add_counts`, kind ``rejection``). Raises OutboxUnavailable (then none was kept)."""
        ...

    def rejections(self, limit: int) -> list[RejectionRecord]:
        """Up to ``limit`` rejected events recorded by any node, newest first, at most ``limit`` of each
        source. Cost: a walk of at most :data:`REJECTIONS_KEPT` rows per source."""
        ...

    def add_counts(self, counts: Sequence[OutcomeCount]) -> None:
        """Add each node's event and delivery counts to the shared per-minute totals (:meth:`counts`), in
        one transaction: one upsert that adds ``n`` to the (minute, kind, name, outcome) total (entries
        with the same key are summed first; ``n`` may be any integer). The caller batches: each node
        writes what it counted at most every second or so, from a thread of its own, never per event.
        Raises ValueError for a ``minute`` that is not a multiple of 60 or an unknown ``kind``;
        OutboxUnavailable (then none was added: the caller may add them again later)."""
        ...

    def counts(self, since: float) -> dict[tuple[CountKind, str, str], int]:
        """``{(kind, name, outcome): n}``: the totals :meth:`add_counts` received from every node for the
        minutes from ``minute_of(since)`` on; keys with nothing are absent. Kept for :data:`TIMELINE_DAYS`
        days (purge). Cost: reads (minutes * names * outcomes) rows of a small table."""
        ...

    def claim_duty(self, duty: str, seconds: float, *, now: float | None = None) -> bool:
        """Hold the named ``duty`` (``housekeeping``: purges) for ``seconds``, so that one node at a time
        does it: True when this :attr:`node_id` holds it now (taken free or expired, or renewed: its
        holder calls again before it ends), False while another node's claim is live. A node that dies
        holding it loses it ``seconds`` later. Raises OutboxUnavailable."""
        ...

    # -- inspection --------------------------------------------------------------------------------
    def stats(self, *, now: float | None = None) -> OutboxStats:
        """Counts per (destination, state) and the ages in :class:`OutboxStats`.

        Cost: O(destinations) plus a few index lookups, whatever the number of rows (counts are kept in
        a table by each write; no scan) — cheap enough for every metrics scrape."""
        ...

    def health(self) -> dict[str, DestinationHealth]:
        """Per destination that was ever settled: its last success and last error (text, time) and X's
        latest rate-limit reading, as written by the settle calls of every node. Cost: O(destinations)."""
        ...

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
        """Up to ``limit`` rows matching every given filter, newest first (id descending). ``error``: a
        case-insensitive substring of ``last_error``. Keyset pagination: ``before`` returns only ids
        below it (pass the last id of the previous page).

        Cost: ``conversion_id`` is an index lookup; ``state`` walks that state's index; the other filters
        walk ids downward from ``before`` until ``limit`` rows match (a rare match reads many rows)."""
        ...

    def history(self, row_id: int) -> list[AttemptRecord]:
        """Every settle of ``row_id``, oldest first (empty for a row never settled, purged or discarded).
        Cost: an index lookup."""
        ...

    def duplicates(self, row_id: int) -> list[DuplicateSender]:
        """Who sent the conversion of ``row_id`` again within the dedup window, one entry per (source,
        ``public``), ordered by ``first_at`` (empty when no copy came, or the row is gone). Written by
        :meth:`enqueue` (any node) for each duplicate it answers. Cost: an index lookup."""
        ...

    def timeline(self, since: float, bucket_seconds: int = 60) -> list[TimelineBucket]:
        """Per destination and X event, the conversions stored and settled from ``since`` on, in buckets
        of ``bucket_seconds`` (a multiple of 60; ValueError otherwise) aligned on the epoch, ordered by
        (start, destination, event_id); buckets with nothing are absent. Counts are kept per minute by
        every enqueue and settle call (any node), for :data:`TIMELINE_DAYS` days. Cost: reads
        (destinations * events * minutes) rows of a small table."""
        ...

    def row(self, row_id: int) -> OutboxRow | None:
        """The row ``row_id``, or None when there is none (never stored, purged, discarded)."""
        ...

    # -- maintenance -------------------------------------------------------------------------------
    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        """Dead → queued and due now, attempts reset to 0 (these ids, or every dead row when None);
        ids that are not dead are ignored. Returns how many rows moved."""
        ...

    def discard(self, row_ids: Sequence[int] | None = None) -> int:
        """Delete dead rows (these ids, or every dead row when None), with their history and duplicate
        senders; ids that are not dead are ignored. Their dedup keys stay until the window ends, so a
        discarded conversion ingested again (a client's retry) is a duplicate, never sent. Returns how
        many rows were deleted."""
        ...

    def purge(self, *, now: float | None = None) -> int:
        """Delete delivered rows older than ``[storage] retention_days`` (with their history and
        duplicate senders), dedup keys older than ``dedup_window_days`` and duplicate senders whose last
        copy is that old, and expired console sign-outs. Returns how many rows were deleted (keys,
        senders and sign-outs not counted)."""
        ...

    def ping(self) -> None:
        """Prove, within a short bounded time (about a second), that ingest could store now: SQLite takes
        and releases its write lock; PostgreSQL takes and releases, on a pooled connection, the table locks
        an enqueue takes. Returns None, or raises OutboxUnavailable with the reason (who holds the lock,
        why the server is unreachable)."""
        ...

    def close(self) -> None:
        """Close every connection. Calls after close raise OutboxUnavailable."""
        ...


def check_session_id(session_id: str) -> str:
    """``session_id`` when :meth:`Outbox.revoke_session` can store it, else ValueError naming why."""
    if not 0 < len(session_id) <= 128:
        raise ValueError(f"session_id: must be 1 to 128 characters, not {len(session_id)}")
    return session_id


def check_take(n: int, rate: float, burst: float) -> None:
    """Refuse :meth:`Outbox.take_requests` arguments no bucket can honour (ValueError naming which)."""
    if n < 0:
        raise ValueError(f"take_requests: n must be 0 or more, not {n}")
    if not rate > 0:
        raise ValueError(f"take_requests: rate must be above 0 tokens a second, not {rate}")
    if not burst >= 1:
        raise ValueError(f"take_requests: burst must hold at least 1 token, not {burst}")


def minute_of(at: float) -> int:
    """The minute bucket (epoch seconds, a multiple of 60) of the time ``at``: :meth:`Outbox.timeline`."""
    return int(at // 60) * 60


COUNT_KINDS: tuple[CountKind, ...] = ("event", "delivery", "failure", "rejection")


def summed_counts(counts: Sequence[OutcomeCount]) -> list[OutcomeCount]:
    """``counts`` with one entry per (minute, kind, name, outcome), ``n`` summed, zeros left out, in key
    order (so two nodes' upserts take their row locks in the same order); ValueError for a minute that
    is not a multiple of 60 or a kind not in :data:`COUNT_KINDS` (:meth:`Outbox.add_counts`)."""
    totals: dict[tuple[int, CountKind, str, str], int] = {}
    for c in counts:
        if c.minute % 60:
            raise ValueError(f"add_counts: minute {c.minute} is not a multiple of 60")
        if c.kind not in COUNT_KINDS:
            raise ValueError(f"add_counts: kind {c.kind!r} is not one of {', '.join(COUNT_KINDS)}")
        key = (c.minute, c.kind, c.name, c.outcome)
        totals[key] = totals.get(key, 0) + c.n
    return [OutcomeCount(*key, n) for key, n in sorted(totals.items()) if n]


def check_bucket(bucket_seconds: int) -> int:
    """``bucket_seconds`` when it is a positive multiple of 60, else ValueError naming the argument."""
    if bucket_seconds <= 0 or bucket_seconds % 60:
        raise ValueError(f"bucket_seconds: {bucket_seconds} is not a positive multiple of 60")
    return bucket_seconds


def default_node_id(storage_url: str, role: str = "") -> str:
    """``<host name>-<8 hex>``: the suffix is stable for this host, storage URL and ``role`` (e.g.
    ``serve:8080``, ``dispatch``), so a restarted process finds its own leases (:meth:`Outbox.reclaim`)
    while two processes of one host leasing from one outbox get different ids. ``[server] node_id``
    overrides it (required when two processes of the same role and port share a host and an outbox)."""
    host = socket.gethostname() or "localhost"
    suffix = hashlib.sha1(f"{host}\x1f{storage_url}\x1f{role}".encode()).hexdigest()[:8]
    return f"{host}-{suffix}"
