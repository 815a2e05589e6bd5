"""What each console page shows, as JSON-ready dicts built from the outbox contract.

Only :class:`~xgate.outbox.base.Outbox` methods (``stats``, ``health``, ``rows``, ``row``, ``history``,
``duplicates``, ``timeline``, ``counts``) are used, so the numbers are the same on SQLite and PostgreSQL
and include every node's conversions and events. Bodies hold hashed identifiers only (the mapper hashes
before storing); error texts are scrubbed again before display.

Bounds: listings are filtered by the outbox (``rows``, keyset pages); latency reads the :data:`SCAN_ROWS`
most recent rows; charts and match quality read the outbox's per-minute counts (``timeline``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

from xgate.config import Config
from xgate.config_check import credential_variables
from xgate.observe.activity import SIGNALS
from xgate.observe.destinations import destination_states
from xgate.observe.metrics import Metrics
from xgate.observe.redact import scrub
from xgate.outbox import storage_location
from xgate.outbox.base import CountKind, DestinationHealth, Outbox, OutboxRow, RowState

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
        "source": row.source,
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


def _by_name(totals: Mapping[tuple[CountKind, str, str], int], kind: CountKind) -> dict[str, dict[str, int]]:
    """``{source-or-destination: {outcome: n}}`` of one kind of :meth:`Outbox.counts`."""
    out: dict[str, dict[str, int]] = {}
    for (k, name, outcome), n in sorted(totals.items()):
        if k == kind:
            out.setdefault(name, {})[outcome] = n
    return out


def filter_rows(
    outbox: Outbox,
    *,
    state: RowState | None = None,
    destination: str | None = None,
    source: str | None = None,
    event_name: str | None = None,
    error: str | None = None,
    conversion_id: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Newest first, at most ``limit`` rows matching every given filter (empty strings: no filter;
    ``error``: a case-insensitive substring of the last error), ids below ``before``."""
    return outbox.rows(
        state=state or None,
        destination=destination or None,
        source=source or None,
        event_name=event_name or None,
        conversion_id=conversion_id or None,
        error=error or None,
        before=before,
        limit=limit,
    )


#: the charts' windows: name -> (seconds shown, bucket seconds)
WINDOWS: dict[str, tuple[int, int]] = {"hour": (3600, 60), "day": (86400, 900), "week": (7 * 86400, 3600)}
SERIES = ("stored", "delivered", "retried", "dead")


def charts(outbox: Outbox, now: float) -> dict[str, dict[str, list[float]]]:
    """Per window of :data:`WINDOWS`: bucket starts ``t`` and, per bucket, the conversions stored,
    delivered, retried and dead (every destination), from the outbox's per-minute counts."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, (span, size) in WINDOWS.items():
        first = (int(now) // size) * size - span + size
        count = span // size
        series: dict[str, list[float]] = {"t": [float(first + size * i) for i in range(count)]}
        series |= {k: [0.0] * count for k in SERIES}
        for b in outbox.timeline(first, size):
            slot = int((b.start - first) // size)
            if 0 <= slot < count:
                for k in SERIES:
                    series[k][slot] += getattr(b, k)
        out[name] = series
    return out


def capacity(
    config: Config,
    outbox_counts: Mapping[tuple[str, str], int],
    health: Mapping[str, DestinationHealth],
    now: float,
) -> dict[str, dict[str, Any]]:
    """Per destination: X's request budget from its last rate-limit headers (limit, remaining, used,
    reset, when they came; None before the first answer), as the outbox keeps them for every node
    (:attr:`DestinationHealth.capacity`: whichever node sent last), and the time to drain its waiting
    rows at that budget's pace.

    Pace: X allows ``limit`` requests per window (``[x] rate_limit_window_seconds``), each of up to
    ``[x] max_conversions_per_request`` conversions, so the queue needs ``ceil(waiting / per request)``
    requests; when they fit in what remains, at ``limit / window`` requests a second; otherwise the rest
    waits for X's reset first. Without headers the configured ``rate_limit_requests`` stands in."""
    x = config.x
    out: dict[str, dict[str, Any]] = {}
    for d in config.destinations:
        waiting = sum(outbox_counts.get((d.name, s), 0) for s in ("queued", "leased"))
        requests = math.ceil(waiting / x.max_conversions_per_request)
        found = health.get(d.name)
        seen = found.capacity if found is not None else None
        limit = x.rate_limit_requests
        remaining: int | None = None
        reset: float | None = None
        if seen is not None:
            limit = seen.limit or limit
            remaining, reset = seen.remaining, seen.reset_at
        per_second = limit / x.rate_limit_window_seconds
        drain = requests / per_second
        if remaining is not None and requests > remaining and reset is not None:
            drain = max(0.0, reset - now) + (requests - remaining) / per_second
        out[d.name] = {
            "limit": limit,
            "remaining": remaining,
            "used": (limit - remaining) if remaining is not None else None,
            "reset_at": reset,
            "scope": seen.scope if seen else None,
            "seen_at": seen.seen_at if seen else None,
            "requests_needed": requests,
            "drain_seconds": drain if waiting else 0.0,
        }
    return out


