"""What the sync and async gateway clients share: preparing events, request bodies, reading answers, the
retry plan, and what is logged.

The clients log on the ``xgate.client`` logger (see docs/backend.md): WARNING for an event the gateway
rejected (its field errors, as the gateway words them), for events not sent (a permanent refusal, retries
exhausted, the queue full) and for what ``close()`` gave up on; INFO for a retry and a skipped event. Log
lines name events by ``event_name`` and ``id`` only, never by their content: an event's body carries raw
e-mails and phones until the gateway hashes them.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypedDict

import orjson

from xgate.conversion import FieldError
from xgate.events import Event
from xgate.observe.redact import scrub

log = logging.getLogger("xgate.client")

URL_ENV = "XGATE_GATEWAY_URL"
WRITE_KEY_ENV = "XGATE_WRITE_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"

Status = Literal["accepted", "duplicate", "skipped", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class TrackResult:
    """What became of one tracked event. ``failed``: the gateway could not be made to take it (``reason``)."""

    status: Status
    event_name: str
    event_id: str | None
    errors: tuple[FieldError, ...] = ()
    reason: str | None = None
    #: conversion ids queued by the gateway, one per destination that took the event
    conversion_ids: tuple[str, ...] = ()


ResultCallback = Callable[[TrackResult], None]


@dataclass
class ClientStats:
    """Counts since the client started; ``dropped`` were refused because the queue was full."""

    tracked: int = 0
    accepted: int = 0
    duplicate: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0
    requests: int = 0
    retries: int = 0
    #: why the last request that did not succeed failed (``"ConnectError reaching …"``, ``"HTTP 503: …"``)
    last_error: str | None = None

    def count(self, result: TrackResult) -> None:
        setattr(self, result.status, getattr(self, result.status) + 1)


@dataclass(frozen=True, slots=True)
class Item:
    """One queued event, already encoded (so a bad event fails in ``track``, not in the background)."""

    payload: bytes
    event_name: str
    event_id: str | None


class ClientOptions(TypedDict, total=False):
    """The keyword options both clients take (see docs/backend.md)."""

    batch_size: int
    flush_interval: float
    max_queue_size: int
    max_retries: int
    backoff_base: float
    backoff_max: float
    timeout: float
    max_request_bytes: int
    shutdown_timeout: float
    on_result: ResultCallback | None
    on_error: ResultCallback | None


@dataclass
class Options:
    url: str
    write_key: str
    batch_size: int = 100
    flush_interval: float = 0.5
    max_queue_size: int = 10_000
    max_retries: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 10.0
    max_request_bytes: int = 512_000
    shutdown_timeout: float = 5.0
    on_result: ResultCallback | None = None
    on_error: ResultCallback | None = None
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def build(cls, url: str | None, write_key: str | None, **kwargs: Any) -> Options:
        key = write_key or os.environ.get(WRITE_KEY_ENV)
        if not key:
            raise ValueError(f"write_key: not given and {WRITE_KEY_ENV} is not set")
        options = cls(
            url=(url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/"), write_key=key, **kwargs
        )
        if not options.url.startswith(("http://", "https://")):
            raise ValueError(f"url: must be the gateway's http(s) URL, not {options.url!r}")
        if options.batch_size < 1 or options.max_queue_size < 1:
            raise ValueError("batch_size and max_queue_size: must be at least 1")
        if options.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout: must be 0 or more seconds, not {options.shutdown_timeout}")
        return options

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v1/events"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_key}", "Content-Type": "application/json"}

    def batches(self, items: Sequence[Item]) -> Iterator[Sequence[Item]]:
        """``items`` in requests of at most ``batch_size`` (``send``: one after the other, in order)."""
        for start in range(0, len(items), self.batch_size):
            yield items[start : start + self.batch_size]

    def unreachable(self, error: Exception) -> Verdict:
        """A request that got no answer (connection refused or cut, timeout): retried, the error named."""
        return Verdict("retry", reason=f"{type(error).__name__} reaching {self.url}")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        return full_jitter(attempt, self.backoff_base, self.backoff_max, self.rng)

    def drop(self, stats: ClientStats, item: Item) -> bool:
        """An event refused because the queue is full: counted and reported; False for ``track``.

        Logged at the 1st, 2nd, 4th, 8th… drop, so an overload cannot flood the log with one line per event.
        """
        stats.dropped += 1
        [result] = failed([item], "dropped: the client's queue is full")
        self.report(stats, [result], logged=False)
        if stats.dropped & (stats.dropped - 1) == 0:
            log.warning(
                "event %s dropped: the client's queue is full (max_queue_size=%d); %d dropped so far",
                _label(result),
                self.max_queue_size,
                stats.dropped,
            )
        return False

    def report(self, stats: ClientStats, results: Sequence[TrackResult], *, logged: bool = True) -> None:
        """Count ``results`` and pass them to the callbacks; ``logged``: also log them (see the module doc).

        The callbacks come on top of the log lines; the sending thread (or task) calls them.
        """
        for result in results:
            stats.count(result)
            if self.on_result:
                self.on_result(result)
            if self.on_error and result.status in ("rejected", "failed"):
                self.on_error(result)
        if logged:
            log_results(results)


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt + 1``: uniform in [0, min(cap, base * 2**attempt)].

    "Full jitter" from AWS's *Exponential Backoff And Jitter* (2015), the rule the gateway's dispatcher
    follows too; two lines, so kept here rather than shared with the gateway's ``dispatch`` package, which
    a backend that only installs the client has no business importing.
    """
    return rng.uniform(0, min(cap, base * (2 ** min(attempt, 60))))


