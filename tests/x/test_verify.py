"""``xgate verify`` against the sandbox over loopback: each verdict, and that nothing is ever recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from xgate.cli import app
from xgate.config import load_config
from xgate.sandbox import AdAccount, EventTag, accounts_from_config, create_sandbox
from xgate.testing import RunningSandbox, free_port, random_x_credentials, serve_app, wait_http
from xgate.x import Credentials

runner = CliRunner()
ACCOUNT = "18ce54d4x5t"
X_KNOWS = AdAccount(
    ACCOUNT,
    "Shop",
    (EventTag("o87ne", "o8z6j", "Purchase", "PURCHASE"), EventTag("o87ni", "o8z6j", "Sign up", "SIGN_UP")),
)


def config_text(url: str, *, pixel: str = "o8z6j", events: str = "", extra: str = "") -> str:
    events = events or f'purchase = "tw-{pixel}-o87ne", sign_up = "tw-{pixel}-o87ni"'
    return f"""
[x]
api_url = "{url}"
[[sources]]
name = "web"
write_key = "pub-1"
[[destinations]]
name = "x-main"
pixel_id = "{pixel}"
events = {{ {events} }}
{extra}
"""


@pytest.fixture(scope="module")
def x() -> Iterator[RunningSandbox]:
    """The sandbox as X, knowing one ad account with pixel o8z6j and its purchase and sign-up events."""
    env = random_x_credentials()
    credentials = Credentials.from_env(env=env)
    app_, sandbox = create_sandbox(credentials, accounts=[X_KNOWS])
    with serve_app(app_) as url:
        yield RunningSandbox(url, env, credentials, sandbox)


def run_verify(tmp_path: Path, text: str, env: dict[str, str], *args: str) -> tuple[int, Any]:
    path = tmp_path / "xgate.toml"
    path.write_text(text)
    result = runner.invoke(app, ["verify", "--config", str(path), "--json", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in report["checks"]}


def detail(report: dict[str, Any], name: str) -> str:
    return str(next(c["detail"] for c in report["checks"] if c["name"] == name))


def test_a_right_configuration_passes_every_check_and_records_nothing(
    x: RunningSandbox, tmp_path: Path
) -> None:
    before = httpx.get(f"{x.url}/_sandbox/conversions").json()["total"]
    code, [report] = run_verify(tmp_path, config_text(x.url), x.env)
    assert code == 0, report
    assert set(verdicts(report).values()) == {"ok"}
    assert list(verdicts(report)) == [
        "credentials", "signature", "ad account", "user role", "pixel", "event purchase", "event sign_up",
        "conversions",
    ]  # fmt: skip
    assert ACCOUNT in detail(report, "ad account") and "Purchase" in detail(report, "event purchase")
    assert httpx.get(f"{x.url}/_sandbox/conversions").json()["total"] == before


def test_the_configured_ad_account_is_read_directly(x: RunningSandbox, tmp_path: Path) -> None:
    code, [report] = run_verify(tmp_path, config_text(x.url, extra=f'ad_account_id = "{ACCOUNT}"'), x.env)
    assert code == 0 and "Shop" in detail(report, "ad account")
    code, [report] = run_verify(tmp_path, config_text(x.url, extra='ad_account_id = "zzz1"'), x.env)
    assert code == 1 and verdicts(report)["ad account"] == "failed"
    assert "zzz1" in detail(report, "ad account") and verdicts(report)["pixel"] == "not checked"


def test_a_wrong_secret_is_a_refused_signature_and_stops_the_reads(x: RunningSandbox, tmp_path: Path) -> None:
    env = {**x.env, "XGATE_X_CONSUMER_SECRET": "not-the-secret"}
    code, [report] = run_verify(tmp_path, config_text(x.url), env)
    assert code == 1
    v = verdicts(report)
    assert v["credentials"] == "ok" and v["signature"] == "failed"
    assert detail(report, "signature").startswith("signature refused")
    assert v["pixel"] == v["event purchase"] == "not checked"
    assert v["conversions"] == "failed" and "not-the-secret" not in json.dumps(report)


def test_an_unknown_pixel_fails_the_pixel_and_the_conversions_request(
    x: RunningSandbox, tmp_path: Path
) -> None:
    code, [report] = run_verify(tmp_path, config_text(x.url, pixel="zz9"), x.env)
    assert code == 1
    v = verdicts(report)
    assert v["signature"] == "ok" and v["ad account"] == v["pixel"] == "failed"
    assert "zz9" in detail(report, "pixel")
    assert v["conversions"] == "failed" and "zz9 unknown" in detail(report, "conversions")


def test_an_unknown_event_id_fails_that_event_only(x: RunningSandbox, tmp_path: Path) -> None:
    events = 'purchase = "tw-o8z6j-o87ne", sign_up = "tw-o8z6j-zzzzz"'
    code, [report] = run_verify(tmp_path, config_text(x.url, events=events), x.env)
    assert code == 1
    v = verdicts(report)
    assert v["event sign_up"] == "failed" and "zzzzz" in detail(report, "event sign_up")
    assert v["event purchase"] == v["pixel"] == v["conversions"] == "ok"


def test_missing_credentials_are_named_and_nothing_is_sent(x: RunningSandbox, tmp_path: Path) -> None:
    before = httpx.get(f"{x.url}/_sandbox/requests").json()["total"]
    env = {**x.env, "XGATE_X_ACCESS_TOKEN": ""}
    code, [report] = run_verify(tmp_path, config_text(x.url), env)
    assert code == 1
    assert verdicts(report)["credentials"] == "failed" and "XGATE_X_ACCESS_TOKEN" in detail(
        report, "credentials"
    )
    assert {c["verdict"] for c in report["checks"][1:]} == {"not checked"}
    assert httpx.get(f"{x.url}/_sandbox/requests").json()["total"] == before


def test_a_value_pasted_with_quotes_is_malformed_and_never_shown(x: RunningSandbox, tmp_path: Path) -> None:
    env = {**x.env, "XGATE_X_ACCESS_TOKEN": f'"{x.env["XGATE_X_ACCESS_TOKEN"]}"'}
    code, [report] = run_verify(tmp_path, config_text(x.url), env)
    assert code == 1 and "XGATE_X_ACCESS_TOKEN is wrapped in quotes" in detail(report, "credentials")
    assert x.env["XGATE_X_ACCESS_TOKEN"] not in json.dumps(report)


def test_a_user_without_a_sending_role_fails_the_role_check(tmp_path: Path) -> None:
    env = random_x_credentials()
    analyst = AdAccount(ACCOUNT, event_tags=X_KNOWS.event_tags, permissions=("CAMPAIGN_ANALYST",))
    app_, _ = create_sandbox(Credentials.from_env(env=env), accounts=[analyst])
    with serve_app(app_) as url:
        code, [report] = run_verify(tmp_path, config_text(url), env)
    assert code == 1 and verdicts(report)["user role"] == "failed"
    assert "CAMPAIGN_ANALYST" in detail(report, "user role")


def test_a_pixel_token_proves_only_what_the_conversions_endpoint_says(tmp_path: Path) -> None:
    env = {"XGATE_X_PIXEL_TOKEN": "tok-0123456789"}
    app_, _ = create_sandbox(Credentials.from_env(auth="pixel_token", env=env), accounts=[X_KNOWS])
    with serve_app(app_) as url:
        text = config_text(url, extra='auth = "pixel_token"')
        code, [report] = run_verify(tmp_path, text, env)
        assert code == 0
        v = verdicts(report)
        assert v["credentials"] == v["conversions"] == "ok"
        assert v["signature"] == v["pixel"] == v["event purchase"] == "not checked"
        assert "OAuth 1.0a only" in detail(report, "pixel")
        code, [report] = run_verify(tmp_path, text, {"XGATE_X_PIXEL_TOKEN": "tok-wrong"})
        assert code == 1 and detail(report, "conversions").startswith("token refused")


def test_an_unknown_destination_is_an_error_naming_the_known_ones(x: RunningSandbox, tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text(config_text(x.url))
    result = runner.invoke(app, ["verify", "--config", str(path), "--destination", "nope"], env=x.env)
    assert result.exit_code == 1 and "nope" in result.stderr and "x-main" in result.stderr


def test_the_readable_output_gives_a_verdict_and_a_fix_per_check(x: RunningSandbox, tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text(config_text(x.url, events='purchase = "tw-o8z6j-zzzzz"'))
    result = runner.invoke(app, ["verify", "--config", str(path)], env={**x.env, "COLUMNS": "200"})
    assert result.exit_code == 1
    assert "failed       event purchase" in result.stdout and "→ copy the event's ID" in result.stdout
    assert "ok           signature" in result.stdout


def test_the_sandbox_command_declares_a_configurations_accounts_for_verify(tmp_path: Path) -> None:
    env = random_x_credentials()
    port = free_port()
    path = tmp_path / "xgate.toml"
    path.write_text(config_text(f"http://127.0.0.1:{port}"))
    assert [a.pixels for a in accounts_from_config(load_config(path))] == [frozenset({"o8z6j"})]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xgate", "sandbox", "--port", str(port), "--declare", str(path)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_sandbox/requests")
        result = runner.invoke(app, ["verify", "--config", str(path), "--json"], env=env)
        assert result.exit_code == 0, result.output
    finally:
        proc.terminate()
        proc.wait(30)
