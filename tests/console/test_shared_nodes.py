"""The console with several gateway nodes on one outbox (SQLite shared by two processes' worth of
connections, and PostgreSQL): whatever node serves the page shows what every node recorded."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from xgate.collect.app import create_app
from xgate.config import Config, parse_config
from xgate.gateway import GatewayProcess, build_gateway
from xgate.outbox import CapacityReading
from xgate.outbox.base import REJECTIONS_KEPT
from xgate.testing import OutboxFactory, RunningSandbox, console_sign_in, serve_app

ADMIN_ENV, ADMIN_KEY = "XGATE_TEST_NODES_ADMIN", "adm-nodes-4b1e0a"
SERVER_KEY, BROWSER_KEY = "srv-nodes-key-77c2", "pub-nodes-key-19fe"
SHOP = "https://shop.example"
AUTH_SERVER, AUTH_ADMIN = {"Authorization": f"Bearer {SERVER_KEY}"}, {"Authorization": f"Bearer {ADMIN_KEY}"}


def config(url: str) -> Config:
    return parse_config(
        {
            "storage": {"url": url},
            "server": {"admin_key_env": ADMIN_ENV},
            "sources": [
                {"name": "backend", "write_key": SERVER_KEY},
                {"name": "web", "write_key": BROWSER_KEY, "allowed_origins": [SHOP]},
            ],
            "destinations": [
                {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
            ],
        }
    )


Node = Callable[[str], str]


@pytest.fixture
def nodes(outbox_factory: OutboxFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """``nodes(name)``: the URL of a new gateway app (no dispatcher) with its own outbox connections,
    node id ``name``, on the test's one store."""
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    with contextlib.ExitStack() as stack:

        def start(name: str) -> str:
            outbox = outbox_factory(node_id=name)
            return stack.enter_context(serve_app(create_app(config(outbox_factory.url), outbox)))

        yield start


