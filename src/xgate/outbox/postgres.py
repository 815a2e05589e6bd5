"""The outbox on PostgreSQL, shared by any number of nodes: ``[storage] url = "postgresql://…"``.

Driver: psycopg 3 with psycopg_pool. Called synchronously from threads (the :class:`~xgate.outbox.base.
Outbox` contract), it measured as fast as asyncpg driven through an event-loop thread, without that thread
and its hop per call (figures: docs/performance.md, "PostgreSQL driver").

Every call is one transaction on a pooled connection; a call that is one statement (the enqueue, the
settles) runs it in autocommit, which PostgreSQL makes atomic as well, saving ``BEGIN`` and ``COMMIT``'s
round trips. Tables (``migrations/postgresql/``) carry an
``xgate_`` prefix; the URL's ``options=-csearch_path=…`` puts them in a schema of their own.

- **Enqueue** is one statement (``_ENQUEUE``): it inserts the dedup keys (``INSERT … ON CONFLICT DO
  UPDATE … WHERE expired RETURNING``: a key comes back only when it was new or its window had ended),
  then, in a data-modifying CTE, the rows of the keys that came back, with ids drawn from the rows'
  sequence by the key insert, their counts and the wake-up. A second writer of the same key waits
  on the first's row lock and then sees a duplicate, so concurrent nodes never store a key twice. The
  collector groups concurrent requests into one call: one commit for many conversions. Duplicates (keys
  that did not come back) add one upsert of their senders (``xgate_duplicate_senders``) to the call.
- **Lease** takes due queued rows with ``FOR UPDATE SKIP LOCKED`` (then expired leases the same way), so
  nodes leasing at once each get other rows and never wait on each other.
- **Counts** per (destination, state) live in ``xgate_state_counts``, written by the statement that moves
  the rows (a data-modifying CTE), so ``stats()`` never scans ``xgate_conversions``. Each count is split in
  16 shards picked by the writing backend's pid: two writers of one destination rarely queue on one row.
- **Wake-ups**: a commit that queues rows also sends ``NOTIFY`` on a channel named after the schema;
  :meth:`PostgresOutbox.wait_for_work` listens on a connection of its own (a thread), so an idle
  dispatcher on any node starts within milliseconds of an enqueue anywhere instead of its next poll.
- **Retention: batched deletes.** :meth:`PostgresOutbox.purge` deletes expired delivered rows (and dedup
  keys) 5,000 at a time, each batch its own short transaction under a transaction-level advisory lock (one
  node purges at a time; the others skip). With the tables' autovacuum set to run after 2% dead rows, the
  freed space is reused by new rows: under steady load the table holds about ``retention_days`` of rows
  and does not grow. Partitions dropped by age (rudder-server's datasets) were the alternative, rejected
  because a row's age does not decide when it may go: dead letters and rows in a long retry stay for days
  in every partition, so a partition could only be dropped after moving its stragglers, and every unique
  key and id lookup would have to name the partition key.
- **Bounded waits**: a call gives up after ``[storage] write_timeout_seconds`` in all (the bound) —
  waiting for a pooled connection (the pool's timeout), blocked on a lock (``LOCK TABLE``, a migration,
  a long transaction holding the rows), or on a server that stopped answering — and raises
  :class:`~xgate.errors.OutboxUnavailable` naming the cause (who holds the lock, from ``pg_locks``);
  ingest then answers 503 with Retry-After. PostgreSQL enforces it: each pooled connection's session
  sets ``lock_timeout`` and ``statement_timeout`` to the bound when the pool opens it (nothing more per
  call; a call never changes them), and libpq's TCP keepalives with ``tcp_user_timeout``
  drop a connection whose server's host has not acknowledged for that long. A call that has less than
  the bound left (it waited for a connection, or is a retry) sets what is left with ``SET LOCAL``, which
  ends with its transaction. Reads are bounded in their lock waits, not their run time (a console page
  over many rows may take longer). Migrations are not bounded. A server process frozen while its host
  still answers TCP (stopped with SIGSTOP, stuck in I/O) is beyond both: no timer of our own runs.
- **Outages**: once a connection attempt of the pool has failed (the server stopped, restarting, refusing)
  and no connection to the server is open, every call fails at once (ingest: 503 with Retry-After,
  ``/readyz``: 503) instead of waiting out its bound for a connection that cannot come: a state on the
  outbox (:class:`_Reachability`), cleared by the next connection that opens, or by a call that started
  after the failure and succeeded. A call already waiting for a connection looks every 0.25 s
  (:data:`_UNREACHABLE_POLL`). Meanwhile the pool keeps trying about every second: psycopg_pool retries
  an attempt with a doubling delay (1, 2, 4 … s) until its ``reconnect_timeout``, 5 minutes by default,
  so a server back after 45 s waited 11 to 13 s more for the next try; here an attempt gives up after 2 s
  (:data:`_RECONNECT_SECONDS`) and the next one starts at once (:func:`_keep_reconnecting`). The error
  names the latest attempt's reason; it is forgotten once the server is reached. One WARNING says when the
  server became unreachable (and again when the reason changes), one INFO when it is reached again,
  instead of psycopg_pool's line per attempt.
- **Identity**: the schema holds a random outbox id (``xgate_meta``, migration 9). A node that may create
  the outbox (``create=True``: ``serve``, ``dispatch``, ``import``) records the id in ``[storage]
  state_dir`` (:func:`identity_record`) and refuses to start on a database holding another, raising
  :class:`~xgate.errors.OutboxReplaced` unless ``[storage] accept_new_outbox`` (the check SQLite makes
  with ``<db>.id``: :func:`~xgate.outbox.common.check_identity`). The record is named after the
  database the URL reaches, not after the node: every node of one configuration on a host shares it (they
  use one database, so they agree on its id; one that accepts a new database accepts it for them all),
  and it stays the same when the password changes or libpq's failover picks another of the URL's hosts.
  A read-only open (``create=False``) checks but records nothing.
- **Errors**: every psycopg error becomes :class:`~xgate.errors.OutboxUnavailable` naming the host,
  port and database, never the password. A call that failed because a pooled connection had died
  (the server restarted) or on a deadlock / serialization failure is retried at once, up to 3 times,
  while its bound leaves time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from xgate.config import StorageSettings
from xgate.conversion import MappedConversion
from xgate.errors import OutboxNotFound, OutboxSchemaMismatch, OutboxUnavailable
from xgate.outbox import migrations
from xgate.outbox.base import (
    REJECTIONS_KEPT,
    TIMELINE_DAYS,
    AttemptRecord,
    CountKind,
    DestinationHealth,
    DuplicateSender,
    EnqueueOutcome,
    HandoffLease,
    LeasedRow,
    OutboxRow,
    OutboxStats,
    OutcomeCount,
    RejectionRecord,
    RequestGrant,
    TimelineBucket,
    check_bucket,
    check_session_id,
    check_take,
    default_node_id,
    minute_of,
    summed_counts,
)
from xgate.outbox.common import (
    LEASED_COLUMNS,
    MINUTE_COLUMNS,
    OUTCOME_COLUMN,
    PUBLIC,
    ROW_COLUMNS,
    SIGNAL_COLUMNS,
    OutboxEngine,
    Settlement,
    check_identity,
    destination_health,
    leased_row,
    outbox_row,
    paused_only,
    request_grant,
    timeline_bucket,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_Conn = psycopg.Connection[tuple[Any, ...]]

#: connections per outbox: the collector's writer threads, the dispatcher's, scrapes and commands
_POOL_SIZE = 8
#: seconds a new connection may take to open (libpq's ``connect_timeout``)
_CONNECT_TIMEOUT = 5.0
_PING_TIMEOUT = 1.0
_ATTEMPTS = 3
#: seconds psycopg_pool keeps retrying one connection attempt (its ``reconnect_timeout``) before giving it
#: up, when :func:`_keep_reconnecting` starts the next. Its delay between tries doubles from 1 s (tries
#: 1, 3, 7, 15, 31, 63 … s after the first failure), so with its default of 5 minutes a server that came
#: back waited for the next try up to as long again as the outage had lasted (after 45 s down, nodes
#: answered 503 for 11 to 13 s more). 2 s keeps the tries about a second apart however long the outage
_RECONNECT_SECONDS = 2.0
#: seconds between a waiting call's looks at whether the pool found the server unreachable meanwhile
_UNREACHABLE_POLL = 0.25
#: SQLSTATEs of a statement the server gave up on: a lock wait (``lock_timeout``), the statement
#: (``statement_timeout``; the same state as a cancel, told apart by the message)
_TIMED_OUT = frozenset({"55P03", "57014"})
#: a call with less than this share of the bound left sets what is left (``SET LOCAL``): a short wait for
#: a pooled connection is not worth a round trip
_SHARE_LEFT = 0.9
#: rows a purge deletes per transaction
_PURGE_BATCH = 5000
#: SQLSTATEs worth an immediate retry: deadlock, serialization failure, the server shutting down
_RETRY_STATES = frozenset({"40P01", "40001", "57P01", "57P02", "57P03"})

#: ``_moved``'s target for rows counted in the state each returns (new rows)
_RETURNED_STATE = "returned"


def _moved(cte: str, source: str | None, target: str | None) -> str:
    """SQL of a CTE that adds the rows returned by ``cte`` (a ``destination`` column) to the counts of
    ``target`` and takes them from ``source``; None: the rows were created / deleted; ``target =
    _RETURNED_STATE``: new rows, counted in their returned ``state`` column. Counter rows are written in
    (destination, state) order, so two writers never lock two of them in opposite orders."""
    if target == _RETURNED_STATE:
        select = f"SELECT destination, state, mod(pg_backend_pid(), 16), count(*) FROM {cte} GROUP BY 1, 2"
    else:
        moves = ", ".join(f"('{s}', {d})" for s, d in ((source, -1), (target, 1)) if s is not None)
        select = (
            f"SELECT m.destination, s.state, mod(pg_backend_pid(), 16), s.delta * count(*)"
            f" FROM {cte} AS m CROSS JOIN (VALUES {moves}) AS s(state, delta)"
            " GROUP BY m.destination, s.state, s.delta"
        )
    return (
        f"INSERT INTO xgate_state_counts AS sc (destination, state, shard, n) {select} ORDER BY 1, 2"
        " ON CONFLICT (destination, state, shard) DO UPDATE SET n = sc.n + excluded.n"
    )


#: what an enqueue adds to the minute counts: every new row, and those carrying each signal
_STORED_MINUTES = {"stored": "count(*)"} | {
    signal: f"count(*) FILTER (WHERE strpos(match_signals, '{signal}') > 0)" for signal in SIGNAL_COLUMNS
}
#: CTEs deleting what goes with the rows a statement deletes (``changed`` returns their ids): their
#: history and their duplicate senders
_FORGET_HISTORY = (
    "DELETE FROM xgate_attempts WHERE row_id IN (SELECT id FROM changed)",
    "DELETE FROM xgate_duplicate_senders WHERE row_id IN (SELECT id FROM changed)",
)


#: upserts of xgate_health (after ``INSERT INTO xgate_health AS h``) over the rows a settle returned
#: (``changed``): their destinations' last success at ``%(now)s``, or last error ``%(error)s`` at it
_SUCCESS_HEALTH = (
    "(destination, last_success_at) SELECT DISTINCT destination, %(now)s::double precision"
    " FROM changed ORDER BY 1 ON CONFLICT (destination) DO UPDATE"
    " SET last_success_at = greatest(h.last_success_at, excluded.last_success_at)"
)
_ERROR_HEALTH = (
    "(destination, last_error, last_error_at) SELECT DISTINCT destination, %(error)s,"
    " %(now)s::double precision FROM changed ORDER BY 1 ON CONFLICT (destination) DO UPDATE"
    " SET last_error = excluded.last_error, last_error_at = excluded.last_error_at"
    " WHERE h.last_error_at IS NULL OR h.last_error_at <= excluded.last_error_at"
)


def _add_minutes(values: dict[str, str]) -> str:
    """SQL of a CTE that adds ``values`` (column -> aggregate over the rows of ``changed``, which has
    ``destination`` and ``event_id``; other columns add 0) to minute ``%(minute)s`` of xgate_minute_counts,
    in this backend's shard, rows locked in key order (two writers never wait on each other crosswise)."""
    columns = ", ".join(MINUTE_COLUMNS)
    exprs = ", ".join(values.get(c, "0") for c in MINUTE_COLUMNS)
    sums = ", ".join(f"{c} = mc.{c} + excluded.{c}" for c in MINUTE_COLUMNS)
    return (
        f"INSERT INTO xgate_minute_counts AS mc (minute, destination, event_id, shard, {columns})"
        f" SELECT %(minute)s::bigint, destination, event_id, mod(pg_backend_pid(), 16), {exprs}"
        " FROM changed GROUP BY destination, event_id ORDER BY 2, 3"
        f" ON CONFLICT (minute, destination, event_id, shard) DO UPDATE SET {sums}"
    )


