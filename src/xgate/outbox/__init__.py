"""The outbox: a durable queue of mapped conversions (the contract: :mod:`xgate.outbox.base`)."""

from __future__ import annotations

import hashlib
import socket

from xgate.config import StorageSettings
from xgate.outbox.base import (
    DestinationHealth,
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
    "DestinationHealth",
    "EnqueueOutcome",
    "HandoffLease",
    "LeasedRow",
    "Outbox",
    "OutboxRow",
    "OutboxStats",
    "RowState",
    "SQLiteOutbox",
    "default_node_id",
    "open_outbox",
]


def default_node_id(storage_url: str, role: str = "") -> str:
    """``<host name>-<8 hex>``: the suffix is stable for this host, storage URL and ``role`` (e.g.
    ``serve:8080``, ``dispatch``), so a restarted process finds its own leases (:meth:`Outbox.reclaim`)
    while two processes of one host leasing from one outbox get different ids. ``[server] node_id``
    overrides it (required when two processes of the same role and port share a host and an outbox)."""
    host = socket.gethostname() or "localhost"
    suffix = hashlib.sha1(f"{host}\x1f{storage_url}\x1f{role}".encode()).hexdigest()[:8]
    return f"{host}-{suffix}"


def open_outbox(
    url: str, settings: StorageSettings | None = None, *, node_id: str | None = None, create: bool = True
) -> Outbox:
    """Open the outbox named by ``[storage] url``: ``sqlite:////abs/path.db`` (``sqlite:///rel.db`` is
    relative to the working directory here: :func:`xgate.config.load_config` has already made a
    configuration's paths absolute) or ``postgresql://user@host/db``.

    ``node_id``: who leases (default :func:`default_node_id` of ``url``). ``create=False`` (read-only
    commands): raise :class:`~xgate.errors.OutboxNotFound` instead of creating a missing outbox.
    Raises OutboxUnavailable / OutboxSchemaMismatch when the store cannot be opened, ValueError for a URL
    of no known engine."""
    node = node_id or default_node_id(url)
    if url.startswith("sqlite:///"):
        return SQLiteOutbox(url.removeprefix("sqlite:///"), settings, node_id=node, create=create)
    if url.startswith(("postgresql://", "postgres://")):
        from xgate.outbox.postgres import PostgresOutbox  # type: ignore[import-not-found,unused-ignore]

        return PostgresOutbox(url, settings, node_id=node, create=create)
    raise ValueError("storage.url: unsupported URL; use sqlite:///path/to/xgate.db or postgresql://…")
