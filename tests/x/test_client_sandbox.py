"""The X client against the sandbox over real HTTP: every kind of answer X gives, classified."""

from __future__ import annotations

import gc
import time
from typing import Any

import httpx
import pytest

from xgate.config import XSettings
from xgate.sandbox import create_sandbox
from xgate.testing import RunningSandbox, serve_app
from xgate.x import AsyncXClient, Credentials, RateLimit, XClient, classify, rate_limit_from


def conversion(n: int = 1, **extra: Any) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "conversion_time": now,
        "event_id": "tw-o8z6j-o87ne",
        "conversion_id": f"c{n}",
        "identifiers": [{"hashed_email": "a" * 64}],
        "value": 10.5,
        "price_currency": "USD",
        **extra,
    }


def test_success_returns_debug_id_and_rate_limit(sandbox: RunningSandbox) -> None:
    with XClient(sandbox.settings, sandbox.credentials) as x:
        result = x.send("o8z6j", [conversion(1), conversion(2)])
    assert (result.outcome, result.status_code, result.conversions_processed) == ("delivered", 200, 2)
    assert result.debug_id
    assert result.rate_limit is not None and result.rate_limit.scope == "account"
    assert [c["conversion_id"] for c in sandbox.conversions()] == ["c1", "c2"]


async def test_async_client_delivers(sandbox: RunningSandbox) -> None:
    async with AsyncXClient(sandbox.settings, sandbox.credentials) as x:
        result = await x.send("o8z6j", [conversion(3)])
    assert result.outcome == "delivered"


async def test_a_sent_request_body_is_freed_at_once_not_left_to_the_cyclic_gc(
    sandbox: RunningSandbox,
) -> None:
    """httpx leaves a read response and its stream in a reference cycle, which kept each request body
    (up to 500 conversions) alive until the cyclic GC ran: hundreds of MB with a backlog to deliver."""
    async with AsyncXClient(sandbox.settings, sandbox.credentials) as x:
        await x.send("o8z6j", [conversion(4)])  # the connection pool's own objects are made once
        gc.collect()
        gc.disable()
        try:
            for n in range(5, 8):
                assert (await x.send("o8z6j", [conversion(n)])).outcome == "delivered"
            with XClient(sandbox.settings, sandbox.credentials) as sync:
                assert sync.send("o8z6j", [conversion(8)]).outcome == "delivered"
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, httpx.Response | httpx.Request)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert left == []


def test_a_400_splits_a_request_of_several_and_is_permanent_for_one_alone(sandbox: RunningSandbox) -> None:
    bad = conversion(identifiers=[{"hashed_email": "not-a-hash"}])
    with XClient(sandbox.settings, sandbox.credentials) as x:
        several = x.send("o8z6j", [conversion(1), bad])
        alone = x.send("o8z6j", [bad])
    assert (several.outcome, several.status_code, several.failure) == ("split", 400, "invalid")
    assert (alone.outcome, alone.status_code, alone.failure) == ("permanent", 400, "invalid")
    assert alone.errors[0].message == "Hashed_email is not a valid SHA-256 hash"
    assert sandbox.conversions() == []  # a 400 rejects the whole request


def test_401_on_a_bad_signature(sandbox: RunningSandbox) -> None:
    c = sandbox.credentials
    forged = Credentials("oauth1", c.consumer_key, "wrong-secret", c.access_token, c.access_token_secret)
    with XClient(sandbox.settings, forged) as x:
        result = x.send("o8z6j", [conversion()])
    assert (result.outcome, result.status_code, result.failure) == ("permanent", 401, "auth")
    assert result.destination_failed
    assert "signature" in result.reason
    assert result.describe().startswith("auth: HTTP 401; UNAUTHORIZED_ACCESS: ")


def test_404_for_an_unknown_pixel(sandbox: RunningSandbox) -> None:
    with XClient(sandbox.settings, sandbox.credentials) as x:
        result = x.send("zzzzz", [conversion(event_id="o87ne")])
    assert (result.outcome, result.status_code, result.failure) == ("permanent", 404, "not_found")
    assert result.destination_failed


