"""``xgate track``: one event from the command line; the answer printed, the exit status telling it."""

from __future__ import annotations

import json

from clientkit import WRITE_KEY, LiveGateway
from typer.testing import CliRunner

from xgate.cli import app

runner = CliRunner()


def track(*args: str, key: str = WRITE_KEY) -> tuple[int, str]:
    result = runner.invoke(app, ["track", *args], env={"XGATE_WRITE_KEY": key, "COLUMNS": "200"})
    return result.exit_code, result.output


def test_an_event_from_options_is_accepted(live_gateway: LiveGateway) -> None:
    code, out = track(
        "purchase",
        "--id",
        "cli-1",
        "--value",
        "19.9",
        "--currency",
        "EUR",
        "--email",
        "Ada@Example.com",
        "--property",
        "custom.channel=phone",
        "--gateway",
        live_gateway.url,
        "--json",
    )
    assert code == 0, out
    answer = json.loads(out)
    assert answer["status"] == "accepted" and answer["conversion_ids"] == ["cli-1"]
    [row] = live_gateway.outbox.rows()
    assert row.body["value"] == 19.9 and row.match_signals == ("email",)


def test_an_event_from_json_merges_with_options_and_a_rejection_exits_3(live_gateway: LiveGateway) -> None:
    code, out = track("--event", '{"event_name": "purchase", "id": "cli-2"}', "--gateway", live_gateway.url)
    assert code == 3
    assert "rejected" in out and "identifiers" in out


def test_a_bad_write_key_or_no_gateway_exits_1_saying_why(live_gateway: LiveGateway) -> None:
    code, out = track("purchase", "--email", "a@example.com", "--gateway", live_gateway.url, key="wrong")
    assert code == 1 and "401" in out
    code, out = track(
        "purchase", "--email", "a@example.com", "--gateway", "http://127.0.0.1:9", "--retries", "0"
    )
    assert code == 1 and "ConnectError" in out
    code, out = track("--event", "[1]", "--gateway", live_gateway.url)  # a usage error (README)
    assert code == 2 and "JSON object" in out
    code, out = track("--gateway", live_gateway.url)
    assert code == 2 and "event_name" in out


def test_a_missing_write_key_or_a_gateway_without_scheme_is_a_usage_error_naming_the_option() -> None:
    result = runner.invoke(app, ["track", "purchase"], env={"XGATE_WRITE_KEY": "", "COLUMNS": "200"})
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --write-key: not given and XGATE_WRITE_KEY is not set\nTry 'xgate track --help'.\n"
    )
    code, out = track("purchase", "--gateway", "127.0.0.1:8080")
    assert code == 2
    assert out == (
        "error: --gateway: must be the gateway's http(s) URL, such as http://127.0.0.1:8080, "
        "not '127.0.0.1:8080'\nTry 'xgate track --help'.\n"
    )
