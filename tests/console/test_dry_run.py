"""The console's test page: a dry run shows what each destination would send and never echoes an e-mail
address or a phone number from the event it was given, wherever in the event it was."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from xgate.collect.app import create_app
from xgate.config import parse_config
from xgate.console.views import dry_run
from xgate.outbox import open_outbox
from xgate.testing import console_sign_in, serve_app

CONFIG = parse_config(
    {
        "sources": [{"name": "backend", "write_key": "srv-key-1"}],
        "destinations": [{"name": "x-main", "pixel_id": "p1", "events": {"purchase": "tw-p1-e1"}}],
    }
)
EMAIL, PHONE = "Ada.Lovelace@Example.com", "+1 415 555 0117"


def test_a_dry_run_of_an_event_named_with_an_e_mail_says_why_it_is_skipped_without_the_e_mail() -> None:
    result = dry_run(CONFIG, {"event_name": EMAIL, "id": "t-1", "user": {"phone": PHONE}})
    [skipped] = result["destinations"]
    assert skipped["status"] == "skipped"
    assert skipped["notes"] == ["no X event configured for event_name '[redacted]'"]
    named_by_phone = dry_run(CONFIG, {"event_name": PHONE, "id": "t-2"})
    text = orjson.dumps([result, named_by_phone]).decode().lower()
    assert "lovelace" not in text and "555 0117" not in text


def test_a_dry_run_still_shows_the_hashed_body_x_would_get() -> None:
    result = dry_run(CONFIG, {"event_name": "purchase", "id": "t-3", "value": 1, "user": {"email": EMAIL}})
    [planned] = result["destinations"]
    assert planned["status"] == "would send"
    assert len(planned["body"]["identifiers"][0]["hashed_email"]) == 64


def test_the_test_page_shows_no_answer_of_x_before_anything_was_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It showed "X's answer: Nothing to send." as soon as it opened."""
    monkeypatch.setenv("XGATE_TEST_DRY_RUN_ADMIN", "adm-dry-run-4e1a")
    config = parse_config(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
            "server": {"admin_key_env": "XGATE_TEST_DRY_RUN_ADMIN"},
            "destinations": [{"name": "x-main", "pixel_id": "p1", "events": {"purchase": "tw-p1-e1"}}],
        }
    )
    outbox = open_outbox(config.storage.url)
    try:
        with serve_app(create_app(config, outbox)) as url, httpx.Client(base_url=url) as http:
            assert console_sign_in(http, "adm-dry-run-4e1a").status_code == 303
            page = http.get("/console/test")
            assert page.status_code == 200
            assert "Send to X for real" in page.text
            assert "X&#39;s answer" not in page.text and "Nothing to send" not in page.text
    finally:
        outbox.close()
