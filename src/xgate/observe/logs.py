"""Structured logs: one JSON object per line (``ts``, ``level``, ``logger``, ``msg``, ``fields``).

Everything goes through the redaction guard (:mod:`xgate.observe.redact`) before it is written. Attach data
with ``log.info("delivered", extra={"fields": {"destination": "x-main", "count": 3}})``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, TextIO

import orjson

from xgate.observe.redact import scrub, scrub_value

#: third-party loggers whose records below WARNING can carry credentials or personal data: oauthlib's
#: debug lines list the OAuth parameters (consumer key, token) and the signature base string; the HTTP
#: stacks' debug lines hold request URLs and headers. Their records below WARNING are never written,
#: whatever the level asked for (``xgate serve --log-level debug`` included).
QUIET_LOGGERS = ("oauthlib", "requests_oauthlib", "httpx", "httpcore", "urllib3", "hpack", "h11", "h2")


class QuietThirdParties(logging.Filter):
    """Drops records below WARNING from :data:`QUIET_LOGGERS` (and their children): a handler-level guard
    that holds even when someone lowers those loggers' levels."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        return not any(name == q or name.startswith(q + ".") for q in QUIET_LOGGERS)


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


class StderrHandler(logging.StreamHandler[TextIO]):
    """A handler writing to whatever ``sys.stderr`` is when a record comes, as logging's last resort does:
    the root logger outlives any stream it was given, and a replaced one (a test runner's capture, typer's
    CliRunner) is closed once done with, while later records still come ("Logging error: I/O operation on
    closed file")."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Send xgate's and uvicorn's logs to ``stream`` (default: the process's stderr of the moment) as JSON
    lines; third-party loggers that can carry credentials (:data:`QUIET_LOGGERS`) only from WARNING up, at
    every ``level``."""
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(QuietThirdParties())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in QUIET_LOGGERS:  # not even formatted (the handler's filter drops them anyway)
        logging.getLogger(name).setLevel(logging.WARNING)
    # one line per request would drown the useful lines at thousands of requests per second
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
