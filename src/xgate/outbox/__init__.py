"""The outbox: a durable queue of mapped conversions (see :mod:`xgate.outbox.base`)."""

from __future__ import annotations

from xgate.config import StorageSettings
from xgate.outbox.base import (
    EnqueueOutcome,
    HandoffLease,
    LeasedRow,
    Outbox,
    OutboxRow,
    OutboxStats,
    RowState,
)
from xgate.outbox.sqlite import SQLiteOutbox

__all__ = [
    "EnqueueOutcome",
    "HandoffLease",
    "LeasedRow",
    "Outbox",
    "OutboxRow",
    "OutboxStats",
    "RowState",
    "SQLiteOutbox",
    "open_outbox",
]


def open_outbox(url: str, settings: StorageSettings | None = None) -> Outbox:
    """Open the outbox named by ``[storage] url``: ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``."""
    if url.startswith("sqlite:///"):
        return SQLiteOutbox(url.removeprefix("sqlite:///"), settings)
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("storage.url: PostgreSQL is not supported yet; use sqlite:///path/to/xgate.db")
    raise ValueError(f"storage.url: unsupported URL {url!r}; use sqlite:///path/to/xgate.db")
