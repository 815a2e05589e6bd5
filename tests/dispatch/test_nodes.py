"""Several nodes delivering from one outbox: X's rate limit and its pauses are theirs together, and
housekeeping runs on one of them at a time. Each node is a dispatcher with its own outbox connections and
node id, as another process or machine on the same database would be."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from tests.dispatch.test_dispatch_sandbox import make_config, make_dispatcher
from tests.dispatch.test_dispatcher import ScriptedX, ok

from xgate.config import Config, Destination, parse_config
from xgate.conversion import MappedConversion
from xgate.dispatch import Dispatcher
from xgate.mapping import Mapper
from xgate.outbox import Outbox
from xgate.testing import OutboxFactory, RunningSandbox
from xgate.x import SendResult


def queue_orders(config: Config, box: Outbox, ids: range) -> None:
    mapper = Mapper(config)
    box.enqueue(
        [
            mapper.map(
                {"event_name": "purchase", "id": f"ord-{i}", "user": {"email": f"u{i}@example.com"}}
            ).conversions[0]
            for i in ids
        ]
    )


def arrivals(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = httpx.get(f"{sandbox.url}/_sandbox/requests").json()["log"]
    return log


async def test_two_nodes_pause_together_on_one_pixels_429_until_x_reset(
    tmp_path: Path, outbox_factory: OutboxFactory, sandbox: RunningSandbox
) -> None:
    config = make_config(tmp_path, sandbox)
    box_a, box_b = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    node_a = make_dispatcher(config, box_a, sandbox.credentials)
    node_b = make_dispatcher(config, box_b, sandbox.credentials)
    sandbox.set_faults(rate_limit_rate=1.0, rate_limit_burst=1, rate_limit_reset_seconds=2)
    queue_orders(config, box_a, range(10))
    await node_a.run_until_idle()  # node a meets X's 429
    sandbox.set_faults()  # X would answer now, but its reset time has not come
    (limited,) = arrivals(sandbox)
    assert limited["status"] == 429

    queue_orders(config, box_b, range(10, 20))  # new conversions, which node b leases
    await node_b.run_until_idle()
    assert len(arrivals(sandbox)) == 1, "node b sent to the pixel node a saw paused"
    rows = box_b.rows(limit=100)
    assert {(r.state, r.attempts) for r in rows} == {("queued", 0)}
    (reset,) = {r.next_attempt_at for r in rows}  # both nodes' rows wait for the one reset
    assert reset >= limited["at"] + 2

    await asyncio.sleep(max(0.0, reset - time.time()) + 0.05)
    await asyncio.gather(node_a.run_until_idle(), node_b.run_until_idle())
    log = arrivals(sandbox)
    assert [r["status"] for r in log] == [429] + [200] * (len(log) - 1)
    assert all(r["at"] >= reset for r in log[1:])
    assert sorted(c["conversion_id"] for c in sandbox.conversions()) == sorted(f"ord-{i}" for i in range(20))


class TimedX(ScriptedX):
    """Answers 200 at once and notes when each request was sent (all nodes share one)."""

    def __init__(self) -> None:
        super().__init__(ok)
        self.sent_at: list[float] = []

    async def send(self, pixel_id: str, conversions: Sequence[dict[str, Any]]) -> SendResult:
        self.sent_at.append(time.monotonic())
        return await super().send(pixel_id, conversions)


def one_per_request_config(tmp_path: Path, requests: int, window: int) -> Config:
    return parse_config(
        {
            "x": {"rate_limit_requests": requests, "rate_limit_window_seconds": window},
            "storage": {"url": f"sqlite:///{tmp_path}/o.db"},
            "dispatch": {"batch_size": 1, "linger_ms": 0},
            "destinations": [
                {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
            ],
        }
    )


def conversion(i: int) -> MappedConversion:
    return MappedConversion(
        "x-main", "o8z6j", "o87ne", f"c{i}", {"conversion_id": f"c{i}"}, frozenset({"email"}), "purchase"
    )


async def test_three_nodes_together_stay_within_x_requests_per_window(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    config = one_per_request_config(tmp_path, requests=40, window=1)
    x = TimedX()

    def factory(_: Destination) -> TimedX:
        return x

    boxes = [outbox_factory(node_id=f"node-{i}") for i in range(3)]
    boxes[0].enqueue([conversion(i) for i in range(60)])
    nodes = [Dispatcher(config, box, factory, rng=random.Random(i)) for i, box in enumerate(boxes)]
    await asyncio.gather(*(node.run_until_idle() for node in nodes))
    assert boxes[0].stats().counts == {("x-main", "delivered"): 60}
    assert len(x.sent_at) == 60
    # alone, each node would send 4 at once and 18 a second: 60 within the first second
    busiest = max(sum(1 for t in x.sent_at if start <= t < start + 1.0) for start in x.sent_at)
    assert busiest <= 40


class CountingPurges:
    """An outbox that counts its purges; everything else goes straight through."""

    def __init__(self, inner: Outbox) -> None:
        self.inner, self.purges = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def purge(self, *, now: float | None = None) -> int:
        self.purges += 1
        return self.inner.purge(now=now)


async def test_housekeeping_runs_on_one_node_at_a_time(tmp_path: Path, outbox_factory: OutboxFactory) -> None:
    config = one_per_request_config(tmp_path, requests=60000, window=900)
    boxes = [CountingPurges(outbox_factory(node_id=f"node-{i}")) for i in range(3)]
    nodes = [Dispatcher(config, box, lambda _: ScriptedX(ok)) for box in boxes]  # type: ignore[arg-type]
    for node in nodes:  # each starts its first round: the time to purge has come for all three
        await node.step()
    assert [box.purges for box in boxes] == [1, 0, 0]
    assert boxes[1].claim_duty("housekeeping", 600) is False  # node 0 holds it
