"""The SQLite outbox: idempotent ingest, leases that expire, states, replay and purge, on real files."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xgate.config import StorageSettings
from xgate.conversion import MappedConversion
from xgate.outbox import HandoffLease, LeasedRow, SQLiteOutbox, open_outbox


def conversion(
    n: int, *, pixel: str = "o8z6j", event: str = "o87ne", destination: str = "x-main"
) -> MappedConversion:
    body = {"conversion_id": f"c{n}", "event_id": event, "identifiers": [{"hashed_email": "a" * 64}]}
    return MappedConversion(destination, pixel, event, f"c{n}", body, frozenset({"email"}), "purchase")


def test_enqueue_is_idempotent_on_pixel_event_and_conversion_id(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    first = box.enqueue([conversion(1), conversion(2), conversion(1)])
    assert [o.status for o in first] == ["queued", "queued", "duplicate"]
    assert first[2].row_id == first[0].row_id
    again = box.enqueue([conversion(1), conversion(1, event="other"), conversion(1, pixel="p2")])
    assert [o.status for o in again] == ["duplicate", "queued", "queued"]
    assert len(box.rows(limit=100)) == 4


def test_a_large_batch_is_stored_in_one_call_and_refused_whole_the_second_time(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    first = box.enqueue([conversion(i) for i in range(1200)])
    assert {o.status for o in first} == {"queued"}
    assert len({o.row_id for o in first}) == 1200
    again = box.enqueue([conversion(i) for i in range(1300)])
    assert [o.row_id for o in again[:1200]] == [o.row_id for o in first]
    assert [o.status for o in again].count("duplicate") == 1200
    assert box.stats().counts == {("x-main", "queued"): 1300}


def test_the_body_is_stored_as_mapped(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(7)])
    (row,) = box.rows()
    assert row.body == conversion(7).body
    assert row.match_signals == ("email",)
    assert row.state == "queued"


def test_a_lease_hands_rows_out_once_until_it_expires(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(i) for i in range(5)])
    now = time.time()
    leased = box.lease(10, 30, now=now)
    assert len(leased) == 5
    assert box.lease(10, 30, now=now + 1) == []
    again = box.lease(10, 30, now=now + 31)  # the first holder died: its lease expired
    assert sorted(r.id for r in again) == sorted(r.id for r in leased)
    # the stale holder can no longer settle rows it lost
    box.mark_delivered([r.id for r in leased], leased[0].lease_token, "late")
    assert {r.state for r in box.rows()} == {"leased"}


def test_settled_states_and_attempts(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(i) for i in range(3)])
    a, b, c = box.lease(3, 30)
    box.mark_delivered([a.id], a.lease_token, "dbg-1")
    box.mark_retry([b.id], b.lease_token, time.time() + 3600, "HTTP 503")
    box.mark_dead([c.id], c.lease_token, "HTTP 400; INVALID: Hashed_email is not a valid SHA-256 hash")
    rows = {r.id: r for r in box.rows()}
    assert (rows[a.id].state, rows[a.id].debug_id, rows[a.id].attempts) == ("delivered", "dbg-1", 1)
    assert (rows[b.id].state, rows[b.id].last_error, rows[b.id].attempts) == ("queued", "HTTP 503", 1)
    assert rows[c.id].state == "dead" and "SHA-256" in (rows[c.id].last_error or "")
    assert box.lease(10, 30) == []  # the retry is not due yet and dead rows are never leased


def test_a_deferral_does_not_count_as_an_attempt(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(1)])
    (row,) = box.lease(1, 30)
    box.mark_retry([row.id], row.lease_token, time.time(), "429", count_attempt=False)
    assert box.rows()[0].attempts == 0


def test_replay_requeues_dead_letters_with_attempts_reset(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(i) for i in range(3)])
    rows = box.lease(3, 30)
    box.mark_dead([r.id for r in rows], rows[0].lease_token, "HTTP 403")
    assert box.replay([rows[0].id]) == 1
    assert box.replay() == 2
    assert {(r.state, r.attempts) for r in box.rows()} == {("queued", 0)}
    assert len(box.lease(10, 30)) == 3


def test_release_returns_rows_at_once(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(1)])
    (row,) = box.lease(1, 300)
    box.release([row.id], row.lease_token)
    assert [r.id for r in box.lease(1, 300)] == [row.id]


def test_purge_drops_old_delivered_rows_but_keeps_their_dedup_keys(tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "o.db", StorageSettings(retention_days=1, dedup_window_days=30))
    box.enqueue([conversion(1)])
    (row,) = box.lease(1, 30)
    box.mark_delivered([row.id], row.lease_token, None)
    assert box.purge(now=time.time() + 2 * 86400) == 1
    assert box.rows() == []
    assert box.enqueue([conversion(1)], now=time.time() + 2 * 86400)[0].status == "duplicate"
    # past the dedup window the same conversion may be queued again
    box.purge(now=time.time() + 31 * 86400)
    assert box.enqueue([conversion(1)], now=time.time() + 31 * 86400)[0].status == "queued"


def test_stats_count_per_destination_and_state(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(i) for i in range(4)])
    rows = box.lease(2, 30)
    box.mark_delivered([r.id for r in rows], rows[0].lease_token, None)
    stats = box.stats()
    assert stats.counts == {("x-main", "queued"): 2, ("x-main", "delivered"): 2}
    assert stats.delivered_last_minute == 2
    assert stats.oldest_queued_at is not None


def test_an_unknown_storage_url_is_refused_with_the_reason(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="PostgreSQL is not supported yet"):
        open_outbox("postgresql://localhost/xgate")


def _lease_all(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    box = SQLiteOutbox(path)
    got: list[int] = []
    while rows := box.lease(7, 300):
        got.extend(r.id for r in rows)
    out.put(got)


def test_two_processes_never_lease_the_same_row(tmp_path: Path) -> None:
    path = str(tmp_path / "o.db")
    SQLiteOutbox(path).enqueue([conversion(i) for i in range(2000)])
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_lease_all, args=(path, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    ids = results[0] + results[1]
    assert len(ids) == 2000
    assert len(set(ids)) == 2000


def test_enqueue_leased_stores_new_rows_already_leased_up_to_the_limit(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    box.enqueue([conversion(0)])
    now = time.time()
    outcomes, handed = box.enqueue_leased(
        [conversion(0), *(conversion(i) for i in range(1, 6))], HandoffLease("tok-1", 30, 3), now=now
    )
    assert [o.status for o in outcomes] == ["duplicate", "queued", "queued", "queued", "queued", "queued"]
    # the duplicate is not handed over; the first three new rows are, with the body as stored
    assert [r.conversion_id for r in handed] == ["c1", "c2", "c3"]
    assert [r.id for r in handed] == [o.row_id for o in outcomes[1:4]]
    assert {(r.lease_token, r.attempts) for r in handed} == {("tok-1", 0)}
    assert handed[0].body == conversion(1).body
    assert {r.conversion_id: r.state for r in box.rows()} == {
        "c0": "queued",
        "c1": "leased",
        "c2": "leased",
        "c3": "leased",
        "c4": "queued",
        "c5": "queued",
    }
    # a lease taken from the queue finds only the rows not handed over...
    assert sorted(r.conversion_id for r in box.lease(10, 300, now=now)) == ["c0", "c4", "c5"]
    # ...the handed rows settle with the hand-off's token...
    box.mark_delivered([handed[0].id], "tok-1", "dbg")
    # ...and those never settled return to the queue when their lease expires, like any lease
    assert sorted(r.conversion_id for r in box.lease(10, 30, now=now + 31)) == ["c2", "c3"]
    assert box.row(handed[0].id).state == "delivered"  # type: ignore[union-attr]


def test_enqueue_leased_with_room_for_none_is_a_plain_enqueue(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path}/o.db")
    outcomes, handed = box.enqueue_leased([conversion(1), conversion(2)], HandoffLease("tok", 30, 0))
    assert handed == []
    assert [o.status for o in outcomes] == ["queued", "queued"]
    assert box.stats().counts == {("x-main", "queued"): 2}


def counted_by_scan(path: Path) -> dict[tuple[str, str], int]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT destination, state, count(*) FROM conversions GROUP BY 1, 2").fetchall()
    return {(d, s): n for d, s, n in rows}


Step = tuple[str, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["enqueue", "enqueue_leased", "lease", "deliver", "retry", "dead", "release", "replay", "purge"]
        ),
        st.integers(0, 40),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_the_counts_status_reads_always_equal_the_rows_in_each_state(
    tmp_path: Path, steps: list[Step]
) -> None:
    path = tmp_path / f"counts-{uuid.uuid4().hex}.db"
    box = SQLiteOutbox(path, StorageSettings(retention_days=1))
    clock = time.time()
    held: list[LeasedRow] = []
    for n, (op, k) in enumerate(steps):
        clock += 40  # leases of 30 s expire between steps: expired leases are taken again too
        batch = [conversion(i, pixel=f"p{i % 3}", destination=f"x-{i % 2}") for i in range(k, k + 8)]
        if op == "enqueue":
            box.enqueue(batch, now=clock)
        elif op == "enqueue_leased":
            held += box.enqueue_leased(batch, HandoffLease(f"t{n}", 30, k % 5), now=clock)[1]
        elif op == "lease":
            held += box.lease(k % 9, 30, now=clock)
        elif op == "replay":
            box.replay(None if k % 2 else list(range(k)))
        elif op == "purge":
            box.purge(now=clock + 2 * 86400)
        elif held:
            some, held = held[: k % 6 + 1], held[k % 6 + 1 :]
            ids, token = [r.id for r in some], some[0].lease_token  # a stale token settles nothing
            if op == "deliver":
                box.mark_delivered(ids, token, "dbg", now=clock)
            elif op == "retry":
                box.mark_retry(ids, token, clock, "HTTP 503", now=clock)
            elif op == "dead":
                box.mark_dead(ids, token, "HTTP 400", now=clock)
            else:
                box.release(ids, token)
        assert box.stats().counts == counted_by_scan(path), f"after step {n}: {op}"
    box.close()


def test_an_outbox_from_before_state_counts_is_counted_once_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = SQLiteOutbox(path)
    box.enqueue([conversion(i) for i in range(5)])
    rows = box.lease(2, 30)
    box.mark_delivered([r.id for r in rows], rows[0].lease_token, None)
    box.close()
    with sqlite3.connect(path) as db:  # as the previous version left it: an index, no counts
        db.execute("DELETE FROM state_counts")
        db.execute("CREATE INDEX conversions_dest_state ON conversions (destination, state)")
        db.execute("PRAGMA user_version = 0")
    reopened = SQLiteOutbox(path)
    assert reopened.stats().counts == {("x-main", "queued"): 3, ("x-main", "delivered"): 2}
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "conversions_dest_state" not in indexes
