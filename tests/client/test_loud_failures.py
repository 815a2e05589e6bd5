"""The backend client is loud: what it could not send is logged, exit never hangs, a fork keeps sending."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest
from clientkit import WRITE_KEY, LiveGateway, purchase
from test_gateway_client import Script, accept_all

from xgate.client import AsyncGatewayClient, GatewayClient, TrackResult
from xgate.testing import free_port

PII = ("ada@example.com", "+33 6 12 34 56 78", "33612345678")


def client_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "xgate.client" and r.levelno >= logging.WARNING
    ]


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    """Run a Python program in a fresh interpreter; 20 s is far above what it needs and far below the ~30 s
    an exit flush used to wait, so a hang fails the test rather than passing slowly."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=20
    )


# -- exit -----------------------------------------------------------------------------------------
def test_the_readme_snippet_with_no_gateway_exits_soon_and_warns_what_was_not_sent() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run_script(
        f"""
        from xgate.client import GatewayClient
        client = GatewayClient({url!r}, {WRITE_KEY!r})
        client.track({{"event_name": "purchase", "id": "ord-1", "value": 42.5, "currency": "EUR",
                      "user": {{"email": "ada@example.com", "phone": "+33 6 12 34 56 78"}}}})
        """
    )
    assert done.returncode == 0, done.stderr
    # the default logging set-up (none) still shows a WARNING on stderr
    assert f"1 event not sent to {url}" in done.stderr
    assert "shutdown_timeout" in done.stderr and "ConnectError" in done.stderr
    assert not any(p in done.stderr for p in PII)


def test_close_gives_up_after_its_timeout_and_reports_what_is_left_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[TrackResult] = []
    script = Script(*[httpx.Response(503, json={"message": "outbox unavailable"})] * 1000)
    c = GatewayClient(
        "http://gw",
        WRITE_KEY,
        backoff_base=0.05,
        shutdown_timeout=0.3,
        on_error=errors.append,
        transport=httpx.MockTransport(script),
    )
    for i in range(3):
        c.track(purchase(f"o-{i}"))
    c.close()
    assert [(e.event_id, e.status) for e in errors] == [
        ("o-0", "failed"),
        ("o-1", "failed"),
        ("o-2", "failed"),
    ]
    assert "closed before" in (errors[0].reason or "")
    [warning] = client_warnings(caplog)  # one summary, not one line per batch
    assert warning.startswith("3 events not sent to http://gw: given up 0.3s after close")
    assert "HTTP 503: outbox unavailable" in warning


def test_a_request_left_unanswered_does_not_hold_close_and_is_counted_apart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    def never_answers(request: httpx.Request) -> httpx.Response:
        release.wait(30)
        return accept_all(request)

    c = GatewayClient("http://gw", WRITE_KEY, transport=httpx.MockTransport(never_answers))
    try:
        c.track(purchase("o-1"))
        c.close(timeout=0.2)  # returns although the request hangs (within the 1 s grace)
        [warning] = client_warnings(caplog)
        assert "1 event not sent" in warning
        assert "1 event in a request still unanswered (the gateway may have them)" in warning
    finally:
        release.set()


def test_shutdown_timeout_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        GatewayClient("http://gw", WRITE_KEY, shutdown_timeout=-1)