def send(url: str, order: str, *, browser: bool = False) -> dict[str, Any]:
    key, headers = (BROWSER_KEY, {"Origin": SHOP}) if browser else (SERVER_KEY, {})
    answer = httpx.post(
        f"{url}/v1/events",
        json={
            "event_name": "purchase",
            "id": order,
            "value": 12.5,
            "currency": "usd",
            "partners": {"twitter": {"twclid": "26mmb5rsu6rwaq8h8hhsorrt7m"}},
        },
        headers={"Authorization": f"Bearer {key}", **headers},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["results"][0]["conversions"][0]
    return result


def api(url: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.get(f"{url}/console/api{path}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_events_page_on_one_node_names_every_source_that_sent_it_again_on_any_node(nodes: Node) -> None:
    a, b = nodes("node-a"), nodes("node-b")
    kept = send(a, "order-7")
    assert kept["status"] == "queued"
    # the browser tag's copy (X's pixel fired with it) reaches node b twice: duplicates of the server's copy
    assert send(b, "order-7", browser=True)["status"] == "duplicate"
    assert send(b, "order-7", browser=True)["status"] == "duplicate"
    assert send(a, "order-7")["status"] == "duplicate"  # the backend's retry
    row_id = next(r["id"] for r in api(b, "/events", params={"conversion_id": "order-7"})["conversions"])
    dedup = api(a, f"/events/{row_id}")["dedup"]
    assert [(d["source"], d["source_kind"], d["public"], d["count"]) for d in dedup["also_sent_by"]] == [
        ("web", "browser", True, 2),
        ("backend", "backend", False, 1),
    ]
    web, backend = dedup["also_sent_by"]
    assert "merges the pixel event" in web["why"] and web["last_at"] >= web["first_at"]
    assert "same source sent it again" in backend["why"]
    page = httpx.get(f"{b}/console/events/{row_id}", cookies=signed_in(b))
    assert page.status_code == 200
    assert 'by <strong>web</strong> (browser, public key) <span class="copies">2</span> times' in page.text


def signed_in(url: str) -> dict[str, str]:
    """The session cookie of an admin signed in at ``url``."""
    with httpx.Client(base_url=url) as http:
        answer = console_sign_in(http, ADMIN_KEY)
    assert answer.status_code == 303, answer.text
    return {"xgate_console": answer.cookies["xgate_console"]}


def test_x_capacity_read_by_one_node_shows_on_every_node_s_overview(
    nodes: Node, outbox_factory: OutboxFactory
) -> None:
    a, b = nodes("node-a"), nodes("node-b")
    assert api(b, "/overview")["destinations"][0]["capacity"]["remaining"] is None  # no answer yet
    send(a, "order-8")
    sender = outbox_factory(node_id="node-a")  # node a's dispatcher, settling X's answer
    (row,) = sender.lease(1, 30)
    seen = time.time()
    reading = CapacityReading(2000, 1990, seen + 600, "account", seen)
    assert sender.mark_delivered([row.id], row.lease_token, "d", status=200, capacity=reading) == 1
    capacity = api(b, "/overview")["destinations"][0]["capacity"]
    assert {k: capacity[k] for k in ("limit", "remaining", "used", "scope")} == {
        "limit": 2000,
        "remaining": 1990,
        "used": 10,
        "scope": "account",
    }
    assert capacity["reset_at"] == pytest.approx(seen + 600) and capacity["seen_at"] == pytest.approx(seen)
    page = httpx.get(f"{b}/console", cookies=signed_in(b))
    assert '<strong class="used">10</strong> of 2000 requests used' in page.text


def test_signing_out_on_one_node_closes_the_session_on_every_node_and_ends_its_live_stream(
    nodes: Node,
) -> None:
    a, b = nodes("node-a"), nodes("node-b")
    cookies = signed_in(a)
    assert httpx.get(f"{b}/console/api/overview", cookies=cookies).status_code == 200  # one session, any node
    with httpx.stream("GET", f"{b}/console/api/stream", cookies=cookies, timeout=10) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        page = httpx.get(f"{a}/console", cookies=cookies)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        out = httpx.post(f"{a}/console/sign-out", data={"csrf": csrf.group(1)}, cookies=cookies)
        assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
        started = time.monotonic()
        assert "event: signed-out" in list(lines)  # node b's stream ends on its own
        assert time.monotonic() - started < 3
    assert httpx.get(f"{b}/console/api/overview", cookies=cookies).status_code == 401
    refused = httpx.get(f"{b}/console/events", cookies=cookies)
    assert refused.status_code == 303 and refused.headers["location"] == "/console/sign-in"


def test_a_live_stream_on_one_node_shows_events_stored_and_rejected_by_another(nodes: Node) -> None:
    a, b = nodes("node-a"), nodes("node-b")
    cookies = signed_in(a)
    with httpx.stream("GET", f"{a}/console/api/stream", cookies=cookies, timeout=10) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        send(b, "order-9")
        refused = httpx.post(
            f"{b}/v1/events",
            json={
                "event_name": "purchase",
                "id": "order-10",
                "value": "lots",
                "user": {"email": "a@example.com"},
            },
            headers={"Authorization": f"Bearer {SERVER_KEY}"},
        )
        assert refused.status_code == 422
        seen: dict[str, dict[str, Any]] = {}
        event = ""
        for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen[event] = json.loads(line.removeprefix("data: "))
            if {"conversion", "rejected"} <= seen.keys():
                break
    assert seen["conversion"]["conversion_id"] == "order-9"
    assert (seen["rejected"]["source"], seen["rejected"]["state"]) == ("backend", "rejected")
    assert "a@example.com" not in json.dumps(seen["rejected"])


def test_events_without_an_identifier_are_counted_on_every_node_never_pushing_a_rejection_to_fix_out(
    nodes: Node,
) -> None:
    """A shop's anonymous page views (one a page load) are rejected only for want of an identifier X can
    match: more of them than the rejection log keeps of a source, sent to node b after a wrong value, leave
    that rejection in node a's activity and live stream; they are counted instead (overview, /v1/activity,
    events page), and Prometheus counts every one as rejected."""
    a, b = nodes("node-a"), nodes("node-b")
    wrong = {"event_name": "purchase", "id": "order-11", "value": "lots", "user": {"email": "a@example.com"}}
    assert httpx.post(f"{b}/v1/events", json=wrong, headers=AUTH_SERVER).status_code == 422
    anonymous = REJECTIONS_KEPT + 50
    for first in range(0, anonymous, 50):
        batch = [
            {"event_name": "purchase", "id": f"anon-{i}", "value": 3, "currency": "usd"}
            for i in range(first, first + 50)
        ]
        answer = httpx.post(f"{b}/v1/events", json={"events": batch}, headers=AUTH_SERVER)
        assert answer.status_code == 422 and answer.json()["rejected"] == 50  # POST /v1/events keeps its 422
        assert {e["field"] for r in answer.json()["results"] for e in r["errors"]} == {"identifiers"}

    def activity() -> Any:
        answer = httpx.get(f"{a}/v1/activity", headers=AUTH_ADMIN)
        assert answer.status_code == 200, answer.text
        return answer.json()

    until(lambda: activity()["unmatched"]["events"] == anonymous, "node b's counts reach node a")
    answer = activity()
    assert answer["unmatched"]["sources"] == {"backend": anonymous}
    [rejected] = [e for e in answer["entries"] if e["state"] == "rejected"]
    assert (rejected["event_name"], rejected["source"]) == ("purchase", "backend")
    assert rejected["error"].startswith("value: ")
    (backend, web) = api(a, "/overview", params={"window": "hour"})["sources"]
    assert (backend["rejected"], backend["unmatched"], web["unmatched"]) == (anonymous + 1, anonymous, 0)
    page = httpx.get(f"{a}/console/events", cookies=signed_in(a))
    assert f"Not listed: {anonymous} events in the last 24 hours" in page.text
    assert f"backend {anonymous}" in page.text
    overview = httpx.get(f"{a}/console", params={"window": "hour"}, cookies=signed_in(a))
    assert "of which no identifier" in overview.text
    metrics = httpx.get(f"{b}/metrics", headers=AUTH_ADMIN).text
    assert f'xgate_events_total{{source="backend",status="rejected"}} {anonymous + 1}.0' in metrics


@pytest.fixture
def delivering_nodes(
    outbox_factory: OutboxFactory, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[str, GatewayProcess]]]:
    """``delivering_nodes(name)``: the URL and process of a new gateway (``xgate serve``'s, with its
    dispatcher sending to the sandbox), node id ``name``, on the test's one store."""
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    for variable, value in sandbox.env.items():
        monkeypatch.setenv(variable, value)
    with contextlib.ExitStack() as stack:

        def start(name: str) -> tuple[str, GatewayProcess]:
            settings = config(outbox_factory.url).model_dump(mode="json", exclude_defaults=True)
            settings["server"]["node_id"] = name
            settings["x"] = {"api_url": sandbox.url, "timeout_seconds": 2}
            settings["dispatch"] = {
                "linger_ms": 20,
                "poll_interval_ms": 20,
                "backoff_base_seconds": 0.1,
                "backoff_max_seconds": 0.2,
            }
            gateway = build_gateway(parse_config(settings))
            stack.callback(gateway.close)
            return stack.enter_context(serve_app(gateway.app)), gateway

        yield start


def until(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def labelled(gateway: GatewayProcess, metric: str, label: str) -> Counter[str]:
    """This process's Prometheus counter ``metric`` for x-main, by ``label``."""
    found: Counter[str] = Counter()
    for family in gateway.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == metric and sample.labels.get("destination") == "x-main":
                found[sample.labels[label]] += int(sample.value)
    return found


def test_events_and_x_answers_of_every_node_add_up_on_any_node_s_overview(
    delivering_nodes: Callable[[str], tuple[str, GatewayProcess]], sandbox: RunningSandbox
) -> None:
    (a, node_a), (b, node_b) = delivering_nodes("node-a"), delivering_nodes("node-b")
    sandbox.set_faults(error_rate=1.0)  # X answers 5xx: each node's dispatcher retries its own rows
    send(a, "order-1")
    send(a, "order-2")
    send(b, "order-3")
    skipped = httpx.post(f"{a}/v1/events", json={"event_name": "page_view", "id": "p-1"}, headers=AUTH_SERVER)
    assert skipped.json()["results"][0]["status"] == "skipped", skipped.text
    refused = httpx.post(
        f"{b}/v1/events",
        json={"event_name": "purchase", "id": "order-4", "value": "lots"},
        headers=AUTH_SERVER,
    )
    assert refused.status_code == 422
    for node in (node_a, node_b):
        until(
            lambda n=node: sum(labelled(n, "xgate_delivery_failures_total", "reason").values()) > 0,
            "failures",
        )
    sandbox.set_faults(error_rate=0.0)
    until(lambda: node_a.outbox.stats().counts.get(("x-main", "delivered")) == 3, "delivered")
    answers = labelled(node_a, "xgate_deliveries_total", "outcome")
    answers += labelled(node_b, "xgate_deliveries_total", "outcome")
    failures = labelled(node_a, "xgate_delivery_failures_total", "reason")
    failures += labelled(node_b, "xgate_delivery_failures_total", "reason")
    assert answers["delivered"] == 3 and answers["retry"] > 0 and set(failures) == {"server_error"}

    def overview_adds_up() -> bool:
        x_main = api(a, "/overview")["destinations"][0]  # node b writes its counts within a second
        return x_main["answers"] == dict(answers) and x_main["failures"] == dict(failures)

    until(overview_adds_up, "node a's overview shows both nodes' answers")
    (backend, web) = api(a, "/overview", params={"window": "hour"})["sources"]
    assert {k: backend[k] for k in ("received", "accepted", "duplicate", "skipped", "rejected")} == {
        "received": 5,
        "accepted": 3,
        "duplicate": 0,
        "skipped": 1,
        "rejected": 1,
    }
    assert web["received"] == 0
    page = httpx.get(f"{b}/console", params={"window": "week"}, cookies=signed_in(b))
    assert "X's answers in the last week, every node:" in page.text
    assert '<span class="pill">delivered 3</span>' in page.text
    assert f'<span class="pill bad">server_error {failures["server_error"]}</span>' in page.text
    assert "this process" not in page.text
    assert (
        httpx.get(f"{a}/console/api/overview", params={"window": "year"}, headers=AUTH_ADMIN).status_code
        == 422
    )