#: the enqueue in one statement (so it runs in autocommit: one round trip, atomic), given the first
#: conversion of each key in call order, its key's pixel as ``kp`` (prefixed for a public key). A key
#: comes back from the insert only when it was new or its window had ended, with a row id drawn in call
#: order; its row is then inserted, leased (the first ``limit`` of them, for the hand-off) or queued,
#: with the counts kept and ``NOTIFY`` sent when a row went to the queue. A second writer of the same key
#: waits on the first's row lock and then sees a duplicate. Returns the new keys with their rows' ids;
#: those of keys stored already are read by a second statement (``_known_keys``: rare; joining them here
#: slowed every call).
_ENQUEUE = (
    "WITH keys AS (INSERT INTO xgate_dedup_keys AS k (pixel_id, event_id, conversion_id, row_id, expires_at)"
    " SELECT kp, e, c, nextval('xgate_conversions_id_seq'), %(expires)s"
    " FROM unnest(%(kp)b::text[], %(e)b::text[], %(c)b::text[]) WITH ORDINALITY AS u(kp, e, c, i) ORDER BY i"
    " ON CONFLICT (pixel_id, event_id, conversion_id) DO UPDATE"
    " SET row_id = excluded.row_id, expires_at = excluded.expires_at WHERE k.expires_at <= %(now)s"
    " RETURNING pixel_id, event_id, conversion_id, row_id),"
    " new AS (SELECT keys.row_id, r.*, row_number() OVER (ORDER BY keys.row_id) <= %(limit)s AS leased"
    " FROM keys JOIN unnest(%(kp)b::text[], %(p)b::text[], %(e)b::text[], %(c)b::text[], %(d)b::text[],"
    " %(n)b::text[], %(m)b::text[], %(b)b::bytea[], %(src)b::text[]) AS r(kp, p, e, c, d, n, m, b, src)"
    " ON (keys.pixel_id, keys.event_id, keys.conversion_id) = (r.kp, r.e, r.c)),"
    " changed AS (INSERT INTO xgate_conversions (id, destination, pixel_id, event_id, conversion_id,"
    " event_name, match_signals, body, state, source, created_at, updated_at, next_attempt_at,"
    " lease_token, lease_expires_at, leased_by)"
    " SELECT row_id, d, p, e, c, n, m, b, CASE WHEN leased THEN 'leased' ELSE 'queued' END,"
    " src, %(now)s, %(now)s, %(now)s, CASE WHEN leased THEN %(token)s END,"
    " CASE WHEN leased THEN %(until)s::double precision END, CASE WHEN leased THEN %(node)s END"
    " FROM new RETURNING destination, state, event_id, match_signals),"
    f" counted AS ({_moved('changed', None, _RETURNED_STATE)}),"
    f" minutes AS ({_add_minutes(_STORED_MINUTES)}),"
    " woke AS MATERIALIZED (SELECT CASE WHEN count(*) FILTER (WHERE state = 'queued') > 0"
    " THEN pg_notify(%(channel)s, '') END FROM changed)"
    " SELECT k.pixel_id, k.event_id, k.conversion_id, k.row_id FROM keys AS k CROSS JOIN woke"
)


def _known_keys(
    db: _Conn, keys: Sequence[tuple[str, str, str]], unexpired_at: float | None = None
) -> dict[tuple[str, str, str], int]:
    """The row id stored under each of ``keys`` (pixel, event, conversion) that has one; with
    ``unexpired_at``, only keys whose dedup window is still open then."""
    return {
        (p, e, c): row_id
        for p, e, c, row_id in db.execute(
            "SELECT k.pixel_id, k.event_id, k.conversion_id, k.row_id FROM xgate_dedup_keys AS k"
            " JOIN unnest(%b::text[], %b::text[], %b::text[]) AS u(p, e, c)"
            " ON (k.pixel_id, k.event_id, k.conversion_id) = (u.p, u.e, u.c)"
            " WHERE %s::double precision IS NULL OR k.expires_at > %s",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], unexpired_at, unexpired_at),
        )
    }