Window = Literal["hour", "day", "week"]


def overview(
    config: Config,
    outbox: Outbox,
    metrics: Metrics,
    credential_problems: Callable[[], Mapping[str, list[str]]] | None = None,
    *,
    window: Window = "day",
    now: float | None = None,
) -> dict[str, Any]:
    """Per destination: pixel, rows per state, delivery latency (ingest → X's answer) p50/p99 over recent
    deliveries, X's answers by outcome and failures by reason, the connection's health and its capacity
    (:func:`capacity`); per source: events received by outcome, and ``unmatched``: how many of the
    rejected were refused only for want of an identifier X can match; and the :func:`charts`.

    Answers, failures and events are every node's over ``window`` (:data:`WINDOWS`; from the start of
    the minute ``window`` ago), from the outbox's outcome counts (:meth:`Outbox.counts`), this process's
    own written first (``metrics.shared``); a node's last second of counts may not be written yet."""
    now = time.time() if now is None else now
    if metrics.shared is not None:
        metrics.shared.flush()
    totals = outbox.counts(now - WINDOWS[window][0])
    stats = outbox.stats(now=now)
    health = outbox.health()
    states = {
        s.name: s
        for s in destination_states(
            (d.name for d in config.destinations),
            health,
            credential_problems() if credential_problems is not None else None,
        )
    }
    recent = outbox.rows(limit=SCAN_ROWS)
    deliveries = _by_name(totals, "delivery")
    failures = _by_name(totals, "failure")
    budgets = capacity(config, stats.counts, health, now)
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
                "capacity": budgets[d.name],
            }
        )
    sources = []
    events = _by_name(totals, "event")
    rejections = _by_name(totals, "rejection")
    for s in config.sources:
        by_status = events.get(s.name, {})
        sources.append(
            {
                "name": s.name,
                "kind": "browser" if s.allowed_origins else "server",
                "received": sum(by_status.values()),
                **{k: by_status.get(k, 0) for k in ("accepted", "duplicate", "skipped", "rejected")},
                # of the rejected: only for want of an identifier X can match (counted, not listed)
                "unmatched": rejections.get(s.name, {}).get("unmatched", 0),
            }
        )
    waiting = sum(c for (_, s), c in stats.counts.items() if s in ("queued", "leased"))
    return {
        "at": now,
        "window": window,
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
        "charts": charts(outbox, now),
    }


def event_page(config: Config, outbox: Outbox, row_id: int) -> dict[str, Any] | None:
    """One conversion with its exact body for X, every attempt (X's status, error, debug_id) and its
    dedup diagnostics (:func:`dedup`)."""
    row = outbox.row(row_id)
    if row is None:
        return None
    return {
        "conversion": row_json(row, body=True),
        "attempts": [
            {
                "at": a.at,
                "outcome": a.outcome,
                "status": a.status,
                "error": scrub(a.error) if a.error else None,
                "debug_id": a.debug_id,
            }
            for a in outbox.history(row_id)
        ],
        "dedup": dedup(config, outbox, row),
    }


def source_kind(config: Config, name: str) -> str:
    """``browser`` (a source with allowed origins: the xgate tag, which also fires X's pixel), ``import``,
    the kind of a webhook or SDK source (``xgate``, ``segment``, ``shopify``, …), or ``unknown``."""
    if name.startswith("import:"):
        return "import"
    found = next((s for s in config.sources if s.name == name), None)
    if found is None:
        return "unknown"
    if found.allowed_origins:
        return "browser"
    return "backend" if found.kind == "xgate" else found.kind


