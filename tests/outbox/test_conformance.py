"""The outbox contract (xgate/outbox/base.py), behaviour by behaviour, on every engine.

Each test gets a fresh, empty store from ``outbox_factory`` (tests/conftest.py): SQLite always,
PostgreSQL when ``XGATE_TEST_POSTGRES_URL`` is set (always in CI). A second backend is done when this file
passes on it.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xgate.config import StorageSettings
from xgate.conversion import MappedConversion
from xgate.errors import OutboxNotFound, OutboxReplaced, OutboxUnavailable
from xgate.outbox import CapacityReading, HandoffLease, LeasedRow, Outbox, open_outbox
from xgate.outbox.base import REJECTIONS_KEPT, TIMELINE_DAYS, OutcomeCount, RejectionRecord, minute_of
from xgate.testing import OutboxFactory


def conversion(
    n: int,
    *,
    pixel: str = "o8z6j",
    event: str = "o87ne",
    destination: str = "x-main",
    source: str = "",
    signals: frozenset[str] = frozenset({"email"}),
    name: str = "purchase",
) -> MappedConversion:
    body = {"conversion_id": f"c{n}", "event_id": event, "identifiers": [{"hashed_email": "a" * 64}]}
    return MappedConversion(destination, pixel, event, f"c{n}", body, signals, name, source=source)


def counted_from_rows(box: Outbox) -> dict[tuple[str, str], int]:
    return dict(Counter((r.destination, r.state) for r in box.rows(limit=1_000_000)))


# -- enqueue ---------------------------------------------------------------------------------------
def test_enqueue_is_idempotent_on_pixel_event_and_conversion_id(outbox: Outbox) -> None:
    first = outbox.enqueue([conversion(1), conversion(2), conversion(1)])
    assert [o.status for o in first] == ["queued", "queued", "duplicate"]
    assert first[2].row_id == first[0].row_id
    again = outbox.enqueue([conversion(1), conversion(1, event="other"), conversion(1, pixel="p2")])
    assert [o.status for o in again] == ["duplicate", "queued", "queued"]
    assert again[0].row_id == first[0].row_id
    assert len(outbox.rows(limit=100)) == 4


def public(n: int) -> MappedConversion:
    """Conversion ``n`` as a browser source (public key) sends it."""
    c = conversion(n)
    c.public = True
    return c


def test_a_public_conversion_never_makes_a_later_trusted_one_a_duplicate(outbox: Outbox) -> None:
    squatted = outbox.enqueue([public(1)])
    trusted = outbox.enqueue([conversion(1)])
    assert [o.status for o in squatted + trusted] == ["queued", "queued"]
    assert [o.status for o in outbox.enqueue([conversion(1), public(1)])] == ["duplicate", "duplicate"]
    assert len(outbox.rows(limit=100)) == 2


def test_a_public_conversion_after_a_trusted_or_public_one_is_a_duplicate(outbox: Outbox) -> None:
    first = outbox.enqueue([conversion(1), public(1), public(2), public(2)])
    assert [o.status for o in first] == ["queued", "duplicate", "queued", "duplicate"]
    assert first[1].row_id == first[0].row_id and first[3].row_id == first[2].row_id
    # in one call too, a public conversion before a trusted one does not keep the trusted one out
    both = outbox.enqueue([public(3), conversion(3)])
    assert [o.status for o in both] == ["queued", "queued"]


def test_a_large_batch_is_stored_in_one_call_and_refused_whole_the_second_time(outbox: Outbox) -> None:
    first = outbox.enqueue([conversion(i) for i in range(1200)])
    assert {o.status for o in first} == {"queued"}
    assert len({o.row_id for o in first}) == 1200
    again = outbox.enqueue([conversion(i) for i in range(1300)])
    assert [o.row_id for o in again[:1200]] == [o.row_id for o in first]
    assert [o.status for o in again].count("duplicate") == 1200
    assert outbox.stats().counts == {("x-main", "queued"): 1300}


def test_the_row_is_stored_as_mapped_queued_and_due_when_stored(outbox: Outbox) -> None:
    now = time.time()
    (outcome,) = outbox.enqueue([conversion(7)], now=now)
    row = outbox.row(outcome.row_id)
    assert row is not None
    assert row.body == conversion(7).body
    assert (row.pixel_id, row.event_id, row.conversion_id, row.event_name) == (
        "o8z6j",
        "o87ne",
        "c7",
        "purchase",
    )
    assert row.match_signals == ("email",)
    assert (row.state, row.attempts, row.leased_by, row.last_error) == ("queued", 0, None, None)
    assert row.created_at == pytest.approx(now) and row.next_attempt_at == pytest.approx(now)


def test_enqueue_leased_stores_new_rows_already_leased_up_to_the_limit(outbox_factory: OutboxFactory) -> None:
    box = outbox_factory(node_id="node-a")
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
    assert {r.conversion_id: (r.state, r.leased_by) for r in box.rows()} == {
        "c0": ("queued", None),
        "c1": ("leased", "node-a"),
        "c2": ("leased", "node-a"),
        "c3": ("leased", "node-a"),
        "c4": ("queued", None),
        "c5": ("queued", None),
    }
    # a lease taken from the queue finds only the rows not handed over...
    assert sorted(r.conversion_id for r in box.lease(10, 300, now=now)) == ["c0", "c4", "c5"]
    # ...the handed rows settle with the hand-off's token...
    assert box.mark_delivered([handed[0].id], "tok-1", "dbg") == 1
    # ...and those never settled return to the queue when their lease expires, like any lease
    assert sorted(r.conversion_id for r in box.lease(10, 30, now=now + 31)) == ["c2", "c3"]
    assert box.row(handed[0].id).state == "delivered"  # type: ignore[union-attr]


def test_enqueue_leased_with_room_for_none_is_a_plain_enqueue(outbox: Outbox) -> None:
    outcomes, handed = outbox.enqueue_leased([conversion(1), conversion(2)], HandoffLease("tok", 30, 0))
    assert handed == []
    assert [o.status for o in outcomes] == ["queued", "queued"]
    assert outbox.stats().counts == {("x-main", "queued"): 2}


# -- lease -----------------------------------------------------------------------------------------
def test_leased_rows_say_when_the_gateway_accepted_them(outbox: Outbox) -> None:
    accepted = time.time() - 5 * 3600
    outbox.enqueue([conversion(1)], now=accepted)
    _, handed = outbox.enqueue_leased([conversion(2)], HandoffLease("tok", 30, 1), now=accepted + 60)
    (leased,) = outbox.lease(1, 30, now=accepted + 3600)  # leased an hour later: still its acceptance
    assert leased.created_at == pytest.approx(accepted)
    assert handed[0].created_at == pytest.approx(accepted + 60)
    outbox.mark_retry([leased.id], leased.lease_token, accepted + 7200, "server_error", now=accepted + 3600)
    (again,) = outbox.lease(1, 30, now=accepted + 7200)
    assert again.created_at == pytest.approx(accepted)


def test_a_lease_hands_rows_out_once_until_it_expires(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(5)])
    now = time.time()
    leased = outbox.lease(10, 30, now=now)
    assert len(leased) == 5
    assert outbox.lease(10, 30, now=now + 1) == []
    again = outbox.lease(10, 30, now=now + 31)  # the first holder died: its lease expired
    assert sorted(r.id for r in again) == sorted(r.id for r in leased)
    # the stale holder can no longer settle rows it lost: nothing settled, nothing counted
    assert outbox.mark_delivered([r.id for r in leased], leased[0].lease_token, "late") == 0
    assert {r.state for r in outbox.rows()} == {"leased"}
    assert outbox.mark_delivered([r.id for r in again], again[0].lease_token, "dbg") == 5


def test_a_lease_takes_due_rows_earliest_first_then_expired_leases_and_returns_them_by_id(
    outbox: Outbox,
) -> None:
    now = time.time()
    ids = [o.row_id for o in outbox.enqueue([conversion(i) for i in range(4)], now=now)]
    held = outbox.lease(4, 30, now=now)
    token = held[0].lease_token
    outbox.mark_retry([ids[0]], token, now + 100, "HTTP 503", now=now)  # due last
    outbox.mark_retry([ids[1]], token, now + 50, "HTTP 503", now=now)  # due first
    outbox.mark_retry([ids[2]], token, now + 500, "HTTP 503", now=now)  # not due yet
    # ids[3] stays leased until now + 30, then it is an expired lease
    assert outbox.lease(10, 30, now=now + 10) == []
    first = outbox.lease(1, 30, now=now + 200)
    assert [r.id for r in first] == [ids[1]]
    rest = outbox.lease(10, 30, now=now + 200)
    assert [r.id for r in rest] == sorted([ids[0], ids[3]])  # the due row and the expired lease, by id
    assert {r.lease_token for r in rest} != {first[0].lease_token}


def test_a_lease_records_the_node_that_holds_it(outbox_factory: OutboxFactory) -> None:
    a = outbox_factory(node_id="node-a")
    b = outbox_factory(node_id="node-b")
    assert (a.node_id, b.node_id) == ("node-a", "node-b")
    a.enqueue([conversion(i) for i in range(4)])
    mine = a.lease(2, 30)
    theirs = b.lease(2, 30)
    assert {r.leased_by for r in a.rows() if r.id in {x.id for x in mine}} == {"node-a"}
    assert {r.leased_by for r in a.rows() if r.id in {x.id for x in theirs}} == {"node-b"}
    b.mark_delivered([r.id for r in theirs], theirs[0].lease_token, None)
    assert {r.leased_by for r in a.rows(state="delivered")} == {None}


def _lease_all(url: str, state_dir: Path, node: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    box = open_outbox(url, StorageSettings(state_dir=state_dir), node_id=node)
    got: list[int] = []
    while rows := box.lease(7, 300):
        got.extend(r.id for r in rows)
    box.close()
    out.put(got)


def test_two_processes_never_lease_the_same_row(outbox_factory: OutboxFactory) -> None:
    outbox_factory().enqueue([conversion(i) for i in range(2000)])
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_lease_all, args=(outbox_factory.url, outbox_factory.state_dir, f"n{i}", out))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    ids = results[0] + results[1]
    assert len(ids) == 2000
    assert len(set(ids)) == 2000


def test_threads_of_one_process_share_an_outbox_safely(outbox: Outbox) -> None:
    """Writers and leasers on several threads at once: every row stored once and leased once."""
    leased: list[int] = []
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for j in range(10):
                outbox.enqueue([conversion(k * 1000 + j * 10 + i) for i in range(10)])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def take() -> None:
        try:
            for _ in range(40):
                rows = outbox.lease(13, 300)
                leased.extend(r.id for r in rows)
                if rows:
                    outbox.mark_delivered([r.id for r in rows], rows[0].lease_token, None)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=take) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    leased += [r.id for r in outbox.lease(1000, 300)]
    assert len(leased) == len(set(leased)) == 400


# -- extend and reclaim ----------------------------------------------------------------------------
def test_extend_keeps_a_lease_past_its_first_expiry(outbox: Outbox) -> None:
    now = time.time()
    outbox.enqueue([conversion(i) for i in range(3)], now=now)
    held = outbox.lease(3, 30, now=now)
    ids, token = [r.id for r in held], held[0].lease_token
    assert outbox.extend(ids, token, 60, now=now + 20) == 3  # now held until now + 80
    assert outbox.lease(10, 30, now=now + 50) == []
    assert outbox.stats(now=now + 50).expired_leases == 0
    assert outbox.mark_delivered(ids, token, None, now=now + 60) == 3


def test_extend_says_how_many_rows_are_still_held(outbox: Outbox) -> None:
    now = time.time()
    outbox.enqueue([conversion(i) for i in range(3)], now=now)
    held = outbox.lease(3, 30, now=now)
    ids, token = [r.id for r in held], held[0].lease_token
    assert outbox.extend(ids, "another-token", 60, now=now) == 0
    outbox.mark_delivered(ids[:1], token, None, now=now)
    taken = outbox.lease(1, 30, now=now + 31)  # one expired lease is taken by another holder
    assert len(taken) == 1
    assert outbox.extend(ids, token, 60, now=now + 32) == 1  # delivered one and lost one: not held
    assert outbox.extend(ids, taken[0].lease_token, 60, now=now + 32) == 1


def test_reclaim_returns_this_nodes_leases_at_once_and_leaves_other_nodes_alone(
    outbox_factory: OutboxFactory,
) -> None:
    now = time.time()
    before = outbox_factory(node_id="node-a")
    other = outbox_factory(node_id="node-b")
    before.enqueue([conversion(i) for i in range(6)], now=now)
    _, handed = before.enqueue_leased([conversion(9)], HandoffLease("hand", 300, 1), now=now)
    mine = before.lease(3, 300, now=now)
    theirs = other.lease(2, 300, now=now)
    before.close()  # node-a is killed; it restarts with the same node id
    after = outbox_factory(node_id="node-a")
    assert after.reclaim(now=now + 1) == 4  # long before the leases expire
    rows = {r.id: r for r in after.rows()}
    assert {rows[r.id].state for r in [*mine, *handed]} == {"queued"}
    assert {rows[r.id].leased_by for r in [*mine, *handed]} == {None}
    assert {(rows[r.id].state, rows[r.id].leased_by) for r in theirs} == {("leased", "node-b")}
    waiting = {r.id for r in after.rows(state="queued")}
    assert waiting == {r.id for r in [*mine, *handed]} | {6}  # and the one never leased
    assert {r.id for r in after.lease(10, 300, now=now + 1)} == waiting  # due at once
    assert after.mark_delivered([r.id for r in mine], mine[0].lease_token, None) == 0  # the old lease is gone
    assert after.stats(now=now + 1).counts == counted_from_rows(after)


def test_reclaim_with_nothing_held_returns_zero(outbox_factory: OutboxFactory) -> None:
    box = outbox_factory(node_id="node-a")
    box.enqueue([conversion(1)])
    assert box.reclaim() == 0
    assert [r.state for r in box.rows()] == ["queued"]


# -- settle ----------------------------------------------------------------------------------------
def test_settled_states_and_attempts(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(3)])
    a, b, c = outbox.lease(3, 30)
    assert outbox.mark_delivered([a.id], a.lease_token, "dbg-1") == 1
    assert outbox.mark_retry([b.id], b.lease_token, time.time() + 3600, "HTTP 503") == 1
    error = "HTTP 400; INVALID: Hashed_email is not a valid SHA-256 hash"
    assert outbox.mark_dead([c.id], c.lease_token, error) == 1
    rows = {r.id: r for r in outbox.rows()}
    assert (rows[a.id].state, rows[a.id].debug_id, rows[a.id].attempts) == ("delivered", "dbg-1", 1)
    assert (rows[b.id].state, rows[b.id].last_error, rows[b.id].attempts) == ("queued", "HTTP 503", 1)
    assert (rows[c.id].state, rows[c.id].last_error, rows[c.id].attempts) == ("dead", error, 1)
    assert outbox.lease(10, 30) == []  # the retry is not due yet and dead rows are never leased


def test_a_deferral_does_not_count_as_an_attempt(outbox: Outbox) -> None:
    outbox.enqueue([conversion(1)])
    (row,) = outbox.lease(1, 30)
    assert outbox.mark_retry([row.id], row.lease_token, time.time(), "429", count_attempt=False) == 1
    assert outbox.rows()[0].attempts == 0


def test_settle_calls_count_only_the_rows_they_settled(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(4)])
    rows = outbox.lease(4, 30)
    ids, token = [r.id for r in rows], rows[0].lease_token
    assert outbox.mark_delivered(ids[:2], token, None) == 2
    assert outbox.mark_delivered(ids[:2], token, None) == 0  # settled already
    assert outbox.mark_retry(ids, token, time.time(), "HTTP 503") == 2  # two of four still held
    assert outbox.mark_dead(ids, token, "HTTP 400") == 0
    assert outbox.release(ids, token) == 0
    assert outbox.mark_delivered([10_000], token, None) == 0  # no such row


def test_release_returns_rows_at_once_without_counting_an_attempt(outbox: Outbox) -> None:
    outbox.enqueue([conversion(1)])
    (row,) = outbox.lease(1, 300)
    assert outbox.release([row.id], row.lease_token) == 1
    (again,) = outbox.lease(1, 300)
    assert (again.id, again.attempts) == (row.id, 0)


# -- health ----------------------------------------------------------------------------------------
def test_health_records_each_destinations_last_success_and_last_error(outbox: Outbox) -> None:
    assert outbox.health() == {}
    now = time.time()
    outbox.enqueue(
        [conversion(i, destination=d) for i, d in enumerate(["x-a", "x-a", "x-b", "x-b"])], now=now
    )
    rows = outbox.lease(4, 30, now=now)
    a1, a2, b1, b2 = rows
    outbox.mark_delivered([a1.id], a1.lease_token, "dbg", now=now + 1)
    outbox.mark_retry([b1.id], b1.lease_token, now + 60, "HTTP 401: invalid credentials", now=now + 2)
    health = outbox.health()
    assert set(health) == {"x-a", "x-b"}
    assert health["x-a"].last_success_at == pytest.approx(now + 1)
    assert (health["x-a"].last_error, health["x-a"].problem) == (None, None)
    assert health["x-b"].last_success_at is None
    assert health["x-b"].last_error == "HTTP 401: invalid credentials"
    assert health["x-b"].last_error_at == pytest.approx(now + 2)
    assert health["x-b"].problem == "HTTP 401: invalid credentials"
    # a later error on x-a is its current problem; a later success on x-b ends x-b's
    outbox.mark_dead([a2.id], a2.lease_token, "HTTP 400: bad conversion", now=now + 3)
    outbox.mark_delivered([b2.id], b2.lease_token, None, now=now + 4)
    health = outbox.health()
    assert health["x-a"].problem == "HTTP 400: bad conversion"
    assert health["x-b"].problem is None
    assert health["x-b"].last_error == "HTTP 401: invalid credentials"  # kept, but no longer current


def test_x_capacity_reading_is_kept_per_destination_by_any_node_and_the_latest_wins(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    a.enqueue([conversion(i) for i in range(4)] + [conversion(9, destination="x-leads")])
    rows = a.lease(5, 30)
    t0 = time.time()
    main = [r.id for r in rows if r.destination == "x-main"]
    reading = CapacityReading(2000, 1994, t0 + 900, "account", t0)
    assert a.mark_delivered(main[:1], rows[0].lease_token, "d", capacity=reading) == 1
    assert b.health()["x-main"].capacity == reading
    assert "x-leads" not in b.health()  # never settled
    # a reading taken earlier (a slower node's answer) does not replace a later one
    older = CapacityReading(2000, 1999, t0 + 900, "account", t0 - 5)
    b.mark_retry(main[1:2], rows[0].lease_token, t0 + 60, "HTTP 503", capacity=older)
    assert a.health()["x-main"].capacity == reading
    later = CapacityReading(None, 0, None, "user", t0 + 5)  # headers X did not send stay None
    b.mark_dead(main[2:3], rows[0].lease_token, "HTTP 400", capacity=later)
    assert a.health()["x-main"].capacity == later
    # a settle without a reading leaves it; one that settles nothing writes none
    a.mark_delivered(main[3:], rows[0].lease_token, "d")
    newest = reading._replace(seen_at=t0 + 9)
    assert a.mark_delivered(main[:1], rows[0].lease_token, "d", capacity=newest) == 0
    assert a.health()["x-main"].capacity == later
    leads = [r.id for r in rows if r.destination == "x-leads"]
    a.mark_delivered(leads, rows[0].lease_token, "d", capacity=reading)
    assert (b.health()["x-leads"].capacity, b.health()["x-main"].capacity) == (reading, later)


def test_a_settle_that_settles_nothing_records_no_health(outbox: Outbox) -> None:
    outbox.enqueue([conversion(1)])
    (row,) = outbox.lease(1, 30)
    assert outbox.mark_retry([row.id], "lost-token", time.time(), "HTTP 503") == 0
    assert outbox.health() == {}


# -- stats -----------------------------------------------------------------------------------------
def test_stats_count_per_destination_and_state(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(4)])
    outbox.enqueue([conversion(9, destination="x-other")])
    rows = [r for r in outbox.lease(10, 30) if r.destination == "x-main"][:2]
    outbox.mark_delivered([r.id for r in rows], rows[0].lease_token, None)
    stats = outbox.stats()
    assert stats.counts == {("x-main", "leased"): 2, ("x-main", "delivered"): 2, ("x-other", "leased"): 1}
    assert stats.delivered_last_minute == 2
    assert stats.delivered_last_minute == outbox.stats(now=time.time() + 30).delivered_last_minute
    assert outbox.stats(now=time.time() + 61).delivered_last_minute == 0


def test_stats_say_the_age_of_the_oldest_undelivered_conversion_and_when_the_next_is_due(
    outbox: Outbox,
) -> None:
    assert (outbox.stats().oldest_undelivered_at, outbox.stats().next_attempt_at) == (None, None)
    t0 = time.time() - 3600
    outbox.enqueue([conversion(1)], now=t0)  # the oldest: it will back off
    outbox.enqueue([conversion(2)], now=t0 + 60)
    outbox.enqueue([conversion(3)], now=t0 + 120)
    (oldest,) = outbox.lease(1, 30, now=t0 + 100)
    # while the oldest is leased its age still counts
    assert outbox.stats(now=t0 + 130).oldest_undelivered_at == pytest.approx(t0)
    assert outbox.stats(now=t0 + 130).next_attempt_at == pytest.approx(t0 + 60)
    # backing off until t0 + 7200, it is still the oldest undelivered conversion
    outbox.mark_retry([oldest.id], oldest.lease_token, t0 + 7200, "HTTP 503", now=t0 + 130)
    stats = outbox.stats(now=t0 + 130)
    assert stats.oldest_undelivered_at == pytest.approx(t0)
    assert stats.next_attempt_at == pytest.approx(t0 + 60)
    # delivered, it no longer counts; dead letters do not either
    rows = outbox.lease(10, 30, now=t0 + 130)
    assert sorted(r.conversion_id for r in rows) == ["c2", "c3"]
    outbox.mark_dead([r.id for r in rows if r.conversion_id == "c2"], rows[0].lease_token, "HTTP 400")
    assert outbox.stats(now=t0 + 130).oldest_undelivered_at == pytest.approx(t0)
    (again,) = outbox.lease(1, 30, now=t0 + 7200)
    outbox.mark_delivered([again.id], again.lease_token, None, now=t0 + 7200)
    stats = outbox.stats(now=t0 + 7200)
    assert stats.oldest_undelivered_at == pytest.approx(t0 + 120)  # c3, still leased
    assert stats.next_attempt_at is None  # nothing queued


def test_stats_count_expired_leases(outbox: Outbox) -> None:
    now = time.time()
    outbox.enqueue([conversion(i) for i in range(3)], now=now)
    outbox.lease(2, 30, now=now)
    assert outbox.stats(now=now + 10).expired_leases == 0
    assert outbox.stats(now=now + 31).expired_leases == 2


Step = tuple[str, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "enqueue",
                "enqueue_leased",
                "lease",
                "deliver",
                "retry",
                "dead",
                "release",
                "extend",
                "reclaim",
                "replay",
                "discard",
                "purge",
            ]
        ),
        st.integers(0, 40),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_the_counts_status_reads_always_equal_the_rows_in_each_state(
    outbox_factory: OutboxFactory, steps: list[Step]
) -> None:
    # examples share the test's store: the counts must match the rows whatever came before
    box = outbox_factory(StorageSettings(retention_days=1), node_id="node-a")
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
        elif op == "reclaim":
            box.reclaim(now=clock)
        elif op == "replay":
            box.replay(None if k % 2 else list(range(k)))
        elif op == "discard":
            box.discard(None if k % 3 == 0 else list(range(k)))
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
            elif op == "extend":
                box.extend(ids, token, 30, now=clock)
            else:
                box.release(ids, token)
        counts = {key: n for key, n in box.stats(now=clock).counts.items() if n}
        assert counts == counted_from_rows(box), f"after step {n}: {op}"


# -- rows ------------------------------------------------------------------------------------------
def test_rows_are_newest_first_and_filtered_by_state_and_destination(outbox: Outbox) -> None:
    ids = [
        o.row_id
        for o in outbox.enqueue([conversion(i, destination="x-a" if i % 2 else "x-b") for i in range(6)])
    ]
    held = [r for r in outbox.lease(10, 30) if r.id in ids[:2]]
    outbox.mark_dead([r.id for r in held], held[0].lease_token, "HTTP 400")
    assert [r.id for r in outbox.rows()] == sorted(ids, reverse=True)
    assert [r.id for r in outbox.rows(limit=2)] == sorted(ids, reverse=True)[:2]
    assert [r.id for r in outbox.rows(state="dead")] == [ids[1], ids[0]]
    assert [r.id for r in outbox.rows(state="dead", destination="x-a")] == [ids[1]]
    assert [r.id for r in outbox.rows(destination="x-b")] == [ids[4], ids[2], ids[0]]
    assert outbox.row(ids[1]).state == "dead"  # type: ignore[union-attr]
    assert outbox.row(max(ids) + 1) is None


def test_rows_filter_by_source_event_name_conversion_id_and_error_text(outbox: Outbox) -> None:
    outbox.enqueue(
        [
            conversion(1, source="web"),
            conversion(2, source="backend", name="lead"),
            conversion(3, source="import:orders.csv"),
            conversion(1, source="backend", pixel="p2"),  # the same conversion id, to another pixel
        ]
    )
    held = outbox.lease(10, 30)
    by_id = {r.conversion_id + r.pixel_id: r for r in held}
    outbox.mark_dead([by_id["c2o8z6j"].id], held[0].lease_token, "invalid: INVALID_EMAIL hashed_email")
    outbox.mark_retry([by_id["c3o8z6j"].id], held[0].lease_token, time.time(), "server_error: HTTP 503")
    assert [r.source for r in outbox.rows(source="backend")] == ["backend", "backend"]
    assert outbox.row(by_id["c3o8z6j"].id).source == "import:orders.csv"  # type: ignore[union-attr]
    assert [r.conversion_id for r in outbox.rows(event_name="lead")] == ["c2"]
    assert {(r.pixel_id, r.source) for r in outbox.rows(conversion_id="c1")} == {
        ("o8z6j", "web"),
        ("p2", "backend"),
    }
    assert [r.conversion_id for r in outbox.rows(error="invalid_email")] == ["c2"]  # any case
    assert [r.conversion_id for r in outbox.rows(error="HTTP 5")] == ["c3"]
    assert outbox.rows(error="100%") == []  # the text is a substring, not a pattern
    assert outbox.rows(source="backend", event_name="purchase", state="leased")[0].pixel_id == "p2"


def test_rows_page_by_keyset_newest_first(outbox: Outbox) -> None:
    ids = [o.row_id for o in outbox.enqueue([conversion(i) for i in range(7)])]
    pages: list[list[int]] = []
    before: int | None = None
    while page := [r.id for r in outbox.rows(limit=3, before=before)]:
        pages.append(page)
        before = page[-1]
    assert pages == [sorted(ids, reverse=True)[i : i + 3] for i in (0, 3, 6)]
    assert [r.id for r in outbox.rows(before=ids[3], source="")] == [ids[2], ids[1], ids[0]]


# -- history and timeline --------------------------------------------------------------------------
def test_each_settle_appends_to_the_rows_history_with_x_status_error_and_debug_id(outbox: Outbox) -> None:
    (stored,) = outbox.enqueue([conversion(1)])
    row_id, t = stored.row_id, time.time()
    assert outbox.history(row_id) == []
    (held,) = outbox.lease(1, 30, now=t)
    outbox.mark_retry([row_id], held.lease_token, t, "server_error: HTTP 503", now=t + 1, status=503)
    (held,) = outbox.lease(1, 30, now=t + 2)
    outbox.release([row_id], held.lease_token)  # not sent: no entry
    (held,) = outbox.lease(1, 30, now=t + 3)
    outbox.mark_retry(
        [row_id],
        held.lease_token,
        t,
        "rate_limited",
        now=t + 4,
        count_attempt=False,
        status=429,
        debug_id="d1",
    )
    (held,) = outbox.lease(1, 30, now=t + 5)
    outbox.mark_dead([row_id], held.lease_token, "invalid: bad", now=t + 6, status=400, debug_id="d2")
    outbox.replay([row_id])
    (held,) = outbox.lease(1, 30)
    assert outbox.mark_delivered([row_id], "a lost lease", "nope", status=200) == 0  # not appended
    outbox.mark_delivered([row_id], held.lease_token, "d3", now=t + 8, status=200)
    assert [tuple(a) for a in outbox.history(row_id)] == [
        (pytest.approx(t + 1), "retry", 503, "server_error: HTTP 503", None),
        (pytest.approx(t + 4), "deferred", 429, "rate_limited", "d1"),
        (pytest.approx(t + 6), "dead", 400, "invalid: bad", "d2"),
        (pytest.approx(t + 8), "delivered", 200, None, "d3"),
    ]


def test_a_batch_settle_gives_every_row_its_entry(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(600)])  # more than one chunk of ids
    rows = outbox.lease(600, 30)
    assert outbox.mark_dead([r.id for r in rows], rows[0].lease_token, "timeout") == 600
    assert {(len(outbox.history(r.id)), outbox.history(r.id)[0].outcome) for r in rows[::97]} == {(1, "dead")}


def test_history_goes_with_its_row_when_discarded_or_purged(outbox_factory: OutboxFactory) -> None:
    box = outbox_factory(StorageSettings(retention_days=1, dedup_window_days=30))
    box.enqueue([conversion(i) for i in range(3)])
    old, dead, kept = box.lease(3, 30)
    box.mark_delivered([old.id], old.lease_token, "d", now=time.time() - 2 * 86400)
    box.mark_dead([dead.id], dead.lease_token, "HTTP 400")
    box.mark_delivered([kept.id], kept.lease_token, "d")
    assert box.discard([dead.id]) == 1 and box.purge() == 1
    assert (box.history(old.id), box.history(dead.id)) == ([], [])
    assert len(box.history(kept.id)) == 1


def test_each_duplicate_records_its_sender_against_the_kept_row_on_any_node(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    t0 = time.time()
    kept = a.enqueue([conversion(1, source="backend")], now=t0)[0]
    assert a.duplicates(kept.row_id) == []
    tag = public(1)
    tag.source = "web"
    # the browser tag (public key) sends it twice on node b, an import once on node a, in calls of their own
    assert b.enqueue([tag], now=t0 + 10)[0].status == "duplicate"
    assert b.enqueue([tag, tag], now=t0 + 20)[1].status == "duplicate"
    assert a.enqueue([conversion(1, source="import:orders.csv")], now=t0 + 30)[0].status == "duplicate"
    # the kept row's own source again, in the call that stores another conversion
    a.enqueue([conversion(2, source="backend"), conversion(1, source="backend")], now=t0 + 40)
    senders = b.duplicates(kept.row_id)
    assert [(d.source, d.public, d.copies) for d in senders] == [
        ("web", True, 3),
        ("import:orders.csv", False, 1),
        ("backend", False, 1),
    ]
    assert (senders[0].first_at, senders[0].last_at) == (pytest.approx(t0 + 10), pytest.approx(t0 + 20))
    assert a.duplicates(kept.row_id) == senders
    # a new conversion, and the first copy of a conversion in one call, record no sender
    row_2 = next(r for r in a.rows() if r.conversion_id == "c2")
    assert a.duplicates(row_2.id) == []


def test_duplicate_senders_go_with_their_row_and_after_the_dedup_window(
    outbox_factory: OutboxFactory,
) -> None:
    box = outbox_factory(StorageSettings(retention_days=1, dedup_window_days=30))
    t0 = time.time()
    box.enqueue([conversion(i) for i in range(4)], now=t0)
    box.enqueue([conversion(i, source="again") for i in range(4)], now=t0)
    old, dead, kept, quiet = box.lease(4, 30)
    box.mark_delivered([old.id], old.lease_token, "d", now=t0 - 2 * 86400)
    box.mark_dead([dead.id], dead.lease_token, "HTTP 400")
    assert box.discard([dead.id]) == 1 and box.purge(now=t0) == 1
    assert (box.duplicates(old.id), box.duplicates(dead.id)) == ([], [])
    # a copy of a discarded conversion is still a duplicate, but its row is gone: no sender is kept
    assert box.enqueue([conversion(1, source="late")], now=t0 + 1)[0].status == "duplicate"
    assert box.duplicates(dead.id) == []
    # a sender whose last copy is older than the window goes; one that sent again within it stays
    box.enqueue([conversion(2, source="again")], now=t0 + 20 * 86400)
    box.purge(now=t0 + 31 * 86400)
    assert [d.copies for d in box.duplicates(kept.id)] == [2]
    assert box.duplicates(quiet.id) == []


def test_the_timeline_counts_stored_with_signals_and_settled_per_destination_event_and_bucket(
    outbox: Outbox,
) -> None:
    t0 = 3600.0 * (time.time() // 3600) - 3 * 3600  # three hours ago, on the hour
    outbox.enqueue(
        [
            conversion(1, signals=frozenset({"email", "twclid"})),
            conversion(2, signals=frozenset({"phone", "ip_ua"})),
            conversion(3, event="lead1", destination="x-leads", signals=frozenset()),
        ],
        now=t0 + 10,
    )
    outbox.enqueue([conversion(4, signals=frozenset({"email"}))], now=t0 + 70)  # the next minute
    rows = {r.conversion_id: r for r in outbox.lease(10, 30, now=t0 + 80)}
    token = rows["c1"].lease_token
    outbox.mark_delivered([rows["c1"].id, rows["c2"].id], token, "d", now=t0 + 90, status=200)
    outbox.mark_retry([rows["c3"].id], token, t0 + 4000, "HTTP 503", now=t0 + 3700)  # the next hour
    outbox.mark_dead([rows["c4"].id], token, "HTTP 400", now=t0 + 3700)
    minutes = outbox.timeline(t0)
    assert [(b.start - t0, b.destination, b.event_id) for b in minutes] == [
        (0, "x-leads", "lead1"),
        (0, "x-main", "o87ne"),
        (60, "x-main", "o87ne"),
        (3660, "x-leads", "lead1"),
        (3660, "x-main", "o87ne"),
    ]
    first = minutes[1]
    assert (first.stored, first.twclid, first.email, first.phone, first.ip_ua) == (2, 1, 1, 1, 1)
    hours = outbox.timeline(t0 - 3600, 3600)
    assert [(b.start - t0, b.destination, b.stored, b.delivered, b.retried, b.dead) for b in hours] == [
        (0, "x-leads", 1, 0, 0, 0),
        (0, "x-main", 3, 2, 0, 0),
        (3600, "x-leads", 0, 0, 1, 0),
        (3600, "x-main", 0, 0, 0, 1),
    ]
    assert [b.start - t0 for b in outbox.timeline(t0 + 3600, 3600)] == [3600, 3600]
    with pytest.raises(ValueError, match="bucket_seconds: 90"):
        outbox.timeline(t0, 90)


def test_minutes_and_outcome_counts_older_than_the_timeline_days_are_purged(outbox: Outbox) -> None:
    old = time.time() - (TIMELINE_DAYS + 1) * 86400
    outbox.enqueue([conversion(1)], now=old)
    outbox.enqueue([conversion(2)])
    outbox.add_counts(
        [
            OutcomeCount(minute_of(old), "event", "backend", "accepted", 5),
            OutcomeCount(minute_of(time.time()), "event", "backend", "accepted", 1),
        ]
    )
    assert sum(b.stored for b in outbox.timeline(old)) == 2
    assert outbox.counts(old) == {("event", "backend", "accepted"): 6}
    outbox.purge()
    assert sum(b.stored for b in outbox.timeline(old)) == 1
    assert outbox.counts(old) == {("event", "backend", "accepted"): 1}


# -- replay, discard, purge ------------------------------------------------------------------------
def test_replay_requeues_dead_letters_with_attempts_reset(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(4)])
    rows = outbox.lease(4, 30)
    outbox.mark_dead([r.id for r in rows[:3]], rows[0].lease_token, "HTTP 403")
    assert outbox.replay([rows[0].id, rows[3].id]) == 1  # rows[3] is leased, not dead: left alone
    assert outbox.replay() == 2
    assert outbox.replay() == 0
    assert {(r.state, r.attempts) for r in outbox.rows() if r.id != rows[3].id} == {("queued", 0)}
    assert len(outbox.lease(10, 30)) == 3


def test_discard_deletes_dead_letters_and_their_conversions_stay_known(outbox: Outbox) -> None:
    outbox.enqueue([conversion(i) for i in range(4)])
    rows = outbox.lease(4, 30)
    outbox.mark_dead([r.id for r in rows[:3]], rows[0].lease_token, "HTTP 400")
    assert outbox.discard([rows[0].id, rows[3].id]) == 1  # rows[3] is leased, not dead: left alone
    assert outbox.row(rows[0].id) is None
    assert outbox.stats().counts == {("x-main", "dead"): 2, ("x-main", "leased"): 1}
    assert outbox.discard() == 2
    assert outbox.stats().counts == {("x-main", "leased"): 1}
    assert [r.id for r in outbox.rows()] == [rows[3].id]
    # a client retrying the same conversions: duplicates, never sent
    again = outbox.enqueue([conversion(i) for i in range(3)])
    assert {o.status for o in again} == {"duplicate"}
    assert outbox.lease(10, 30) == []


def test_purge_drops_old_delivered_rows_but_keeps_their_dedup_keys(outbox_factory: OutboxFactory) -> None:
    box = outbox_factory(StorageSettings(retention_days=1, dedup_window_days=30))
    box.enqueue([conversion(1), conversion(2)])
    first, second = box.lease(2, 30)
    box.mark_delivered([first.id], first.lease_token, None)
    assert box.purge(now=time.time() + 2 * 86400) == 1
    assert [r.id for r in box.rows()] == [second.id]  # only delivered rows go
    assert box.stats().counts == {("x-main", "leased"): 1}
    assert box.enqueue([conversion(1)], now=time.time() + 2 * 86400)[0].status == "duplicate"
    # past the dedup window the same conversion may be queued again
    box.purge(now=time.time() + 31 * 86400)
    assert box.enqueue([conversion(1)], now=time.time() + 31 * 86400)[0].status == "queued"


# -- shared between nodes: X's rate limit, duties --------------------------------------------------
def test_a_request_budget_starts_full_is_shared_by_nodes_and_refills_at_its_rate(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    now = time.time()
    assert a.take_requests("account:18ce54d4x5t", 6, rate=2, burst=10, now=now).granted == 6
    # node b takes from the same bucket: 4 left, and the next token comes 1/rate s later
    assert b.take_requests("account:18ce54d4x5t", 10, rate=2, burst=10, now=now) == (4, None, now + 0.5)
    assert a.take_requests("pixel:o8z6j", 10, rate=2, burst=10, now=now).granted == 10  # another key
    later = b.take_requests("account:18ce54d4x5t", 5, rate=2, burst=10, now=now + 1.25)
    assert later.granted == 2 and later.retry_at == pytest.approx(now + 1.5)
    # a clock behind the last taker's refills nothing (and moves nothing back)
    assert a.take_requests("account:18ce54d4x5t", 1, rate=2, burst=10, now=now).granted == 0
    # however long it rests, a bucket holds ``burst`` tokens at most
    assert a.take_requests("account:18ce54d4x5t", 50, rate=2, burst=10, now=now + 3600).granted == 10


def test_nodes_taking_at_once_are_never_granted_more_than_the_bucket_holds(
    outbox_factory: OutboxFactory,
) -> None:
    boxes = [outbox_factory(node_id=f"node-{i}") for i in range(2)]
    granted: list[int] = []

    def take(box: Outbox) -> None:
        for _ in range(40):
            granted.append(box.take_requests("pixel:o8z6j", 1, rate=1e-6, burst=50).granted)

    threads = [threading.Thread(target=take, args=(box,)) for box in boxes for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 240 and sum(granted) == 50


def test_a_pause_holds_the_key_for_every_node_until_it_ends_and_only_grows(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    now = time.time()
    assert b.take_requests("pixel:o8z6j", 0, rate=2, burst=10, now=now) == (0, None, None)
    assert a.pause("pixel:o8z6j", now + 5, now=now) == now + 5
    assert b.take_requests("pixel:o8z6j", 3, rate=2, burst=10, now=now + 1) == (0, now + 5, None)
    assert b.take_requests("pixel:o8z6j", 0, rate=2, burst=10, now=now + 1) == (0, now + 5, None)
    assert b.pause("pixel:o8z6j", now + 2, now=now + 1) == now + 5  # an earlier reset changes nothing
    assert a.take_requests("pixel:p2", 1, rate=2, burst=10, now=now + 1).granted == 1  # other keys go on
    # once it ends, the bucket (full: the pause took nothing) grants again
    assert b.take_requests("pixel:o8z6j", 10, rate=2, burst=10, now=now + 5.01).granted == 10
    assert b.take_requests("pixel:o8z6j", 0, rate=2, burst=10, now=now + 5.01).paused_until is None


@pytest.mark.parametrize(
    ("n", "rate", "burst", "named"), [(-1, 1, 1, "n must"), (1, 0, 1, "rate must"), (1, 1, 0.5, "burst must")]
)
def test_take_requests_refuses_a_bucket_it_cannot_honour(
    outbox: Outbox, n: int, rate: float, burst: float, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        outbox.take_requests("pixel:o8z6j", n, rate=rate, burst=burst)


def test_a_session_revoked_on_one_node_is_revoked_for_every_node_until_it_expires(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    now = time.time()
    assert not b.session_revoked("s1", now=now)
    a.revoke_session("s1", now + 3600, now=now)
    assert b.session_revoked("s1", now=now) and not b.session_revoked("s2", now=now)
    b.revoke_session("s1", now + 60, now=now)  # revoking again never shortens it
    assert a.session_revoked("s1", now=now + 600)
    assert not a.session_revoked("s1", now=now + 3600)  # the session has ended by itself
    # expired records go at the next revoke and at purge
    a.revoke_session("s2", now + 10, now=now)
    b.revoke_session("s3", now + 7200, now=now + 3601)
    a.purge(now=now + 3601)
    assert b.session_revoked("s3", now=now + 3601)
    with pytest.raises(ValueError, match="session_id: must be 1 to 128 characters, not 0"):
        a.revoke_session("", now + 60)


def test_rejections_of_every_node_are_read_newest_first_and_each_source_keeps_its_newest(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    a.record_rejections([RejectionRecord(1.0, "backend", "purchase", "x-main", "value: not a number")])
    flood = [
        RejectionRecord(10.0 + i, "web", f"e{i}", None, "identifiers: none")
        for i in range(REJECTIONS_KEPT + 5)
    ]
    b.record_rejections(flood[:100])
    b.record_rejections(flood[100:])
    b.record_rejections([])
    newest = a.rejections(3)
    assert [r.event_name for r in newest] == [
        f"e{REJECTIONS_KEPT + 4}",
        f"e{REJECTIONS_KEPT + 3}",
        f"e{REJECTIONS_KEPT + 2}",
    ]
    everything = b.rejections(10_000)
    assert len(everything) == REJECTIONS_KEPT + 1  # the flood kept its newest; the backend's one stays
    assert everything[-1] == RejectionRecord(1.0, "backend", "purchase", "x-main", "value: not a number")
    assert min(r.at for r in everything if r.source == "web") == 15.0


def test_outcome_counts_of_every_node_add_up_per_key_over_the_minutes_asked_for(
    outbox_factory: OutboxFactory,
) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    now = minute_of(time.time())
    hour_ago, earlier = now - 3600, now - 7200
    a.add_counts(
        [
            OutcomeCount(now, "event", "backend", "accepted", 3),
            OutcomeCount(now, "event", "backend", "accepted", 2),  # same key in one call: summed
            OutcomeCount(now, "event", "web", "rejected", 1),
            OutcomeCount(now, "rejection", "web", "unmatched", 1),  # of those, for want of an identifier
            OutcomeCount(hour_ago, "delivery", "x-main", "delivered", 4),
            OutcomeCount(earlier, "failure", "x-main", "server_error", 7),
        ]
    )
    b.add_counts(
        [
            OutcomeCount(now, "event", "backend", "accepted", 1),  # another node, same minute: added
            OutcomeCount(now, "event", "backend", "skipped", 2),
            OutcomeCount(now, "failure", "x-main", "server_error", 1),
            OutcomeCount(now, "delivery", "x-main", "retry", 0),  # nothing: stays absent
            OutcomeCount(now, "rejection", "web", "unmatched", 4),
        ]
    )
    b.add_counts([])
    assert a.counts(now) == {
        ("event", "backend", "accepted"): 6,
        ("event", "backend", "skipped"): 2,
        ("event", "web", "rejected"): 1,
        ("rejection", "web", "unmatched"): 5,
        ("failure", "x-main", "server_error"): 1,
    }
    last_two_hours = b.counts(earlier + 30)  # from that minute on
    assert last_two_hours[("failure", "x-main", "server_error")] == 8
    assert last_two_hours[("delivery", "x-main", "delivered")] == 4
    assert a.counts(now + 60) == {}


def test_add_counts_refuses_a_minute_off_the_minute_or_an_unknown_kind(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="minute 61 is not a multiple of 60"):
        outbox.add_counts([OutcomeCount(61, "event", "backend", "accepted", 1)])
    with pytest.raises(ValueError, match="kind 'answers'"):
        outbox.add_counts([OutcomeCount(60, "answers", "x-main", "200", 1)])  # type: ignore[arg-type]
    assert outbox.counts(0) == {}


def test_add_counts_from_threads_at_once_loses_nothing(outbox_factory: OutboxFactory) -> None:
    minute = minute_of(time.time())
    boxes = [outbox_factory(node_id=f"node-{i}") for i in range(4)]

    def add(box: Outbox) -> None:
        for _ in range(10):
            box.add_counts(
                [
                    OutcomeCount(minute, "event", "backend", "accepted", 1),
                    OutcomeCount(minute, "delivery", "x-main", "delivered", 2),
                ]
            )

    threads = [threading.Thread(target=add, args=(box,)) for box in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert boxes[0].counts(minute) == {
        ("event", "backend", "accepted"): 40,
        ("delivery", "x-main", "delivered"): 80,
    }


def test_one_node_at_a_time_holds_a_duty_until_its_claim_lapses(outbox_factory: OutboxFactory) -> None:
    a, b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    now = time.time()
    assert a.claim_duty("housekeeping", 100, now=now) is True
    assert b.claim_duty("housekeeping", 100, now=now + 1) is False
    assert b.claim_duty("other-duty", 100, now=now + 1) is True  # duties are held apart
    assert a.claim_duty("housekeeping", 100, now=now + 50) is True  # its holder renews it: until now + 150
    assert b.claim_duty("housekeeping", 100, now=now + 120) is False
    assert b.claim_duty("housekeeping", 100, now=now + 151) is True  # a lapsed (it died): b takes over
    assert a.claim_duty("housekeeping", 100, now=now + 152) is False


# -- ping, errors, opening -------------------------------------------------------------------------
def test_ping_answers_at_once_when_ingest_could_store(outbox: Outbox) -> None:
    started = time.monotonic()
    assert outbox.ping() is None
    assert time.monotonic() - started < 1.0


WRITE_TIMEOUT = 0.5


def test_writes_blocked_past_write_timeout_raise_unavailable_naming_the_holder_and_change_nothing(
    outbox_factory: OutboxFactory,
) -> None:
    box = outbox_factory(StorageSettings(write_timeout_seconds=WRITE_TIMEOUT))
    box.enqueue([conversion(1), conversion(2)])
    (held,) = box.lease(1, 300)
    before = (box.stats().counts, box.rows(), box.history(held.id), box.timeline(0))
    writes = {
        "enqueue": lambda: box.enqueue([conversion(3)]),
        "enqueue_leased": lambda: box.enqueue_leased([conversion(3)], HandoffLease("tok", 30, 1)),
        "lease": lambda: box.lease(5, 300),
        "mark_delivered": lambda: box.mark_delivered([held.id], held.lease_token, "dbg"),
        "mark_retry": lambda: box.mark_retry([held.id], held.lease_token, 0.0, "server_error"),
        "release": lambda: box.release([held.id], held.lease_token),
        "purge": lambda: box.purge(),
    }
    with outbox_factory.held_by_another_session() as holder:
        for name, write in writes.items():
            started = time.monotonic()
            with pytest.raises(OutboxUnavailable, match=re.escape(holder)):
                write()
            assert time.monotonic() - started < WRITE_TIMEOUT + 1.0, name
    assert (box.stats().counts, box.rows(), box.history(held.id), box.timeline(0)) == before
    # the holder gone, the same calls go through, as if the failed ones never ran: no dedup key was left
    # behind (conversion 3 is new) and the lease still holds
    assert [o.status for o in box.enqueue([conversion(3)])] == ["queued"]
    assert box.mark_delivered([held.id], held.lease_token, "dbg") == 1
    assert box.stats().counts == {("x-main", "queued"): 2, ("x-main", "delivered"): 1}
    assert counted_from_rows(box) == box.stats().counts


def test_ping_says_who_holds_the_write_lock_within_about_a_second(outbox_factory: OutboxFactory) -> None:
    box = outbox_factory()
    with outbox_factory.held_by_another_session() as holder:
        started = time.monotonic()
        with pytest.raises(OutboxUnavailable, match=re.escape(holder)):
            box.ping()
        assert time.monotonic() - started < 2.0
    assert box.ping() is None


def test_a_closed_outbox_raises_outbox_unavailable(outbox: Outbox) -> None:
    outbox.close()
    with pytest.raises(OutboxUnavailable):
        outbox.enqueue([conversion(1)])
    with pytest.raises(OutboxUnavailable):
        outbox.ping()


def test_opening_without_create_refuses_an_outbox_that_does_not_exist(outbox_factory: OutboxFactory) -> None:
    with pytest.raises(OutboxNotFound):
        outbox_factory(create=False)
    outbox_factory().enqueue([conversion(1)])  # created...
    assert len(outbox_factory(create=False).rows()) == 1  # ...then found


# -- identity (the outbox id a node records: SQLite beside the file, PostgreSQL in [storage] state_dir) --
def recorded_id(record: Path) -> str:
    return record.read_text(encoding="utf-8").split()[0]


def test_a_first_start_records_the_outbox_id_and_a_restart_on_the_same_outbox_passes(
    outbox_factory: OutboxFactory,
) -> None:
    record = outbox_factory.identity_record
    assert not record.exists()
    outbox_factory().enqueue([conversion(1)])
    first = recorded_id(record)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    outbox_factory.close_all()  # the node stops...
    assert len(outbox_factory().rows()) == 1  # ...and starts again on the same outbox
    assert recorded_id(record) == first


def test_nodes_of_one_host_starting_at_once_share_one_record_without_tripping(
    outbox_factory: OutboxFactory,
) -> None:
    outbox_factory().close()  # the store exists: the nodes below only record
    outbox_factory.identity_record.unlink()
    failures: list[BaseException] = []

    def start(node: str) -> None:
        try:
            outbox_factory(node_id=node)
        except BaseException as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=start, args=(f"node-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    record = outbox_factory.identity_record
    assert [p.name for p in record.parent.iterdir() if p.name.startswith(record.name)] == [record.name]
    outbox_factory.close_all()
    outbox_factory(node_id="node-9").close()  # a later node of that host agrees


def test_an_outbox_recreated_while_the_node_was_stopped_is_refused_with_what_happened_and_the_fix(
    outbox_factory: OutboxFactory,
) -> None:
    outbox_factory().enqueue([conversion(1)])
    record = outbox_factory.identity_record
    used = recorded_id(record)
    outbox_factory.recreate()  # deleted / dropped and created again, empty
    with pytest.raises(OutboxReplaced) as refused:
        outbox_factory()
    message = str(refused.value)
    assert "is not the outbox this node used" in message
    assert f"{record} records outbox {used}" in message
    assert "lost unless you restore the" in message
    assert "--accept-new-outbox" in message and "[storage] accept_new_outbox = true" in message
    assert recorded_id(record) == used  # nothing recorded: the next start is refused as well
    with pytest.raises(OutboxReplaced):
        outbox_factory(node_id="another-node")


def test_accept_new_outbox_records_the_new_one_and_later_starts_need_no_flag(
    outbox_factory: OutboxFactory,
) -> None:
    outbox_factory().close()
    record = outbox_factory.identity_record
    used = recorded_id(record)
    outbox_factory.recreate()
    outbox_factory(StorageSettings(accept_new_outbox=True)).enqueue([conversion(1)])
    accepted = recorded_id(record)
    assert accepted != used
    outbox_factory.close_all()
    assert len(outbox_factory().rows()) == 1  # the next start, without the flag
    assert recorded_id(record) == accepted


def test_a_read_only_open_checks_the_record_but_never_writes_one(outbox_factory: OutboxFactory) -> None:
    outbox_factory().close()
    record = outbox_factory.identity_record
    used = record.read_text(encoding="utf-8")
    record.unlink()
    outbox_factory(create=False).close()  # status, activity, dlq list
    assert not record.exists()
    outbox_factory.recreate()
    outbox_factory(StorageSettings(accept_new_outbox=True)).close()
    record.write_text(used, encoding="utf-8")  # the record of the outbox before
    with pytest.raises(OutboxReplaced, match="is not the outbox this node used"):
        outbox_factory(create=False)
    assert record.read_text(encoding="utf-8") == used


def test_the_default_node_id_is_stable_per_host_storage_and_role(outbox_factory: OutboxFactory) -> None:
    first = outbox_factory()
    second = outbox_factory()
    assert first.node_id == second.node_id
    assert first.node_id.split("-")[0]  # the host name leads


def test_an_unknown_storage_url_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="unsupported URL"):
        open_outbox("mysql://localhost/xgate")


# -- waiting for work ------------------------------------------------------------------------------
def _waited(box: Outbox, timeout: float, meanwhile: object = None) -> tuple[float, bool]:
    """Seconds ``box.wait_for_work(timeout)`` took and what it returned, with ``meanwhile()`` run 0.2 s
    into the wait."""
    took: list[tuple[float, bool]] = []

    def wait() -> None:
        started = time.monotonic()
        woken = box.wait_for_work(timeout)
        took.append((time.monotonic() - started, woken))

    thread = threading.Thread(target=wait)
    thread.start()
    if callable(meanwhile):
        time.sleep(0.2)
        meanwhile()
    thread.join(timeout + 5)
    return took[0]


def test_wait_for_work_waits_its_timeout_when_nothing_is_queued(outbox: Outbox) -> None:
    outbox.wait_for_work(1.0)  # PostgreSQL: the first call starts listening (and may return at once)
    took, woken = _waited(outbox, 0.4)
    assert took >= 0.39
    assert woken is False


@pytest.mark.parametrize("queue", ["enqueue", "release", "replay"])
def test_wait_for_work_returns_early_when_rows_are_queued(outbox: Outbox, queue: str) -> None:
    outbox.enqueue([conversion(1)])
    rows = outbox.lease(1, 60)
    if queue == "replay":
        outbox.mark_dead([rows[0].id], rows[0].lease_token, "400")
    outbox.wait_for_work(1.0)
    actions = {
        "enqueue": lambda: outbox.enqueue([conversion(2)]),
        "release": lambda: outbox.release([rows[0].id], rows[0].lease_token),
        "replay": lambda: outbox.replay(),
    }
    took, woken = _waited(outbox, 20.0, actions[queue])
    assert took < 5.0
    assert woken is True


def test_wait_for_work_returns_at_once_when_the_outbox_is_closed(outbox: Outbox) -> None:
    took, woken = _waited(outbox, 20.0, outbox.close)
    assert took < 5.0
    assert woken is True


def test_rows_due_at_the_same_time_are_leased_oldest_first(outbox: Outbox) -> None:
    now = time.time()
    ids = [o.row_id for o in outbox.enqueue([conversion(i) for i in range(300)], now=now)]
    first = outbox.lease(10, 60, now=now + 1)
    second = outbox.lease(10, 60, now=now + 1)
    assert [r.id for r in first + second] == sorted(ids)[:20]
