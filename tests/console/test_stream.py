"""The console's live stream (``/console/api/stream``) over real HTTP: besides the newest conversions it
watches those the client names, within its bound (``STREAM_WATCH``), and when its life ends it says
``renew`` and ends, so that the client opens the next one naming the conversions it shows by then."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from xgate.collect.app import create_app
from xgate.config import parse_config
from xgate.console import routes
from xgate.outbox import Outbox
from xgate.testing import serve_app

ADMIN_ENV, ADMIN_KEY = "XGATE_TEST_STREAM_ADMIN", "adm-stream-5c2e91"
SERVER_KEY = "srv-stream-key-0a7d"
LIFE = 1.0


@pytest.fixture
def gateway(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A gateway app on ``outbox`` (no dispatcher: its rows stay queued), its streams short-lived
    (:data:`LIFE`), looking at the newest row only and polling often."""
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    monkeypatch.setattr(routes, "STREAM_LIFE_SECONDS", LIFE)
    monkeypatch.setattr(routes, "STREAM_ROWS", 1)
    monkeypatch.setattr(routes, "STREAM_POLL_SECONDS", 0.05)
    config = parse_config(
        {
            "server": {"admin_key_env": ADMIN_ENV},
            "sources": [{"name": "backend", "write_key": SERVER_KEY}],
            "destinations": [
                {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
            ],
        }
    )
    with serve_app(create_app(config, outbox)) as url:
        yield url


def store(url: str, outbox: Outbox, order: str) -> int:
    """Send ``order`` to the gateway: the id of the conversion it stored."""
    answer = httpx.post(
        f"{url}/v1/events",
        json={
            "event_name": "purchase",
            "id": order,
            "value": 3,
            "currency": "usd",
            "partners": {"twitter": {"twclid": "26mmb5rsu6rwaq8h8hhsorrt7m"}},
        },
        headers={"Authorization": f"Bearer {SERVER_KEY}"},
    )
    assert answer.status_code == 200, answer.text
    (row,) = outbox.rows(conversion_id=order)
    return row.id


def whole_stream(url: str, watch: str = "") -> tuple[list[tuple[str, Any]], float]:
    """Every event of one stream, read until the server ends it, and how long it lasted."""
    events: list[tuple[str, Any]] = []
    started = time.monotonic()
    with httpx.stream(
        "GET",
        f"{url}/console/api/stream",
        params={"watch": watch},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    ) as stream:
        assert stream.status_code == 200
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events, time.monotonic() - started


def conversions(events: list[tuple[str, Any]]) -> set[str]:
    return {data["conversion_id"] for name, data in events if name == "conversion"}


def test_a_stream_whose_life_ends_says_renew_last_and_ends(gateway: str, outbox: Outbox) -> None:
    store(gateway, outbox, "order-1")
    events, lasted = whole_stream(gateway)
    assert conversions(events) == {"order-1"}
    assert events[-1] == ("renew", {})
    assert LIFE <= lasted < LIFE + 3


def test_the_next_stream_follows_the_conversions_it_is_given_besides_the_newest_within_its_bound(
    gateway: str, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = store(gateway, outbox, "order-1"), store(gateway, outbox, "order-2")
    store(gateway, outbox, "order-3")  # the newest: every stream sends it
    events, _ = whole_stream(gateway, watch=str(first))
    assert conversions(events) == {"order-1", "order-3"}  # not order-2: nobody watches it
    assert events[-1] == ("renew", {})

    # the client shows order-2 by now (it arrived live, say): the next stream is opened naming it
    shown = whole_stream(gateway, watch=f"{first},{second}")[0]
    assert conversions(shown) == {"order-1", "order-2", "order-3"}
    # ... as many as the bound allows, the first ones named (the client names the newest first)
    monkeypatch.setattr(routes, "STREAM_WATCH", 1)
    assert conversions(whole_stream(gateway, watch=f"{second},{first},x,-4")[0]) == {"order-2", "order-3"}