def dedup(config: Config, outbox: Outbox, row: OutboxRow) -> dict[str, Any]:
    """Why X counts this conversion once: every stored row with the same conversion id (an index lookup),
    each with its source and what X does with it, and the rules that apply.

    X deduplicates on (pixel, X event, conversion_id) across the pixel in the browser and the Conversions
    API. xgate stores one row per (pixel, X event, conversion_id) within ``[storage] dedup_window_days``:
    the same conversion sent again (an import after a backend, a reload of the thank-you page) is answered
    ``duplicate`` and never sent, so X gets it once from xgate; only a browser (public-key) copy never blocks
    a later server copy: both are sent and X merges them (docs/security.md). A browser source's
    conversion was also sent by X's pixel in that browser with the same conversion_id: X counts the
    two once.

    ``also_sent_by``: every source that sent this conversion again and was answered duplicate
    (:meth:`~xgate.outbox.base.Outbox.duplicates`, recorded by whichever node took the copy): its kind,
    its key's trust (``public``: a browser source), how many copies, the first and last (epoch s), and
    ``why`` xgate did not send them."""
    kind = source_kind(config, row.source)
    window = config.storage.dedup_window_days
    also = []
    for d in outbox.duplicates(row.id):
        if d.public and kind != "browser":
            why = (
                "a copy from the browser tag (a public key) is never stored when a server copy is: X got "
                "this one, and merges the pixel event the tag fired with it by conversion_id"
            )
        elif d.source == row.source:
            why = f"the same source sent it again within the {window}-day dedup window (a retry or a reload)"
        else:
            why = f"a copy within the {window}-day dedup window: X gets the conversion once, from this row"
        also.append(
            {
                "source": d.source,
                "source_kind": source_kind(config, d.source),
                "public": d.public,
                "count": d.copies,
                "first_at": d.first_at,
                "last_at": d.last_at,
                "why": why,
            }
        )
    others = []
    for r in outbox.rows(conversion_id=row.conversion_id, limit=50):
        if r.id == row.id:
            continue
        same_event = (r.pixel_id, r.event_id) == (row.pixel_id, row.event_id)
        others.append(
            row_json(r)
            | {
                "source_kind": source_kind(config, r.source),
                "counted": "once with this one" if same_event else "separately (another pixel or X event)",
            }
        )
    notes = [
        "xgate stores a conversion once per pixel, X event and conversion_id: the same conversion sent again "
        f"within {config.storage.dedup_window_days} days (a reload of the thank-you page, an import after a "
        "backend) is answered duplicate and never sent to X; only a copy from the browser tag never blocks a "
        "later one from a server source: both are sent and X merges them by conversion_id (docs/security.md)"
    ]
    if kind == "browser":
        notes.append(
            "it came from the browser tag, which also fired X's pixel with this conversion_id: X counts the "
            "pixel event and this Conversions API event once"
        )
    elif kind == "import":
        notes.append("it came from an import file; a live source sending it later is a duplicate, not sent")
    else:
        notes.append("if X's pixel also fired in the browser with this conversion_id, X counts the two once")
    return {
        "conversion_id": row.conversion_id,
        "source": row.source,
        "source_kind": kind,
        "same_conversion_id": others,
        "also_sent_by": also,
        "notes": notes,
    }


