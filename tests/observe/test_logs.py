"""JSON logs: one object per line, and never a raw e-mail, phone number or secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from xgate.observe import JsonFormatter, register_secrets

HASHED = "a" * 64


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("xgate.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_ts_level_msg_fields(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info(
        "delivered %d conversions", 3, extra={"fields": {"destination": "x-main", "debug_id": "dbg-1"}}
    )
    logger.warning("slow")
    first, second = lines(stream)
    assert first["msg"] == "delivered 3 conversions"
    assert first["level"] == "info"
    assert first["fields"] == {"destination": "x-main", "debug_id": "dbg-1"}
    assert str(first["ts"]).endswith("+00:00")
    assert second["level"] == "warning"
    assert "fields" not in second


def test_raw_emails_and_phones_are_masked_in_messages_and_fields(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info(
        "could not map Jane.Doe@Example.com / +1 (415) 555-0134",
        extra={
            "fields": {
                "email": "jane@example.com",
                "phone": "4155550134",
                "hashed_email": HASHED,
                "note": "call 020 7946 0958 today",
                "conversion_id": "ord-1",
                "conversion_time": "2026-03-15T14:30:00.000Z",
            }
        },
    )
    text = stream.getvalue()
    for raw in ("Jane.Doe@Example.com", "jane@example.com", "555-0134", "4155550134", "7946"):
        assert raw not in text
    entry = lines(stream)[0]
    fields = entry["fields"]
    assert isinstance(fields, dict)
    assert fields["hashed_email"] == HASHED
    assert fields["conversion_id"] == "ord-1"
    assert fields["conversion_time"] == "2026-03-15T14:30:00.000Z"


def test_secrets_are_masked_by_name_and_by_value(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    register_secrets(["s3cr3t-write-key-123"])
    logger.info(
        "auth failed for s3cr3t-write-key-123",
        extra={
            "fields": {"consumer_secret": "abc", "Authorization": "OAuth x", "header": "s3cr3t-write-key-123"}
        },
    )
    text = stream.getvalue()
    assert "s3cr3t-write-key-123" not in text
    assert "OAuth x" not in text
    assert '"consumer_secret":"[redacted]"' in text


def test_exceptions_are_logged_by_type_and_message_without_traceback(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    try:
        raise ValueError("bad phone +44 20 7946 0958")
    except ValueError:
        logger.exception("mapping failed")
    entry = lines(stream)[0]
    assert entry["error"] == "ValueError: bad phone [redacted]"
    assert "Traceback" not in stream.getvalue()
