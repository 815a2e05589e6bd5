"""CORS on ``/v1/events`` (xgate.collect.cors): a page on an allowed origin reads every answer, the errors
given before its key is known included, and gets its preflights; a page on any other origin reads none."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gatewaykit import BROWSER_KEY, SERVER_KEY, SERVER_KEY_ENV, SHOP, Gateway, gateway_config, purchase, serve

from xgate.collect.app import create_app
from xgate.conversion import MappingResult
from xgate.outbox import open_outbox

#: allowed by no source of the gateway
ELSEWHERE = "https://elsewhere.example"


def send(gateway: Gateway, case: str, origin: str) -> httpx.Response:
    """One request of ``case`` from a page at ``origin``: each is answered before any event is stored."""
    headers = {"Origin": origin}
    if case == "unknown key":
        return gateway.send(purchase(), key="not-a-key", headers=headers)
    if case == "no key":
        return gateway.send(purchase(), key=None, headers=headers)
    if case == "a server key in the URL":
        return gateway.http.post(f"/v1/events?write_key={SERVER_KEY}", json=purchase(), headers=headers)
    if case == "body too large":  # gatewaykit's max_body_bytes: 64,000
        return gateway.send("x" * 70_000, key=BROWSER_KEY, headers=headers)
    if case == "not JSON":
        return gateway.send("{", key=BROWSER_KEY, headers=headers)
    if case == "not an event":
        return gateway.send([purchase()], key=BROWSER_KEY, headers=headers)
    if case == "batch too large":  # gatewaykit's max_batch_events: 50
        batch = {"events": [purchase(f"o-{i}") for i in range(51)]}
        return gateway.send(batch, key=BROWSER_KEY, headers=headers)
    if case == "every event rejected":
        return gateway.send(purchase(value="ten"), key=BROWSER_KEY, headers=headers)
    if case == "a method the path does not take":
        return gateway.http.get("/v1/events", headers=headers)
    raise AssertionError(case)


CASES = {
    "unknown key": 401,
    "no key": 401,
    "a server key in the URL": 401,
    "body too large": 413,
    "not JSON": 400,
    "not an event": 400,
    "batch too large": 413,
    "every event rejected": 422,
    "a method the path does not take": 405,
}


def varies_by_origin(answer: httpx.Response) -> bool:
    return "origin" in {v.strip().lower() for v in answer.headers.get("vary", "").split(",")}


@pytest.mark.parametrize(("case", "status"), sorted(CASES.items()))
def test_a_page_on_an_allowed_origin_reads_every_error_answer(
    gateway: Gateway, case: str, status: int
) -> None:
    """An answer the page cannot read is a network failure to its library, which retries it (analytics.js
    ten times): a refused key, a body too large … must be readable by the page that sent it."""
    answer = send(gateway, case, SHOP)
    assert answer.status_code == status
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert varies_by_origin(answer)
    body = answer.json()  # each says what is wrong
    assert body.get("error") or body["results"][0]["errors"]
    assert gateway.outbox.rows(limit=1) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_page_on_an_origin_no_source_allows_reads_no_answer(gateway: Gateway, case: str) -> None:
    answer = send(gateway, case, ELSEWHERE)
    assert answer.status_code >= 400
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-credentials" not in answer.headers
    assert gateway.outbox.rows(limit=1) == []


def test_a_key_whose_source_does_not_allow_the_page_is_refused_and_the_page_reads_why(
    gateway: Gateway,
) -> None:
    """docs/security.md, "Browsers and CORS": the page's origin is one a source of /v1/events allows, so it
    reads the 403 (and stops, where a hidden answer would be retried); the refusal says which source's
    allowed_origins leave it out. An origin no source allows reads nothing, as always."""
    refused = gateway.send(purchase(), key=SERVER_KEY, headers={"Origin": SHOP})
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "origin_not_allowed",
        "message": f"origin '{SHOP}' is not in the allowed_origins of source 'backend'",
    }
    assert refused.headers["access-control-allow-origin"] == SHOP
    hidden = gateway.send(purchase(), key=BROWSER_KEY, headers={"Origin": ELSEWHERE})
    assert hidden.status_code == 403
    assert "access-control-allow-origin" not in hidden.headers
    assert gateway.outbox.rows(limit=1) == []


def test_the_preflight_allows_the_page_s_key_headers_and_analytics_retry_count(gateway: Gateway) -> None:
    asked = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
    }
    preflight = gateway.http.options("/v1/events", headers=asked)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SHOP
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-write-key", "x-retry-count"} <= allowed
    assert int(preflight.headers["access-control-max-age"]) > 0
    assert varies_by_origin(preflight)
    refused = gateway.http.options("/v1/events", headers={**asked, "Origin": ELSEWHERE})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    not_a_preflight = gateway.http.options("/v1/events")
    assert not_a_preflight.status_code == 400 and not_a_preflight.json()["error"] == "not_a_preflight"


def test_a_preflight_naming_a_key_is_judged_by_that_source_s_origins(gateway: Gateway) -> None:
    """The tag names its key in the URL: the preflight then answers for that source's origins alone."""
    asked = {"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    assert gateway.http.options(f"/v1/events?write_key={BROWSER_KEY}", headers=asked).status_code == 204
    server_key = gateway.http.options(f"/v1/events?write_key={SERVER_KEY}", headers=asked)
    assert server_key.status_code == 204  # a secret key in a URL names no source: every source's origins
    assert gateway.http.options("/v1/events?write_key=unknown", headers=asked).status_code == 204


def test_a_request_without_origin_gets_no_cors_headers(gateway: Gateway) -> None:
    answer = gateway.send(purchase("no-origin"))
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


class _BrokenMapper:
    """A mapper with a bug: what it gives as a conversion is none, so ingest fails after mapping, in the
    compiled build too (an unexpected error, not the mapping error a rejection reports)."""

    def map(self, event: Any, *, received_at: Any = None) -> MappingResult:
        result = MappingResult()
        result.conversions.append(object())  # type: ignore[arg-type]
        return result


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Gateway]]:
    monkeypatch.setenv(SERVER_KEY_ENV, SERVER_KEY)
    config = gateway_config(tmp_path)
    outbox = open_outbox(config.storage.url)
    try:
        with serve(create_app(config, outbox, mapper=_BrokenMapper())) as url:
            yield lambda: Gateway(url, outbox, None)
    finally:
        outbox.close()


def test_an_unexpected_error_is_a_500_the_page_reads(broken: Callable[[], Gateway]) -> None:
    """Starlette sends a 500 outside every middleware: the app's handler for it carries the headers."""
    gateway = broken()
    answer = gateway.send(purchase(), key=BROWSER_KEY, headers={"Origin": SHOP})
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert varies_by_origin(answer)
    assert answer.headers["connection"] == "close"  # uvicorn closes it: a client must not reuse it
    other = gateway.send(purchase(), key=BROWSER_KEY, headers={"Origin": ELSEWHERE})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    server = gateway.send(purchase())
    assert server.status_code == 500 and "access-control-allow-origin" not in server.headers
    assert json.loads(server.content)["message"] == "the gateway failed on this request: its log says why"


def test_paths_that_are_not_for_browsers_get_no_cors_headers(gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz", "/v1/activity"):
        answer = gateway.http.get(path, headers={"Origin": SHOP})
        assert "access-control-allow-origin" not in answer.headers, path
    preflight = gateway.http.options(
        "/v1/activity", headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
