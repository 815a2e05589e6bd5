"""The dispatcher delivering from a real outbox to the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx
from tests.dispatch.test_dispatcher import config

from xgate.config import Config, Destination
from xgate.dispatch import Dispatcher
from xgate.mapping import Mapper
from xgate.outbox import Outbox
from xgate.testing import OutboxFactory, RunningSandbox
from xgate.x import AsyncXClient, Credentials


def make_config(tmp_path: Path, sandbox: RunningSandbox, **dispatch: Any) -> Config:
    return config(tmp_path, x={"api_url": sandbox.url, "timeout_seconds": 1}, **dispatch)


def make_dispatcher(config: Config, box: Outbox, credentials: Credentials) -> Dispatcher:
    def factory(_: Destination) -> AsyncXClient:
        return AsyncXClient(config.x, credentials)

    return Dispatcher(config, box, factory)


def queue(config: Config, box: Outbox, n: int, *, bad: Collection[int] = ()) -> None:
    mapper = Mapper(config)
    conversions = []
    for i in range(n):
        c = mapper.map(
            {"event_name": "purchase", "id": f"ord-{i}", "user": {"email": f"u{i}@example.com"}}
        ).conversions[0]
        if i in bad:  # a conversion X refuses although our validation passed
            c.body["identifiers"] = [{"hashed_email": "not-a-hash"}]
        conversions.append(c)
    box.enqueue(conversions)


def statuses(sandbox: RunningSandbox) -> dict[str, int]:
    by_status: dict[str, int] = httpx.get(f"{sandbox.url}/_sandbox/requests").json()["by_status"]
    return by_status


def delivered(box: Outbox) -> int:
    return box.stats().counts.get(("x-main", "delivered"), 0)


async def deliver_within(dispatcher: Dispatcher, box: Outbox, n: int, seconds: float = 60) -> None:
    """Step until ``n`` rows are delivered (rows waiting on backoff are not 'idle-visible')."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and delivered(box) < n:
        await dispatcher.step()
        await asyncio.sleep(0.02)
    await dispatcher.run_until_idle()


async def test_everything_queued_is_delivered_once(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox)
    box = outbox_factory()
    queue(config, box, 1200)
    await make_dispatcher(config, box, sandbox.credentials).run_until_idle()
    ids = [c["conversion_id"] for c in sandbox.conversions()]
    assert sorted(ids) == sorted(f"ord-{i}" for i in range(1200))
    assert box.stats().counts == {("x-main", "delivered"): 1200}
    assert all(r.debug_id for r in box.rows(limit=10))


async def test_x_refusing_one_conversion_isolates_it_as_a_dead_letter(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox)
    box = outbox_factory()
    queue(config, box, 50, bad={17})
    await make_dispatcher(config, box, sandbox.credentials).run_until_idle()
    assert sorted(c["conversion_id"] for c in sandbox.conversions()) == sorted(
        f"ord-{i}" for i in range(50) if i != 17
    )
    (dead,) = box.rows(state="dead")
    assert dead.conversion_id == "ord-17"
    assert "Hashed_email is not a valid SHA-256 hash" in (dead.last_error or "")


async def test_under_5xx_and_dropped_connections_everything_arrives_exactly_once(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox, batch_size=20)
    box = outbox_factory()
    sandbox.set_faults(seed=3, error_rate=0.3, drop_rate=0.2)
    queue(config, box, 300)
    await deliver_within(make_dispatcher(config, box, sandbox.credentials), box, 300)
    by_status = statuses(sandbox)
    assert by_status.get("500", 0) + by_status.get("503", 0) > 0  # the faults did happen
    assert sorted(c["conversion_id"] for c in sandbox.conversions()) == sorted(f"ord-{i}" for i in range(300))
    assert box.stats().counts == {("x-main", "delivered"): 300}


async def test_timeouts_are_retried_and_nothing_is_lost(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    """A timed-out request may still have reached X: X de-duplicates on conversion_id, nothing is lost."""
    config = make_config(tmp_path, sandbox, batch_size=10)
    box = outbox_factory()
    sandbox.set_faults(seed=5, timeout_rate=0.2, timeout_seconds=1.5)
    queue(config, box, 100)
    await deliver_within(make_dispatcher(config, box, sandbox.credentials), box, 100)
    assert {c["conversion_id"] for c in sandbox.conversions()} == {f"ord-{i}" for i in range(100)}
    assert box.stats().counts == {("x-main", "delivered"): 100}
    assert max(r.attempts for r in box.rows(limit=100)) > 1  # some batches did time out


async def test_a_429_holds_the_pixel_until_x_reset(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox)
    box = outbox_factory()
    queue(config, box, 10)
    dispatcher = make_dispatcher(config, box, sandbox.credentials)
    sandbox.set_faults(rate_limit_rate=1.0, rate_limit_burst=1, rate_limit_reset_seconds=1.5)
    before = time.time()
    await dispatcher.run_until_idle()
    sandbox.set_faults()  # X would answer now, but the reset time has not come
    assert statuses(sandbox) == {"429": 1}
    rows = box.rows(limit=10)
    assert {(r.state, r.attempts) for r in rows} == {("queued", 0)}
    reset = rows[0].next_attempt_at
    assert reset >= before + 1.5
    assert await dispatcher.step() == 0  # nothing is due before X's reset
    await asyncio.sleep(max(0.0, reset - time.time()) + 0.05)
    await dispatcher.run_until_idle()
    assert statuses(sandbox) == {"429": 1, "200": 1}
    assert sorted(c["conversion_id"] for c in sandbox.conversions()) == sorted(f"ord-{i}" for i in range(10))


async def test_dead_letters_from_bad_credentials_are_delivered_after_the_fix_and_a_replay(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox)
    box = outbox_factory()
    queue(config, box, 30)
    wrong = Credentials.from_env(
        env={**sandbox.env, "XGATE_X_CONSUMER_SECRET": "not-the-secret"}  # a typo in the deployment
    )
    await make_dispatcher(config, box, wrong).run_until_idle()
    assert box.stats().counts == {("x-main", "dead"): 30}
    assert "401" in (box.rows(state="dead")[0].last_error or "")
    assert sandbox.conversions() == []

    assert box.replay() == 30
    await make_dispatcher(config, box, sandbox.credentials).run_until_idle()
    assert sorted(c["conversion_id"] for c in sandbox.conversions()) == sorted(f"ord-{i}" for i in range(30))


async def test_rows_held_by_a_crashed_dispatcher_are_delivered_once_the_lease_expires(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox)
    box = outbox_factory()
    queue(config, box, 400)
    crashed = outbox_factory(node_id="crashed")  # another process's connection; it leases and dies
    expires = time.time() + 2.0
    held = crashed.lease(150, lease_seconds=2.0)
    crashed.close()

    dispatcher = make_dispatcher(config, box, sandbox.credentials)
    await dispatcher.run_until_idle()
    assert delivered(box) == 250  # the held rows wait for their lease to expire
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    await dispatcher.run_until_idle()
    assert box.stats().counts == {("x-main", "delivered"): 400}
    assert sorted(c["conversion_id"] for c in sandbox.conversions()) == sorted(f"ord-{i}" for i in range(400))
    assert {r.id for r in held} <= {r.id for r in box.rows(state="delivered", limit=1000)}
