"""The dispatcher's decisions, with a scripted stand-in for X's answers and a real SQLite outbox.

(Delivery over real HTTP against the sandbox is pinned down in test_dispatch_sandbox.py.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from xgate.collect.writer import GroupWriter
from xgate.config import Config, Destination, parse_config
from xgate.conversion import MappedConversion
from xgate.dispatch import Dispatcher, backoff_delay
from xgate.outbox import LeasedRow, Outbox, SQLiteOutbox
from xgate.testing import OutboxFactory
from xgate.x.result import RateLimit, SendResult, XError

Answer = Callable[[Sequence[dict[str, Any]]], SendResult]


class ScriptedX:
    """Answers each send with the next scripted answer (the last one repeats); records every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[list[str]] = []

    async def send(self, pixel_id: str, conversions: Sequence[dict[str, Any]]) -> SendResult:
        decoded = [orjson.loads(orjson.dumps(c)) for c in conversions]  # stored bodies arrive pre-encoded
        self.requests.append([c["conversion_id"] for c in decoded])
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(decoded)


class GatedX(ScriptedX):
    """Holds each send until ``answer`` is set; ``entered`` says a send is waiting."""

    def __init__(self, *answers: Answer) -> None:
        super().__init__(*answers)
        self.entered, self.answer = asyncio.Event(), asyncio.Event()

    async def send(self, pixel_id: str, conversions: Sequence[dict[str, Any]]) -> SendResult:
        self.entered.set()
        await self.answer.wait()
        return await super().send(pixel_id, conversions)


def ok(conversions: Sequence[dict[str, Any]]) -> SendResult:
    return SendResult(
        "delivered", 200, len(conversions), debug_id="dbg", conversions_processed=len(conversions)
    )


def unavailable(conversions: Sequence[dict[str, Any]]) -> SendResult:
    return SendResult("retry", 503, len(conversions), reason="HTTP 503", failure="server_error")


def rejects_bad(conversions: Sequence[dict[str, Any]]) -> SendResult:
    """Like X: one bad conversion fails the whole request with a 400."""
    if any(c["conversion_id"].startswith("bad") for c in conversions):
        return SendResult(
            "split" if len(conversions) > 1 else "permanent",
            400,
            len(conversions),
            errors=(XError("INVALID_PARAMETER", "Hashed_email is not a valid SHA-256 hash", "hashed_email"),),
            failure="invalid",
        )
    return ok(conversions)


