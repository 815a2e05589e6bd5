"""Observability: Prometheus metrics, JSON logs without PII or secrets, and the activity log.

The names below load on first use (PEP 562): the mapping stage imports ``xgate.observe.redact`` alone, and
must not pull the outbox and the metrics in with it (the backend client, which maps nothing of the
gateway's, stays free of them too).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xgate.observe.activity import ActivityEntry, ActivityLog, RejectionLog
    from xgate.observe.logs import JsonFormatter, configure_logging
    from xgate.observe.metered import MeteredOutbox
    from xgate.observe.metrics import Metrics
    from xgate.observe.redact import register_secrets, scrub, scrub_value

_HOMES = {
    "ActivityEntry": "activity",
    "ActivityLog": "activity",
    "RejectionLog": "activity",
    "JsonFormatter": "logs",
    "configure_logging": "logs",
    "MeteredOutbox": "metered",
    "Metrics": "metrics",
    "register_secrets": "redact",
    "scrub": "redact",
    "scrub_value": "redact",
}

__all__ = [
    "ActivityEntry",
    "ActivityLog",
    "JsonFormatter",
    "MeteredOutbox",
    "Metrics",
    "RejectionLog",
    "configure_logging",
    "register_secrets",
    "scrub",
    "scrub_value",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'xgate.observe' has no attribute {name!r}")
    return getattr(importlib.import_module(f"xgate.observe.{home}"), name)
