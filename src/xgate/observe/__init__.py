"""Observability: Prometheus metrics, JSON logs without PII or secrets, and the activity log."""

from xgate.observe.activity import ActivityEntry, ActivityLog, RejectionRing
from xgate.observe.logs import JsonFormatter, configure_logging
from xgate.observe.metered import MeteredOutbox
from xgate.observe.metrics import Metrics
from xgate.observe.redact import register_secrets, scrub, scrub_value

__all__ = [
    "ActivityEntry",
    "ActivityLog",
    "JsonFormatter",
    "MeteredOutbox",
    "Metrics",
    "RejectionRing",
    "configure_logging",
    "register_secrets",
    "scrub",
    "scrub_value",
]
