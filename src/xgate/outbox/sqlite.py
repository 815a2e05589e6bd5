"""The embedded outbox: one SQLite file in WAL mode.

Durability: ``synchronous=FULL`` — a commit is on disk before ``enqueue`` returns, so the collector's 2xx
means the conversion survives a crash or a power cut. The collector groups concurrent requests into one
commit, which keeps that affordable.

Concurrency: one connection per thread; writes take SQLite's write lock (``BEGIN IMMEDIATE``), so several
threads and several processes on the same file are safe. Writers first queue on a lock — threads on a
Python lock, processes (``serve``, ``dispatch``, ``import``) on ``flock`` of ``<db>.lock`` — because
SQLite's busy handler sleeps (up to 100 ms a try) when the write lock is taken, which would add those
sleeps to ingest latency whenever two writers meet.
A lease is one write transaction of ``UPDATE … RETURNING`` (due queued rows, then expired leases) with a
token and an expiry: rows of a process that dies return to the queue when the lease expires. Leased
bodies stay the JSON stored at ingest, sent as is.

A lease records its node (``leased_by``): at start a node takes its own leases back at once
(:meth:`SQLiteOutbox.reclaim`) instead of waiting for them to expire.

Deduplication: a key table holds (pixel_id, event_id, conversion_id) until the dedup window ends, so
delivered rows can be purged after the retention period while their keys still block a second send. A
conversion from a public key (:attr:`MappedConversion.public`, a browser source) is stored under its own
key, ``public`` + the key: it is a duplicate of any earlier conversion with the same key, but it never
makes a later conversion from a secret key a duplicate (docs/security.md, "Deduplication and trust").

Duplicate senders (schema version 6): an enqueue that answers ``duplicate`` upserts who sent the copy
(one ``executemany`` in its transaction, only when there are duplicates), for the console's dedup
diagnostics.

History and timeline (schema version 4): a settle call appends its rows' history with one ``INSERT …
SELECT`` over the settled ids (``json_each``) and one upsert of ``minute_counts`` per destination and X
event; enqueue adds one upsert per destination and X event. Measured on 100-row calls (tmpfs, 2 cores):
``mark_delivered`` 1.1-1.5 ms before, 1.5-1.6 ms after; ``enqueue`` 2.4-3.0 ms before, 2.7-2.9 ms after.

Every wait on storage is bounded by ``[storage] write_timeout_seconds``: the thread lock is taken with a
timeout, ``flock`` is polled (``LOCK_NB``), and SQLite's ``busy_timeout`` is what is left; then
:class:`~xgate.errors.OutboxUnavailable` names the holder (``pid 123 (xgate)`` from ``/proc/locks``), so a
suspended ``xgate import`` costs ingest a 503 with Retry-After, not a request that never ends.

Identity: a new file gets a random outbox id (table ``outbox_meta``), also written beside it in
``<db>.id``. A file that no longer holds that id (truncated to zero, deleted, replaced while xgate was
stopped) raises :class:`~xgate.errors.OutboxReplaced` instead of silently starting empty, unless
``[storage] accept_new_outbox`` (``xgate serve --accept-new-outbox``) says to record the new one
(:func:`~xgate.outbox.common.check_identity`, which PostgreSQL shares). A read-only open
(``create=False``) checks but records nothing.

Schema: ``PRAGMA user_version`` says which version a file holds; opening an older file upgrades it in one
write transaction (an xgate of the previous version still works on the upgraded file), a newer one raises
:class:`~xgate.errors.OutboxSchemaMismatch`. Every ``sqlite3`` and ``OSError`` is raised as
:class:`~xgate.errors.OutboxUnavailable` naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Concatenate, ParamSpec, TypeVar

import orjson

from xgate.config import StorageSettings
from xgate.conversion import MappedConversion
from xgate.errors import OutboxNotFound, OutboxSchemaMismatch, OutboxUnavailable
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

#: what the last settle calls said per destination (Outbox.health)
_HEALTH = """CREATE TABLE destination_health (
    destination     TEXT PRIMARY KEY,
    last_success_at REAL,
    last_error      TEXT,
    last_error_at   REAL
) WITHOUT ROWID"""

#: X's rate limit and one-at-a-time duties, shared by every process on the file (schema version 3)
_SHARED = (
    # X's rate limit per key, shared by every process on this file (Outbox.take_requests / pause);
    # tokens NULL: a full bucket
    """CREATE TABLE request_budgets (
        key          TEXT PRIMARY KEY,
        tokens       REAL,
        stamp        REAL NOT NULL,
        paused_until REAL NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    # who does what one process at a time (Outbox.claim_duty)
    """CREATE TABLE duties (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
)

#: the schema of a new file (version _SCHEMA_VERSION); older files are upgraded by _UPGRADES
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE conversions (
        id               INTEGER PRIMARY KEY,
        destination      TEXT    NOT NULL,
        pixel_id         TEXT    NOT NULL,
        event_id         TEXT    NOT NULL,
        conversion_id    TEXT    NOT NULL,
        event_name       TEXT    NOT NULL,
        state            TEXT    NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        created_at       REAL    NOT NULL,
        updated_at       REAL    NOT NULL,
        next_attempt_at  REAL    NOT NULL,
        lease_token      TEXT,
        lease_expires_at REAL,
        last_error       TEXT,
        debug_id         TEXT,
        match_signals    TEXT    NOT NULL,
        body             BLOB    NOT NULL,
        leased_by        TEXT,
        source           TEXT    NOT NULL DEFAULT ''
    )""",
    # partial indexes: a row sits in the ones of its state, so a state change touches few small indexes
    "CREATE INDEX conversions_queued_due ON conversions (next_attempt_at) WHERE state = 'queued'",
    "CREATE INDEX conversions_lease_expiry ON conversions (lease_expires_at) WHERE state = 'leased'",
    "CREATE INDEX conversions_delivered_at ON conversions (updated_at) WHERE state = 'delivered'",
    "CREATE INDEX conversions_dead ON conversions (id) WHERE state = 'dead'",
    # the oldest undelivered conversion (stats) without a scan of the queue. Queued rows only: rows stored
    # already leased (the handoff, most rows in `serve`) never enter it, and leased rows are few (those in
    # flight): stats walks their index instead.
    "CREATE INDEX conversions_queued_created ON conversions (created_at) WHERE state = 'queued'",
    # rows per destination and state, kept by each write in its own transaction: status and metrics read
    # them at once however many rows the outbox holds (an index to count them cost every write, and every
    # scrape a scan of the whole table)
    """CREATE TABLE state_counts (
        destination TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (destination, state)
    ) WITHOUT ROWID""",
    """CREATE TABLE dedup_keys (
        key        TEXT PRIMARY KEY,
        row_id     INTEGER NOT NULL,
        expires_at REAL    NOT NULL
    ) WITHOUT ROWID""",
    _HEALTH,
    *_SHARED,
)
#: version 4: the history of each row's settles, the per-minute counts, and rows found by conversion id
_HISTORY = (
    # dedup diagnostics: every row of one conversion id (other destinations, other sources)
    "CREATE INDEX conversions_conversion_id ON conversions (conversion_id)",
    # one entry per settle call per row (Outbox.history), append-only, deleted with its row
    """CREATE TABLE conversion_attempts (
        row_id   INTEGER NOT NULL,
        at       REAL    NOT NULL,
        outcome  TEXT    NOT NULL,
        status   INTEGER,
        error    TEXT,
        debug_id TEXT
    )""",
    "CREATE INDEX conversion_attempts_row ON conversion_attempts (row_id)",
    # per minute, destination and X event: stored (with each signal) and settled by outcome, kept by each
    # write in its own transaction (Outbox.timeline); at most TIMELINE_DAYS of minutes
    """CREATE TABLE minute_counts (
        minute      INTEGER NOT NULL,
        destination TEXT    NOT NULL,
        event_id    TEXT    NOT NULL,
        stored      INTEGER NOT NULL DEFAULT 0,
        twclid      INTEGER NOT NULL DEFAULT 0,
        email       INTEGER NOT NULL DEFAULT 0,
        phone       INTEGER NOT NULL DEFAULT 0,
        ip_ua       INTEGER NOT NULL DEFAULT 0,
        delivered   INTEGER NOT NULL DEFAULT 0,
        retried     INTEGER NOT NULL DEFAULT 0,
        dead        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (minute, destination, event_id)
    ) WITHOUT ROWID""",
)
#: version 5: facts about the file itself: outbox_id, the identity recorded beside it in <db>.id
_META = "CREATE TABLE outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
#: version 6: who sent a stored conversion again (Outbox.duplicates), upserted by enqueue on the duplicate
#: path only; deleted with its row, and by purge once its last copy is older than the dedup window
_DUPLICATES = (
    """CREATE TABLE duplicate_senders (
        row_id   INTEGER NOT NULL,
        source   TEXT    NOT NULL,
        public   INTEGER NOT NULL,
        first_at REAL    NOT NULL,
        last_at  REAL    NOT NULL,
        n        INTEGER NOT NULL,
        PRIMARY KEY (row_id, source, public)
    ) WITHOUT ROWID""",
    "CREATE INDEX duplicate_senders_last_at ON duplicate_senders (last_at)",
)
#: version 7: X's latest rate-limit reading per destination (DestinationHealth.capacity), written by the
#: settle call of the answer that carried it, read by the console of every process
_CAPACITY = """CREATE TABLE destination_capacity (
    destination   TEXT PRIMARY KEY,
    request_limit INTEGER,
    remaining     INTEGER,
    reset_at      REAL,
    scope         TEXT NOT NULL,
    seen_at       REAL NOT NULL
) WITHOUT ROWID"""
#: version 8: the console's signed-out sessions (Outbox.revoke_session), until they would have expired
_SIGNED_OUT = "CREATE TABLE revoked_sessions (id TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID"
#: version 9: rejected events for the console of every process, the newest REJECTIONS_KEPT per source
_REJECTIONS = (
    """CREATE TABLE rejections (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,
        source      TEXT NOT NULL,
        event_name  TEXT NOT NULL,
        destination TEXT,
        error       TEXT NOT NULL
    )""",
    "CREATE INDEX rejections_source ON rejections (source, id)",
)
#: version 10: per minute, the events each source received by outcome and X's answers per destination, as
#: every node adds what it counted (Outbox.add_counts); at most TIMELINE_DAYS of minutes
_OUTCOMES = """CREATE TABLE outcome_counts (
    minute  INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (minute, kind, name, outcome)
) WITHOUT ROWID"""
_SCHEMA += (*_HISTORY, _META, *_DUPLICATES, _CAPACITY, _SIGNED_OUT, *_REJECTIONS, _OUTCOMES)

