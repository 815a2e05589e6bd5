"""Prometheus metrics of one gateway process, on a registry of its own (several apps can share a process)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from xgate.observe.counts import SharedCounts

if TYPE_CHECKING:
    from xgate.outbox.base import Outbox

#: what ``generate_latest`` produces
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _QueueDepth(Collector):
    """Outbox rows per destination and state, read from the outbox when Prometheus scrapes."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "xgate_outbox_rows", "Outbox rows by destination and state", labels=["destination", "state"]
        )
        try:
            stats = self._outbox.stats()
        except Exception:  # an unreachable outbox shows in /readyz; the scrape still answers
            yield family
            return
        for (destination, state), count in sorted(stats.counts.items()):
            family.add_metric([destination, state], count)
        yield family
        if stats.oldest_undelivered_at is not None:
            oldest = GaugeMetricFamily(
                "xgate_outbox_oldest_undelivered_timestamp_seconds",
                "Creation time of the oldest conversion not yet delivered, queued or leased (epoch seconds)",
            )
            oldest.add_metric([], stats.oldest_undelivered_at)
            yield oldest
        if stats.next_attempt_at is not None:
            due = GaugeMetricFamily(
                "xgate_outbox_next_attempt_timestamp_seconds",
                "When the next queued conversion is due to be sent (epoch seconds)",
            )
            due.add_metric([], stats.next_attempt_at)
            yield due


class Metrics:
    """The gateway's counters; call the ``record_*`` methods from the stage that knows the fact.

    The Prometheus counters are this process's. With an ``outbox``, the events per source and outcome and
    the deliveries and failures per destination are also counted for the console of every node
    (:attr:`shared`: written to the outbox by a background thread; :meth:`close` writes the last)."""

    def __init__(self, outbox: Outbox | None = None) -> None:
        self.shared = SharedCounts(outbox) if outbox is not None else None
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_received = Counter(
            "xgate_events_received_total", "Events received, per source", ["source"], registry=self.registry
        )
        self.events = Counter(
            "xgate_events_total",
            "Events by outcome (accepted, duplicate, skipped, rejected), per source",
            ["source", "status"],
            registry=self.registry,
        )
        self.conversions_queued = Counter(
            "xgate_conversions_queued_total",
            "Conversions newly queued, per destination",
            ["destination"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "xgate_deliveries_total",
            "Conversions by delivery outcome (delivered, retry, dead), per destination",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "xgate_delivery_failures_total",
            "Delivery attempts (a request to X, or a batch that could not be sent) that did not deliver, "
            "per destination and reason: auth, forbidden, not_found, invalid, rejected, rate_limited, "
            "server_error, timeout, connection (X's answer), credentials, unconfigured",
            ["destination", "reason"],
            registry=self.registry,
        )
        self.requests = Histogram(
            "xgate_ingest_request_seconds",
            "Time to answer POST /v1/events",
            ["code"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        if outbox is not None:
            self.registry.register(_QueueDepth(outbox))
        self._event_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._queued_children: dict[str, Any] = {}

    def record_events(self, source: str, statuses: Mapping[str, int], *, unmatched: int = 0) -> None:
        """Events of one request: how many of each status (a request is counted at once, not per event:
        each ``inc`` takes a lock). ``unmatched``: how many of the ``rejected`` were refused only for want
        of an identifier X can match, added to the shared counts only (kind ``rejection``: the console's
        and ``/v1/activity``'s count of them; Prometheus counts them as rejected, nothing more)."""
        for status, count in statuses.items():
            children = self._event_children.get((source, status))
            if children is None:  # labels() takes a lock and a lookup; keep the pair per label set
                children = (self.events_received.labels(source), self.events.labels(source, status))
                self._event_children[(source, status)] = children
            children[0].inc(count)
            children[1].inc(count)
        if self.shared is not None:
            self.shared.add("event", source, statuses)
            if unmatched:
                self.shared.add("rejection", source, {"unmatched": unmatched})

    def record_queued(self, destinations: Mapping[str, int]) -> None:
        """Conversions newly queued, per destination."""
        for destination, count in destinations.items():
            child = self._queued_children.get(destination)
            if child is None:
                child = self._queued_children[destination] = self.conversions_queued.labels(destination)
            child.inc(count)

    def record_delivery(self, destination: str, outcome: str, count: int = 1) -> None:
        self.deliveries.labels(destination, outcome).inc(count)
        if self.shared is not None:
            self.shared.add("delivery", destination, {outcome: count})

    def record_failure(self, destination: str, reason: str) -> None:
        """One delivery attempt that did not deliver, and why (:attr:`xgate.dispatch.Attempt.failure`)."""
        self.failures.labels(destination, reason).inc()
        if self.shared is not None:
            self.shared.add("failure", destination, {reason: 1})

    def close(self) -> None:
        """Write the last shared counts (blocking) and stop their thread."""
        if self.shared is not None:
            self.shared.close()

    def record_request(self, code: int, seconds: float) -> None:
        self.requests.labels(str(code)).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: Any) -> float:
        """One sample's current value (0 when absent): handy in status output and tests."""
        got = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return float(got) if got is not None else 0.0