def _session_parameters(url_parameters: dict[str, Any], bound: float, node_id: str) -> dict[str, Any]:
    """libpq parameters of the pooled connections (the module docstring, "Bounded waits"): TCP keepalives
    with ``tcp_user_timeout`` at ``bound`` seconds for a server whose host stops answering, and an
    application name showing the node in ``pg_stat_activity``. What the URL sets wins."""
    defaults: dict[str, Any] = {
        "connect_timeout": int(_CONNECT_TIMEOUT),
        "fallback_application_name": f"xgate {node_id}"[:63],
        "keepalives": 1,
        "keepalives_idle": max(1, int(bound / 2)),
        "keepalives_interval": 1,
        "tcp_user_timeout": max(1, round(bound * 1000)),
    }
    return {name: value for name, value in defaults.items() if name not in url_parameters}


def _bounded(bound: float, opened: Callable[[], None]) -> Callable[[_Conn], None]:
    """The pool's ``configure``: a new connection's session bounds every lock wait and statement by
    ``bound`` seconds (``SET``, once per connection; not the ``options`` startup parameter, which PgBouncer
    refuses for these settings); then ``opened()``: the server is reachable."""
    ms = str(max(1, round(bound * 1000)))

    def configure(db: _Conn) -> None:
        db.autocommit = True
        db.execute(
            "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
            (ms, ms),
        )
        db.autocommit = False
        opened()

    return configure


def _keep_reconnecting(pool: ConnectionPool[Any]) -> None:
    """The pool's ``reconnect_failed``, called when psycopg_pool gives up an attempt to connect after
    :data:`_RECONNECT_SECONDS`: start the next one at once, so that the pool keeps trying about every
    second for as long as the server is away. ``check`` does it (public, and it grows a pool holding no
    idle connection by one attempt, none while another attempt is growing it); a pool with idle
    connections needs none."""
    if not pool.closed and not pool.get_stats().get("pool_available", 0):
        pool.check()


#: who holds a lock on this schema's xgate tables in a transaction open for over ``%(age)s`` seconds
#: (the wait that timed out): those that kept it waiting, strongest lock first. Never their query text (it
#: may hold data); a session of another role shows no state or age unless ours may read its statistics
_HOLDERS = (
    "SELECT a.pid, coalesce(nullif(a.application_name, ''), a.backend_type), a.usename, a.state,"
    " extract(epoch FROM clock_timestamp() - a.xact_start)::float8,"
    " (array_agg(l.mode || ' on ' || c.relname ORDER BY array_position(%(modes)s, l.mode::text) DESC))[1]"
    " FROM pg_locks AS l JOIN pg_class AS c ON c.oid = l.relation JOIN pg_stat_activity AS a ON a.pid = l.pid"
    " WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
    " AND c.relname LIKE 'xgate\\_%%'"
    " AND coalesce(a.xact_start < clock_timestamp() - make_interval(secs => %(age)s), true)"
    " GROUP BY 1, 2, 3, 4, 5 ORDER BY max(array_position(%(modes)s, l.mode::text)) DESC, 5 DESC NULLS LAST"
    " LIMIT 3"
)
_LOCK_MODES = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
]


def _holders(db: _Conn, waited: float) -> str:
    """``pid 4242 (psql, user postgres, idle in transaction for 12 s: AccessExclusiveLock on
    xgate_conversions)`` for each session :data:`_HOLDERS` finds, ``; ``-separated ("" for none, or when
    the lookup fails). Run after the statement that timed out (its transaction rolled back first)."""
    try:
        if db.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            db.rollback()
        found = db.execute(_HOLDERS, {"age": waited, "modes": _LOCK_MODES}).fetchall()
    except psycopg.Error:
        return ""
    named = []
    for pid, app, user, state, age, lock in found:
        facts = [str(app), f"user {user}"] if user else [str(app)]
        if state is not None:
            facts.append(f"{state} for {age:.0f} s" if age is not None else str(state))
        named.append(f"pid {pid} ({', '.join(facts)}: {lock})")
    return "; ".join(named)


class _Down(NamedTuple):
    """Since when the server has been unreachable (``since``: monotonic, ``at``: the clock) and why."""

    since: float
    at: float
    cause: str


class _Reachability:
    """Whether the pool reaches the server (the module docstring, "Outages"). Unreachable from a failed
    connection attempt of the pool (its connection class, :func:`_watched_connections`) until a
    connection opens (the pool's ``configure``) or a call that started after the failure succeeds. The
    reason is the latest attempt's, and is forgotten with the outage."""

    def __init__(self, where: _Scrubbed) -> None:
        self._where = where
        self._lock = threading.Lock()
        #: None while the server is reachable (read without the lock: one assignment replaces it)
        self.down: _Down | None = None

    def failed(self, cause: str) -> None:
        """A connection attempt failed with ``cause``."""
        cause = " ".join(cause.split())
        with self._lock:
            was = self.down
            self.down = was._replace(cause=cause) if was else _Down(time.monotonic(), time.time(), cause)
        if was is None or was.cause != cause:
            log.warning(
                "outbox: %s; calls fail at once until a connection opens (tried about every second)",
                self._where.failed("connecting", cause),
            )

    def reached(self, after: float | None = None) -> None:
        """A connection opened; with ``after``, a call that started then (monotonic) succeeded."""
        if self.down is None:
            return
        with self._lock:
            was = self.down
            if was is None or (after is not None and after <= was.since):
                return
            self.down = None
        log.info("outbox: %s reachable again after %.0f s", self._where.where, time.monotonic() - was.since)


def _watched_connections(reach: _Reachability) -> type[_Conn]:
    """The pool's connection class: psycopg's, telling ``reach`` of each failed attempt to connect (the
    pool's workers connect in the background, and a caller would only get "couldn't get a connection").
    psycopg_pool opens every connection through ``connection_class.connect``."""

    class Watched(psycopg.Connection[tuple[Any, ...]]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            try:
                return super().connect(conninfo, **kwargs)
            except psycopg.Error as exc:
                reach.failed(str(exc))
                raise

    return Watched


class _PoolLog(logging.Filter):
    """On the ``psycopg.pool`` logger: the lines psycopg_pool writes per failed connection attempt and per
    attempt given up, for an outbox's pool, are dropped: its :class:`_Reachability` logs the outage once.
    Records of other pools pass. (Quiet only: the outage is known from the connection class, whatever
    the logger's level.)"""

    #: psycopg_pool's messages for a failed attempt and for an attempt given up
    _PER_ATTEMPT = ("error connecting in %r: %s", "reconnection attempt in pool %r failed after %s sec")

    def __init__(self) -> None:
        super().__init__()
        self.pools: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and str(args[0]) in self.pools and record.msg in self._PER_ATTEMPT)


_pool_log = _PoolLog()
logging.getLogger("psycopg.pool").addFilter(_pool_log)
# a handler of its own keeps Python's last-resort printer from writing psycopg_pool's warnings to the
# terminal of a command; a configured root logger still gets them
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


class _Scrubbed:
    """Where the database is, for messages: ``PostgreSQL at host:port/db`` (never the password)."""

    def __init__(self, url: str) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ValueError("storage.url: not a valid postgresql:// URL") from exc
        self.password = str(params.get("password") or "")
        host = params.get("host") or "localhost"
        port = params.get("port") or "5432"
        self.where = f"PostgreSQL at {host}:{port}/{params.get('dbname') or params.get('user') or ''}"

    def error(self, exc: BaseException, doing: str) -> OutboxUnavailable:
        return self.failed(doing, " ".join(str(exc).split()) or type(exc).__name__)

    def failed(self, doing: str, reason: str) -> OutboxUnavailable:
        if self.password:
            reason = reason.replace(self.password, "***")
        return OutboxUnavailable(f"{self.where}: {doing} failed: {reason}")