def config(tmp_path: Path, *, x: dict[str, Any] | None = None, **dispatch: Any) -> Config:
    """One destination (x-main, pixel o8z6j, purchases) over ``tmp_path``/o.db, quick retries; ``x``: the
    ``[x]`` table (test_dispatch_sandbox points it at the sandbox)."""
    return parse_config(
        {
            **({"x": x} if x is not None else {}),
            "storage": {"url": f"sqlite:///{tmp_path}/o.db"},
            "dispatch": {
                "linger_ms": 0,
                "backoff_base_seconds": 0.01,
                "backoff_max_seconds": 0.05,
                **dispatch,
            },
            "destinations": [
                {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
            ],
        }
    )


def queue(box: Outbox, *ids: str) -> None:
    box.enqueue(
        [
            MappedConversion(
                "x-main", "o8z6j", "o87ne", i, {"conversion_id": i}, frozenset({"email"}), "purchase"
            )
            for i in ids
        ]
    )


def states(box: Outbox) -> dict[str, str]:
    return {r.conversion_id: r.state for r in box.rows(limit=10_000)}


def dispatcher(cfg: Config, box: Outbox, x: ScriptedX) -> Dispatcher:
    def factory(_: Destination) -> ScriptedX:
        return x

    return Dispatcher(cfg, box, factory, rng=random.Random(7))


async def test_due_rows_are_sent_in_batches_of_x_limit_and_marked_delivered(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path, batch_size=500)
    box = outbox_factory()
    queue(box, *(f"c{i}" for i in range(1200)))
    x = ScriptedX(ok)
    await dispatcher(cfg, box, x).run_until_idle()
    assert sorted(len(r) for r in x.requests) == [200, 500, 500]
    assert set(states(box).values()) == {"delivered"}
    assert {r.debug_id for r in box.rows(limit=5)} == {"dbg"}


async def test_a_bad_conversion_is_isolated_and_the_rest_delivered(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path)
    box = outbox_factory()
    queue(box, *(f"c{i}" for i in range(20)), "bad-1", *(f"d{i}" for i in range(20)))
    await dispatcher(cfg, box, ScriptedX(rejects_bad)).run_until_idle()
    final = states(box)
    assert final.pop("bad-1") == "dead"
    assert set(final.values()) == {"delivered"}
    dead = box.rows(state="dead")[0]
    assert "Hashed_email is not a valid SHA-256 hash" in (dead.last_error or "")


async def test_transient_failures_are_retried_with_backoff_until_delivered(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path)
    box = outbox_factory()
    queue(box, "c1")
    x = ScriptedX(unavailable, unavailable, ok)
    d = dispatcher(cfg, box, x)
    deadline = time.monotonic() + 10
    while states(box)["c1"] != "delivered" and time.monotonic() < deadline:
        await d.step()
        time.sleep(0.02)
    assert len(x.requests) == 3
    (row,) = box.rows()
    assert (row.state, row.attempts) == ("delivered", 3)


async def test_a_429_pauses_the_pixel_until_x_reset_without_counting_an_attempt(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path)
    box = outbox_factory()
    queue(box, "c1")
    reset = time.time() + 3600

    def limited(conversions: Sequence[dict[str, Any]]) -> SendResult:
        return SendResult(
            "rate_limited",
            429,
            len(conversions),
            retry_at=reset,
            reason="TOO_MANY_REQUESTS",
            failure="rate_limited",
        )

    await dispatcher(cfg, box, ScriptedX(limited)).run_until_idle()
    (row,) = box.rows()
    assert (row.state, row.attempts) == ("queued", 0)
    assert row.next_attempt_at == reset


async def test_unauthorized_is_a_dead_letter_at_once_and_replay_sends_it_again(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path)
    box = outbox_factory()
    queue(box, "c1", "c2")

    def unauthorized(conversions: Sequence[dict[str, Any]]) -> SendResult:
        return SendResult(
            "permanent",
            401,
            len(conversions),
            errors=(XError("UNAUTHORIZED", "bad signature"),),
            failure="auth",
        )

    x = ScriptedX(unauthorized, ok)
    await dispatcher(cfg, box, x).run_until_idle()
    assert set(states(box).values()) == {"dead"}
    assert len(x.requests) == 1  # not bisected: no single conversion is to blame for a 401
    assert box.replay() == 2
    await dispatcher(cfg, box, x).run_until_idle()
    assert set(states(box).values()) == {"delivered"}


def test_backoff_grows_exponentially_within_the_cap() -> None:
    rng = random.Random(1)
    for attempts in range(12):
        delay = backoff_delay(attempts, 0.5, 60.0, rng)
        assert 0 <= delay <= min(60.0, 0.5 * 2**attempts)
    assert max(backoff_delay(20, 0.5, 60.0, rng) for _ in range(200)) > 30


async def test_x_saying_no_requests_remain_holds_that_pixel_and_not_the_others(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path, concurrency=1)
    box = outbox_factory()
    reset = time.time() + 3600

    def last_request_of_window(conversions: Sequence[dict[str, Any]]) -> SendResult:
        return SendResult(
            "delivered", 200, len(conversions), debug_id="dbg", rate_limit=RateLimit(100, 0, reset, "account")
        )

    queue(box, "c1")
    x = ScriptedX(last_request_of_window, ok)
    d = dispatcher(cfg, box, x)
    await d.run_until_idle()
    queue(box, "c2")
    box.enqueue(
        [MappedConversion("x-main", "p2", "o87ne", "d1", {"conversion_id": "d1"}, frozenset(), "purchase")]
    )
    await d.run_until_idle()
    assert x.requests == [["c1"], ["d1"]]
    assert states(box) == {"c1": "delivered", "c2": "queued", "d1": "delivered"}
    assert box.rows(state="queued")[0].next_attempt_at == reset


async def test_stopping_finishes_the_batch_in_flight_and_hands_back_the_rest(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path, concurrency=1, batch_size=2)
    box = outbox_factory()
    queue(box, "c1")
    box.enqueue(
        [MappedConversion("x-main", "p2", "o87ne", "d1", {"conversion_id": "d1"}, frozenset(), "purchase")]
    )
    x = GatedX(ok)
    d = dispatcher(cfg, box, x)
    run = asyncio.create_task(d.run_forever())
    await x.entered.wait()
    await d.stop()
    x.answer.set()
    await run
    # one lease took both pixels' rows; p2's batch had not gone out and is back in the queue
    assert states(box) == {"c1": "delivered", "d1": "queued"}


def conversions(*ids: str) -> list[MappedConversion]:
    return [
        MappedConversion(
            "x-main", "o8z6j", "o87ne", i, {"conversion_id": i}, frozenset({"email"}), "purchase"
        )
        for i in ids
    ]


class CountingLeases(SQLiteOutbox):
    """Counts the rows the dispatcher had to lease from the queue itself."""

    leased_from_queue = 0

    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        rows = super().lease(limit, lease_seconds, now=now)
        self.leased_from_queue += len(rows)
        return rows


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_rows_the_collector_hands_over_are_sent_without_a_lease_from_the_queue(tmp_path: Path) -> None:
    cfg = config(tmp_path, batch_size=50)
    box = CountingLeases(tmp_path / "o.db")
    x = ScriptedX(ok)
    d = dispatcher(cfg, box, x)
    writer = GroupWriter(box, handoff=d.handoff)
    run = asyncio.create_task(d.run_forever())
    await until(lambda: d.handoff.terms() is not None)  # the dispatcher is taking
    outcomes = await writer.enqueue(conversions(*(f"c{i}" for i in range(120))))
    assert {o.status for o in outcomes} == {"queued"}
    await until(lambda: set(states(box).values()) == {"delivered"})
    await d.stop()
    await run
    writer.stop()
    assert box.leased_from_queue == 0
    assert sorted(c for r in x.requests for c in r) == sorted(f"c{i}" for i in range(120))


async def test_without_room_in_the_handoff_new_rows_wait_queued_for_the_next_lease(tmp_path: Path) -> None:
    cfg = config(tmp_path, concurrency=1, batch_size=10)  # room for 20 rows waiting
    box = CountingLeases(tmp_path / "o.db")
    d = dispatcher(cfg, box, ScriptedX(ok))
    d.handoff.open()
    writer = GroupWriter(box, handoff=d.handoff)
    await writer.enqueue(conversions(*(f"c{i}" for i in range(25))))
    writer.stop()
    assert d.handoff.pending == 20
    assert sorted(states(box).values()) == ["leased"] * 20 + ["queued"] * 5
    await d.run_until_idle()
    assert set(states(box).values()) == {"delivered"}
    assert box.leased_from_queue == 5


async def test_stopping_hands_back_the_rows_still_waiting_in_the_handoff(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    cfg = config(tmp_path, concurrency=1, batch_size=2)
    box = outbox_factory()
    x = GatedX(ok)
    d = dispatcher(cfg, box, x)
    writer = GroupWriter(box, handoff=d.handoff)
    run = asyncio.create_task(d.run_forever())
    await until(lambda: d.handoff.terms() is not None)
    await writer.enqueue(conversions("c1", "c2", "c3", "c4", "c5"))
    await x.entered.wait()  # the first batch is in flight, the other rows wait in the handoff
    await d.stop()
    x.answer.set()
    await run
    writer.stop()
    # the one batch in flight (the handed-over rows, or a row the idle wake-up leased first) is
    # delivered; every other row is back in the queue, not held by a lease
    (in_flight,) = x.requests
    assert 1 <= len(in_flight) <= 2  # batch_size 2
    assert states(box) == {
        c: "delivered" if c in in_flight else "queued" for c in ("c1", "c2", "c3", "c4", "c5")
    }
    # and nothing more is handed over to a dispatcher that stopped
    assert d.handoff.terms() is None


async def test_each_settled_batch_is_logged_with_its_destination_outcome_and_x_debug_id(
    tmp_path: Path, outbox_factory: OutboxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    box = outbox_factory()
    queue(box, "c1", "c2")
    with caplog.at_level(logging.INFO, logger="xgate.dispatch"):
        await dispatcher(config(tmp_path), box, ScriptedX(ok)).run_until_idle()
    (settled,) = [r for r in caplog.records if r.getMessage() == "batch settled"]
    fields = settled.fields  # type: ignore[attr-defined]
    assert fields["destination"] == "x-main" and fields["pixel_id"] == "o8z6j"
    assert (fields["conversions"], fields["outcome"], fields["status"], fields["debug_id"]) == (
        2,
        "delivered",
        200,
        "dbg",
    )


class LeaseCalls:
    """An outbox that counts the dispatcher's calls to ``lease`` (everything else passes through)."""

    def __init__(self, inner: Outbox) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def lease(self, limit: int, lease_seconds: float, *, now: float | None = None) -> list[LeasedRow]:
        self.calls += 1
        return self.inner.lease(limit, lease_seconds, now=now)


async def test_an_idle_dispatcher_sends_a_row_queued_elsewhere_without_waiting_for_its_poll(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    """A poll every 60 s: only the outbox's wake-up (``wait_for_work``) sends the row sooner. On
    PostgreSQL another node queues it (NOTIFY); on SQLite this process, outside the hand-off."""
    poll_seconds = 60
    cfg = config(tmp_path, poll_interval_ms=poll_seconds * 1000)
    box = LeaseCalls(outbox_factory(node_id="dispatching"))
    elsewhere = outbox_factory(node_id="ingesting") if outbox_factory.engine == "postgresql" else box.inner
    x = ScriptedX(ok)
    d = dispatcher(cfg, box, x)  # type: ignore[arg-type]  # an Outbox by delegation
    run = asyncio.create_task(d.run_forever())
    try:
        await until(lambda: box.calls >= 1)  # found nothing: idle, next poll in a minute
        queued_at = time.monotonic()
        await asyncio.to_thread(queue, elsewhere, "c1")
        await until(lambda: x.requests == [["c1"]], timeout=poll_seconds / 3)
        assert time.monotonic() - queued_at < poll_seconds / 3
    finally:
        await d.stop()
        await run
    assert states(box.inner) == {"c1": "delivered"}