# -- logging --------------------------------------------------------------------------------------
def test_rejected_events_are_logged_with_the_gateways_reasons_but_not_their_content(
    live_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[TrackResult] = []
    with GatewayClient(live_gateway.url, WRITE_KEY, on_error=errors.append) as c:
        c.track(purchase("o-1", currency="EURO", user={"email": PII[0], "phone": PII[1]}))
        assert c.flush(timeout=10)
    [warning] = client_warnings(caplog)
    assert (
        warning
        == "the gateway rejected event purchase o-1: price_currency: 'EURO' is not an ISO 4217 currency code"
    )
    assert [e.event_id for e in errors] == ["o-1"]  # on_error is called as well as the log


def test_an_e_mail_or_phone_sent_as_the_events_id_or_name_is_not_logged(
    live_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway refuses an e-mail as a conversion id; the warning saying so must not print it."""
    caplog.set_level(logging.INFO, logger="xgate.client")
    with GatewayClient(live_gateway.url, WRITE_KEY) as c:
        c.track(purchase(PII[0], user={"email": PII[0]}))
        c.track({**purchase("o-2", user={"email": PII[0]}), "event_name": PII[1]})
        assert c.flush(timeout=10)
    logged = [r.getMessage() for r in caplog.records if r.name == "xgate.client"]
    assert any(
        "the gateway rejected event purchase [redacted]: conversion_id: holds an e-mail" in m for m in logged
    )
    assert any("the gateway skipped event [redacted] o-2" in m for m in logged)
    assert not any(p in m for p in PII for m in logged)


def test_a_batch_given_up_after_its_retries_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="xgate.client")
    script = Script(*[httpx.Response(502)] * 10)
    with GatewayClient(
        "http://gw", WRITE_KEY, max_retries=2, backoff_base=0.001, transport=httpx.MockTransport(script)
    ) as c:
        c.track(purchase("o-1"))
        c.track(purchase("o-2"))
        assert c.flush(timeout=10)
    assert client_warnings(caplog) == [
        "2 events not sent (purchase o-1, purchase o-2): gave up after 3 tries: HTTP 502: "
    ]
    retries = [r for r in caplog.records if r.name == "xgate.client" and r.levelno == logging.INFO]
    assert len(retries) == 2 and "HTTP 502" in retries[0].getMessage()


def test_drops_from_a_full_queue_are_logged_sparsely_not_once_each(caplog: pytest.LogCaptureFixture) -> None:
    requested, release = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        requested.set()
        release.wait(10)
        return accept_all(request)

    c = GatewayClient(
        "http://gw", WRITE_KEY, max_queue_size=1, batch_size=1, transport=httpx.MockTransport(slow)
    )
    try:
        c.track(purchase("o-0"))
        assert requested.wait(10)  # o-0 is in flight
        tracked = [c.track(purchase(f"o-{i}")) for i in range(1, 7)]
        assert tracked == [True] + [False] * 5  # o-1 waits in the queue; five are dropped
    finally:
        release.set()
        c.close(timeout=10)
    assert [w.rsplit("; ", 1)[1] for w in client_warnings(caplog)] == [
        "1 dropped so far",
        "2 dropped so far",
        "4 dropped so far",
    ]
    assert client_warnings(caplog)[0].startswith("event purchase o-2 dropped: the client's queue is full")


def test_send_returns_its_results_instead_of_logging_them(
    live_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with GatewayClient(live_gateway.url, WRITE_KEY) as c:
        [result] = c.send({"event_name": "purchase", "id": "o-1"})
    assert result.status == "rejected"
    assert client_warnings(caplog) == []


# -- fork -----------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="os.fork")
def test_a_forked_child_sends_its_own_events_and_leaves_the_parents_to_the_parent(
    live_gateway: LiveGateway,
) -> None:
    done = run_script(
        f"""
        import os, sys
        from xgate.client import GatewayClient

        def told(result):
            print(os.getpid(), result.event_id, result.status, flush=True)

        client = GatewayClient({live_gateway.url!r}, {WRITE_KEY!r}, flush_interval=60, on_result=told)
        client.track({{"event_name": "purchase", "id": "parent-1", "user": {{"email": "p@example.com"}}}})
        assert client.flush(timeout=10)
        # queued in the parent (its batch waits up to flush_interval) when the fork happens
        client.track({{"event_name": "purchase", "id": "parent-2", "user": {{"email": "p@example.com"}}}})
        pid = os.fork()
        if pid == 0:
            client.track({{"event_name": "purchase", "id": "child-1", "user": {{"email": "c@example.com"}}}})
            sys.exit(0)  # the child's exit flush sends it
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        print("parent", os.getpid(), flush=True)
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "child exit 0" in lines
    [parent] = [line.split()[1] for line in lines if line.startswith("parent ")]
    told = {tuple(line.split()[1:]): line.split()[0] for line in lines if line.split()[0].isdigit()}
    assert told[("parent-1", "accepted")] == parent
    assert told[("parent-2", "accepted")] == parent
    assert told[("child-1", "accepted")] != parent
    assert len(told) == 3  # the child did not send the parent's queued event again
    assert sorted(live_gateway.queued_ids()) == ["child-1", "parent-1", "parent-2"]


# -- asyncio --------------------------------------------------------------------------------------
async def test_the_async_client_gives_up_after_its_shutdown_timeout_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[TrackResult] = []
    c = AsyncGatewayClient(
        f"http://127.0.0.1:{free_port()}", WRITE_KEY, shutdown_timeout=0.3, on_error=errors.append
    )
    c.track(purchase("o-1"))
    c.track(purchase("o-2"))
    await asyncio.wait_for(c.aclose(), 10)
    assert [e.status for e in errors] == ["failed", "failed"]
    [warning] = client_warnings(caplog)
    assert warning.startswith("2 events not sent to http://127.0.0.1:") and "ConnectError" in warning


async def test_the_async_client_cancels_a_hanging_request_at_close_and_reports_its_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def hangs(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    errors: list[TrackResult] = []
    c = AsyncGatewayClient(
        "http://gw", WRITE_KEY, on_error=errors.append, transport=httpx.MockTransport(hangs)
    )
    c.track(purchase("o-1"))
    await asyncio.wait_for(c.aclose(timeout=0.2), 10)
    assert [(e.event_id, e.status) for e in errors] == [("o-1", "failed")]
    [warning] = client_warnings(caplog)
    assert warning.startswith("1 event not sent to http://gw") and "no answer from the gateway yet" in warning


async def test_the_async_client_logs_rejected_events(
    live_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncGatewayClient(live_gateway.url, WRITE_KEY) as c:
        c.track({"event_name": "purchase", "id": "a-1"})
    assert client_warnings(caplog) == [
        "the gateway rejected event purchase a-1: identifiers: at least one user identifier must be provided"
    ]