class PostgresOutbox(OutboxEngine):
    """:class:`~xgate.outbox.base.Outbox` on a PostgreSQL database (see the module docstring).

    ``url``: ``postgresql://user[:password]@host[:port]/db[?options=-csearch_path%3Dschema&sslmode=…]``
    (libpq's URL). ``create=True`` creates the schema in a database without xgate tables; an existing
    schema of another version raises :class:`~xgate.errors.OutboxSchemaMismatch` (``xgate db upgrade``),
    ``create=False`` and no schema raises :class:`~xgate.errors.OutboxNotFound`. ``check_schema=False``
    (the ``xgate db`` commands only) opens whatever schema is there, and checks no identity. A database
    that is not the one recorded in ``[storage] state_dir`` (:attr:`id_path`) raises
    :class:`~xgate.errors.OutboxReplaced` (the module docstring, "Identity")."""

    def __init__(
        self,
        url: str,
        settings: StorageSettings | None = None,
        *,
        node_id: str | None = None,
        create: bool = True,
        check_schema: bool = True,
    ) -> None:
        super().__init__()
        settings = settings or StorageSettings()
        self._where = _Scrubbed(url)
        self._url = url
        self._dedup_window = settings.dedup_window_days * 86400.0
        self._retention = settings.retention_days * 86400.0
        self._node_id = node_id or default_node_id(url)
        self._bound = settings.write_timeout_seconds
        #: where this node records the outbox id it used (the module docstring, "Identity")
        self.id_path = identity_record(settings.state_dir, url)
        try:  # one direct connection first: a wrong host or password fails at once, with libpq's reason
            with psycopg.connect(url, autocommit=True, connect_timeout=int(_CONNECT_TIMEOUT)) as db:
                schema = db.execute("SELECT current_schema()").fetchone()
        except psycopg.Error as exc:
            raise self._where.error(exc, "connecting") from exc
        self._pool_name = f"xgate-outbox-{uuid.uuid4().hex[:8]}"
        self._reach = _Reachability(self._where)
        self._lent = 0  # pooled connections in use by calls
        self._lent_lock = threading.Lock()
        _pool_log.pools.add(self._pool_name)
        self._pool: ConnectionPool[_Conn] = ConnectionPool(
            url,
            min_size=1,
            max_size=_POOL_SIZE,
            open=False,
            timeout=self._bound,
            kwargs=_session_parameters(conninfo_to_dict(url), self._bound, self._node_id),
            configure=_bounded(self._bound, self._reach.reached),
            name=self._pool_name,
            reconnect_timeout=_RECONNECT_SECONDS,
            reconnect_failed=_keep_reconnecting,
            connection_class=_watched_connections(self._reach),
        )
        try:
            self._pool.open(wait=False)
            if schema is None or schema[0] is None:
                raise OutboxUnavailable(
                    f"{self._where.where}: no schema to use (the search_path names none that exists)"
                )
            self._schema = str(schema[0])
            if check_schema:
                self._check_schema(create)
                self._check_identity(settings.accept_new_outbox, write=create)
        except BaseException:
            self._pool.close()
            _pool_log.pools.discard(self._pool_name)
            raise
        self._channel = "xgate_work_" + hashlib.sha1(self._schema.encode()).hexdigest()[:12]
        self._listener: threading.Thread | None = None

    # -- the contract's properties ---------------------------------------------------------------
    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def writers(self) -> int:
        """4: group commits of several collector threads proceed in parallel on the server."""
        return 4

    @property
    def location(self) -> str:
        """``PostgreSQL at host:port/db`` (no password), for messages."""
        return self._where.where

    # -- running a transaction -------------------------------------------------------------------
    def _call(
        self,
        doing: str,
        fn: Callable[[_Conn], _T],
        timeout: float | None = None,
        *,
        one_statement: bool = False,
        reads: bool = False,
    ) -> _T:
        """``fn(connection)`` in one transaction, committed on return; errors become OutboxUnavailable.

        Bounded by ``timeout`` seconds in all (default ``[storage] write_timeout_seconds``: the module
        docstring, "Bounded waits"): the wait for a pooled connection, then ``fn``'s statements. When
        another ``timeout`` is given, or less than ``_SHARE_LEFT`` of the bound is left for them, the
        transaction sets what is left (``SET LOCAL``). ``reads``: ``fn`` only reads; its lock waits are
        bounded, its run time is not. Retried at once, while time is left, when the connection was dead
        (a server restart) or on a deadlock. ``one_statement``: ``fn`` runs a single statement, which
        PostgreSQL makes atomic by itself: it runs in autocommit, one round trip instead of three
        (``BEGIN``, the statement, ``COMMIT``), committed when it returns (in a transaction when it has to
        set its bounds)."""
        if self._closed:
            raise OutboxUnavailable(f"{self._where.where}: the outbox is closed")
        bound = self._bound if timeout is None else timeout
        named = f"{bound:g} s" + (" ([storage] write_timeout_seconds)" if timeout is None else "")
        started = time.monotonic()
        deadline = started + bound
        for attempt in range(1, _ATTEMPTS + 1):
            retry: psycopg.Error | None = None
            try:
                with self._pooled(doing, deadline, named) as db:
                    left = deadline - time.monotonic()
                    try:
                        if reads or timeout is not None or left < _SHARE_LEFT * self._bound:
                            ms = max(1, int(left * 1000))
                            db.execute(
                                "SELECT set_config('lock_timeout', %s, true),"
                                " set_config('statement_timeout', %s, true)",
                                (str(ms), "0" if reads else str(ms)),
                            )
                        elif one_statement:
                            db.autocommit = True
                        result = fn(db)
                    except psycopg.Error as exc:
                        if exc.sqlstate in _TIMED_OUT and "timeout" in str(exc):
                            held = _holders(db, bound)
                            reason = f"{str(exc).splitlines()[0]} after {named}"
                            raise self._where.failed(
                                doing, reason + (f"; a lock on its tables is held by {held}" if held else "")
                            ) from exc
                        if (
                            attempt == _ATTEMPTS
                            or time.monotonic() >= deadline
                            or not (db.broken or exc.sqlstate in _RETRY_STATES)
                        ):
                            raise
                        retry = exc
                        broken = db.broken
                        if not broken:
                            with contextlib.suppress(psycopg.Error):
                                db.rollback()
                    finally:
                        if one_statement and not db.closed:
                            db.autocommit = False  # idle again: the next caller gets a transaction
            except psycopg.Error as exc:
                raise self._where.error(exc, doing) from exc
            if retry is None:  # committed
                self._reach.reached(after=started)
                return result
            if broken:  # the server restarted: its other pooled connections are dead too
                self._pool.check()
            log.info("outbox: %s retried after %s", doing, type(retry).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _pooled(self, doing: str, deadline: float, named: str) -> Iterator[_Conn]:
        """A pooled connection by ``deadline`` in a transaction, committed when the block ends (rolled
        back when it raises), then given back: ``ConnectionPool.connection``, except that it raises at
        once while the server is known to be unreachable (:meth:`_fail_if_unreachable`), and a wait
        looks every :data:`_UNREACHABLE_POLL` seconds whether the pool found that out meanwhile."""
        while True:
            self._fail_if_unreachable(doing)
            try:
                wait = min(deadline - time.monotonic(), _UNREACHABLE_POLL)
                db = self._pool.getconn(timeout=max(wait, 0.001))
                break
            except PoolTimeout as exc:
                if time.monotonic() < deadline:
                    continue
                self._fail_if_unreachable(doing)
                if self._pool.get_stats().get("pool_size", 0) < _POOL_SIZE:  # still connecting
                    reason = f"no pooled connection opened within {named}"
                else:
                    reason = f"all {_POOL_SIZE} pooled connections stayed busy with other calls for {named}"
                raise self._where.failed(doing, reason) from exc
        with self._lent_lock:
            self._lent += 1
        try:
            with db:
                yield db
        finally:
            with self._lent_lock:
                self._lent -= 1
            self._pool.putconn(db)

    def _fail_if_unreachable(self, doing: str) -> None:
        """Raise OutboxUnavailable naming the latest connection error when a connection attempt has failed
        since the server was last reached and no connection to it is open (none idle in the pool, none in
        use by a call): the module docstring, "Outages"."""
        down = self._reach.down
        if down is None:
            return
        with self._lent_lock:
            lent = self._lent
        if lent or self._pool.get_stats().get("pool_available", 0):
            return  # a connection may still work: try it (a dead one is found out and replaced)
        since = time.strftime("%H:%M:%S", time.gmtime(down.at))
        raise self._where.failed(doing, f"cannot connect: {down.cause} (unreachable since {since} UTC)")

    # -- schema ------------------------------------------------------------------------------------
    def _check_schema(self, create: bool) -> None:
        latest = len(migrations.postgresql())
        current = schema_version(self)
        if current is None:
            if not create:
                raise OutboxNotFound(f"{self._where.where}: no xgate outbox in schema {self._schema}")
            _apply(self, upto=latest, only_if_empty=True)
            return
        if current < latest:
            raise OutboxSchemaMismatch(
                f"the outbox schema is version {current}, this xgate needs {latest}: run xgate db upgrade"
            )
        if current > latest:
            raise OutboxSchemaMismatch(
                f"the outbox schema is version {current}, newer than this xgate knows ({latest}):"
                " upgrade xgate on this node"
            )

    def _check_identity(self, accept_new: bool, write: bool) -> None:
        """Compare the database's outbox id with the one recorded in :attr:`id_path`
        (:func:`~xgate.outbox.common.check_identity`); ``write=False``: a read-only open, no record
        written."""

        def read(db: _Conn) -> str | None:
            row = db.execute("SELECT value FROM xgate_meta WHERE key = 'outbox_id'").fetchone()
            return str(row[0]) if row else None

        found = self._call("reading the outbox id", read, reads=True)
        if found is None:  # deleted by hand: the schema's next writer draws a new one
            if not write:
                return
            self._call(
                "drawing an outbox id",
                lambda db: db.execute(
                    "INSERT INTO xgate_meta (key, value) VALUES ('outbox_id', %s) ON CONFLICT DO NOTHING",
                    (uuid.uuid4().hex,),
                ),
            )
            found = self._call("reading the outbox id", read, reads=True) or ""
        outbox = f"{self._where.where} (schema {self._schema})"
        try:
            check_identity(
                found,
                self.id_path,
                outbox=outbox,
                kind="database",
                happened="dropped and recreated, restored from another backup, or replaced",
                accept_new=accept_new,
                write=write,
                note=outbox,
            )
        except OSError as exc:
            raise OutboxUnavailable(
                f"{outbox}: recording the outbox id in {self.id_path} failed: {exc.strerror or exc}"
                " (check [storage] state_dir)"
            ) from exc

    # -- ingest ------------------------------------------------------------------------------------
    def _store(
        self, conversions: Sequence[MappedConversion], now: float, lease: HandoffLease | None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        if not conversions:
            return [], []
        # a conversion from a public key (MappedConversion.public) is stored under its own key: a duplicate
        # of an earlier trusted copy, but never the reason a later trusted copy is refused (docs/security.md)
        keys = [
            (PUBLIC + c.pixel_id if c.public else c.pixel_id, c.event_id, c.conversion_id)
            for c in conversions
        ]
        trusted_keys = {
            i: (c.pixel_id, c.event_id, c.conversion_id) for i, c in enumerate(conversions) if c.public
        }
        firsts: dict[tuple[str, str, str], int] = {}  # key -> index of its first conversion in this call
        for i, key in enumerate(keys):
            firsts.setdefault(key, i)

        # a public conversion is a duplicate when its trusted copy is stored already (read first) or
        # comes earlier in this call
        taken: dict[tuple[str, str, str], int] = {}
        if trusted_keys:
            taken = self._call(
                "enqueue",
                lambda db: _known_keys(db, list(set(trusted_keys.values())), now),
                one_statement=True,
            )
        shadowed = {
            i for i, tk in trusted_keys.items() if tk in taken or firsts.get(tk, len(conversions)) < i
        }
        # the first conversion of each key: a new row unless its key is stored already
        candidates = [i for i, key in enumerate(keys) if i not in shadowed and firsts[key] == i]
        bodies = {i: orjson.dumps(conversions[i].body) for i in candidates}
        cols: tuple[list[Any], ...] = tuple([] for _ in range(9))
        for i in candidates:
            c = conversions[i]
            values = (
                keys[i][0],
                c.pixel_id,
                c.event_id,
                c.conversion_id,
                c.destination,
                c.event_name,
                ",".join(sorted(c.match_signals)),
                bodies[i],
                c.source,
            )
            for col, value in zip(cols, values, strict=True):
                col.append(value)
        to_lease = lease.limit if lease else 0
        params = {
            **dict(zip(("kp", "p", "e", "c", "d", "n", "m", "b", "src"), cols, strict=True)),
            "now": now,
            "expires": now + self._dedup_window,
            "minute": minute_of(now),
            "limit": to_lease,
            "token": lease.token if lease else None,
            "until": now + lease.seconds if lease else None,
            "node": self._node_id,
            "channel": self._channel,
        }

        def store(db: _Conn) -> dict[tuple[str, str, str], int]:
            return {(p, e, c): row_id for p, e, c, row_id in db.execute(_ENQUEUE, params)}

        # one statement (the keys, the rows, their counts and the wake-up): atomic, one round trip
        new = self._call("enqueue", store, one_statement=True)
        copied = [i for i, key in enumerate(keys) if i in shadowed or key not in new or firsts[key] != i]
        known = dict(new)
        if copied:  # the duplicate path only: the stored rows' ids, and who sent the copies
            copies = partial(self._copies, conversions, keys, copied, shadowed, new, taken, now)
            known.update(self._call("enqueue", copies))
        out: list[EnqueueOutcome] = []
        handed: list[LeasedRow] = []
        for i, (c, key) in enumerate(zip(conversions, keys, strict=True)):
            if i in shadowed:
                tk = trusted_keys[i]
                row_id = taken[tk] if tk in taken else known[tk]
                out.append(EnqueueOutcome("duplicate", row_id, c.conversion_id, c.destination))
                continue
            row_id = known[key]
            if key not in new or firsts[key] != i:
                out.append(EnqueueOutcome("duplicate", row_id, c.conversion_id, c.destination))
                continue
            out.append(EnqueueOutcome("queued", row_id, c.conversion_id, c.destination))
            if lease is not None and len(handed) < to_lease:  # as the statement leased them: in order
                handed.append(
                    LeasedRow(
                        row_id,
                        c.destination,
                        c.pixel_id,
                        c.event_id,
                        c.conversion_id,
                        bodies[i],
                        0,
                        lease.token,
                        now,
                    )
                )
        if sum(o.status == "queued" for o in out) > len(handed):
            self._woken()
        return out, sorted(handed)

    @staticmethod
    def _copies(
        conversions: Sequence[MappedConversion],
        keys: list[tuple[str, str, str]],
        copied: list[int],
        shadowed: set[int],
        new: dict[tuple[str, str, str], int],
        taken: dict[tuple[str, str, str], int],
        now: float,
        db: _Conn,
    ) -> dict[tuple[str, str, str], int]:
        """The duplicates of an enqueue (``copied``: their indexes), in a transaction after its statement:
        reads the ids of the rows stored before under their keys (returned), and adds each copy to the
        senders of the row it duplicates (``xgate_duplicate_senders``; a copy of a row gone, discarded or
        purged, is not kept). Should this fail, the call fails though its new rows are stored: the sender
        retries and gets duplicates, never a 2xx for an event not stored."""
        stored = _known_keys(db, list({keys[i] for i in copied if i not in shadowed and keys[i] not in new}))
        ids = {**new, **stored}
        copies: dict[tuple[int, str, bool], int] = {}  # (kept row, source, public) -> n
        for i in copied:
            c = conversions[i]
            if i in shadowed:  # a public copy of a trusted conversion: that one's row
                trusted = (c.pixel_id, c.event_id, c.conversion_id)
                row_id = taken[trusted] if trusted in taken else ids[trusted]
            else:
                row_id = ids[keys[i]]
            copy = (row_id, c.source, c.public)
            copies[copy] = copies.get(copy, 0) + 1
        ordered = sorted(copies.items())  # rows locked in key order: no deadlock between nodes
        db.execute(
            "INSERT INTO xgate_duplicate_senders AS d (row_id, source, public, first_at, last_at, n)"
            " SELECT u.r, u.s, u.p, %(now)s, %(now)s, u.n"
            " FROM unnest(%(r)b::bigint[], %(s)b::text[], %(p)b::boolean[], %(n)b::bigint[])"
            " AS u(r, s, p, n) WHERE EXISTS (SELECT 1 FROM xgate_conversions WHERE id = u.r)"
            " ON CONFLICT (row_id, source, public) DO UPDATE SET n = d.n + excluded.n,"
            " last_at = greatest(d.last_at, excluded.last_at)",
            {
                "now": now,
                "r": [k[0] for k, _ in ordered],
                "s": [k[1] for k, _ in ordered],
                "p": [k[2] for k, _ in ordered],
                "n": [n for _, n in ordered],
            },
        )
        return stored

    # -- delivery ----------------------------------------------------------------------------------
    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        token = uuid.uuid4().hex
        take = (
            "WITH picked AS (SELECT id FROM xgate_conversions WHERE {due} ORDER BY {order} LIMIT %(limit)s"
            " FOR UPDATE SKIP LOCKED),"
            " leased AS (UPDATE xgate_conversions AS c SET state = 'leased', lease_token = %(token)s,"
            " lease_expires_at = %(until)s, leased_by = %(node)s, updated_at = %(now)s"
            f" FROM picked WHERE c.id = picked.id RETURNING c.{LEASED_COLUMNS.replace(', ', ', c.')})"
            "{count} SELECT * FROM leased"
        )
        params = {"token": token, "until": now + lease_seconds, "node": self._node_id, "now": now}

        def run(db: _Conn) -> list[tuple[Any, ...]]:
            rows = db.execute(
                take.format(
                    due="state = 'queued' AND next_attempt_at <= %(now)s",
                    order="next_attempt_at, id",
                    count=", counted AS (" + _moved("leased", "queued", "leased") + ")",
                ),
                {**params, "limit": limit},
            ).fetchall()
            if len(rows) < limit:  # leases of a node that died or stalled: still leased, now ours
                rows += db.execute(
                    take.format(
                        due="state = 'leased' AND lease_expires_at <= %(now)s",
                        order="lease_expires_at, id",
                        count="",
                    ),
                    {**params, "limit": limit - len(rows)},
                ).fetchall()
            return rows

        rows = self._call("lease", run)
        return sorted(leased_row(r, token) for r in rows)

    def extend(
        self, row_ids: Sequence[int], lease_token: str, lease_seconds: float, *, now: float | None = None
    ) -> int:
        now = time.time() if now is None else now
        return self._call(
            "extend",
            lambda db: (
                db.execute(
                    "UPDATE xgate_conversions SET lease_expires_at = %s WHERE id = ANY(%b::bigint[])"
                    " AND state = 'leased' AND lease_token = %s",
                    (now + lease_seconds, list(row_ids), lease_token),
                ).rowcount
            ),
        )

    def reclaim(self, *, now: float | None = None) -> int:
        now = time.time() if now is None else now

        def run(db: _Conn) -> int:
            return self._count(
                db,
                "UPDATE xgate_conversions SET state = 'queued',"
                " next_attempt_at = least(next_attempt_at, %(now)s), updated_at = %(now)s,"
                " lease_token = NULL, lease_expires_at = NULL, leased_by = NULL"
                " WHERE state = 'leased' AND leased_by = %(node)s RETURNING destination",
                "leased",
                "queued",
                {"now": now, "node": self._node_id},
                wake="true",
            )

        return self._woke_if(self._call("reclaim", run))

    def _count(
        self,
        db: _Conn,
        statement: str,
        source: str | None,
        target: str | None,
        params: dict[str, Any],
        also: Sequence[str] = (),
        wake: str = "",
    ) -> int:
        """Run ``statement`` (it returns ``destination`` per row changed) with the counts kept, and the
        statements ``also`` (they may read the changed rows as ``changed``), in one statement; returns how
        many rows changed. ``wake``: a condition on the changed rows; when a row meets it, NOTIFY the
        waiters of every node (sent at commit; the caller wakes this process's own after it)."""
        more = "".join(f", also{i} AS ({cte})" for i, cte in enumerate(also))
        notify = (
            f", CASE WHEN count(*) FILTER (WHERE {wake}) > 0 THEN pg_notify(%(channel)s, '') END"
            if wake
            else ""
        )
        row = db.execute(
            f"WITH changed AS ({statement}), counted AS ({_moved('changed', source, target)}){more}"
            f" SELECT count(*){notify} FROM changed",
            {**params, "channel": self._channel},
        ).fetchone()
        return int(row[0]) if row else 0

    def _settle(self, row_ids: Sequence[int], lease_token: str, settlement: Settlement) -> int:
        """``settlement`` in one statement (autocommit): the update of the rows still held with
        ``lease_token``, and in CTEs over what it returned (``changed``) the state counts, one upsert of
        xgate_health per destination settled, one insert of history entries per settled row, one upsert
        of the minute counts per destination and X event, one upsert of xgate_capacity, and for rows
        ``requeued`` a ``NOTIFY`` to every node (this process's waiters: :meth:`release`)."""
        if not row_ids:
            return 0
        s = settlement
        columns = ([("attempts", "attempts + %(attempts)s")] if s.attempts else []) + [
            (column, f"%(set_{column})s") for column, _ in s.sets
        ]
        assignments = ", ".join(f"{column} = {value}" for column, value in columns)
        statement = (
            f"UPDATE xgate_conversions SET state = '{s.state}', {assignments}, lease_token = NULL,"
            " lease_expires_at = NULL, leased_by = NULL"
            " WHERE id = ANY(%(ids)b::bigint[]) AND state = 'leased' AND lease_token = %(token)s"
            " RETURNING id, destination, event_id"
        )
        args: dict[str, Any] = {f"set_{column}": value for column, value in s.sets}
        args |= {"attempts": s.attempts, "ids": list(row_ids), "token": lease_token, "now": s.now}
        also = []
        if s.success:
            also.append(f"INSERT INTO xgate_health AS h {_SUCCESS_HEALTH}")
        if s.failure is not None:
            also.append(f"INSERT INTO xgate_health AS h {_ERROR_HEALTH}")
            args["error"] = s.failure
        if s.attempt is not None:
            also.append(
                "INSERT INTO xgate_attempts (row_id, at, outcome, status, error, debug_id)"
                " SELECT id, %(h_at)s, %(h_outcome)s, %(h_status)s::smallint, %(h_error)s::text,"
                " %(h_debug_id)s::text FROM changed"
            )
            args |= {f"h_{name}": value for name, value in s.attempt._asdict().items()}
            args["minute"] = minute_of(s.attempt.at)
            column = OUTCOME_COLUMN.get(s.attempt.outcome)
            if column is not None:
                also.append(_add_minutes({column: "count(*)"}))
        if s.capacity is not None:
            also.append(
                "INSERT INTO xgate_capacity AS k (destination, request_limit, remaining, reset_at, scope,"
                " seen_at) SELECT DISTINCT destination, %(c_limit)s::integer, %(c_remaining)s::integer,"
                " %(c_reset)s::double precision, %(c_scope)s::text, %(c_seen)s::double precision"
                " FROM changed ORDER BY 1 ON CONFLICT (destination) DO UPDATE"
                " SET request_limit = excluded.request_limit, remaining = excluded.remaining,"
                " reset_at = excluded.reset_at, scope = excluded.scope, seen_at = excluded.seen_at"
                " WHERE k.seen_at <= excluded.seen_at"
            )
            args |= dict(
                zip(("c_limit", "c_remaining", "c_reset", "c_scope", "c_seen"), s.capacity, strict=True)
            )
        wake = "true" if s.requeued else ""  # a retry is due later: its own wake-up

        def run(db: _Conn) -> int:
            return self._count(db, statement, "leased", s.state, args, also, wake)

        return self._call(s.doing, run, one_statement=True)

    def wait_for_work(self, timeout: float) -> bool:
        """Woken by any node (``NOTIFY``): the first call starts the listener thread, and returns True once
        it listens (rows may have been queued while no one did)."""
        if self._listener is None:
            with self._work:
                if self._listener is None and not self._closed:
                    self._listener = threading.Thread(
                        target=self._listen, name="xgate-outbox-listen", daemon=True
                    )
                    self._listener.start()
        return super().wait_for_work(timeout)

    def _listen(self) -> None:
        """The listener thread: LISTEN on a connection of its own; each notification wakes the waiters.
        Reconnects whenever the connection fails, after 1, 2, 4 … up to 30 s (one warning each)."""
        pause = 1.0
        while not self._closed:
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=int(_CONNECT_TIMEOUT)) as db:
                    db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    pause = 1.0
                    self._woken()  # work may have been queued while no one listened
                    while not self._closed:
                        for _ in db.notifies(timeout=0.5, stop_after=1):
                            self._woken()
            except psycopg.Error as exc:
                if self._closed:
                    return
                log.warning(
                    "outbox: %s (again in %.0f s)", self._where.error(exc, "listening for work"), pause
                )
                with self._work:
                    self._work.wait_for(lambda: self._closed, pause)
                pause = min(pause * 2, 30.0)

    # -- shared between nodes: X's rate limit, housekeeping -------------------------------------------
    def take_requests(
        self, key: str, n: int, *, rate: float, burst: float, now: float | None = None
    ) -> RequestGrant:
        """One statement: an upsert whose row lock orders the nodes taking from one key; the refill,
        the grant and the pause are computed by the server from the row it locked."""
        check_take(n, rate, burst)
        now = time.time() if now is None else now
        if n == 0:  # the pause only: a plain read
            found = self._call(
                "take_requests",
                lambda db: db.execute(
                    "SELECT paused_until FROM xgate_request_budgets WHERE key = %s", (key,)
                ).fetchone(),
                reads=True,
            )
            return paused_only(found[0] if found else None, now)
        refilled = (
            "least(%(burst)s, coalesce(b.tokens + greatest(0, %(now)s - b.stamp) * %(rate)s, %(burst)s))"
        )
        grant = f"CASE WHEN b.paused_until > %(now)s THEN 0 ELSE least(%(n)s, floor({refilled}))::integer END"
        first = "least(%(n)s, floor(%(burst)s))::integer"
        row = self._call(
            "take_requests",
            lambda db: db.execute(
                "INSERT INTO xgate_request_budgets AS b (key, tokens, stamp, paused_until, granted)"
                f" VALUES (%(key)s, %(burst)s - {first}, %(now)s, 0, {first})"
                f" ON CONFLICT (key) DO UPDATE SET tokens = {refilled} - {grant},"
                f" granted = {grant}, stamp = greatest(b.stamp, %(now)s)"
                " RETURNING granted, tokens, paused_until",
                {"key": key, "n": n, "rate": rate, "burst": float(burst), "now": now},
            ).fetchone(),
        )
        assert row is not None
        return request_grant(n, int(row[0]), float(row[1]), float(row[2]), now, rate)

    def pause(self, key: str, until: float, *, now: float | None = None) -> float:
        now = time.time() if now is None else now
        row = self._call(
            "pause",
            lambda db: db.execute(
                "INSERT INTO xgate_request_budgets AS b (key, tokens, stamp, paused_until)"
                " VALUES (%s, NULL, %s, %s) ON CONFLICT (key) DO UPDATE"
                " SET paused_until = greatest(b.paused_until, excluded.paused_until) RETURNING paused_until",
                (key, now, until),
            ).fetchone(),
        )
        assert row is not None
        return float(row[0])

    def revoke_session(self, session_id: str, expires_at: float, *, now: float | None = None) -> None:
        check_session_id(session_id)
        now = time.time() if now is None else now

        def run(db: _Conn) -> None:
            db.execute("DELETE FROM xgate_revoked_sessions WHERE expires_at <= %s", (now,))
            db.execute(
                "INSERT INTO xgate_revoked_sessions AS r (id, expires_at) VALUES (%s, %s) ON CONFLICT (id)"
                " DO UPDATE SET expires_at = greatest(r.expires_at, excluded.expires_at)",
                (session_id, expires_at),
            )

        self._call("revoke_session", run)

    def session_revoked(self, session_id: str, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        found = self._call(
            "session_revoked",
            lambda db: db.execute(
                "SELECT 1 FROM xgate_revoked_sessions WHERE id = %s AND expires_at > %s", (session_id, now)
            ).fetchone(),
            reads=True,
        )
        return found is not None

    def record_rejections(self, records: Sequence[RejectionRecord]) -> None:
        if not records:
            return
        columns = list(zip(*records, strict=True))

        def run(db: _Conn) -> None:
            db.execute(
                "INSERT INTO xgate_rejections (at, source, event_name, destination, error)"
                " SELECT * FROM unnest(%b::double precision[], %b::text[], %b::text[], %b::text[],"
                " %b::text[])",
                [list(c) for c in columns],
            )
            db.execute(
                "DELETE FROM xgate_rejections AS r USING unnest(%b::text[]) AS s(source)"
                " WHERE r.source = s.source AND r.id <= (SELECT id FROM xgate_rejections"
                " WHERE source = s.source ORDER BY id DESC LIMIT 1 OFFSET %b)",
                (sorted({r.source for r in records}), REJECTIONS_KEPT),
            )

        self._call("record_rejections", run)

    def rejections(self, limit: int) -> list[RejectionRecord]:
        found = self._call(
            "rejections",
            lambda db: db.execute(
                "SELECT at, source, event_name, destination, error FROM (SELECT *, row_number() OVER"
                " (PARTITION BY source ORDER BY id DESC) AS n FROM xgate_rejections) AS r"
                " WHERE n <= %(limit)s ORDER BY at DESC, id DESC LIMIT %(limit)s",
                {"limit": limit},
            ).fetchall(),
            reads=True,
        )
        return [RejectionRecord(*r) for r in found]

    def add_counts(self, counts: Sequence[OutcomeCount]) -> None:
        rows = summed_counts(counts)
        if not rows:
            return
        columns = [list(c) for c in zip(*rows, strict=True)]
        self._call(
            "add_counts",
            lambda db: db.execute(
                "INSERT INTO xgate_outcome_counts AS c (minute, kind, name, outcome, n)"
                " SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::bigint[])"
                " ON CONFLICT (minute, kind, name, outcome) DO UPDATE SET n = c.n + excluded.n",
                columns,
            ),
        )

    def counts(self, since: float) -> dict[tuple[CountKind, str, str], int]:
        found = self._call(
            "counts",
            lambda db: db.execute(
                "SELECT kind, name, outcome, sum(n)::bigint FROM xgate_outcome_counts WHERE minute >= %s"
                " GROUP BY kind, name, outcome",
                (minute_of(since),),
            ).fetchall(),
            reads=True,
        )
        return {(kind, name, outcome): n for kind, name, outcome, n in found if n}

    def claim_duty(self, duty: str, seconds: float, *, now: float | None = None) -> bool:
        """A row lease rather than an advisory lock: a session lock lives on one connection, which the
        pool hands to other callers and a server restart drops unnoticed; the row outlives both and
        names its holder."""
        now = time.time() if now is None else now
        row = self._call(
            "claim_duty",
            lambda db: db.execute(
                "INSERT INTO xgate_duties AS d (name, holder, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE d.holder = excluded.holder OR d.expires_at <= %s RETURNING holder",
                (duty, self._node_id, now + seconds, now),
            ).fetchone(),
        )
        return row is not None

    # -- inspection --------------------------------------------------------------------------------
    def stats(self, *, now: float | None = None) -> OutboxStats:
        now = time.time() if now is None else now

        def run(db: _Conn) -> OutboxStats:
            stats = OutboxStats()
            for dest, state, n in db.execute(
                "SELECT destination, state, sum(n) FROM xgate_state_counts GROUP BY destination, state"
                " HAVING sum(n) != 0"
            ):
                stats.counts[(dest, state)] = int(n)
            row = db.execute(
                "SELECT (SELECT count(*) FROM xgate_conversions WHERE state = 'delivered'"
                " AND updated_at > %(minute)s),"
                " (SELECT min(created_at) FROM xgate_conversions WHERE state IN ('queued', 'leased')),"
                " (SELECT min(next_attempt_at) FROM xgate_conversions WHERE state = 'queued'),"
                " (SELECT count(*) FROM xgate_conversions WHERE state = 'leased'"
                " AND lease_expires_at <= %(now)s)",
                {"minute": now - 60, "now": now},
            ).fetchone()
            assert row is not None
            stats.delivered_last_minute = int(row[0])
            stats.oldest_undelivered_at = row[1]
            stats.next_attempt_at = row[2]
            stats.expired_leases = int(row[3])
            return stats

        return self._call("stats", run, reads=True)

    def health(self) -> dict[str, DestinationHealth]:
        rows = self._call(
            "health",
            lambda db: db.execute(
                "SELECT destination, h.last_success_at, h.last_error, h.last_error_at, c.request_limit,"
                " c.remaining, c.reset_at, c.scope, c.seen_at"
                " FROM xgate_health AS h LEFT JOIN xgate_capacity AS c USING (destination)"
            ).fetchall(),
            reads=True,
        )
        return destination_health(rows)

    def _rows(
        self, equal: dict[str, str], error: str | None, before: int | None, limit: int
    ) -> list[OutboxRow]:
        where = ["true", *(f"{column} = %({column})s" for column in equal)]
        if error is not None:
            where.append("strpos(lower(last_error), lower(%(error)s)) > 0")
        if before is not None:
            where.append("id < %(before)s")
        params: dict[str, object] = {**equal, "error": error, "before": before, "limit": limit}
        found = self._call(
            "rows",
            lambda db: db.execute(
                f"SELECT {ROW_COLUMNS} FROM xgate_conversions WHERE {' AND '.join(where)}"
                " ORDER BY id DESC LIMIT %(limit)s",
                params,
            ).fetchall(),
            reads=True,
        )
        return [outbox_row(r) for r in found]

    def history(self, row_id: int) -> list[AttemptRecord]:
        found = self._call(
            "history",
            lambda db: db.execute(
                "SELECT at, outcome, status, error, debug_id FROM xgate_attempts WHERE row_id = %s"
                " ORDER BY at",
                (row_id,),
            ).fetchall(),
            reads=True,
        )
        return [AttemptRecord(*r) for r in found]

    def duplicates(self, row_id: int) -> list[DuplicateSender]:
        found = self._call(
            "duplicates",
            lambda db: db.execute(
                "SELECT source, public, first_at, last_at, n FROM xgate_duplicate_senders WHERE row_id = %s"
                " ORDER BY first_at, source, public",
                (row_id,),
            ).fetchall(),
            reads=True,
        )
        return [DuplicateSender(r[0], bool(r[1]), r[2], r[3], int(r[4])) for r in found]

    def timeline(self, since: float, bucket_seconds: int = 60) -> list[TimelineBucket]:
        size = check_bucket(bucket_seconds)
        sums = ", ".join(f"sum({c})" for c in MINUTE_COLUMNS)
        found = self._call(
            "timeline",
            lambda db: db.execute(
                f"SELECT minute / %(size)s * %(size)s AS start, destination, event_id, {sums}"
                " FROM xgate_minute_counts WHERE minute >= %(since)s"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                {"size": size, "since": minute_of(since)},
            ).fetchall(),
            reads=True,
        )
        return [timeline_bucket(r[0], r[1], r[2], r[3:]) for r in found]

    def row(self, row_id: int) -> OutboxRow | None:
        found = self._call(
            "row",
            lambda db: db.execute(
                f"SELECT {ROW_COLUMNS} FROM xgate_conversions WHERE id = %s", (row_id,)
            ).fetchone(),
            reads=True,
        )
        return outbox_row(found) if found else None

    # -- maintenance -------------------------------------------------------------------------------
    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        now = time.time()

        def run(db: _Conn) -> int:
            return self._count(
                db,
                "UPDATE xgate_conversions SET state = 'queued', attempts = 0, next_attempt_at = %(now)s,"
                " updated_at = %(now)s WHERE state = 'dead'"
                + ("" if row_ids is None else " AND id = ANY(%(ids)s::bigint[])")
                + " RETURNING destination",
                "dead",
                "queued",
                {"now": now, "ids": list(row_ids or ())},
                wake="true",
            )

        return self._woke_if(self._call("replay", run))

    def discard(self, row_ids: Sequence[int] | None = None) -> int:
        return self._call(
            "discard",
            lambda db: self._count(
                db,
                "DELETE FROM xgate_conversions WHERE state = 'dead'"
                + ("" if row_ids is None else " AND id = ANY(%(ids)s::bigint[])")
                + " RETURNING id, destination",
                "dead",
                None,
                {"ids": list(row_ids or ())},
                also=_FORGET_HISTORY,
            ),
        )

    def purge(self, *, now: float | None = None) -> int:
        """Batched deletes (module docstring), each batch under an advisory lock that one node holds at a
        time: a node that finds it taken returns 0 at once (the other node is purging)."""
        now = time.time() if now is None else now
        lock = "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || ':xgate-purge'))"

        def rows_batch(db: _Conn) -> int | None:
            got = db.execute(lock).fetchone()
            if not (got and got[0]):
                return None
            return self._count(
                db,
                "DELETE FROM xgate_conversions WHERE id IN (SELECT id FROM xgate_conversions"
                " WHERE state = 'delivered' AND updated_at < %(cutoff)s ORDER BY updated_at"
                " LIMIT %(batch)s FOR UPDATE SKIP LOCKED) RETURNING id, destination",
                "delivered",
                None,
                {"cutoff": now - self._retention, "batch": _PURGE_BATCH},
                also=_FORGET_HISTORY,
            )

        first_keys_batch = [True]

        def keys_batch(db: _Conn) -> int | None:
            got = db.execute(lock).fetchone()
            if not (got and got[0]):
                return None
            if first_keys_batch:  # small tables, one statement each
                first_keys_batch.clear()
                oldest = (minute_of(now - TIMELINE_DAYS * 86400),)
                db.execute("DELETE FROM xgate_minute_counts WHERE minute < %s", oldest)
                db.execute("DELETE FROM xgate_outcome_counts WHERE minute < %s", oldest)
                db.execute(
                    "DELETE FROM xgate_duplicate_senders WHERE last_at <= %s", (now - self._dedup_window,)
                )
                db.execute("DELETE FROM xgate_revoked_sessions WHERE expires_at <= %s", (now,))
            return db.execute(
                "DELETE FROM xgate_dedup_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM xgate_dedup_keys"
                " WHERE expires_at <= %s LIMIT %s))",
                (now, _PURGE_BATCH),
            ).rowcount

        purged = 0
        for batch, counted in ((rows_batch, True), (keys_batch, False)):
            while True:
                n = self._call("purge", batch)
                if n is None:
                    return purged
                purged += n if counted else 0
                if n < _PURGE_BATCH:
                    break
        return purged

    def ping(self) -> None:
        """Within about a second, on a pooled connection (one the server killed is replaced first): take
        and release the locks an enqueue takes on its tables (``ROW EXCLUSIVE``: only a lock that would
        block ingest, such as ``LOCK TABLE``, a migration or ``VACUUM FULL``, makes it wait); raises
        OutboxUnavailable with the reason (the server's, or who holds the lock)."""
        self._call(
            "ping",
            lambda db: db.execute(
                "LOCK TABLE xgate_dedup_keys, xgate_conversions, xgate_state_counts, xgate_minute_counts"
                " IN ROW EXCLUSIVE MODE"
            ),
            timeout=_PING_TIMEOUT,
        )

    def close(self) -> None:
        self._stop_waiters()
        self._pool.close()
        _pool_log.pools.discard(self._pool_name)
        if self._listener is not None:
            self._listener.join(timeout=2.0)


#: the URL's parameters that say which database and schema it reaches; not the password, nor a setting
#: of the connection (timeouts, TLS, the application name, failover's target_session_attrs)
_WHICH = ("service", "host", "hostaddr", "port", "dbname", "user", "options")


def identity_record(state_dir: Path, url: str) -> Path:
    """The file in ``state_dir`` where a node records the outbox id of the database at ``url``:
    ``outbox-<16 hex>.id``, the hex a digest of the URL's :data:`_WHICH` parameters (the module docstring,
    "Identity")."""
    params = conninfo_to_dict(url)
    which = orjson.dumps({k: str(params[k]) for k in _WHICH if params.get(k)}, option=orjson.OPT_SORT_KEYS)
    return state_dir / f"outbox-{hashlib.sha256(which).hexdigest()[:16]}.id"


# -- schema versions -------------------------------------------------------------------------------
def schema_version(outbox: PostgresOutbox) -> int | None:
    """The version recorded in ``xgate_schema_version`` (None: the schema has no xgate tables)."""

    def read(db: _Conn) -> int | None:
        found = db.execute("SELECT to_regclass('xgate_schema_version') IS NOT NULL").fetchone()
        if not (found and found[0]):
            return None
        row = db.execute("SELECT max(version) FROM xgate_schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    return outbox._call("reading the schema version", read, reads=True)


def _apply(outbox: PostgresOutbox, *, upto: int, only_if_empty: bool = False) -> list[migrations.Migration]:
    """Apply pending migrations up to ``upto`` in one transaction under an advisory lock (several nodes
    starting together on an empty database create the schema once). ``only_if_empty``: do nothing when
    the schema has a version already (another node created it meanwhile)."""

    def run(db: _Conn) -> list[migrations.Migration]:
        # unbounded: a migration may wait for another node's, and may take long on large tables
        db.execute("SELECT set_config('lock_timeout', '0', true), set_config('statement_timeout', '0', true)")
        db.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':xgate-migrate'))")
        db.execute(
            "CREATE TABLE IF NOT EXISTS xgate_schema_version (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = db.execute("SELECT coalesce(max(version), 0) FROM xgate_schema_version").fetchone()
        current = int(row[0]) if row else 0
        if only_if_empty and current:
            return []
        done: list[migrations.Migration] = []
        for m in migrations.postgresql():
            if current < m.version <= upto:
                db.execute(m.sql.encode())  # bytes: the file is SQL as written, no placeholders
                db.execute(
                    "INSERT INTO xgate_schema_version (version, name) VALUES (%s, %s)", (m.version, m.name)
                )
                done.append(m)
        return done

    return outbox._call("migrating the schema", run)


def upgrade(url: str, settings: StorageSettings | None = None) -> list[migrations.Migration]:
    """Apply every pending migration (``xgate db upgrade``); returns those applied."""
    outbox = PostgresOutbox(url, settings, check_schema=False)
    try:
        return _apply(outbox, upto=len(migrations.postgresql()))
    finally:
        outbox.close()
