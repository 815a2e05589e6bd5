"""The backend client: buffered, batched, retried, flushed on close and at exit; each event's fate told."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import orjson
import pytest
from clientkit import WRITE_KEY, LiveGateway, purchase

from xgate.client import AsyncGatewayClient, GatewayClient, TrackResult


def test_events_are_sent_in_batches_and_each_result_reported(live_gateway: LiveGateway) -> None:
    results: list[TrackResult] = []
    with GatewayClient(
        live_gateway.url, WRITE_KEY, batch_size=40, flush_interval=5, on_result=results.append
    ) as c:
        for i in range(100):
            assert c.track(purchase(f"o-{i}"))
        c.track({"event_name": "purchase", "id": "no-identifier"})
        assert c.flush(timeout=30)
        assert c.stats.requests == 3  # 40 + 40 + 21: a full batch goes at once, the last on flush
    assert sorted(live_gateway.queued_ids()) == sorted(f"o-{i}" for i in range(100))
    by_id = {r.event_id: r for r in results}
    assert by_id["o-7"].status == "accepted" and by_id["o-7"].conversion_ids == ("o-7",)
    rejected = by_id["no-identifier"]
    assert rejected.status == "rejected"
    assert [e.field for e in rejected.errors] == ["identifiers"]


def test_tracking_the_same_event_again_is_a_duplicate_not_a_second_conversion(
    live_gateway: LiveGateway,
) -> None:
    with GatewayClient(live_gateway.url, WRITE_KEY) as c:
        first, again = c.send(purchase("o-1"), purchase("o-1"))
    assert (first.status, again.status) == ("accepted", "duplicate")
    assert live_gateway.queued_ids() == ["o-1"]


def test_events_without_an_id_keep_their_tracked_time_so_a_resend_is_deduplicated(
    live_gateway: LiveGateway,
) -> None:
    event = {"event_name": "purchase", "user": {"email": "ada@example.com"}}
    with GatewayClient(live_gateway.url, WRITE_KEY) as c:
        [first] = c.send(event)
        assert "event_timestamp" not in event.get("context", {})  # the caller's dict is left alone
    assert first.status == "accepted" and first.conversion_ids[0].startswith("xg-")


def test_close_flushes_what_is_queued(live_gateway: LiveGateway) -> None:
    c = GatewayClient(live_gateway.url, WRITE_KEY, flush_interval=60)
    for i in range(5):
        c.track(purchase(f"o-{i}"))
    c.close()
    assert len(live_gateway.queued_ids()) == 5
    with pytest.raises(RuntimeError, match="closed"):
        c.track(purchase("late"))


def test_events_tracked_before_the_program_exits_are_flushed_at_exit(live_gateway: LiveGateway) -> None:
    script = textwrap.dedent(
        f"""
        from xgate.client import GatewayClient
        client = GatewayClient({live_gateway.url!r}, {WRITE_KEY!r}, flush_interval=60)
        for i in range(20):
            user = {{"email": "a@example.com"}}
            client.track({{"event_name": "purchase", "id": f"exit-{{i}}", "user": user}})
        # no flush, no close: the interpreter's exit must send them
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert sorted(live_gateway.queued_ids()) == sorted(f"exit-{i}" for i in range(20))


def test_a_bad_write_key_fails_the_events_without_retrying(live_gateway: LiveGateway) -> None:
    errors: list[TrackResult] = []
    with GatewayClient(live_gateway.url, "not-a-key", on_error=errors.append) as c:
        [result] = c.send(purchase("o-1"))
    assert result.status == "failed" and "HTTP 401" in (result.reason or "")
    assert c.stats.requests == 1 and errors == [result]


def test_an_event_that_cannot_be_one_is_refused_at_once() -> None:
    c = GatewayClient("http://127.0.0.1:9", WRITE_KEY)
    try:
        with pytest.raises(ValueError, match="event_name"):
            c.track({"value": 3})
        with pytest.raises(ValueError, match="JSON"):
            c.track({"event_name": "purchase", "custom": {1, 2}})
    finally:
        c.close(timeout=1)
    with pytest.raises(ValueError, match="write_key"):
        GatewayClient(
            "http://127.0.0.1:9", write_key="", transport=httpx.MockTransport(lambda r: httpx.Response(200))
        )


# -- faults, through a scripted transport ---------------------------------------------------------
def accept_all(request: httpx.Request) -> httpx.Response:
    events = orjson.loads(request.content)["events"]
    results = [
        {"index": i, "status": "accepted", "conversions": [{"conversion_id": e["id"]}]}
        for i, e in enumerate(events)
    ]
    return httpx.Response(200, json={"accepted": len(events), "results": results})


class Script:
    """Answers requests from a script of faults, then accepts everything; records batch sizes."""

    def __init__(self, *faults: object) -> None:
        self.faults = list(faults)
        self.sizes: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sizes.append(len(orjson.loads(request.content)["events"]))
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            assert isinstance(fault, httpx.Response)
            return fault
        return accept_all(request)