def test_429_is_retried_at_x_reset_time(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(rate_limit_rate=1, rate_limit_burst=2, rate_limit_reset_seconds=30)
    with XClient(sandbox.settings, sandbox.credentials) as x:
        result = x.send("o8z6j", [conversion()])
    assert (result.outcome, result.status_code, result.failure) == ("rate_limited", 429, "rate_limited")
    assert result.retry_at is not None and time.time() + 25 < result.retry_at < time.time() + 35
    assert result.rate_limit is not None and result.rate_limit.remaining == 0


def test_5xx_is_retried(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(error_rate=1)
    with XClient(sandbox.settings, sandbox.credentials) as x:
        result = x.send("o8z6j", [conversion()])
    assert result.outcome == "retry" and result.status_code in (500, 503)
    assert result.failure == "server_error" and not result.destination_failed


def test_a_timeout_is_retried(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(timeout_rate=1, timeout_seconds=3)
    settings = XSettings(api_url=sandbox.url, timeout_seconds=0.5)
    with XClient(settings, sandbox.credentials) as x:
        result = x.send("o8z6j", [conversion()])
    assert (result.outcome, result.status_code, result.failure) == ("retry", None, "timeout")
    assert result.describe().startswith("timeout: no answer; ReadTimeout")


def test_a_dropped_connection_is_retried(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(drop_rate=1)
    with XClient(sandbox.settings, sandbox.credentials) as x:
        result = x.send("o8z6j", [conversion()])
    assert (result.outcome, result.status_code, result.failure) == ("retry", None, "connection")


def test_nothing_listening_is_a_connection_error() -> None:
    from xgate.testing import free_port

    settings = XSettings(api_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    with XClient(settings, Credentials("oauth1", "a", "b", "c", "d")) as x:
        result = x.send("o8z6j", [conversion()])
    assert (result.outcome, result.failure) == ("retry", "connection")


def test_more_than_x_limit_in_one_request_is_refused_and_batches_are_cut(sandbox: RunningSandbox) -> None:
    many = [conversion(i) for i in range(1201)]
    with XClient(sandbox.settings, sandbox.credentials) as x:
        with pytest.raises(ValueError, match="limit is 500"):
            x.send("o8z6j", many)
        results = x.send_batches("o8z6j", many)
    assert [r.conversions_processed for r in results] == [500, 500, 201]


def test_duplicates_are_counted_by_conversion_id(sandbox: RunningSandbox) -> None:
    with XClient(sandbox.settings, sandbox.credentials) as x:
        x.send("o8z6j", [conversion(1)])
        x.send("o8z6j", [conversion(1), conversion(2)])
    import httpx

    body = httpx.get(f"{sandbox.url}/_sandbox/conversions").json()
    assert (body["total"], body["unique"], body["duplicate_conversion_ids"]) == (3, 2, 1)


def test_pixel_token_mode_end_to_end() -> None:
    creds = Credentials.from_env(auth="pixel_token", env={"XGATE_X_PIXEL_TOKEN": "tok-123"})
    app, _ = create_sandbox(creds)
    with serve_app(app) as url:
        settings = XSettings(api_url=url)
        with XClient(settings, creds) as x:
            assert x.send("o8z6j", [conversion()]).outcome == "delivered"
        wrong = Credentials.from_env(auth="pixel_token", env={"XGATE_X_PIXEL_TOKEN": "nope"})
        with XClient(settings, wrong) as x:
            assert x.send("o8z6j", [conversion()]).status_code == 401


async def test_async_batches_go_concurrently_and_come_back_in_order(sandbox: RunningSandbox) -> None:
    many = [conversion(i) for i in range(1201)]
    async with AsyncXClient(sandbox.settings, sandbox.credentials) as x:
        results = await x.send_batches("o8z6j", many)
    assert [r.conversions_processed for r in results] == [500, 500, 201]
    assert len({c["conversion_id"] for c in sandbox.conversions()}) == 1201


def test_user_level_rate_limit_is_used_when_x_sends_no_account_level() -> None:
    rate = rate_limit_from(
        {"x-rate-limit-limit": "60000", "x-rate-limit-remaining": "7", "x-rate-limit-reset": "99"}
    )
    assert rate == RateLimit(60000, 7, 99.0, "user")
    assert rate_limit_from({}) is None


def test_an_answer_that_is_not_json_is_still_classified() -> None:
    result = classify(502, b"<html>Bad gateway</html>", {}, 3)
    assert (result.outcome, result.reason, result.conversions) == ("retry", "HTTP 502", 3)
    assert result.describe() == "server_error: HTTP 502"


@pytest.mark.parametrize(
    ("status", "count", "outcome", "failure"),
    [
        (200, 5, "delivered", None),
        (400, 5, "split", "invalid"),
        (400, 1, "permanent", "invalid"),
        (401, 5, "permanent", "auth"),
        (403, 5, "permanent", "forbidden"),
        (404, 5, "permanent", "not_found"),
        (408, 5, "retry", "timeout"),
        (413, 5, "permanent", "invalid"),
        (418, 5, "permanent", "rejected"),
        (429, 5, "rate_limited", "rate_limited"),
        (500, 5, "retry", "server_error"),
        (503, 5, "retry", "server_error"),
    ],
)
def test_each_answer_of_x_is_classified_into_what_the_dispatcher_does(
    status: int, count: int, outcome: str, failure: str | None
) -> None:
    result = classify(status, b"", {}, count)
    assert (result.outcome, result.failure) == (outcome, failure)


def test_an_error_answer_keeps_x_transaction_id_as_its_debug_id() -> None:
    message = "This request is not properly authenticated"
    body = b'{"errors": [{"code": "UNAUTHORIZED_ACCESS", "message": "%s"}]}' % message.encode()
    result = classify(401, body, {"x-transaction-id": "4f2a9c"}, 2)
    assert (result.debug_id, result.failure) == ("4f2a9c", "auth")
    assert result.describe() == (
        "auth: HTTP 401; UNAUTHORIZED_ACCESS: This request is not properly authenticated"
    )