#: PRAGMA user_version: 1 = state_counts kept (version 0 counted with an index); 2 = leased_by, health;
#: 3 = request_budgets, duties (shared by the processes on the file); 4 = source, attempt history,
#: minute counts; 5 = outbox_meta (the file's identity); 6 = duplicate_senders; 7 = destination_capacity;
#: 8 = revoked_sessions; 9 = rejections; 10 = outcome_counts
_SCHEMA_VERSION = 10

#: version -> the statements that bring a file of that version to the next one
_UPGRADES: dict[int, tuple[str, ...]] = {
    0: (
        "DROP INDEX IF EXISTS conversions_due",
        "DROP INDEX IF EXISTS conversions_lease",
        "DROP INDEX IF EXISTS conversions_updated",
        "DROP INDEX IF EXISTS conversions_state_dest",
        "DROP INDEX IF EXISTS conversions_dest_state",
        "CREATE INDEX IF NOT EXISTS conversions_queued_due ON conversions (next_attempt_at)"
        " WHERE state = 'queued'",
        "CREATE INDEX IF NOT EXISTS conversions_lease_expiry ON conversions (lease_expires_at)"
        " WHERE state = 'leased'",
        "CREATE INDEX IF NOT EXISTS conversions_delivered_at ON conversions (updated_at)"
        " WHERE state = 'delivered'",
        "CREATE INDEX IF NOT EXISTS conversions_dead ON conversions (id) WHERE state = 'dead'",
        "CREATE TABLE IF NOT EXISTS state_counts (destination TEXT NOT NULL, state TEXT NOT NULL,"
        " n INTEGER NOT NULL, PRIMARY KEY (destination, state)) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS dedup_keys (key TEXT PRIMARY KEY, row_id INTEGER NOT NULL,"
        " expires_at REAL NOT NULL) WITHOUT ROWID",
        "DELETE FROM state_counts",
        "INSERT INTO state_counts (destination, state, n)"
        " SELECT destination, state, count(*) FROM conversions GROUP BY destination, state",
    ),
    1: (
        "ALTER TABLE conversions ADD COLUMN leased_by TEXT",
        "CREATE INDEX conversions_queued_created ON conversions (created_at) WHERE state = 'queued'",
        _HEALTH,
    ),
    2: _SHARED,
    3: ("ALTER TABLE conversions ADD COLUMN source TEXT NOT NULL DEFAULT ''", *_HISTORY),
    4: (_META,),
    5: _DUPLICATES,
    6: (_CAPACITY,),
    7: (_SIGNED_OUT,),
    8: _REJECTIONS,
    9: (_OUTCOMES,),
}

