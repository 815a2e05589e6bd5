"""Every exception xgate raises on purpose, in one tree (as httpx's ``_exceptions.py`` draws its own)::

    XgateError                      root: ``except XgateError`` catches every failure xgate names
     ├─ ConfigError                 the configuration file is missing, not TOML, or has mistakes
     │                              (``problems``: each with its TOML path and reason)
     ├─ InvalidEvent                input is not a usable xgate event (``errors``: field path + reason)
     ├─ ConversionRejected          an event cannot become a conversion X accepts (SDK; ``errors``)
     ├─ CredentialsError            X credentials missing or unreadable (names variables, never values)
     ├─ SnippetError                the web tag snippet cannot be built from this configuration
     ├─ ImportFileError             an offline import file cannot be read as a whole
     ├─ ImportStopped               an import stopped midway: its outbox could not be written (``error``)
     │                              for ``waited`` seconds; rows up to ``rows_done`` are stored
     ├─ CellError                   one cell of an offline import row cannot be read
     ├─ BodyTooLarge                a request body passed ``server.max_body_bytes`` (``limit``)
     ├─ WebhookSignatureError       a webhook's signature is missing, wrong or stale (answered 401)
     ├─ OutboxUnavailable           the outbox cannot be reached or written now; retry later
     │   │                          (ingest answers 503 + Retry-After; the dispatcher backs off)
     │   └─ OutboxSchemaMismatch    the stored schema is older or newer than this code; the message
     │                              says which command to run
     ├─ OutboxReplaced              the outbox is not the one this node used (a file truncated, deleted
     │                              or replaced, a database recreated or restored from another backup,
     │                              while stopped); starting needs --accept-new-outbox
     └─ OutboxNotFound              a read-only command opened an outbox that does not exist

Classes whose callers have always caught ``ValueError`` (bad input: events, credentials, import files, the
snippet's settings) stay ``ValueError`` too. Each class is also importable from the module that raises it
(``xgate.config.ConfigError``, ``xgate.events.InvalidEvent``, ...).

Messages never hold a secret (a password in a storage URL, a credential value) nor raw personal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xgate.config import ConfigProblem
    from xgate.conversion import FieldError

__all__ = [
    "BodyTooLarge",
    "CellError",
    "ConfigError",
    "ConversionRejected",
    "CredentialsError",
    "ImportFileError",
    "ImportStopped",
    "InvalidEvent",
    "OutboxNotFound",
    "OutboxReplaced",
    "OutboxSchemaMismatch",
    "OutboxUnavailable",
    "SnippetError",
    "WebhookSignatureError",
    "XgateError",
]


class XgateError(Exception):
    """The root of every exception xgate raises on purpose."""


class ConfigError(XgateError):
    """The configuration at ``source`` cannot be used; ``problems`` locate each mistake by TOML path."""

    def __init__(self, source: str, problems: list[ConfigProblem]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


class InvalidEvent(XgateError, ValueError):
    """The input is not a usable xgate event; ``errors`` name each field and reason."""

    def __init__(self, errors: list[FieldError]):
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in errors))


class ConversionRejected(XgateError, ValueError):
    """The event cannot become a conversion X accepts; ``errors`` name each field and reason."""

    def __init__(self, errors: Sequence[FieldError], reason: str = "") -> None:
        self.errors = tuple(errors)
        super().__init__(reason or "; ".join(str(e) for e in self.errors))


class CredentialsError(XgateError, ValueError):
    """Credentials are missing or unreadable; the message names the variables (never their values)."""


class SnippetError(XgateError, ValueError):
    """The snippet cannot be built from this configuration (the message names the setting)."""


class ImportFileError(XgateError, ValueError):
    """An import file cannot be read as a whole (missing, wrong format, no header)."""


class ImportStopped(XgateError):
    """An import stopped midway because its outbox could not be written: ``error`` (also ``__cause__``)
    after ``waited`` seconds of retries (0 when no retry could help: another schema version). Every row up
    to ``rows_done`` is stored (or reported) and checkpointed; nothing after it is: the same import run
    again resumes after row ``rows_done``."""

    def __init__(self, file: str, rows_done: int, error: OutboxUnavailable, waited: float) -> None:
        self.file = file
        self.rows_done = rows_done
        self.error = error
        self.waited = waited
        where = (
            f"after row {rows_done:,} (every row up to it is stored and checkpointed)"
            if rows_done
            else "before it stored its first row"
        )
        seconds = f"{waited:.0f}" if waited >= 10 else f"{waited:.1f}"
        why = f"the outbox could not be written for {seconds} s: {error}" if waited else str(error)
        super().__init__(f"the import of {file} stopped {where}: {why}")


class CellError(XgateError, ValueError):
    """A cell that cannot be read; the message is the reason (never the cell's personal data)."""


class BodyTooLarge(XgateError):
    """A request body passed ``limit`` bytes (``server.max_body_bytes``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body exceeds server.max_body_bytes ({limit} bytes)")


class WebhookSignatureError(XgateError):
    """A commerce platform's webhook signature is missing, does not match the raw body, or is older than
    the tolerance: the delivery is answered 401 and nothing is stored. The message names the header and
    the reason, never the secret."""


class OutboxUnavailable(XgateError):
    """The outbox cannot be reached or written now (locked, disk full, database down, ...).

    Wraps every driver and I/O error of an outbox backend (the original is ``__cause__``). The message
    names the engine and the reason, never a secret. The failed call's transaction rolled back, unless
    the connection was lost as its commit was sent (an enqueue may then have stored its rows: retried, it
    reports them as duplicates; ``Outbox.enqueue``); retry later."""


class OutboxSchemaMismatch(OutboxUnavailable):
    """The stored schema is older or newer than this code; the message says which command to run."""


class OutboxReplaced(XgateError):
    """The outbox found is not the one this node recorded (SQLite: ``<db>.id`` beside the file; PostgreSQL:
    in ``[storage] state_dir``): its file was truncated, deleted or replaced, or its database dropped and
    recreated or restored from another backup, while xgate was stopped, and what it held is gone. Not
    retried: the operator decides (restore it, or accept the new outbox with ``--accept-new-outbox`` /
    ``[storage] accept_new_outbox``)."""


class OutboxNotFound(XgateError):
    """A read-only command opened an outbox that does not exist (no file, or no schema in it); the
    message names the resolved location (never a password)."""
