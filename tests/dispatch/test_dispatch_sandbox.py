"""The dispatcher delivering from a real outbox to the sandbox over real HTTP."""

from __future__ import annotations

from pathlib import Path

from xgate.config import Config, Destination, parse_config
from xgate.dispatch import Dispatcher
from xgate.mapping import Mapper
from xgate.outbox import SQLiteOutbox
from xgate.testing import RunningSandbox
from xgate.x import AsyncXClient


def setup(tmp_path: Path, sandbox: RunningSandbox) -> tuple[Config, SQLiteOutbox, Dispatcher]:
    config = parse_config(
        {
            "x": {"api_url": sandbox.url, "timeout_seconds": 1},
            "storage": {"url": f"sqlite:///{tmp_path}/o.db"},
            "dispatch": {"linger_ms": 0, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
            "destinations": [
                {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
            ],
        }
    )
    box = SQLiteOutbox(tmp_path / "o.db")

    def factory(_: Destination) -> AsyncXClient:
        return AsyncXClient(config.x, sandbox.credentials)

    return config, box, Dispatcher(config, box, factory)


def queue(config: Config, box: SQLiteOutbox, n: int, *, bad: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    mapper = Mapper(config)
    conversions = []
    for i in range(n):
        c = mapper.map(
            {"event_name": "purchase", "id": f"ord-{i}", "user": {"email": f"u{i}@example.com"}}
        ).conversions[0]
        if i in bad:  # a conversion X refuses although our validation passed (e.g. an id X does not know)
            c.body["identifiers"] = [{"hashed_email": "not-a-hash"}]
        conversions.append(c)
    box.enqueue(conversions)


async def test_everything_queued_is_delivered_once(tmp_path: Path, sandbox: RunningSandbox) -> None:
    config, box, dispatcher = setup(tmp_path, sandbox)
    queue(config, box, 1200)
    await dispatcher.run_until_idle()
    ids = [c["conversion_id"] for c in sandbox.conversions()]
    assert sorted(ids) == sorted(f"ord-{i}" for i in range(1200))
    assert {r.state for r in box.rows(limit=2000)} == {"delivered"}


async def test_x_refusing_one_conversion_isolates_it_as_a_dead_letter(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    config, box, dispatcher = setup(tmp_path, sandbox)
    queue(config, box, 50, bad={17})
    await dispatcher.run_until_idle()
    assert len(sandbox.conversions()) == 49
    (dead,) = box.rows(state="dead")
    assert dead.conversion_id == "ord-17"
    assert "Hashed_email is not a valid SHA-256 hash" in (dead.last_error or "")


async def test_under_5xx_and_dropped_connections_everything_still_arrives(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    import asyncio
    import time

    config, box, dispatcher = setup(tmp_path, sandbox)
    sandbox.set_faults(seed=3, error_rate=0.3, drop_rate=0.2)
    queue(config, box, 300)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and box.stats().counts.get(("x-main", "delivered"), 0) < 300:
        await dispatcher.step()
        await asyncio.sleep(0.02)
    await dispatcher.run_until_idle()
    assert {c["conversion_id"] for c in sandbox.conversions()} == {f"ord-{i}" for i in range(300)}
    assert box.stats().counts == {("x-main", "delivered"): 300}
