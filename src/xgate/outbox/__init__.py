"""The outbox: a durable queue of mapped conversions (the contract: :mod:`xgate.outbox.base`)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from xgate.config import Config, StorageSettings
from xgate.outbox.base import (
    AttemptRecord,
    CapacityReading,
    DestinationHealth,
    DuplicateSender,
    EnqueueOutcome,
    HandoffLease,
    LeasedRow,
    Outbox,
    OutboxRow,
    OutboxStats,
    OutcomeCount,
    RejectionRecord,
    RequestGrant,
    RowState,
    TimelineBucket,
    default_node_id,
)
from xgate.outbox.sqlite import SQLiteOutbox

__all__ = [
    "AttemptRecord",
    "CapacityReading",
    "DestinationHealth",
    "DuplicateSender",
    "EnqueueOutcome",
    "HandoffLease",
    "LeasedRow",
    "Outbox",
    "OutboxRow",
    "OutboxStats",
    "OutcomeCount",
    "RejectionRecord",
    "RequestGrant",
    "RowState",
    "SQLiteOutbox",
    "TimelineBucket",
    "default_node_id",
    "node_id_for",
    "open_outbox",
    "storage_location",
]


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
        from xgate.outbox.postgres import PostgresOutbox

        outbox: Outbox = PostgresOutbox(url, settings, node_id=node, create=create)
        return outbox
    raise ValueError("storage.url: unsupported URL; use sqlite:///path/to/xgate.db or postgresql://…")


#: libpq URL parameters that hold a secret
_SECRET_PARAMETERS = re.compile(r"(?:^|(?<=&))(password|sslpassword)=[^&]*")


def storage_location(url: str) -> str:
    """``[storage] url`` as messages may show it: a password in a PostgreSQL URL becomes ``***``, in the
    user part or as libpq's ``password`` / ``sslpassword`` parameter."""
    parts = urlsplit(url)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    parts = parts._replace(query=_SECRET_PARAMETERS.sub(r"\1=***", parts.query))
    return url if parts == urlsplit(url) else urlunsplit(parts)


def node_id_for(config: Config, role: str) -> str:
    """``[server] node_id``, else :func:`default_node_id` of the storage URL and ``role`` (``serve:8080``,
    ``dispatch``, ``import``)."""
    return config.server.node_id or default_node_id(config.storage.url, role)
