"""Delivery that keeps going and says why when it cannot: an outbox that fails and recovers, leases taken
back at start and kept while a batch is slow, retries bounded by time, failures named per reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.dispatch.test_dispatcher import (
    GatedX,
    ScriptedX,
    config,
    dispatcher,
    ok,
    queue,
    states,
    unavailable,
    until,
)

from xgate.config import Destination
from xgate.dispatch import Attempt, Dispatcher
from xgate.errors import OutboxUnavailable
from xgate.outbox import Outbox
from xgate.testing import OutboxFactory
from xgate.x import SendResult, XError


class Flaky:
    """A real outbox whose ``method`` fails ``failures`` times (as a database restarting would), then
    works; every other call goes straight through."""

    def __init__(self, inner: Outbox, method: str, failures: int, error: Exception) -> None:
        self.inner, self.method, self.failures, self.error = inner, method, failures, error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name != self.method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error
            return attribute(*args, **kwargs)

        return call


async def test_an_outbox_that_fails_then_recovers_does_not_end_delivery(
    tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box = Flaky(outbox, "lease", 3, OutboxUnavailable("database is restarting (test)"))
    queue(outbox, "c1", "c2")
    d = dispatcher(config(tmp_path), box, ScriptedX(ok))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="xgate.dispatch"):
        run = asyncio.create_task(d.run_forever())
        await until(lambda: set(states(outbox).values()) == {"delivered"}, timeout=20)
        await d.stop()
        await run
    unavailable_logs = [r for r in caplog.records if r.getMessage().startswith("outbox unavailable")]
    assert len(unavailable_logs) == 3 and all(r.levelno == logging.WARNING for r in unavailable_logs)
    delays = [r.fields["retry_in_seconds"] for r in unavailable_logs]  # type: ignore[attr-defined]
    assert delays == [0.5, 1.0, 2.0]
    assert any(r.getMessage() == "delivery resumed" for r in caplog.records)


async def test_an_unexpected_error_in_a_round_is_logged_and_the_loop_goes_on(
    tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box = Flaky(outbox, "purge", 1, KeyError("a bug"))
    queue(outbox, "c1")
    d = dispatcher(config(tmp_path), box, ScriptedX(ok))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="xgate.dispatch"):
        run = asyncio.create_task(d.run_forever())
        await until(lambda: states(outbox) == {"c1": "delivered"})
        await d.stop()
        await run
    (failed,) = [r for r in caplog.records if r.getMessage() == "dispatch round failed"]
    assert failed.levelno == logging.ERROR and failed.exc_info is not None


async def test_at_start_the_dispatcher_takes_back_its_node_leases_at_once(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    box = outbox_factory(node_id="node-a")
    queue(box, "c1", "c2", "c3")
    held = box.lease(10, lease_seconds=3600)  # a previous run of this node, killed while sending these
    assert len(held) == 3
    box.close()
    box = outbox_factory(node_id="node-a")  # the node starts again
    x = ScriptedX(ok)
    d = dispatcher(config(tmp_path, lease_seconds=3600), box, x)
    run = asyncio.create_task(d.run_forever())
    await until(lambda: set(states(box).values()) == {"delivered"}, timeout=10)
    await d.stop()
    await run
    assert sorted(c for r in x.requests for c in r) == ["c1", "c2", "c3"]


async def test_a_batch_slower_than_its_lease_keeps_it_and_is_sent_once(
    tmp_path: Path, outbox_factory: OutboxFactory
) -> None:
    box = outbox_factory(node_id="node-a")
    other_node = outbox_factory(node_id="node-b")
    queue(box, "c1")
    x = GatedX(ok)
    d = dispatcher(config(tmp_path, lease_seconds=1), box, x)
    run = asyncio.create_task(d.run_forever())
    await x.entered.wait()
    await asyncio.sleep(2.5)  # two and a half leases in flight
    assert other_node.lease(10, lease_seconds=1) == []  # the lease was extended: nobody else takes c1
    x.answer.set()
    await until(lambda: states(box) == {"c1": "delivered"})
    await d.stop()
    await run
    assert x.requests == [["c1"]]


async def test_transient_failures_are_retried_until_the_conversion_is_older_than_give_up_after_hours(
    tmp_path: Path, outbox: Outbox
) -> None:
    box = outbox
    now = time.time()
    queue(box, "young")
    box.enqueue(  # accepted 73 hours ago, still failing
        [_conversion("old")], now=now - 73 * 3600
    )
    d = dispatcher(config(tmp_path, give_up_after_hours=72), box, ScriptedX(unavailable))
    await d.run_until_idle()
    assert states(box) == {"young": "queued", "old": "dead"}
    (dead,) = box.rows(state="dead")
    assert dead.last_error == "server_error: gave up after 72 h of retries; HTTP 503"
    (young,) = box.rows(state="queued")
    assert (young.attempts, young.last_error) == (1, "server_error: HTTP 503")


async def test_the_age_that_decides_giving_up_comes_with_the_lease_without_a_row_lookup(
    tmp_path: Path, outbox: Outbox
) -> None:
    now = time.time()
    outbox.enqueue([_conversion("old")], now=now - 73 * 3600)  # no conversion_time in its body
    outbox.enqueue([_conversion("young")], now=now - 71 * 3600)
    box = Flaky(outbox, "row", 1_000, AssertionError("the dispatcher looked a row up"))
    await dispatcher(config(tmp_path, give_up_after_hours=72), box, ScriptedX(unavailable)).run_until_idle()
    assert box.calls == 0
    assert states(outbox) == {"old": "dead", "young": "queued"}


async def test_a_permanent_answer_is_a_dead_letter_at_once_whatever_the_age(
    tmp_path: Path, outbox: Outbox
) -> None:
    box = outbox
    queue(box, "c1")
    await dispatcher(config(tmp_path), box, ScriptedX(_refused(403, "forbidden"))).run_until_idle()
    (row,) = box.rows()
    assert (row.state, row.attempts) == ("dead", 1)
    assert row.last_error == "forbidden: HTTP 403; FORBIDDEN: no access to this ad account"


def test_max_attempts_is_refused_with_what_replaced_it() -> None:
    from xgate.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="max_attempts was replaced by give_up_after_hours"):
        parse_config({"dispatch": {"max_attempts": 20}})


async def test_401_403_404_are_warnings_naming_destination_status_message_and_debug_id(
    tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box = outbox
    queue(box, "c1")
    x = ScriptedX(_refused(401, "auth"))
    with caplog.at_level(logging.INFO, logger="xgate.dispatch"):
        await dispatcher(config(tmp_path), box, x).run_until_idle()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    fields = warning.fields  # type: ignore[attr-defined]
    assert (fields["destination"], fields["status"], fields["failure"], fields["debug_id"]) == (
        "x-main",
        401,
        "auth",
        "tx-51c0",
    )
    assert "UNAUTHORIZED_ACCESS: This request is not properly authenticated" in warning.getMessage()


async def test_every_attempt_that_fails_reaches_the_observer_with_its_reason(
    tmp_path: Path, outbox: Outbox
) -> None:
    box = outbox
    queue(box, "c1", "c2")
    seen: list[Attempt] = []
    x = ScriptedX(unavailable, _refused(404, "not_found"))
    d = Dispatcher(config(tmp_path), box, lambda _: x, observer=seen.append)
    await d.run_until_idle()
    await until(lambda: states(box)["c1"] == "queued")
    await asyncio.sleep(0.1)  # the backoff is at most 0.05 s
    await d.run_until_idle()
    assert [(a.outcome, a.failure, a.conversions) for a in seen] == [
        ("retry", "server_error", 2),
        ("permanent", "not_found", 2),
    ]


async def test_a_destination_without_credentials_is_named_at_start_and_its_rows_wait(
    tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET"):
        monkeypatch.delenv(f"XGATE_X_{name}", raising=False)
    box = outbox
    queue(box, "c1")

    def no_client(destination: Destination) -> ScriptedX:
        from xgate.x import Credentials

        Credentials.from_env(destination.credentials_env_prefix, destination.auth)
        raise AssertionError("credentials were found")

    seen: list[Attempt] = []
    d = Dispatcher(config(tmp_path), box, no_client, observer=seen.append)
    with caplog.at_level(logging.INFO, logger="xgate.dispatch"):
        run = asyncio.create_task(d.run_forever())
        await until(lambda: bool(seen))
        await d.stop()
        await run
    startup = caplog.records[0]
    assert startup.levelno == logging.WARNING and startup.fields["destination"] == "x-main"  # type: ignore[attr-defined]
    assert "XGATE_X_CONSUMER_KEY" in startup.getMessage()
    assert d.credential_problems["x-main"]
    (row,) = box.rows()
    assert (row.state, row.attempts) == ("queued", 0)
    assert (row.last_error or "").startswith("credentials: missing X credentials: set XGATE_X_CONSUMER_KEY")
    assert [(a.outcome, a.failure) for a in seen] == [("unsent", "credentials")]


def _conversion(conversion_id: str) -> Any:
    from xgate.conversion import MappedConversion

    return MappedConversion(
        "x-main", "o8z6j", "o87ne", conversion_id, {"conversion_id": conversion_id}, frozenset(), "purchase"
    )


def _refused(status: int, failure: Any) -> Any:
    code, message = {
        401: ("UNAUTHORIZED_ACCESS", "This request is not properly authenticated"),
        403: ("FORBIDDEN", "no access to this ad account"),
        404: ("NOT_FOUND", "Pixel o8z6j not found"),
    }[status]

    def answer(conversions: Sequence[dict[str, Any]]) -> SendResult:
        return SendResult(
            "permanent",
            status,
            len(conversions),
            debug_id="tx-51c0",
            errors=(XError(code, message),),
            failure=failure,
        )

    return answer
