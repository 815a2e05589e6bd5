"""``xgate sandbox`` as a real process with faults from the command line, and ``xgate send`` failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from xgate.cli import app
from xgate.config import XSettings
from xgate.testing import RunningSandbox, free_port, random_x_credentials, wait_http
from xgate.x import Credentials, XClient

runner = CliRunner()


def conversion() -> dict[str, object]:
    return {
        "conversion_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "event_id": "tw-o8z6j-o87ne",
        "identifiers": [{"twclid": "26l6412g5p4iyj65a2oic2ayg2"}],
    }


@pytest.fixture
def sandbox_process() -> Iterator[tuple[str, dict[str, str]]]:
    env = random_x_credentials()
    port = free_port()
    args = ["--port", str(port), "--pixel", "o8z6j", "--error-rate", "1", "--seed", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xgate", "sandbox", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_sandbox/requests")
        yield url, env
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_sandbox_command_serves_with_faults_from_its_options(
    sandbox_process: tuple[str, dict[str, str]],
) -> None:
    url, env = sandbox_process
    faults = httpx.get(f"{url}/_sandbox/faults").json()
    assert (faults["error_rate"], faults["seed"]) == (1.0, 3)
    with XClient(XSettings(api_url=url), Credentials.from_env(env=env)) as x:
        result = x.send("o8z6j", [conversion()])
        assert result.outcome == "retry" and result.status_code in (500, 503)
        httpx.put(f"{url}/_sandbox/faults", json={}).raise_for_status()
        assert x.send("o8z6j", [conversion()]).outcome == "delivered"
        assert x.send("other", [conversion()]).status_code == 404


def test_the_sandbox_command_refuses_bad_options_naming_them() -> None:
    env = random_x_credentials()
    result = runner.invoke(app, ["sandbox", "--error-rate", "1.5"], env=env)  # out of range: a usage error
    assert result.exit_code == 2 and "--error-rate" in result.output
    result = runner.invoke(app, ["sandbox", "--auth", "basic"], env=env)  # a choice: a usage error
    assert result.exit_code == 2 and "--auth" in result.output and "pixel_token" in result.output


def test_the_sandbox_command_needs_credentials_and_says_where_they_come_from() -> None:
    result = runner.invoke(app, ["sandbox"], env={k: "" for k in random_x_credentials()})
    assert result.exit_code == 1 and "XGATE_X_CONSUMER_KEY" in result.output
    # `make sandbox` in a fresh shell: the sandbox reads no configuration, so no [x] secrets_file hint
    message = " ".join(result.stderr.split())
    assert "[x] secrets_file" not in message
    assert "the gateway signs with" in message and "--credentials-prefix" in message


def write_config(tmp_path: Path, url: str) -> tuple[Path, Path]:
    cfg = tmp_path / "xgate.toml"
    cfg.write_text(
        f'[x]\napi_url = "{url}"\n'
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'
    )
    event = tmp_path / "e.json"
    event.write_text(
        json.dumps({"event_name": "purchase", "id": "cli-2", "user": {"email": "a@example.com"}})
    )
    return cfg, event


def test_send_exits_1_and_shows_x_answer_when_x_refuses(tmp_path: Path, sandbox: RunningSandbox) -> None:
    cfg, event = write_config(tmp_path, sandbox.url)
    forged = {**sandbox.env, "XGATE_X_CONSUMER_SECRET": "not-the-secret"}
    result = runner.invoke(app, ["send", str(event), "--config", str(cfg), "--json"], env=forged)
    assert result.exit_code == 1
    [answer] = json.loads(result.stdout)
    assert (answer["outcome"], answer["status"]) == ("permanent", 401)
    assert answer["errors"] == [
        {"code": "UNAUTHORIZED_ACCESS", "message": "invalid signature", "parameter": None}
    ]
    assert "not-the-secret" not in result.output
    assert sandbox.conversions() == []


def test_send_when_x_cannot_be_reached_says_no_answer_not_http_none(tmp_path: Path) -> None:
    cfg, event = write_config(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = runner.invoke(
        app, ["send", str(event), "--config", str(cfg)], env={**random_x_credentials(), "COLUMNS": "300"}
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("x pixel o8z6j: retry (no answer) ConnectError: "), result.stdout
    assert "None" not in result.stdout


def test_send_without_credentials_names_the_missing_variables(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    cfg, event = write_config(tmp_path, sandbox.url)
    env = {**sandbox.env, "XGATE_X_ACCESS_TOKEN": ""}
    result = runner.invoke(app, ["send", str(event), "--config", str(cfg)], env=env)
    assert result.exit_code == 1 and "XGATE_X_ACCESS_TOKEN" in result.output
