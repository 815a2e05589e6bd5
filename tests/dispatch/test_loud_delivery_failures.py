"""A destination that cannot deliver is loud where an operator looks: the log at start, ``/readyz``,
``xgate status``, ``/metrics`` — and the queue's age is its real age. A gateway in-process over loopback,
delivering to the sandbox."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from xgate.cli import app as cli
from xgate.config import Config, parse_config
from xgate.gateway import build_gateway
from xgate.testing import OutboxFactory, RunningSandbox, serve_app

KEY_ENV, KEY = "XGATE_TEST_LOUD_KEY", "loud-key-8d1c"
ADMIN_KEY_ENV, ADMIN_KEY = "XGATE_TEST_LOUD_ADMIN_KEY", "loud-admin-key-4e0a"
CREDENTIAL_NAMES = ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")


def gateway_config(tmp_path: Path, sandbox: RunningSandbox, storage_url: str) -> tuple[Config, Path]:
    data: dict[str, Any] = {
        "x": {"api_url": sandbox.url, "timeout_seconds": 2},
        "storage": {"url": storage_url},
        "server": {"admin_key_env": ADMIN_KEY_ENV},
        "dispatch": {"linger_ms": 0, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
        "sources": [{"name": "backend", "write_key_env": KEY_ENV}],
        "destinations": [
            {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}},
        ],
    }
    path = tmp_path / "xgate.toml"
    path.write_text(
        f'[x]\napi_url = "{sandbox.url}"\n[storage]\nurl = "{data["storage"]["url"]}"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'
    )
    return parse_config(data), path


@pytest.fixture
def running(
    tmp_path: Path, sandbox: RunningSandbox, outbox_factory: OutboxFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)

    def start(credentials: dict[str, str]) -> Any:
        for name in CREDENTIAL_NAMES:
            monkeypatch.delenv(f"XGATE_X_{name}", raising=False)
        for name, value in credentials.items():
            monkeypatch.setenv(name, value)
        config, path = gateway_config(tmp_path, sandbox, outbox_factory.url)
        gateway = build_gateway(config)
        started.append(gateway)
        server = serve_app(gateway.app)
        url = server.__enter__()
        servers.append(server)
        return url, path

    started: list[Any] = []
    servers: list[Any] = []
    yield start
    for server in servers:
        server.__exit__(None, None, None)
    for gateway in started:
        gateway.close()


def send(url: str, order: str) -> httpx.Response:
    event = {"event_name": "purchase", "id": order, "user": {"email": "shopper@example.com"}}
    return httpx.post(f"{url}/v1/events", json=event, headers={"Authorization": f"Bearer {KEY}"})


def wait_for(condition: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_missing_credentials_are_a_startup_warning_and_a_degraded_readiness(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="xgate.dispatch"):
        url, _ = running({})
        ready = wait_for(lambda: (r := httpx.get(f"{url}/readyz")).json()["status"] == "degraded" and r)
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("destination cannot deliver")]
    assert warning.fields["destination"] == "x-main"  # type: ignore[attr-defined]
    assert "XGATE_X_CONSUMER_KEY" in warning.getMessage()
    assert ready.status_code == 200  # ingest still works: a load balancer keeps sending
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["destinations"]["x-main"]["status"] == "blocked"
    assert body["destinations"]["x-main"]["reason"] == "credentials"
    assert "XGATE_X_ACCESS_TOKEN_SECRET" in body["destinations"]["x-main"]["problem"]
    assert send(url, "ord-1").status_code == 200  # stored, waiting for credentials


def test_x_refusing_the_credentials_shows_in_readiness_status_and_metrics(
    running: Any, sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = sandbox.env | {"XGATE_X_CONSUMER_SECRET": "not-the-secret"}  # a typo in the deployment
    url, config_path = running(wrong)
    assert httpx.get(f"{url}/readyz").json()["status"] == "ready"  # nothing tried yet
    with caplog.at_level(logging.WARNING, logger="xgate.dispatch"):
        assert send(url, "ord-1").status_code == 200
        ready = wait_for(lambda: (r := httpx.get(f"{url}/readyz")).json()["status"] == "degraded" and r)
    state = ready.json()["destinations"]["x-main"]
    assert (ready.status_code, state["status"], state["reason"]) == (200, "blocked", "auth")
    assert state["problem"].startswith("auth: HTTP 401; UNAUTHORIZED_ACCESS: ")
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (warning.fields["status"], warning.fields["failure"]) == (401, "auth")  # type: ignore[attr-defined]
    metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
    assert 'xgate_delivery_failures_total{destination="x-main",reason="auth"} 1.0' in metrics

    status = CliRunner().invoke(cli, ["status", "--config", str(config_path), "--json"])
    assert status.exit_code == 0, status.output
    delivery = json.loads(status.output)["delivery"]["x-main"]
    assert (delivery["status"], delivery["reason"]) == ("blocked", "auth")
    text = CliRunner().invoke(cli, ["status", "--config", str(config_path)], env={"COLUMNS": "200"})
    assert "x-main blocked: auth: HTTP 401; UNAUTHORIZED_ACCESS:" in text.output


def test_the_queue_age_is_the_oldest_undelivered_conversion_and_the_next_attempt_is_told_apart(
    tmp_path: Path, sandbox: RunningSandbox, outbox_factory: OutboxFactory
) -> None:
    from xgate.conversion import MappedConversion
    from xgate.observe.metrics import Metrics

    box = outbox_factory()
    now = time.time()
    accepted = now - 2 * 3600
    box.enqueue(
        [
            MappedConversion(
                "x-main", "o8z6j", "o87ne", "c1", {"conversion_id": "c1"}, frozenset(), "purchase"
            )
        ],
        now=accepted,
    )
    (row,) = box.lease(1, 60, now=now)
    box.mark_retry([row.id], row.lease_token, now + 3600, "server_error: HTTP 503", now=now)  # backs off

    metrics = Metrics(box)
    assert metrics.value("xgate_outbox_oldest_undelivered_timestamp_seconds") == pytest.approx(accepted)
    assert metrics.value("xgate_outbox_next_attempt_timestamp_seconds") == pytest.approx(now + 3600)

    _, config_path = gateway_config(tmp_path, sandbox, outbox_factory.url)
    status = CliRunner().invoke(cli, ["status", "--config", str(config_path), "--json"])
    assert status.exit_code == 0, status.output
    answer = json.loads(status.output)
    assert 2 * 3600 <= answer["oldest_undelivered_age_seconds"] < 2 * 3600 + 60
    assert 3600 - 60 < answer["next_attempt_in_seconds"] <= 3600
    assert answer["delivery"]["x-main"]["status"] == "failing"
    assert answer["delivery"]["x-main"]["reason"] == "server_error"