#: match quality: name -> (period seconds, bucket seconds); each period is compared with the one before
PERIODS: dict[str, tuple[int, int]] = {"hour": (3600, 300), "day": (86400, 3600), "week": (7 * 86400, 21600)}
SIGNAL_FIELDS = ("twclid", "email", "phone", "ip_ua")
#: a signal's share "drops sharply" when it falls below this fraction of the previous period's share...
DROP_RATIO = 0.5
#: ...the previous share was at least this...
DROP_FLOOR = 0.1
#: ...and both periods stored at least this many conversions (fewer say nothing)
DROP_MIN_CONVERSIONS = 10


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def match_quality(config: Config, outbox: Outbox, period: str, *, now: float | None = None) -> dict[str, Any]:
    """Per destination and X event over ``period`` (a key of :data:`PERIODS`): the share of conversions
    stored carrying each match signal and the delivered share (delivered / stored in the period), per
    bucket and in total, against the previous period; a warning per signal whose share dropped sharply
    (:data:`DROP_RATIO`, :data:`DROP_FLOOR`, :data:`DROP_MIN_CONVERSIONS`). ValueError for another period."""
    if period not in PERIODS:
        raise ValueError(f"period: must be one of {', '.join(PERIODS)}")
    now = time.time() if now is None else now
    span, size = PERIODS[period]
    end = (int(now) // size) * size + size
    start, previous_start = end - span, end - 2 * span
    count = span // size
    names = {(d.name, x_event): name for d in config.destinations for name, x_event in d.events.items()}
    fields = ("stored", "delivered", *SIGNAL_FIELDS)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for b in outbox.timeline(previous_start, size):
        key = (b.destination, b.event_id)
        entry = found.setdefault(
            key,
            {
                "now": dict.fromkeys(fields, 0),
                "before": dict.fromkeys(fields, 0),
                "buckets": [dict.fromkeys(fields, 0) for _ in range(count)],
            },
        )
        into = entry["now"] if b.start >= start else entry["before"]
        for f in fields:
            into[f] += getattr(b, f)
        slot = int((b.start - start) // size)
        if 0 <= slot < count:
            for f in fields:
                entry["buckets"][slot][f] += getattr(b, f)
    rows = []
    for (destination, event_id), entry in sorted(found.items()):
        current, before = entry["now"], entry["before"]
        shares = {f: _share(current[f], current["stored"]) for f in (*SIGNAL_FIELDS, "delivered")}
        previous = {f: _share(before[f], before["stored"]) for f in (*SIGNAL_FIELDS, "delivered")}
        warnings = []
        enough = min(current["stored"], before["stored"]) >= DROP_MIN_CONVERSIONS
        for f in SIGNAL_FIELDS:
            was, now_share = previous[f], shares[f]
            dropped = was is not None and now_share is not None and now_share < was * DROP_RATIO
            if enough and dropped and was is not None and was >= DROP_FLOOR:
                warnings.append(
                    f"{f}: {now_share:.0%} of conversions this {period}, {was:.0%} the {period} before"
                    " (a broken tag, or a form that stopped sending it?)"
                )
        rows.append(
            {
                "destination": destination,
                "event_id": event_id,
                "event_name": names.get((destination, event_id))
                or names.get((destination, f"tw-{event_id}")),
                "stored": current["stored"],
                "stored_before": before["stored"],
                "shares": shares,
                "previous": previous,
                "warnings": warnings,
                "series": {
                    f: [_share(b[f], b["stored"]) for b in entry["buckets"]]
                    for f in (*SIGNAL_FIELDS, "delivered")
                },
            }
        )
    return {
        "period": period,
        "start": start,
        "bucket_seconds": size,
        "t": [start + size * i for i in range(count)],
        "rows": rows,
    }


def configuration(config: Config, findings: list[str]) -> dict[str, Any]:
    """The configuration as the console shows it, read-only: sources (kind, where the write key comes
    from: the environment variable's name, or "in the file"; never a key), destinations (pixel, events,
    filters, consent, the credential variables' names), ``config check``'s findings, and ``file``: the
    configuration file every other value comes from (absolute path; None when built in code).

    Each source, destination and section of settings also has ``settings``: every setting with the
    origin of its value (:func:`_settings`), the same for all of them."""
    sources = []
    for s in config.sources:
        secret_env = getattr(s, "signing_secret_env", None)
        sources.append(
            {
                "name": s.name,
                "kind": s.kind,
                "audience": source_kind(config, s.name),
                "write_key": f"env {s.write_key_env}"
                if s.write_key_env
                else "in the configuration file"
                if s.write_key
                else "none",
                "signing_secret": f"env {secret_env}" if secret_env else None,
                "allowed_origins": list(s.allowed_origins),
                "event_names": dict(s.event_names),
                "mapping": sorted(s.mapping),
                "settings": _settings(s, skip=("name",)),
            }
        )
    destinations = []
    for d in config.destinations:
        destinations.append(
            {
                "name": d.name,
                "pixel_id": d.pixel_id,
                "auth": d.auth,
                "credentials": credential_variables(config, d.name),
                "secrets_file": bool(config.x.secrets_file),
                "events": dict(d.events),
                "default_event": d.default_event,
                "filter": d.filter.model_dump(mode="json", exclude_defaults=True),
                "consent": d.consent.model_dump(mode="json"),
                "mapping": sorted(d.mapping),
                "dpa": d.dpa,
                "settings": _settings(d, skip=("name",)),
            }
        )
    return {
        "sources": sources,
        "destinations": destinations,
        "x": {"api_url": config.x.api_url, "api_version": config.x.api_version},
        "settings": [
            {
                "section": name,
                "settings": _settings(getattr(config, name), masked=MASKED_SETTINGS.get(name, {})),
            }
            for name in SECTIONS
        ],
        "file": config.loaded_from,
        "findings": findings,
    }


#: the sections of settings the page shows, each as a table of its own
SECTIONS = ("server", "dispatch", "storage", "identity", "console", "x")

#: settings that hold a secret itself, not the name of a variable holding it: shown as set or not, never
#: by value (a browser source's key is public by nature, yet the page has no need to show it)
SECRET_SETTINGS = frozenset({"write_key"})

#: per section, settings that may hold a secret among other things: shown through their mask (a
#: PostgreSQL URL's password as ``***``, :func:`xgate.outbox.storage_location`), never as written
MASKED_SETTINGS: dict[str, dict[str, Callable[[Any], Any]]] = {"storage": {"url": storage_location}}


def _settings(
    section: BaseModel,
    *,
    skip: tuple[str, ...] = (),
    prefix: str = "",
    masked: Mapping[str, Callable[[Any], Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every setting of ``section`` (a section of the configuration, a source or a destination):
    ``name``, ``value`` (JSON) and ``origin``: ``set`` (in the file, or the document given in code) or
    ``default`` (xgate's own: the file leaves it out), from pydantic's ``model_fields_set``.

    A setting that is a table of its own (a destination's ``filter``, ``consent``) gives one row per
    setting in it, named ``filter.when``: a table the file leaves out is all defaults. Inside a list or a
    map of tables (``mapping``, ``filter.when``) the value shows what the file wrote. A setting naming an
    environment variable (``*_env``) shows that name only, ``env NAME``, and one holding a secret itself
    (:data:`SECRET_SETTINGS`) never shows it, and one in ``masked`` shows what its mask makes of it (the
    storage URL without its password): no secret is shown."""
    shown = []
    written = section.model_dump(mode="json", exclude_unset=True)
    everything = section.model_dump(mode="json")
    for name in type(section).model_fields:
        if name in skip:
            continue
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            shown += _settings(value, prefix=f"{prefix}{name}.")
            continue
        origin = "set" if name in section.model_fields_set else "default"
        if name.endswith("_env"):
            value = f"env {value}" if value else None
        elif name in SECRET_SETTINGS:
            value = "a key, not shown" if value else None
        else:
            value = written[name] if origin == "set" else everything[name]
        if masked and name in masked and value is not None:
            value = masked[name](value)
        shown.append({"name": prefix + name, "value": value, "origin": origin})
    return shown


#: events a user may pick on the test page (no personal data: a documentation IP address, a made-up click id)
SAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    "purchase": {
        "event_name": "purchase",
        "id": "test-order-1",
        "value": 42.5,
        "currency": "USD",
        "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
        "partners": {"twitter": {"twclid": "26mmb5rsu6rwaq8h8hhsorrt7m"}},
    },
    "lead": {
        "event_name": "lead",
        "id": "test-lead-1",
        "partners": {"twitter": {"twclid": "26mmb5rsu6rwaq8h8hhsorrt7m"}},
    },
    "add_to_cart": {
        "event_name": "add_to_cart",
        "id": "test-cart-1",
        "items": [{"id": "sku-1", "name": "Example", "price": 10, "quantity": 1}],
        "currency": "USD",
        "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
    },
}


def dry_run(config: Config, event: Any) -> dict[str, Any]:
    """What each destination would send for ``event`` (``xgate map``'s dry run: the same mapper): per
    destination the request's URL and body (identifiers hashed), or why it refused or skipped the event.
    Nothing is stored or sent. An event that is no event at all gives ``errors``. Errors and notes quote
    no e-mail address or phone number of the event (masked, :func:`xgate.observe.redact.scrub`): an
    event named with one is skipped, and its reason would quote the name."""
    from xgate.events import InvalidEvent
    from xgate.mapping import Mapper
    from xgate.x.client import conversions_url

    try:
        result = Mapper(config).map(event)
    except InvalidEvent as e:
        return {"errors": [scrub(str(err)) for err in e.errors], "destinations": []}
    out: list[dict[str, Any]] = []
    by_name = {d.name: d for d in config.destinations}
    for c in result.conversions:
        out.append(
            {
                "destination": c.destination,
                "status": "would send",
                "url": conversions_url(config.x, c.pixel_id),
                "body": c.body,
                "match_signals": [s for s in SIGNALS if s in c.match_signals],
                "notes": [scrub(w) for w in c.warnings],
            }
        )
    for rejection in result.rejections:
        out.append(
            {
                "destination": rejection.destination,
                "status": "refused",
                "notes": [scrub(str(e)) for e in rejection.errors],
            }
        )
    for name, why in result.skipped.items():
        out.append({"destination": name, "status": "skipped", "notes": [scrub(why)]})
    out.sort(key=lambda d: list(by_name).index(d["destination"]) if d["destination"] in by_name else 0)
    return {"errors": [], "destinations": out}
