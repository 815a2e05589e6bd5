"""What only the SQLite outbox does: upgrading older files, its lock file, its errors, its defaults.

Everything the contract says is pinned for every engine in test_conformance.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xgate.conversion import MappedConversion
from xgate.errors import OutboxNotFound, OutboxSchemaMismatch, OutboxUnavailable
from xgate.outbox import SQLiteOutbox, default_node_id, open_outbox
from xgate.outbox.base import OutcomeCount, minute_of

#: the schema of the previous release (PRAGMA user_version 1), as its files are on disk
SCHEMA_V1 = """
CREATE TABLE conversions (
    id INTEGER PRIMARY KEY, destination TEXT NOT NULL, pixel_id TEXT NOT NULL, event_id TEXT NOT NULL,
    conversion_id TEXT NOT NULL, event_name TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, lease_token TEXT, lease_expires_at REAL, last_error TEXT, debug_id TEXT,
    match_signals TEXT NOT NULL, body BLOB NOT NULL
);
CREATE INDEX conversions_queued_due ON conversions (next_attempt_at) WHERE state = 'queued';
CREATE INDEX conversions_lease_expiry ON conversions (lease_expires_at) WHERE state = 'leased';
CREATE INDEX conversions_delivered_at ON conversions (updated_at) WHERE state = 'delivered';
CREATE INDEX conversions_dead ON conversions (id) WHERE state = 'dead';
CREATE TABLE state_counts (
    destination TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (destination, state)
) WITHOUT ROWID;
CREATE TABLE dedup_keys (
    key TEXT PRIMARY KEY, row_id INTEGER NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


def conversion(n: int) -> MappedConversion:
    body = {"conversion_id": f"c{n}", "event_id": "o87ne", "identifiers": [{"hashed_email": "a" * 64}]}
    return MappedConversion("x-main", "o8z6j", "o87ne", f"c{n}", body, frozenset({"email"}), "purchase")


def write_v1_file(path: Path, *, with_counts: bool = True, version: int = 1) -> float:
    """An outbox file as the previous release left it: c0 delivered, c1 leased (until +60 s), c2 and c3
    queued; returns the time the rows were stored."""
    now = time.time()
    rows = [
        (1, "c0", "delivered", None, None),
        (2, "c1", "leased", "old-token", now + 60),
        (3, "c2", "queued", None, None),
        (4, "c3", "queued", None, None),
    ]
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_V1)
        for row_id, cid, state, token, expiry in rows:
            db.execute(
                "INSERT INTO conversions (id, destination, pixel_id, event_id, conversion_id, event_name,"
                " state, created_at, updated_at, next_attempt_at, lease_token, lease_expires_at,"
                " match_signals, body)"
                " VALUES (?, 'x-main', 'o8z6j', 'o87ne', ?, 'purchase', ?, ?, ?, ?, ?, ?, 'email', ?)",
                (row_id, cid, state, now, now, now, token, expiry, b'{"conversion_id": "%s"}' % cid.encode()),
            )
            db.execute(
                "INSERT INTO dedup_keys VALUES (?, ?, ?)", (f"o8z6j\x1fo87ne\x1f{cid}", row_id, now + 86400)
            )
        if with_counts:
            db.executemany(
                "INSERT INTO state_counts VALUES ('x-main', ?, ?)",
                [("delivered", 1), ("leased", 1), ("queued", 2)],
            )
        else:  # version 0: no counts, an index counted instead
            db.execute("CREATE INDEX conversions_dest_state ON conversions (destination, state)")
        db.execute(f"PRAGMA user_version = {version}")
    return now


