"""The console's test page: a dry run shows what each destination would send and never echoes an e-mail
address or a phone number from the event it was given, wherever in the event it was."""

from __future__ import annotations

import orjson

from xgate.config import parse_config
from xgate.console.views import dry_run

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
