"""Structured logs: one JSON object per line (``ts``, ``level``, ``logger``, ``msg``, ``fields``).

Everything goes through the redaction guard (:mod:`xgate.observe.redact`) before it is written. Attach data
with ``log.info("delivered", extra={"fields": {"destination": "x-main", "count": 3}})``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from xgate.observe.redact import scrub, scrub_value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, with PII and secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            entry["fields"] = scrub_value(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # the exception type and message only: tracebacks may hold local values
            entry["error"] = scrub(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Send xgate's and uvicorn's logs to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # one line per request would drown the useful lines at thousands of requests per second
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