def test_connection_errors_429_and_5xx_are_retried_until_accepted() -> None:
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"error": "outbox_unavailable", "message": "retry later"}),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.ReadTimeout("slow"),
    )
    c = GatewayClient("http://gw", WRITE_KEY, backoff_base=0.001, transport=httpx.MockTransport(script))
    with c:
        results = c.send(purchase("o-1"), purchase("o-2"))
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert c.stats.retries == 4 and script.sizes == [2, 2, 2, 2, 2]


def test_it_gives_up_after_max_retries_and_says_why() -> None:
    script = Script(*[httpx.Response(502)] * 10)
    errors: list[TrackResult] = []
    with GatewayClient(
        "http://gw",
        WRITE_KEY,
        max_retries=2,
        backoff_base=0.001,
        on_error=errors.append,
        transport=httpx.MockTransport(script),
    ) as c:
        c.track(purchase("o-1"))
        c.flush(timeout=10)
    assert [e.reason for e in errors] == ["gave up after 3 tries: HTTP 502: "]
    assert c.stats.failed == 1


def test_a_batch_too_big_for_the_gateway_is_split() -> None:
    def small_batches_only(request: httpx.Request) -> httpx.Response:
        if len(orjson.loads(request.content)["events"]) > 2:
            return httpx.Response(413, json={"error": "batch_too_large", "message": "at most 2"})
        return accept_all(request)

    with GatewayClient("http://gw", WRITE_KEY, transport=httpx.MockTransport(small_batches_only)) as c:
        results = c.send(*(purchase(f"o-{i}") for i in range(7)))
    assert [r.event_id for r in results] == [f"o-{i}" for i in range(7)]
    assert {r.status for r in results} == {"accepted"}


def test_a_full_queue_drops_and_reports_instead_of_blocking() -> None:
    release = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return accept_all(request)

    errors: list[TrackResult] = []
    c = GatewayClient(
        "http://gw",
        WRITE_KEY,
        max_queue_size=2,
        batch_size=1,
        on_error=errors.append,
        transport=httpx.MockTransport(slow),
    )
    try:
        tracked = [c.track(purchase(f"o-{i}")) for i in range(6)]
        assert tracked.count(False) >= 3 and c.stats.dropped == tracked.count(False)
        assert all("queue is full" in (e.reason or "") for e in errors)
    finally:
        release.set()
        c.close(timeout=10)
    assert c.stats.accepted == tracked.count(True)


# -- asyncio --------------------------------------------------------------------------------------
async def test_the_async_client_batches_and_flushes_on_close(live_gateway: LiveGateway) -> None:
    results: list[TrackResult] = []
    async with AsyncGatewayClient(
        live_gateway.url, WRITE_KEY, batch_size=30, flush_interval=5, on_result=results.append
    ) as c:
        for i in range(70):
            c.track(purchase(f"a-{i}"))
    assert c.stats.requests == 3
    assert sorted(live_gateway.queued_ids()) == sorted(f"a-{i}" for i in range(70))
    assert {r.status for r in results} == {"accepted"}


async def test_the_async_client_retries_like_the_blocking_one() -> None:
    script = Script(
        httpx.ConnectError("refused"), httpx.Response(500), httpx.Response(429, headers={"Retry-After": "0"})
    )
    async with AsyncGatewayClient(
        "http://gw", WRITE_KEY, backoff_base=0.001, transport=httpx.MockTransport(script)
    ) as c:
        [result] = await c.send(purchase("o-1"))
    assert result.status == "accepted" and c.stats.retries == 3


async def test_closing_with_a_gateway_that_never_answers_reports_the_events_failed() -> None:
    errors: list[TrackResult] = []
    script = Script(*[httpx.Response(503)] * 1000)
    c = AsyncGatewayClient(
        "http://gw",
        WRITE_KEY,
        backoff_base=0.2,
        on_error=errors.append,
        transport=httpx.MockTransport(script),
    )
    c.track(purchase("o-1"))
    await c.aclose(timeout=0.5)
    assert [e.status for e in errors] == ["failed"]


def test_flush_sends_a_filling_batch_at_once_without_waiting_for_flush_interval() -> None:
    with GatewayClient(
        "http://gw", WRITE_KEY, flush_interval=60, transport=httpx.MockTransport(accept_all)
    ) as c:
        c.track(purchase("o-1"))
        time.sleep(0.2)  # the thread has taken the event and waits for its batch to fill
        assert c.flush(timeout=10)
    assert c.stats.accepted == 1


async def test_the_async_flush_sends_a_filling_batch_at_once() -> None:
    async with AsyncGatewayClient(
        "http://gw", WRITE_KEY, flush_interval=60, transport=httpx.MockTransport(accept_all)
    ) as c:
        c.track(purchase("o-1"))
        await asyncio.sleep(0.2)
        assert await c.flush(timeout=10)
    assert c.stats.accepted == 1


def test_the_client_imports_none_of_the_gateways_own_packages() -> None:
    probe = (
        "import sys, xgate.client; print(' '.join(sorted(m for m in sys.modules if m.startswith('xgate.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "xgate.client.sync" in loaded
    gateway_side = ("xgate.dispatch", "xgate.collect", "xgate.outbox", "xgate.x")
    assert [m for m in loaded if m.startswith(gateway_side)] == []
