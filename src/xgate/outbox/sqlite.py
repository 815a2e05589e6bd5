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

Deduplication: a key table holds (pixel_id, event_id, conversion_id) until the dedup window ends, so
delivered rows can be purged after the retention period while their keys still block a second send.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from xgate.config import StorageSettings
from xgate.conversion import MappedConversion
from xgate.outbox.base import EnqueueOutcome, HandoffLease, LeasedRow, OutboxRow, OutboxStats, RowState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversions (
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
    body             BLOB    NOT NULL
);
-- partial indexes: a row sits in the one of its state, so a state change touches two small indexes
DROP INDEX IF EXISTS conversions_due;
DROP INDEX IF EXISTS conversions_lease;
DROP INDEX IF EXISTS conversions_updated;
CREATE INDEX IF NOT EXISTS conversions_queued_due ON conversions (next_attempt_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS conversions_lease_expiry ON conversions (lease_expires_at) WHERE state = 'leased';
CREATE INDEX IF NOT EXISTS conversions_delivered_at ON conversions (updated_at) WHERE state = 'delivered';
CREATE INDEX IF NOT EXISTS conversions_dead ON conversions (id) WHERE state = 'dead';
DROP INDEX IF EXISTS conversions_state_dest;
-- rows per destination and state, kept by each write in its own transaction: status and metrics read them
-- at once however many rows the outbox holds (an index to count them cost every write, and every scrape
-- a scan of the whole table)
CREATE TABLE IF NOT EXISTS state_counts (
    destination TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (destination, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_keys (
    key        TEXT PRIMARY KEY,
    row_id     INTEGER NOT NULL,
    expires_at REAL    NOT NULL
) WITHOUT ROWID;
"""

#: PRAGMA user_version: 1 = state_counts kept (an outbox of version 0 counted with an index)
_SCHEMA_VERSION = 1

_ROW_COLUMNS = (
    "id, destination, pixel_id, event_id, conversion_id, event_name, state, attempts, created_at, updated_at,"
    " next_attempt_at, last_error, debug_id, match_signals, body"
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


class SQLiteOutbox:
    """:class:`~xgate.outbox.base.Outbox` on one SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, settings: StorageSettings | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        settings = settings or StorageSettings()
        self._dedup_window = settings.dedup_window_days * 86400.0
        self._retention = settings.retention_days * 86400.0
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # writers of every process queue here (the kernel hands it over at once, and frees it on a crash)
        self._lock_file: BinaryIO = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
        self._closed = False
        self._db().executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        if self._db().execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
            return
        with self._write() as db:  # another process may have migrated meanwhile: look again under the lock
            if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
                return
            db.execute("DELETE FROM state_counts")
            db.execute(
                "INSERT INTO state_counts (destination, state, n)"
                " SELECT destination, state, count(*) FROM conversions GROUP BY destination, state"
            )
            db.execute("DROP INDEX IF EXISTS conversions_dest_state")
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    # -- connections -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise RuntimeError("outbox is closed")
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    class _Tx:
        """A write transaction: this process's threads queue on a lock, processes on ``flock``, and only
        then is SQLite's write lock taken — so no writer ever sleeps in SQLite's busy handler."""

        def __init__(self, db: sqlite3.Connection, lock: threading.Lock, lock_file: BinaryIO) -> None:
            self.db = db
            self.lock = lock
            self.lock_file = lock_file

        def __enter__(self) -> sqlite3.Connection:
            self.lock.acquire()
            try:
                fcntl.flock(self.lock_file, fcntl.LOCK_EX)
                try:
                    self.db.execute("BEGIN IMMEDIATE")
                except BaseException:
                    fcntl.flock(self.lock_file, fcntl.LOCK_UN)
                    raise
            except BaseException:
                self.lock.release()
                raise
            return self.db

        def __exit__(self, exc_type: object, *_: object) -> None:
            try:
                self.db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                fcntl.flock(self.lock_file, fcntl.LOCK_UN)
                self.lock.release()

    def _write(self) -> SQLiteOutbox._Tx:
        return SQLiteOutbox._Tx(self._db(), self._write_lock, self._lock_file)

    # -- ingest ------------------------------------------------------------------------------------
    def enqueue(
        self, conversions: Sequence[MappedConversion], *, now: float | None = None
    ) -> list[EnqueueOutcome]:
        return self._store(conversions, time.time() if now is None else now, None)[0]

    def enqueue_leased(
        self, conversions: Sequence[MappedConversion], lease: HandoffLease, *, now: float | None = None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        return self._store(conversions, time.time() if now is None else now, lease)

    def _store(
        self, conversions: Sequence[MappedConversion], now: float, lease: HandoffLease | None
    ) -> tuple[list[EnqueueOutcome], list[LeasedRow]]:
        expires = now + self._dedup_window
        keys = [f"{c.pixel_id}\x1f{c.event_id}\x1f{c.conversion_id}" for c in conversions]
        to_lease = lease.limit if lease else 0
        token = lease.token if lease else ""
        lease_expires_at = now + lease.seconds if lease else None
        with self._write() as db:
            known: dict[str, int] = {}
            for chunk in _chunks(keys):
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
            for c, key in zip(conversions, keys, strict=True):
                row_id = known.get(key)
                if row_id is not None:
                    out.append(EnqueueOutcome("duplicate", row_id, c.conversion_id, c.destination))
                    continue
                row_id = known[key] = next_id
                next_id += 1
                body = orjson.dumps(c.body)
                if len(handed) < to_lease:
                    state, held_by, held_until = "leased", token, lease_expires_at
                    handed.append(
                        LeasedRow(
                            row_id, c.destination, c.pixel_id, c.event_id, c.conversion_id, body, 0, token
                        )
                    )
                else:
                    state, held_by, held_until = "queued", None, None
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
                        ",".join(sorted(c.match_signals)),
                        body,
                    )
                )
                new_keys.append((key, row_id, expires))
                counts[(c.destination, state)] = counts.get((c.destination, state), 0) + 1
                out.append(EnqueueOutcome("queued", row_id, c.conversion_id, c.destination))
            db.executemany(
                "INSERT INTO conversions (id, destination, pixel_id, event_id, conversion_id, event_name,"
                " state, created_at, updated_at, next_attempt_at, lease_token, lease_expires_at,"
                " match_signals, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT OR REPLACE INTO dedup_keys (key, row_id, expires_at) VALUES (?, ?, ?)", new_keys
            )
            _count(db, counts)
        return out, handed

    # -- delivery ----------------------------------------------------------------------------------
    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        now = time.time() if now is None else now
        token = uuid.uuid4().hex
        returning = " RETURNING id, destination, pixel_id, event_id, conversion_id, body, attempts"
        holds = (
            "UPDATE conversions SET state = 'leased', lease_token = ?, lease_expires_at = ?, updated_at = ?"
        )
        with self._write() as db:
            rows = db.execute(
                f"{holds} WHERE id IN (SELECT id FROM conversions WHERE state = 'queued'"
                f" AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?){returning}",
                (token, now + lease_seconds, now, now, limit),
            ).fetchall()
            _count(db, _moved((r[1] for r in rows), "queued", "leased"))
            if len(rows) < limit:  # leases of a process that died: still leased, now ours
                rows += db.execute(
                    f"{holds} WHERE id IN (SELECT id FROM conversions WHERE state = 'leased'"
                    f" AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?){returning}",
                    (token, now + lease_seconds, now, now, limit - len(rows)),
                ).fetchall()
        return [
            LeasedRow(
                id=r[0],
                destination=r[1],
                pixel_id=r[2],
                event_id=r[3],
                conversion_id=r[4],
                body_json=r[5],
                attempts=r[6],
                lease_token=token,
            )
            for r in sorted(rows)
        ]

    def _settle(
        self,
        row_ids: Sequence[int],
        lease_token: str,
        state: RowState,
        assignments: str,
        params: tuple[object, ...],
    ) -> None:
        with self._write() as db:
            for chunk in _chunks(row_ids):
                settled = db.execute(
                    f"UPDATE conversions SET state = '{state}', {assignments}, lease_token = NULL,"
                    f" lease_expires_at = NULL WHERE id IN ({_marks(len(chunk))}) AND state = 'leased'"
                    " AND lease_token = ? RETURNING destination",
                    (*params, *chunk, lease_token),
                ).fetchall()
                _count(db, _moved((r[0] for r in settled), "leased", state))

    def mark_delivered(
        self, row_ids: Sequence[int], lease_token: str, debug_id: str | None, *, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        self._settle(
            row_ids,
            lease_token,
            "delivered",
            "attempts = attempts + 1, debug_id = ?, last_error = NULL, updated_at = ?",
            (debug_id, now),
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
    ) -> None:
        now = time.time() if now is None else now
        self._settle(
            row_ids,
            lease_token,
            "queued",
            "attempts = attempts + ?, next_attempt_at = ?, last_error = ?, updated_at = ?",
            (int(count_attempt), next_attempt_at, error, now),
        )

    def mark_dead(
        self, row_ids: Sequence[int], lease_token: str, error: str, *, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        self._settle(
            row_ids,
            lease_token,
            "dead",
            "attempts = attempts + 1, last_error = ?, updated_at = ?",
            (error, now),
        )

    def release(self, row_ids: Sequence[int], lease_token: str) -> None:
        self._settle(row_ids, lease_token, "queued", "updated_at = ?", (time.time(),))

    # -- inspection --------------------------------------------------------------------------------
    def stats(self, *, now: float | None = None) -> OutboxStats:
        now = time.time() if now is None else now
        db = self._db()
        stats = OutboxStats()
        for dest, state, n in db.execute("SELECT destination, state, n FROM state_counts WHERE n != 0"):
            stats.counts[(dest, state)] = n
        stats.delivered_last_minute = db.execute(
            "SELECT count(*) FROM conversions WHERE state = 'delivered' AND updated_at > ?", (now - 60,)
        ).fetchone()[0]
        stats.oldest_queued_at = db.execute(
            "SELECT min(next_attempt_at) FROM conversions WHERE state = 'queued'"
        ).fetchone()[0]
        stats.expired_leases = db.execute(
            "SELECT count(*) FROM conversions WHERE state = 'leased' AND lease_expires_at <= ?", (now,)
        ).fetchone()[0]
        return stats

    @staticmethod
    def _row(r: Any) -> OutboxRow:
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
        )

    def rows(
        self, *, state: RowState | None = None, destination: str | None = None, limit: int = 50
    ) -> list[OutboxRow]:
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("state = ?")
            params.append(state)
        if destination:
            where.append("destination = ?")
            params.append(destination)
        sql = f"SELECT {_ROW_COLUMNS} FROM conversions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [self._row(r) for r in self._db().execute(sql, (*params, limit))]

    def row(self, row_id: int) -> OutboxRow | None:
        r = self._db().execute(f"SELECT {_ROW_COLUMNS} FROM conversions WHERE id = ?", (row_id,)).fetchone()
        return self._row(r) if r else None

    def replay(self, row_ids: Sequence[int] | None = None) -> int:
        now = time.time()
        sets = "state = 'queued', attempts = 0, next_attempt_at = ?, updated_at = ?"
        with self._write() as db:
            if row_ids is None:
                replayed = db.execute(
                    f"UPDATE conversions SET {sets} WHERE state = 'dead' RETURNING destination", (now, now)
                ).fetchall()
            else:
                replayed = []
                for chunk in _chunks(row_ids):
                    replayed += db.execute(
                        f"UPDATE conversions SET {sets} WHERE state = 'dead' AND id IN ({_marks(len(chunk))})"
                        " RETURNING destination",
                        (now, now, *chunk),
                    ).fetchall()
            _count(db, _moved((r[0] for r in replayed), "dead", "queued"))
            return len(replayed)

    def purge(self, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        purged = 0
        with self._write() as db:
            destinations = db.execute(
                "SELECT destination FROM state_counts WHERE state = 'delivered' AND n > 0"
            ).fetchall()
            for (destination,) in destinations:  # one destination at a time: its count is then exact
                n = db.execute(
                    "DELETE FROM conversions WHERE state = 'delivered' AND updated_at < ?"
                    " AND destination = ?",
                    (now - self._retention, destination),
                ).rowcount
                _count(db, {(destination, "delivered"): -n})
                purged += n
            db.execute("DELETE FROM dedup_keys WHERE expires_at <= ?", (now,))
        return purged

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed from another thread already
                    db.close()
            self._all.clear()
        self._lock_file.close()