def test_a_file_of_the_previous_release_is_upgraded_when_opened_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    stored = write_v1_file(path)
    box = SQLiteOutbox(path, node_id="node-a")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10
    assert box.take_requests("pixel:o8z6j", 1, rate=1, burst=5).granted == 1  # the shared tables exist
    rows = {r.conversion_id: r for r in box.rows()}
    assert {r.source for r in rows.values()} == {""}  # stored before sources were recorded
    assert {c: (r.state, r.leased_by) for c, r in rows.items()} == {
        "c0": ("delivered", None),
        "c1": ("leased", None),  # leased by the old release: no node, it returns when its lease expires
        "c2": ("queued", None),
        "c3": ("queued", None),
    }
    assert box.stats().counts == {
        ("x-main", "delivered"): 1,
        ("x-main", "leased"): 1,
        ("x-main", "queued"): 2,
    }
    assert box.stats().oldest_undelivered_at == pytest.approx(stored)
    assert box.enqueue([conversion(2)])[0].status == "duplicate"  # its dedup keys still hold
    assert [d.copies for d in box.duplicates(rows["c2"].id)] == [1]  # and its copies are recorded
    assert box.reclaim() == 0  # not ours
    held = box.lease(10, 30)
    assert [r.conversion_id for r in held] == ["c2", "c3"]
    assert box.mark_delivered([r.id for r in held], held[0].lease_token, None, status=200) == 2
    assert box.health()["x-main"].last_success_at is not None
    assert [(a.outcome, a.status) for a in box.history(held[0].id)] == [("delivered", 200)]
    assert sum(b.delivered for b in box.timeline(stored - 60)) == 2
    assert [r.conversion_id for r in box.lease(10, 30, now=stored + 61)] == ["c1"]
    box.add_counts([OutcomeCount(minute_of(stored), "event", "backend", "accepted", 2)])  # version 10's table
    assert box.counts(stored) == {("event", "backend", "accepted"): 2}
    box.close()
    SQLiteOutbox(path).close()  # opening again is a no-op


def test_a_file_from_before_state_counts_is_counted_once_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    write_v1_file(path, with_counts=False, version=0)
    box = SQLiteOutbox(path)
    assert box.stats().counts == {
        ("x-main", "delivered"): 1,
        ("x-main", "leased"): 1,
        ("x-main", "queued"): 2,
    }
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "conversions_dest_state" not in indexes
    box.close()


def test_a_file_of_a_newer_release_is_refused_saying_what_to_run(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    SQLiteOutbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(OutboxSchemaMismatch, match=r"schema version 99, newer than this xgate's \(10\)"):
        SQLiteOutbox(path)


def test_ping_names_the_process_holding_the_write_lock_and_gives_up_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = SQLiteOutbox(path, ping_timeout=0.3)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'ab'); fcntl.flock(f, fcntl.LOCK_EX);"
            " print('held', flush=True); time.sleep(60)",
            f"{path}.lock",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        started = time.monotonic()
        with pytest.raises(OutboxUnavailable, match=rf"o\.db\.lock\) is held by pid {holder.pid} \(python"):
            box.ping()
        assert time.monotonic() - started < 1.0
    finally:
        holder.kill()
        holder.wait()
    box.ping()  # free again
    box.close()


def test_a_file_that_is_not_an_outbox_raises_outbox_unavailable_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database, just a file that happens to be here" * 100)
    with pytest.raises(OutboxUnavailable, match=rf"sqlite outbox {path}: file is not a database"):
        SQLiteOutbox(path)


def test_a_folder_that_cannot_be_written_raises_outbox_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutboxUnavailable, match="sqlite outbox"):
        SQLiteOutbox(blocker / "sub" / "o.db")  # a file where a folder should be


def test_without_create_a_missing_file_is_not_found_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "o.db"
    with pytest.raises(OutboxNotFound, match=rf"no outbox at {path}"):
        open_outbox(f"sqlite:///{path}", create=False)
    assert not (tmp_path / "var").exists()


def test_without_create_an_empty_database_file_is_not_made_an_outbox(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"")
    with pytest.raises(OutboxNotFound, match=rf"no outbox in {path}"):
        SQLiteOutbox(path, create=False)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_the_default_node_id_names_the_host_and_differs_per_file_and_role(tmp_path: Path) -> None:
    a = SQLiteOutbox(tmp_path / "a.db")
    b = SQLiteOutbox(tmp_path / "b.db")
    assert a.node_id == default_node_id(f"sqlite:///{tmp_path / 'a.db'}")
    assert a.node_id != b.node_id
    assert default_node_id("sqlite:///x.db", "serve:8080") != default_node_id("sqlite:///x.db", "dispatch")
    assert default_node_id("sqlite:///x.db", "dispatch") == default_node_id("sqlite:///x.db", "dispatch")
    a.close()
    b.close()


def test_one_writer_thread_is_all_sqlite_gains_from() -> None:
    assert SQLiteOutbox.writers == 1
