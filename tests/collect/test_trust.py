"""A browser source's key is public: whatever it sends never suppresses or alters what a server source
sends, never reaches what is not for browsers, and a wildcard origin never gets credentials
(docs/security.md, "Trust model")."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gatewaykit import (
    ADMIN_KEY,
    ADMIN_KEY_ENV,
    BROWSER_KEY,
    SERVER_KEY,
    SERVER_KEY_ENV,
    SHOP,
    Gateway,
    gateway_config,
    purchase,
    serve,
)

from xgate.collect.app import create_app
from xgate.config import Config
from xgate.gateway import build_gateway
from xgate.outbox import open_outbox
from xgate.testing import RunningSandbox

SQUATTED = {
    "event_name": "purchase",
    "id": "ord-1001",
    "value": 0.01,
    "currency": "USD",
    "user": {"email": "someone@example.test"},
}
REAL = {**SQUATTED, "value": 249}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def delivering(tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A gateway whose dispatcher delivers to the sandbox."""
    for name, value in {**sandbox.env, SERVER_KEY_ENV: SERVER_KEY, ADMIN_KEY_ENV: ADMIN_KEY}.items():
        monkeypatch.setenv(name, value)
    config = gateway_config(tmp_path)
    dispatch = config.dispatch.model_copy(update={"linger_ms": 0, "poll_interval_ms": 20})
    config = config.model_copy(update={"x": sandbox.settings, "dispatch": dispatch})
    process = build_gateway(config)
    try:
        with serve(process.app) as url:
            yield Gateway(url, process.outbox, process.app)
    finally:
        process.close()


def delivered(sandbox: RunningSandbox, conversion_id: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.conversions() if c.get("conversion_id") == conversion_id]


def conversion_status(answer: httpx.Response) -> str:
    return str(answer.json()["results"][0]["conversions"][0]["status"])


def test_a_browser_conversion_sent_first_does_not_keep_the_servers_out(
    delivering: Gateway, sandbox: RunningSandbox
) -> None:
    squat = delivering.send(SQUATTED, key=BROWSER_KEY, headers={"Origin": SHOP})
    assert conversion_status(squat) == "queued"
    real = delivering.send(REAL, key=SERVER_KEY)
    assert real.json()["results"][0]["status"] == "accepted"
    assert conversion_status(real) == "queued"
    sent = wait_for(
        "the server's conversion at X",
        lambda: [c for c in delivered(sandbox, "ord-1001") if c.get("value") == 249],
    )
    assert len(sent) == 1  # X merges the two by conversion_id


def test_a_browser_conversion_after_the_servers_is_a_duplicate(
    delivering: Gateway, sandbox: RunningSandbox
) -> None:
    assert conversion_status(delivering.send(REAL, key=SERVER_KEY)) == "queued"
    late = delivering.send(SQUATTED, key=BROWSER_KEY, headers={"Origin": SHOP})
    assert late.json()["results"][0]["status"] == "duplicate"
    assert late.json()["duplicates"] == 1
    wait_for("the server's conversion at X", lambda: delivered(sandbox, "ord-1001"))
    time.sleep(0.3)  # a second send would have left by now
    assert [c["value"] for c in delivered(sandbox, "ord-1001")] == [249]


def test_a_flood_of_browser_rejections_does_not_hide_a_servers(gateway: Gateway) -> None:
    gateway.send({"event_name": "purchase", "id": "srv-bad", "value": "x"}, key=SERVER_KEY)
    junk = [{"event_name": "purchase", "id": f"junk-{i}", "value": "x"} for i in range(50)]
    for _ in range(5):  # 250 rejections: more than a ring holds (200)
        gateway.send({"events": junk}, key=BROWSER_KEY)
    entries = gateway.admin.get("/v1/activity", params={"limit": 500}).json()["entries"]
    sources = [e["source"] for e in entries if e["state"] == "rejected"]
    assert sources.count("backend") == 1
    assert sources.count("web") == 200


# -- what is not for browsers ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/docs", "/redoc"])
def test_metrics_and_the_api_documents_need_the_admin_key(gateway: Gateway, path: str) -> None:
    anonymous = gateway.http.get(path)
    assert anonymous.status_code == 401
    assert "admin_port" in anonymous.json()["message"]
    for key in (BROWSER_KEY, SERVER_KEY):
        assert gateway.http.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert gateway.admin.get(path).status_code == 200


# -- CORS and cookies with a wildcard --------------------------------------------------------------
@pytest.fixture
def wildcard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.setenv(SERVER_KEY_ENV, SERVER_KEY)
    base = gateway_config(tmp_path)
    sources = [
        s.model_copy(update={"allowed_origins": ["*"]}) if s.name == "web" else s for s in base.sources
    ]
    config = Config.model_validate({**base.model_dump(), "sources": [s.model_dump() for s in sources]})
    outbox = open_outbox(config.storage.url)
    try:
        with serve(create_app(config, outbox)) as url:
            yield Gateway(url, outbox, None)
    finally:
        outbox.close()


def test_a_wildcard_never_reflects_origin_null(wildcard: Gateway) -> None:
    answer = wildcard.send(purchase("null-1"), key=BROWSER_KEY, headers={"Origin": "null"})
    assert answer.status_code == 403
    assert answer.headers.get("access-control-allow-origin") != "null"
    assert "access-control-allow-credentials" not in answer.headers
    preflight = wildcard.http.options(
        "/v1/events",
        params={"write_key": BROWSER_KEY},
        headers={"Origin": "null", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


def test_a_wildcard_origin_gets_no_credentials_and_no_cookies(wildcard: Gateway) -> None:
    elsewhere = "https://elsewhere.example"
    preflight = wildcard.http.options(
        "/v1/events",
        params={"write_key": BROWSER_KEY},
        headers={"Origin": elsewhere, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    event = purchase("wild-1", context={"page_url": f"{elsewhere}/p?twclid=26planted"})
    answer = wildcard.send(
        event, key=BROWSER_KEY, headers={"Origin": elsewhere, "Cookie": "_xgate_twclid=26victim"}
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
    assert "set-cookie" not in answer.headers  # a foreign page cannot plant a click id in our cookie
    [row] = wildcard.outbox.rows(limit=10)
    assert {"twclid": "26victim"} not in row.body["identifiers"]  # nor read the one kept there
    landing = wildcard.http.get("/v1/twclid", params={"twclid": "26planted"}, headers={"Origin": elsewhere})
    assert landing.status_code == 403
    assert "set-cookie" not in landing.headers


def test_a_listed_origin_still_gets_a_credentialed_answer(gateway: Gateway) -> None:
    answer = gateway.send(purchase("listed-1"), key=BROWSER_KEY, headers={"Origin": SHOP})
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.headers["access-control-allow-credentials"] == "true"