def _label(result: TrackResult) -> str:
    """How a log line names an event: its name and id, scrubbed (an e-mail sent as the id is a mistake the
    gateway refuses, and the warning saying so must not repeat it)."""
    return scrub(f"{result.event_name} {result.event_id}" if result.event_id else result.event_name)


def _events(n: int) -> str:
    return "1 event" if n == 1 else f"{n} events"


def log_results(results: Sequence[TrackResult]) -> None:
    """Log what deserves it: each rejected event with its field errors (WARNING), the failed ones grouped
    by reason (WARNING), each skipped one (INFO). Names and ids only: never an event's content."""
    unsent: dict[str, list[TrackResult]] = {}
    for result in results:
        if result.status == "rejected":
            problems = "; ".join(f"{e.field}: {e.reason}" for e in result.errors) or "no reason given"
            log.warning("the gateway rejected event %s: %s", _label(result), problems)
        elif result.status == "skipped":
            why = "; ".join(e.reason for e in result.errors) or "no destination takes it"
            log.info("the gateway skipped event %s: %s", _label(result), why)
        elif result.status == "failed":
            unsent.setdefault(result.reason or "no reason given", []).append(result)
    for reason, group in unsent.items():
        names = ", ".join(_label(r) for r in group[:5]) + (", …" if len(group) > 5 else "")
        log.warning("%s not sent (%s): %s", _events(len(group)), names, reason)


def warn_given_up(options: Options, stats: ClientStats, waited: float, unsent: int, unanswered: int) -> None:
    """The WARNING of a ``close()`` that stopped waiting: how many events were not sent, and why."""
    why = stats.last_error or "no answer from the gateway yet"
    unknown = (
        f"; {_events(unanswered)} in a request still unanswered (the gateway may have them)"
        if unanswered
        else ""
    )
    log.warning(
        "%s not sent to %s: given up %gs after close (shutdown_timeout); last error: %s%s",
        _events(unsent + unanswered),
        options.url,
        waited,
        why,
        unknown,
    )


def prepare(event: Event | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> Item:
    """Encode an event for the queue, stamped with the time it was tracked (so a retry is the same event).

    Raises ``ValueError`` naming the field when it cannot be an event at all; everything else is judged
    by the gateway (and reported through the callbacks).
    """
    if isinstance(event, Event):
        data: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    elif event is None:
        data = {}
    elif isinstance(event, Mapping):
        data = dict(event)
    else:
        raise ValueError(f"event: must be a dict or an xgate Event, not {type(event).__name__}")
    data.update(fields)
    name = data.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("event_name: required (non-empty text)")
    context = data.get("context")
    if context is None or isinstance(context, Mapping):
        context = dict(context or {})
        if context.get("event_timestamp") is None:
            context["event_timestamp"] = int(time.time() * 1000)
        data["context"] = context
    try:
        payload = orjson.dumps(data)
    except TypeError as e:
        raise ValueError(f"event: not JSON-serializable ({e})") from None
    event_id = data.get("id")
    return Item(payload, name, str(event_id) if event_id is not None else None)


def body(items: Sequence[Item]) -> bytes:
    return b'{"events":[' + b",".join(i.payload for i in items) + b"]}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one request went: ``done`` (results per item), ``retry`` (after a delay), ``split`` (too big)."""

    kind: Literal["done", "retry", "split"]
    results: tuple[TrackResult, ...] = ()
    reason: str = ""
    retry_after: float | None = None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None


def _problem(content: bytes) -> str:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:200].decode("utf-8", "replace")
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return str(data)[:200]


CLOSED = "the client closed before they could be sent"