#: an upsert adding to the counted columns of minute_counts (MINUTE_COLUMNS, in order)
_ADD_MINUTES = (
    f"INSERT INTO minute_counts (minute, destination, event_id, {', '.join(MINUTE_COLUMNS)})"
    f" VALUES (?, ?, ?, {', '.join('?' * len(MINUTE_COLUMNS))})"
    " ON CONFLICT (minute, destination, event_id) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in MINUTE_COLUMNS)
)
_T = TypeVar("_T")
_CHUNK = 500  # ids per IN (...) clause, well under SQLite's variable limit


def _chunks(ids: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _count(db: sqlite3.Connection, changes: dict[tuple[str, str], int]) -> None:
    """Add ``changes`` ((destination, state) -> rows) to state_counts, in the caller's transaction."""
    db.executemany(
        "INSERT INTO state_counts (destination, state, n) VALUES (?, ?, ?)"
        " ON CONFLICT (destination, state) DO UPDATE SET n = n + excluded.n",
        [(d, state, n) for (d, state), n in changes.items() if n],
    )


def _moved(destinations: Iterable[str], source: str, target: str) -> dict[tuple[str, str], int]:
    """The state_counts changes of rows (their destinations) that went from ``source`` to ``target``."""
    changes: dict[tuple[str, str], int] = {}
    for d in destinations:
        changes[(d, source)] = changes.get((d, source), 0) - 1
        changes[(d, target)] = changes.get((d, target), 0) + 1
    return changes


def _lock_holder(lock_file: BinaryIO) -> str:
    """Who holds ``flock`` on ``lock_file``: ``pid 123 (xgate)`` from Linux's ``/proc/locks``, else a
    vaguer phrase (the command name only: a command line may hold a secret)."""
    st = os.fstat(lock_file.fileno())
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()  # 1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
                    pid = int(fields[4])
                    try:
                        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
                            return f"pid {pid} ({comm.read().strip()})"
                    except OSError:
                        return f"pid {pid}"
    except OSError:
        pass
    return "another process"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(
    method: Callable[Concatenate[SQLiteOutbox, _P], _R],
) -> Callable[Concatenate[SQLiteOutbox, _P], _R]:
    """Raise every ``sqlite3`` and ``OSError`` of ``method`` as OutboxUnavailable naming the file."""

    @functools.wraps(method)
    def guarded(self: SQLiteOutbox, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as e:
            raise OutboxUnavailable(f"sqlite outbox {self.path}: {e}") from e

    return guarded


class SQLiteOutbox(OutboxEngine):
    """:class:`~xgate.outbox.base.Outbox` on one SQLite file (see the module docstring).

    ``create=False``: raise OutboxNotFound when the file does not exist or holds no outbox (read-only
    commands). ``ping_timeout``: the bound of :meth:`ping`, seconds."""

    #: one write lock per file: a second writer thread would only queue on it
    writers = 1

    def __init__(
        self,
        path: str | Path,
        settings: StorageSettings | None = None,
        *,
        node_id: str | None = None,
        create: bool = True,
        ping_timeout: float = 1.0,
    ) -> None:
        super().__init__()
        self.path = Path(path).absolute()
        self.node_id = node_id or default_node_id(f"sqlite:///{self.path}")
        settings = settings or StorageSettings()
        self._dedup_window = settings.dedup_window_days * 86400.0
        self._retention = settings.retention_days * 86400.0
        self._ping_timeout = ping_timeout
        self._write_timeout = settings.write_timeout_seconds
        self._min_free_bytes = settings.min_free_mb * 1024 * 1024
        self.id_path = self.path.with_name(self.path.name + ".id")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        if not create and not self.path.is_file():
            raise OutboxNotFound(f"no outbox at {self.path} (sqlite): check [storage] url")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # writers of every process queue here (the kernel hands it over at once, frees it on a crash)
            self._lock_file: BinaryIO = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
        except OSError as e:
            raise OutboxUnavailable(f"sqlite outbox {self.path}: {e}") from e
        try:
            self._open_schema(create)
            self._check_identity(settings.accept_new_outbox, write=create)
        except BaseException:
            self.close()
            raise

    @_guarded
    def _open_schema(self, create: bool) -> None:
        """Create the schema of a new file, or bring an older file's up to date (one write transaction)."""
        if self._version() == _SCHEMA_VERSION:
            return
        with self._write() as db:  # another process may be doing the same: look again under the lock
            version = self._version()
            if version == _SCHEMA_VERSION:
                return
            if version > _SCHEMA_VERSION:
                raise OutboxSchemaMismatch(
                    f"sqlite outbox {self.path} has schema version {version}, newer than this xgate's"
                    f" ({_SCHEMA_VERSION}): run the xgate version that wrote it, or a newer one"
                )
            exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'conversions'").fetchone()
            if not exists:
                if not create:
                    raise OutboxNotFound(f"no outbox in {self.path} (sqlite): check [storage] url")
                for statement in _SCHEMA:
                    db.execute(statement)
            else:
                for v in range(version, _SCHEMA_VERSION):
                    for statement in _UPGRADES[v]:
                        db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO outbox_meta (key, value) VALUES ('outbox_id', ?)", (uuid.uuid4().hex,)
            )
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @_guarded
    def _check_identity(self, accept_new: bool, write: bool) -> None:
        """Compare the file's outbox id with the one recorded in ``<db>.id``
        (:func:`~xgate.outbox.common.check_identity`); ``write=False``: a read-only open, no record
        written."""
        row = self._db().execute("SELECT value FROM outbox_meta WHERE key = 'outbox_id'").fetchone()
        check_identity(
            row[0],
            self.id_path,
            outbox=f"sqlite outbox {self.path}",
            kind="file",
            happened="truncated, deleted or replaced",
            accept_new=accept_new,
            write=write,
        )

    def _version(self) -> int:
        version: int = self._db().execute("PRAGMA user_version").fetchone()[0]
        return version

    # -- connections -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise OutboxUnavailable(f"sqlite outbox {self.path}: closed")
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._write_timeout, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={int(self._write_timeout * 1000)}")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _take_write_lock(self, db: sqlite3.Connection, timeout: float) -> None:
        """Take the thread lock, ``flock`` and SQLite's write lock (``BEGIN IMMEDIATE``), all within
        ``timeout`` seconds; else release what was taken and raise OutboxUnavailable naming the holder."""
        deadline = time.monotonic() + timeout
        if not self._write_lock.acquire(timeout=timeout):
            raise OutboxUnavailable(
                f"sqlite outbox {self.path}: the write lock is held by another thread of this process"
                f" for over {timeout:g} s"
            )
        try:
            pause = 0.0005
            while True:  # polled: a blocking flock cannot be given up after a timeout
                try:
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise OutboxUnavailable(
                            f"sqlite outbox {self.path}: the write lock ({self.path.name}.lock) is held by"
                            f" {_lock_holder(self._lock_file)} for over {timeout:g} s"
                        ) from None
                    time.sleep(min(pause, left))
                    pause = min(pause * 2, 0.01)
            try:
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                db.execute(f"PRAGMA busy_timeout={left_ms}")  # SQLite's lock: a process not using flock
                try:
                    db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) and "busy" not in str(e):
                        raise
                    raise OutboxUnavailable(
                        f"sqlite outbox {self.path}: SQLite's write lock is held by a process that does not"
                        f" use {self.path.name}.lock (an sqlite3 shell?) for over {timeout:g} s"
                    ) from e
                finally:
                    db.execute(f"PRAGMA busy_timeout={int(self._write_timeout * 1000)}")
            except BaseException:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                raise
        except BaseException:
            self._write_lock.release()
            raise

    def _release_write_lock(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._write_lock.release()

    class _Tx:
        """A write transaction: this process's threads queue on a lock, processes on ``flock``, and only
        then is SQLite's write lock taken — so no writer ever sleeps in SQLite's busy handler. Each wait
        is bounded by ``[storage] write_timeout_seconds``."""

        def __init__(self, outbox: SQLiteOutbox, db: sqlite3.Connection) -> None:
            self.outbox = outbox
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.outbox._take_write_lock(self.db, self.outbox._write_timeout)
            return self.db

        def __exit__(self, exc_type: object, *_: object) -> None:
            try:
                self.db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.outbox._release_write_lock()

    def _write(self) -> SQLiteOutbox._Tx:
        return SQLiteOutbox._Tx(self, self._db())

    # -- ingest ------------------------------------------------------------------------------------
    @_guarded
    def _store(
        self, conversions: Sequence[MappedConversion], now: float, lease: HandoffLease | None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        expires = now + self._dedup_window
        keys = [f"{c.pixel_id}\x1f{c.event_id}\x1f{c.conversion_id}" for c in conversions]
        # a public conversion is also a duplicate of an earlier public one, found under its own key
        public_keys = {i: PUBLIC + keys[i] for i, c in enumerate(conversions) if c.public}
        to_lease = lease.limit if lease else 0
        token = lease.token if lease else ""
        lease_expires_at = now + lease.seconds if lease else None
        node = self.node_id
        with self._write() as db:
            known: dict[str, int] = {}
            for chunk in _chunks([*keys, *public_keys.values()]):
                known.update(
                    db.execute(
                        f"SELECT key, row_id FROM dedup_keys WHERE key IN ({_marks(len(chunk))})"
                        " AND expires_at > ?",
                        (*chunk, now),
                    ).fetchall()
                )
            # the write lock is held: ids after the current maximum are ours to assign
            next_id = int(db.execute("SELECT coalesce(max(id), 0) FROM conversions").fetchone()[0]) + 1
            out: list[EnqueueOutcome] = []
            counts: dict[tuple[str, str], int] = {}
            rows: list[tuple[object, ...]] = []
            new_keys: list[tuple[str, int, float]] = []
            handed: list[LeasedRow] = []
            minutes: dict[tuple[str, str], list[int]] = {}  # (destination, event) -> minute_counts
            copies: dict[tuple[int, str, bool], int] = {}  # duplicates: (kept row, source, public) -> n
            for i, (c, key) in enumerate(zip(conversions, keys, strict=True)):
                public_key = public_keys.get(i)
                row_id = known.get(key)
                if row_id is None and public_key is not None:
                    row_id = known.get(public_key)
                if row_id is not None:
                    out.append(EnqueueOutcome("duplicate", row_id, c.conversion_id, c.destination))
                    copy = (row_id, c.source, c.public)
                    copies[copy] = copies.get(copy, 0) + 1
                    continue
                if public_key is not None:  # stored under its own key: a trusted copy stays welcome
                    key = public_key
                row_id = known[key] = next_id
                next_id += 1
                body = orjson.dumps(c.body)
                if len(handed) < to_lease:
                    state, held_by, held_until, holder = "leased", token, lease_expires_at, node
                    handed.append(
                        LeasedRow(
                            row_id,
                            c.destination,
                            c.pixel_id,
                            c.event_id,
                            c.conversion_id,
                            body,
                            0,
                            token,
                            now,
                        )
                    )
                else:
                    state, held_by, held_until, holder = "queued", None, None, None
                rows.append(
                    (
                        row_id,
                        c.destination,
                        c.pixel_id,
                        c.event_id,
                        c.conversion_id,
                        c.event_name,
                        state,
                        now,
                        now,
                        now,
                        held_by,
                        held_until,
                        holder,
                        ",".join(sorted(c.match_signals)),
                        body,
                        c.source,
                    )
                )
                new_keys.append((key, row_id, expires))
                counts[(c.destination, state)] = counts.get((c.destination, state), 0) + 1
                tally = minutes.setdefault((c.destination, c.event_id), [0] * len(MINUTE_COLUMNS))
                tally[0] += 1
                for i, signal in enumerate(SIGNAL_COLUMNS, 1):
                    tally[i] += signal in c.match_signals
                out.append(EnqueueOutcome("queued", row_id, c.conversion_id, c.destination))
            db.executemany(
                "INSERT INTO conversions (id, destination, pixel_id, event_id, conversion_id, event_name,"
                " state, created_at, updated_at, next_attempt_at, lease_token, lease_expires_at, leased_by,"
                " match_signals, body, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT OR REPLACE INTO dedup_keys (key, row_id, expires_at) VALUES (?, ?, ?)", new_keys
            )
            _count(db, counts)
            minute = minute_of(now)
            db.executemany(_ADD_MINUTES, [(minute, d, e, *tally) for (d, e), tally in minutes.items()])
            if copies:  # the duplicate path only; a copy of a row gone (discarded, purged) is not kept
                db.executemany(
                    "INSERT INTO duplicate_senders (row_id, source, public, first_at, last_at, n)"
                    " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM conversions WHERE id = ?)"
                    " ON CONFLICT (row_id, source, public) DO UPDATE SET n = n + excluded.n,"
                    " last_at = max(last_at, excluded.last_at)",
                    [(r, src, int(pub), now, now, n, r) for (r, src, pub), n in copies.items()],
                )
        self._woke_if(len(rows) - len(handed))
        return out, handed

    # -- delivery ----------------------------------------------------------------------------------
    @_guarded
    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        now = time.time() if now is None else now
        token = uuid.uuid4().hex
        returning = f" RETURNING {LEASED_COLUMNS}"
        holds = (
            "UPDATE conversions SET state = 'leased', lease_token = ?, lease_expires_at = ?, leased_by = ?,"
            " updated_at = ?"
        )
        holding = (token, now + lease_seconds, self.node_id, now)
        with self._write() as db:
            rows = db.execute(
                f"{holds} WHERE id IN (SELECT id FROM conversions WHERE state = 'queued'"
                f" AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?){returning}",
                (*holding, now, limit),
            ).fetchall()
            _count(db, _moved((r[1] for r in rows), "queued", "leased"))
            if len(rows) < limit:  # leases of a process that died: still leased, now ours
                rows += db.execute(
                    f"{holds} WHERE id IN (SELECT id FROM conversions WHERE state = 'leased'"
                    f" AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?){returning}",
                    (*holding, now, limit - len(rows)),
                ).fetchall()
        return [leased_row(r, token) for r in sorted(rows)]

    @_guarded
    def extend(
        self, row_ids: Sequence[int], lease_token: str, lease_seconds: float, *, now: float | None = None
    ) -> int:
        now = time.time() if now is None else now
        held = 0
        with self._write() as db:
            for chunk in _chunks(row_ids):
                held += db.execute(
                    f"UPDATE conversions SET lease_expires_at = ? WHERE id IN ({_marks(len(chunk))})"
                    " AND state = 'leased' AND lease_token = ?",
                    (now + lease_seconds, *chunk, lease_token),
                ).rowcount
        return held

    @_guarded
    def reclaim(self, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._write() as db:
            back = db.execute(
                "UPDATE conversions SET state = 'queued', lease_token = NULL, lease_expires_at = NULL,"
                " leased_by = NULL, next_attempt_at = min(next_attempt_at, ?), updated_at = ?"
                " WHERE state = 'leased' AND leased_by = ? RETURNING destination",
                (now, now, self.node_id),
            ).fetchall()
            _count(db, _moved((r[0] for r in back), "leased", "queued"))
        return self._woke_if(len(back))

    @_guarded
    def _settle(self, row_ids: Sequence[int], lease_token: str, settlement: Settlement) -> int:
        """``settlement`` in one write transaction: an ``UPDATE … RETURNING`` per 500 ids; for the rows
        settled, one upsert of destination_health (and of destination_capacity) per destination, the
        history appended by one ``INSERT … SELECT`` over their ids (``json_each``), and one upsert of
        minute_counts per destination and X event. Wakes no one: :meth:`release` does."""
        s = settlement
        columns = ([("attempts", "attempts + ?")] if s.attempts else []) + [(c, "?") for c, _ in s.sets]
        assignments = ", ".join(f"{column} = {value}" for column, value in columns)
        params = ((s.attempts,) if s.attempts else ()) + tuple(v for _, v in s.sets)
        settled: list[tuple[int, str, str]] = []
        with self._write() as db:
            for chunk in _chunks(row_ids):
                settled += db.execute(
                    f"UPDATE conversions SET state = '{s.state}', {assignments}, lease_token = NULL,"
                    f" lease_expires_at = NULL, leased_by = NULL WHERE id IN ({_marks(len(chunk))})"
                    " AND state = 'leased' AND lease_token = ? RETURNING id, destination, event_id",
                    (*params, *chunk, lease_token),
                ).fetchall()
            _count(db, _moved((r[1] for r in settled), "leased", s.state))
            if not settled:
                return 0
            destinations = {r[1] for r in settled}
            if s.success:
                db.executemany(_SUCCESS, [(d, s.now) for d in destinations])
            if s.failure is not None:
                db.executemany(_FAILURE, [(d, s.failure, s.now) for d in destinations])
            if s.capacity is not None:
                db.executemany(_READING, [(d, *s.capacity) for d in destinations])
            if s.attempt is not None:
                db.execute(
                    "INSERT INTO conversion_attempts (row_id, at, outcome, status, error, debug_id)"
                    " SELECT value, ?, ?, ?, ?, ? FROM json_each(?)",
                    (*s.attempt, orjson.dumps([r[0] for r in settled])),
                )
                column = OUTCOME_COLUMN.get(s.attempt.outcome)
                if column is not None:
                    per_event: dict[tuple[str, str], int] = {}
                    for _, d, e in settled:
                        per_event[(d, e)] = per_event.get((d, e), 0) + 1
                    slot = MINUTE_COLUMNS.index(column)
                    db.executemany(
                        _ADD_MINUTES,
                        [
                            (
                                minute_of(s.attempt.at),
                                d,
                                e,
                                *(n if i == slot else 0 for i in range(len(MINUTE_COLUMNS))),
                            )
                            for (d, e), n in per_event.items()
                        ],
                    )
        return len(settled)

    # -- shared between processes: X's rate limit, housekeeping ---------------------------------------
    @_guarded
    def take_requests(
        self, key: str, n: int, *, rate: float, burst: float, now: float | None = None
    ) -> RequestGrant:
        check_take(n, rate, burst)
        now = time.time() if now is None else now
        if n == 0:  # the pause only: a read, no write lock
            found = (
                self._db()
                .execute("SELECT paused_until FROM request_budgets WHERE key = ?", (key,))
                .fetchone()
            )
            return paused_only(found[0] if found else None, now)
        with self._write() as db:
            found = db.execute(
                "SELECT tokens, stamp, paused_until FROM request_budgets WHERE key = ?", (key,)
            ).fetchone()
            tokens, stamp, paused = found if found else (None, now, 0.0)
            tokens = burst if tokens is None else min(burst, tokens + max(0.0, now - stamp) * rate)
            granted = 0 if paused > now else min(n, int(tokens))
            db.execute(
                "INSERT INTO request_budgets (key, tokens, stamp, paused_until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, stamp = excluded.stamp",
                (key, tokens - granted, max(stamp, now), paused),
            )
        return request_grant(n, granted, tokens - granted, paused, now, rate)

    @_guarded
    def pause(self, key: str, until: float, *, now: float | None = None) -> float:
        now = time.time() if now is None else now
        with self._write() as db:
            (paused,) = db.execute(
                "INSERT INTO request_budgets (key, tokens, stamp, paused_until) VALUES (?, NULL, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET paused_until = max(paused_until, excluded.paused_until)"
                " RETURNING paused_until",
                (key, now, until),
            ).fetchone()
        return float(paused)

    @_guarded
    def revoke_session(self, session_id: str, expires_at: float, *, now: float | None = None) -> None:
        check_session_id(session_id)
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT INTO revoked_sessions (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE"
                " SET expires_at = max(expires_at, excluded.expires_at)",
                (session_id, expires_at),
            )

    @_guarded
    def session_revoked(self, session_id: str, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        found = (
            self._db()
            .execute("SELECT 1 FROM revoked_sessions WHERE id = ? AND expires_at > ?", (session_id, now))
            .fetchone()
        )
        return found is not None

    @_guarded
    def record_rejections(self, records: Sequence[RejectionRecord]) -> None:
        if not records:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO rejections (at, source, event_name, destination, error) VALUES (?, ?, ?, ?, ?)",
                records,
            )
            db.executemany(
                "DELETE FROM rejections WHERE source = ?1 AND id <= (SELECT id FROM rejections"
                " WHERE source = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                [(source, REJECTIONS_KEPT) for source in {r.source for r in records}],
            )

    @_guarded
    def rejections(self, limit: int) -> list[RejectionRecord]:
        return [
            RejectionRecord(*r)
            for r in self._db().execute(
                "SELECT at, source, event_name, destination, error FROM (SELECT *, row_number() OVER"
                " (PARTITION BY source ORDER BY id DESC) AS n FROM rejections) WHERE n <= ?1"
                " ORDER BY at DESC, id DESC LIMIT ?1",
                (limit,),
            )
        ]

    @_guarded
    def add_counts(self, counts: Sequence[OutcomeCount]) -> None:
        rows = summed_counts(counts)
        if not rows:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO outcome_counts (minute, kind, name, outcome, n) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (minute, kind, name, outcome) DO UPDATE SET n = n + excluded.n",
                rows,
            )

    @_guarded
    def counts(self, since: float) -> dict[tuple[CountKind, str, str], int]:
        return {
            (kind, name, outcome): n
            for kind, name, outcome, n in self._db().execute(
                "SELECT kind, name, outcome, sum(n) FROM outcome_counts WHERE minute >= ?"
                " GROUP BY kind, name, outcome",
                (minute_of(since),),
            )
            if n
        }

    @_guarded
    def claim_duty(self, duty: str, seconds: float, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._write() as db:
            held = db.execute(
                "INSERT INTO duties (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE holder = excluded.holder OR expires_at <= ? RETURNING holder",
                (duty, self.node_id, now + seconds, now),
            ).fetchone()
        return held is not None

    # -- inspection --------------------------------------------------------------------------------
    @_guarded
    def stats(self, *, now: float | None = None) -> OutboxStats:
        now = time.time() if now is None else now
        db = self._db()
        stats = OutboxStats()
        for dest, state, n in db.execute("SELECT destination, state, n FROM state_counts WHERE n != 0"):
            stats.counts[(dest, state)] = n
        stats.delivered_last_minute = db.execute(
            "SELECT count(*) FROM conversions WHERE state = 'delivered' AND updated_at > ?", (now - 60,)
        ).fetchone()[0]
        queued_oldest, queued_due = db.execute(  # two index lookups (one statement: one snapshot)
            "SELECT (SELECT min(created_at) FROM conversions WHERE state = 'queued'),"
            " (SELECT min(next_attempt_at) FROM conversions WHERE state = 'queued')"
        ).fetchone()
        leased_oldest, stats.expired_leases = db.execute(  # a walk of the leased rows' index: those in flight
            "SELECT min(created_at), count(*) FILTER (WHERE lease_expires_at <= ?) FROM conversions"
            " WHERE state = 'leased'",
            (now,),
        ).fetchone()
        ages = [a for a in (queued_oldest, leased_oldest) if a is not None]
        stats.oldest_undelivered_at = min(ages) if ages else None
        stats.next_attempt_at = queued_due
        return stats

    @_guarded
    def health(self) -> dict[str, DestinationHealth]:
        return destination_health(
            self._db().execute(
                "SELECT destination, h.last_success_at, h.last_error, h.last_error_at, c.request_limit,"
                " c.remaining, c.reset_at, c.scope, c.seen_at"
                " FROM destination_health AS h LEFT JOIN destination_capacity AS c USING (destination)"
            )
        )

    @_guarded
    def _rows(
        self, equal: dict[str, str], error: str | None, before: int | None, limit: int
    ) -> list[OutboxRow]:
        where = [f"{column} = ?" for column in equal]
        params: list[object] = [*equal.values()]
        if error is not None:
            where.append("instr(lower(last_error), lower(?)) > 0")
            params.append(error)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = f"SELECT {ROW_COLUMNS} FROM conversions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [outbox_row(r) for r in self._db().execute(sql, (*params, limit))]

    @_guarded
    def history(self, row_id: int) -> list[AttemptRecord]:
        return [
            AttemptRecord(*r)
            for r in self._db().execute(
                "SELECT at, outcome, status, error, debug_id FROM conversion_attempts WHERE row_id = ?"
                " ORDER BY at, rowid",
                (row_id,),
            )
        ]

    @_guarded
    def duplicates(self, row_id: int) -> list[DuplicateSender]:
        return [
            DuplicateSender(source, bool(public), first_at, last_at, n)
            for source, public, first_at, last_at, n in self._db().execute(
                "SELECT source, public, first_at, last_at, n FROM duplicate_senders WHERE row_id = ?"
                " ORDER BY first_at, source, public",
                (row_id,),
            )
        ]

    @_guarded
    def timeline(self, since: float, bucket_seconds: int = 60) -> list[TimelineBucket]:
        size = check_bucket(bucket_seconds)
        sums = ", ".join(f"sum({c})" for c in MINUTE_COLUMNS)
        return [
            timeline_bucket(start, d, e, counts)
            for start, d, e, *counts in self._db().execute(
                f"SELECT (minute / ?) * ? AS start, destination, event_id, {sums} FROM minute_counts"
                " WHERE minute >= ? GROUP BY start, destination, event_id"
                " ORDER BY start, destination, event_id",
                (size, size, minute_of(since)),
            )
        ]

    @_guarded
    def row(self, row_id: int) -> OutboxRow | None:
        r = self._db().execute(f"SELECT {ROW_COLUMNS} FROM conversions WHERE id = ?", (row_id,)).fetchone()
        return outbox_row(r) if r else None

    # -- maintenance -------------------------------------------------------------------------------
    @staticmethod
    def _dead_in(
        db: sqlite3.Connection, action: str, params: tuple[object, ...], row_ids: Sequence[int] | None
    ) -> list[str]:
        """Run ``action`` (an UPDATE or DELETE of conversions) on dead rows (these, or all) in the
        caller's transaction; the destination of each row it touched."""
        if row_ids is None:
            return [r[0] for r in db.execute(f"{action} WHERE state = 'dead' RETURNING destination", params)]
        touched: list[str] = []
        for chunk in _chunks(row_ids):
            touched += [
                r[0]
                for r in db.execute(
                    f"{action} WHERE state = 'dead' AND id IN ({_marks(len(chunk))}) RETURNING destination",
                    (*params, *chunk),
                )
            ]
        return touched

    @_guarded
    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        now = time.time()
        with self._write() as db:
            replayed = self._dead_in(
                db,
                "UPDATE conversions SET state = 'queued', attempts = 0, next_attempt_at = ?, updated_at = ?",
                (now, now),
                row_ids,
            )
            _count(db, _moved(replayed, "dead", "queued"))
        return self._woke_if(len(replayed))

    @_guarded
    def discard(self, row_ids: Sequence[int] | None = None) -> int:
        with self._write() as db:
            for table in ("conversion_attempts", "duplicate_senders"):  # what goes with the row
                with_row = f"DELETE FROM {table} WHERE row_id IN (SELECT id FROM conversions"
                with_row += " WHERE state = 'dead'"
                if row_ids is None:
                    db.execute(with_row + ")")
                for chunk in _chunks(row_ids or ()):
                    db.execute(f"{with_row} AND id IN ({_marks(len(chunk))}))", tuple(chunk))
            gone = self._dead_in(db, "DELETE FROM conversions", (), row_ids)  # dedup keys stay
            changes: dict[tuple[str, str], int] = {}
            for d in gone:
                changes[(d, "dead")] = changes.get((d, "dead"), 0) - 1
            _count(db, changes)
        return len(gone)

    @_guarded
    def purge(self, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        purged = 0
        with self._write() as db:
            destinations = db.execute(
                "SELECT destination FROM state_counts WHERE state = 'delivered' AND n > 0"
            ).fetchall()
            for (destination,) in destinations:  # one destination at a time: its count is then exact
                for table in ("conversion_attempts", "duplicate_senders"):  # what goes with the row
                    db.execute(
                        f"DELETE FROM {table} WHERE row_id IN (SELECT id FROM conversions"
                        " WHERE state = 'delivered' AND updated_at < ? AND destination = ?)",
                        (now - self._retention, destination),
                    )
                n = db.execute(
                    "DELETE FROM conversions WHERE state = 'delivered' AND updated_at < ?"
                    " AND destination = ?",
                    (now - self._retention, destination),
                ).rowcount
                _count(db, {(destination, "delivered"): -n})
                purged += n
            db.execute("DELETE FROM dedup_keys WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM duplicate_senders WHERE last_at <= ?", (now - self._dedup_window,))
            db.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?", (now,))
            for table in ("minute_counts", "outcome_counts"):
                db.execute(f"DELETE FROM {table} WHERE minute < ?", (minute_of(now - TIMELINE_DAYS * 86400),))
        return purged

    # -- health ------------------------------------------------------------------------------------
    @_guarded
    def ping(self) -> None:
        """What ingest needs, within ``ping_timeout`` seconds: the write lock (thread lock, ``flock``,
        SQLite's own) taken and released, and ``[storage] min_free_mb`` free on the file's file system;
        else raise OutboxUnavailable naming the holder or the space left."""
        db = self._db()
        self._take_write_lock(db, self._ping_timeout)
        try:
            db.execute("ROLLBACK")
        finally:
            self._release_write_lock()
        try:
            fs = os.statvfs(self.path.parent)
        except OSError as e:
            raise OutboxUnavailable(f"sqlite outbox {self.path}: {e}") from e
        free = fs.f_bavail * fs.f_frsize
        if free < self._min_free_bytes:
            raise OutboxUnavailable(
                f"sqlite outbox {self.path}: the disk is full ({free / 2**20:.1f} MiB free, fewer than"
                f" [storage] min_free_mb = {self._min_free_bytes // 2**20}): writes fail until space is freed"
            )

    def close(self) -> None:
        self._stop_waiters()
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed from another thread already
                    db.close()
            self._all.clear()
        lock_file = getattr(self, "_lock_file", None)
        if lock_file is not None:
            lock_file.close()


#: destination_health upserts (destination, then the values): a success, a failure (text and time)
_SUCCESS = (
    "INSERT INTO destination_health (destination, last_success_at) VALUES (?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET"
    " last_success_at = max(coalesce(last_success_at, excluded.last_success_at), excluded.last_success_at)"
)
_FAILURE = (
    "INSERT INTO destination_health (destination, last_error, last_error_at) VALUES (?, ?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET last_error = excluded.last_error,"
    " last_error_at = excluded.last_error_at"
    " WHERE last_error_at IS NULL OR excluded.last_error_at >= last_error_at"
)
#: destination_capacity upsert (destination, then a CapacityReading): the latest reading wins
_READING = (
    "INSERT INTO destination_capacity (destination, request_limit, remaining, reset_at, scope, seen_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (destination) DO UPDATE"
    " SET request_limit = excluded.request_limit, remaining = excluded.remaining,"
    " reset_at = excluded.reset_at, scope = excluded.scope, seen_at = excluded.seen_at"
    " WHERE excluded.seen_at >= seen_at"
)
