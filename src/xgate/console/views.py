"""What each console page shows, as JSON-ready dicts built from the outbox contract and the metrics.

Only :class:`~xgate.outbox.base.Outbox` methods (``stats``, ``health``, ``rows``, ``row``) are used, so the
numbers are the same on SQLite and PostgreSQL and include every node's conversions. Bodies hold hashed
identifiers only (the mapper hashes before storing); error texts are scrubbed again before display.

Bounds: listings, latency and the hour's chart read at most :data:`SCAN_ROWS` recent rows (``rows`` is an
index walk); filters the contract does not take (event name, error text, conversion id) apply to those.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from xgate.config import Config
from xgate.observe.activity import SIGNALS
from xgate.observe.destinations import destination_states
from xgate.observe.metrics import Metrics
from xgate.observe.redact import scrub
from xgate.outbox.base import Outbox, OutboxRow, RowState

#: the most recent rows a listing, a latency figure or a chart reads
SCAN_ROWS = 1000
STATES: tuple[RowState, ...] = ("queued", "leased", "delivered", "dead")


def row_json(row: OutboxRow, *, body: bool = False) -> dict[str, Any]:
    """A row for the console: ids, names, state, attempts, X's debug id and error, match signals."""
    out: dict[str, Any] = {
        "id": row.id,
        "destination": row.destination,
        "pixel_id": row.pixel_id,
        "event_id": row.event_id,
        "event_name": row.event_name,
        "conversion_id": row.conversion_id,
        "state": row.state,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "next_attempt_at": row.next_attempt_at,
        "last_error": scrub(row.last_error) if row.last_error else None,
        "debug_id": row.debug_id,
        "match_signals": [s for s in SIGNALS if s in row.match_signals],
        "leased_by": row.leased_by,
    }
    if body:
        out["body"] = row.body
    return out


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _labelled(metrics: Metrics, metric: str, key: str) -> dict[str, dict[str, float]]:
    """``{destination-or-source: {label: value}}`` of a two-label counter, read from the registry."""
    out: dict[str, dict[str, float]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == metric:
                labels = sample.labels
                first = labels.get("destination") or labels.get("source") or ""
                out.setdefault(first, {})[labels.get(key, "")] = sample.value
    return out


def filter_rows(
    outbox: Outbox,
    *,
    state: RowState | None = None,
    destination: str | None = None,
    event_name: str | None = None,
    error: str | None = None,
    conversion_id: str | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Newest first, at most ``limit`` rows matching every given filter (``error``: a substring of the
    last error, case-insensitive), among the :data:`SCAN_ROWS` newest of ``state`` / ``destination``."""
    rows = outbox.rows(state=state, destination=destination or None, limit=SCAN_ROWS)
    needle = error.lower() if error else None
    picked = [
        r
        for r in rows
        if (not event_name or r.event_name == event_name)
        and (not conversion_id or r.conversion_id == conversion_id)
        and (needle is None or (r.last_error or "").lower().find(needle) >= 0)
    ]
    return picked[:limit]


def overview(
    config: Config,
    outbox: Outbox,
    metrics: Metrics,
    credential_problems: Callable[[], Mapping[str, list[str]]] | None = None,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Per destination: pixel, rows per state, delivery latency (ingest → X's answer) p50/p99 over recent
    deliveries, X's answers by outcome and failures by reason, and the connection's health; per source:
    events received by outcome; and the last hour per minute (stored, delivered, dead)."""
    now = time.time() if now is None else now
    stats = outbox.stats(now=now)
    states = {
        s.name: s
        for s in destination_states(
            (d.name for d in config.destinations),
            outbox.health(),
            credential_problems() if credential_problems is not None else None,
        )
    }
    recent = outbox.rows(limit=SCAN_ROWS)
    deliveries = _labelled(metrics, "xgate_deliveries_total", "outcome")
    failures = _labelled(metrics, "xgate_delivery_failures_total", "reason")
    destinations = []
    for d in config.destinations:
        counts = {s: stats.counts.get((d.name, s), 0) for s in STATES}
        waits = [
            r.updated_at - r.created_at for r in recent if r.destination == d.name and r.state == "delivered"
        ]
        state = states[d.name]
        destinations.append(
            {
                "name": d.name,
                "pixel_id": d.pixel_id,
                "counts": counts,
                "latency_seconds": {
                    "p50": percentile(waits, 0.5),
                    "p99": percentile(waits, 0.99),
                    "of": len(waits),
                },
                "answers": deliveries.get(d.name, {}),
                "failures": failures.get(d.name, {}),
                "health": state.as_json(),
            }
        )
    sources = []
    events = _labelled(metrics, "xgate_events_total", "status")
    for s in config.sources:
        by_status = events.get(s.name, {})
        sources.append(
            {
                "name": s.name,
                "kind": "browser" if s.allowed_origins else "server",
                "received": sum(by_status.values()),
                **{k: by_status.get(k, 0.0) for k in ("accepted", "duplicate", "skipped", "rejected")},
            }
        )
    start = int(now // 60) * 60 - 59 * 60
    minutes = [start + 60 * i for i in range(60)]
    stored, delivered, dead = [0] * 60, [0] * 60, [0] * 60
    for r in recent:
        slot = int((r.created_at - start) // 60)
        if 0 <= slot < 60:
            stored[slot] += 1
            if r.state == "delivered":
                delivered[slot] += 1
            elif r.state == "dead":
                dead[slot] += 1
    waiting = sum(c for (_, s), c in stats.counts.items() if s in ("queued", "leased"))
    return {
        "at": now,
        "destinations": destinations,
        "sources": sources,
        "queue": {
            "waiting": waiting,
            "delivered_last_minute": stats.delivered_last_minute,
            "oldest_undelivered_at": stats.oldest_undelivered_at,
            # at the last minute's pace; None when nothing was delivered in it
            "drain_seconds": (waiting / stats.delivered_last_minute * 60)
            if waiting and stats.delivered_last_minute
            else None,
        },
        "hour": {"minutes": minutes, "stored": stored, "delivered": delivered, "dead": dead},
    }


def event_page(outbox: Outbox, row_id: int) -> dict[str, Any] | None:
    """One conversion with its exact body for X and its dedup diagnostics: every other stored row with
    the same ``conversion_id`` (another destination, or the same conversion sent again from another
    source: X counts a pixel event and a Conversions API event with one conversion id once)."""
    row = outbox.row(row_id)
    if row is None:
        return None
    same = [r for r in filter_rows(outbox, conversion_id=row.conversion_id, limit=50) if r.id != row.id]
    return {
        "conversion": row_json(row, body=True),
        "dedup": {
            "conversion_id": row.conversion_id,
            "same_conversion_id": [row_json(r) for r in same],
            "note": (
                "X counts events that share a conversion_id (and event) once, whether they came from the "
                "pixel in the browser or from the Conversions API"
            ),
        },
    }
