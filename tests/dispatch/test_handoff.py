"""The hand-off between the collector's outbox writer (a thread) and the dispatcher (an event loop)."""

from __future__ import annotations

import asyncio
import threading
import time

from xgate.dispatch.handoff import Handoff
from xgate.outbox import LeasedRow


def rows(*ids: int, token: str = "tok") -> list[LeasedRow]:
    return [LeasedRow(i, "x-main", "o8z6j", "o87ne", f"c{i}", b"{}", 0, token, 0.0) for i in ids]


async def test_nothing_is_handed_over_before_the_dispatcher_opens_or_after_it_closes() -> None:
    handoff = Handoff(capacity=10, lease_seconds=60)
    assert handoff.terms() is None
    assert handoff.offer(rows(1)) is False
    handoff.open()
    terms = handoff.terms()
    assert terms is not None and (terms.token, terms.seconds, terms.limit) == (handoff.token, 60, 10)
    handoff.close()
    assert handoff.terms() is None
    assert handoff.offer(rows(2)) is False


async def test_room_is_the_capacity_less_the_rows_waiting() -> None:
    handoff = Handoff(capacity=5, lease_seconds=60)
    handoff.open()
    assert handoff.offer(rows(1, 2, 3))
    terms = handoff.terms()
    assert terms is not None and terms.limit == 2
    handoff.offer(rows(4, 5))
    assert handoff.terms() is None  # full: new rows stay queued in the outbox


async def test_rows_are_taken_oldest_first_up_to_the_limit() -> None:
    handoff = Handoff(capacity=10, lease_seconds=60)
    handoff.open()
    handoff.offer(rows(1, 2, 3))
    handoff.offer(rows(4, 5))
    assert [r.id for r in handoff.take(4)] == [1, 2, 3, 4]
    assert handoff.pending == 1
    assert [r.id for r in handoff.take(4)] == [5]
    assert handoff.take(4) == []


async def test_rows_that_waited_half_their_lease_are_left_to_expire_not_sent() -> None:
    handoff = Handoff(capacity=10, lease_seconds=2)
    handoff.open()
    handoff.offer(rows(1, 2))
    await asyncio.sleep(1.1)  # past half of 2 s; row 3, offered now, has a second to spare
    handoff.offer(rows(3))
    assert [r.id for r in handoff.take(10)] == [3]
    assert handoff.expired == 2
    assert handoff.pending == 0


async def test_closing_returns_the_rows_still_waiting() -> None:
    handoff = Handoff(capacity=10, lease_seconds=60)
    handoff.open()
    handoff.offer(rows(1, 2, 3))
    handoff.take(1)
    assert [r.id for r in handoff.close()] == [2, 3]
    assert handoff.pending == 0


async def test_a_waiting_dispatcher_wakes_once_the_rows_it_waits_for_arrive_from_another_thread() -> None:
    handoff = Handoff(capacity=10, lease_seconds=60)
    handoff.open()

    def writer() -> None:
        handoff.offer(rows(1))
        time.sleep(0.05)
        handoff.offer(rows(2, 3))

    waiting = asyncio.create_task(handoff.wait(30, rows=3))
    threading.Thread(target=writer).start()
    await asyncio.wait_for(waiting, 10)  # long before the 30 s: woken by the second offer
    assert handoff.pending == 3


async def test_wake_ends_a_wait_at_once() -> None:
    handoff = Handoff(capacity=10, lease_seconds=60)
    handoff.open()
    waiting = asyncio.create_task(handoff.wait(30))
    await asyncio.sleep(0.01)
    handoff.wake()
    await asyncio.wait_for(waiting, 10)
    assert handoff.pending == 0
