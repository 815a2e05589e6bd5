"""JSON logs: one object per line, and never a raw e-mail, phone number or secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from xgate.observe import JsonFormatter, configure_logging, register_secrets, scrub
from xgate.testing import serve_app

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


@pytest.mark.parametrize(
    "phone",
    [
        "+33 6 12 34 56 78",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "+34 612 34 56 78",
        "+31 6 12345678",
        "+61 4 1234 5678",
        "+7 912 345-67-89",
        "+81 3-1234-5678",
        "+91 98765 43210",
        "+33\u00a06\u00a012\u00a034\u00a056\u00a078",
    ],
)
def test_phones_written_in_short_groups_are_masked_whole(phone: str) -> None:
    """As France, Spain, Japan or India write them: examples/crm-export.csv holds one."""
    assert scrub(f"not a date ('{phone}')") == "not a date ('[redacted]')"


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-15T14:30:00.000Z",
        "2026-12-01 09:32:06 UTC",
        "22/11/2026 10:30",
        "05-03-2026",
        "backoff 0.5 0.25 0.125 0.0625 s",
        "HTTP 404 at 203.0.113.7, version 0.1.0",
        "SO-1001 tw-o8z6j-o87ne",
    ],
)
def test_dates_times_and_numbers_that_are_no_phone_are_kept(text: str) -> None:
    assert scrub(text) == text


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


def test_the_configured_handler_writes_to_the_stderr_of_the_moment_not_a_closed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command run in-process (typer's CliRunner) configures logging while sys.stderr is a buffer it
    closes afterwards; the root logger's handler must not keep writing there."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    first, later = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr("sys.stderr", first)
        configure_logging("INFO")
        first.close()
        monkeypatch.setattr("sys.stderr", later)
        logging.getLogger("xgate.test.stderr").warning("after the runner's stream closed")
        assert json.loads(later.getvalue())["msg"] == "after the runner's stream closed"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_in_process_servers_hang_no_handler_on_uvicorns_loggers() -> None:
    """uvicorn's own logging config binds handlers to the sys.stderr of the moment (a test's capture)."""
    with serve_app(lambda *args: None):
        pass
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert not any(isinstance(h, logging.StreamHandler) for h in logging.getLogger(name).handlers), name