def failed(items: Sequence[Item], reason: str) -> tuple[TrackResult, ...]:
    return tuple(TrackResult("failed", i.event_name, i.event_id, reason=reason) for i in items)


def judge(status: int, content: bytes, headers: Mapping[str, str], items: Sequence[Item]) -> Verdict:
    """Read the gateway's answer to a batch of ``items``."""
    if status in (200, 207, 422):
        try:
            answer = orjson.loads(content)
            results = answer["results"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Verdict("retry", reason=f"HTTP {status} with an unreadable body")
        out: list[TrackResult] = []
        for item, result in zip(items, _by_index(results, len(items)), strict=True):
            if result is None:
                out.append(
                    TrackResult("failed", item.event_name, item.event_id, reason="missing from the answer")
                )
                continue
            errors = tuple(
                FieldError(str(e.get("field", "event")), str(e.get("reason", "")))
                for e in result.get("errors", [])
            )
            skipped = result.get("skipped") or {}
            errors += tuple(FieldError("destination", f"{name}: {why}") for name, why in skipped.items())
            conversions = tuple(str(c.get("conversion_id")) for c in result.get("conversions", []))
            out.append(
                TrackResult(
                    result.get("status", "failed"), item.event_name, item.event_id, errors, None, conversions
                )
            )
        return Verdict("done", tuple(out))
    reason = f"HTTP {status}: {_problem(content)}"
    if status == 413 and len(items) > 1:
        return Verdict("split", reason=reason)
    if status in (408, 425, 429) or status >= 500:
        return Verdict("retry", reason=reason, retry_after=_retry_after(headers))
    return Verdict("done", failed(items, reason))


def _by_index(results: Any, n: int) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = [None] * n
    if isinstance(results, list):
        for r in results:
            if isinstance(r, dict) and isinstance(r.get("index"), int) and 0 <= r["index"] < n:
                out[r["index"]] = r
    return out


class Delivery:
    """The retry plan of one batch, shared by both clients: which items to request next, and how long to
    wait after each answer. Splits a batch the gateway finds too big; gives up after ``max_retries``.

    ``logged``: log the outcomes (tracked events, whose fate the caller sees only through callbacks);
    ``send()`` returns its results instead. Events failed because the client is closing are never logged
    one batch at a time: ``close()`` logs one summary.
    """

    def __init__(
        self, items: Sequence[Item], options: Options, stats: ClientStats, *, logged: bool = True
    ) -> None:
        self._options = options
        self._stats = stats
        self._logged = logged
        self._pending: list[tuple[Sequence[Item], int]] = [(items, 0)] if items else []
        self._current: tuple[Sequence[Item], int] | None = None
        self.results: list[TrackResult] = []

    def next(self, giving_up: bool) -> Sequence[Item] | None:
        """The items to request now, or None when every item is settled."""
        while self._pending:
            batch, attempt = self._pending.pop(0)
            if not giving_up:
                self._current = (batch, attempt)
                return batch
            self._settle(failed(batch, CLOSED), logged=False)
        return None

    def abandon(self) -> None:
        """Settle every unsettled item (the request in flight included) as failed: the client is closing."""
        if self._current is not None:
            self._pending.insert(0, self._current)
            self._current = None
        self.next(giving_up=True)

    def answer(self, verdict: Verdict) -> float:
        """Take the answer to the last request; the seconds to wait before the next one."""
        assert self._current is not None
        batch, attempt = self._current
        self._current = None
        self._stats.requests += 1
        if verdict.kind == "split":
            half = len(batch) // 2
            self._pending[:0] = [(batch[:half], attempt), (batch[half:], attempt)]
            return 0.0
        if verdict.kind == "retry":
            self._stats.last_error = verdict.reason
            if attempt < self._options.max_retries:
                self._stats.retries += 1
                self._pending.insert(0, (batch, attempt + 1))
                pause = self._options.delay(attempt, verdict.retry_after)
                log.info(
                    "request of %s failed (%s); retry %d of %d in %.1fs",
                    _events(len(batch)),
                    verdict.reason,
                    attempt + 1,
                    self._options.max_retries,
                    pause,
                )
                return pause
            self._settle(failed(batch, f"gave up after {attempt + 1} tries: {verdict.reason}"))
            return 0.0
        if any(r.status == "failed" for r in verdict.results):
            self._stats.last_error = next(r.reason for r in verdict.results if r.status == "failed")
        self._settle(verdict.results)
        return 0.0

    def _settle(self, results: Sequence[TrackResult], *, logged: bool = True) -> None:
        self._options.report(self._stats, results, logged=logged and self._logged)
        self.results.extend(results)
