"""The blocking gateway client: ``track()`` returns at once; a background thread sends in batches."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

import httpx

from xgate.client.common import (
    ClientOptions,
    ClientStats,
    Delivery,
    Item,
    Options,
    TrackResult,
    Verdict,
    body,
    judge,
    prepare,
)
from xgate.events import Event

log = logging.getLogger("xgate.client")

_STOP = object()


class GatewayClient:
    """Sends events to an xgate gateway (``POST /v1/events``), buffered and batched in the background.

        client = GatewayClient("https://collect.example.com")      # write key from XGATE_WRITE_KEY
        client.track({"event_name": "purchase", "id": "ord-1", "value": 42.5, "currency": "EUR",
                      "user": {"email": "ada@example.com"}})
        client.flush()                                             # or close(); also flushed at exit

    ``track`` never blocks on the network: it encodes the event, stamps its time (so a retry is the same
    event to the gateway's deduplication) and queues it; a full queue drops the event and reports it.
    Requests are retried with exponential backoff and jitter on connection errors, timeouts, 429 (after
    Retry-After) and 5xx; a batch the gateway finds too big is split. Every event's fate reaches
    ``on_result`` (and rejected or failed ones ``on_error``) from the sending thread.
    """

    def __init__(
        self,
        url: str | None = None,
        write_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.options = Options.build(url, write_key, **options)
        self.stats = ClientStats()
        self._http = httpx.Client(
            timeout=self.options.timeout, transport=transport, headers=self.options.headers
        )
        self._queue: queue.Queue[Any] = queue.Queue(self.options.max_queue_size)
        self._flushing = threading.Event()
        self._giving_up = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="xgate-client", daemon=True)
        self._thread.start()
        atexit.register(self._flush_at_exit)

    # -- the caller's side -------------------------------------------------------------------------
    def track(self, event: Event | Mapping[str, Any] | None = None, /, **fields: Any) -> bool:
        """Queue one event (a dict, an :class:`~xgate.events.Event`, or keyword fields); False if dropped.

        Raises ``ValueError`` naming the field when it cannot be an event (no event_name, not JSON).
        """
        if self._closed:
            raise RuntimeError("the client is closed")
        item = prepare(event, fields)
        self.stats.tracked += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return self.options.drop(self.stats, item)
        return True

    def send(self, *events: Event | Mapping[str, Any]) -> list[TrackResult]:
        """Send ``events`` now, in the calling thread (with retries); their results, in order."""
        items = [prepare(e, {}) for e in events]
        results: list[TrackResult] = []
        for start in range(0, len(items), self.options.batch_size):
            results.extend(self._deliver(items[start : start + self.options.batch_size]))
        return results

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked so far is sent (or given up); False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flushing.set()
        try:
            with self._queue.all_tasks_done:
                while self._queue.unfinished_tasks:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._queue.all_tasks_done.wait(remaining)
            return True
        finally:
            self._flushing.clear()

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush (up to ``timeout`` seconds; then what is left is reported failed) and stop."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._flush_at_exit)
        if not self.flush(timeout):
            self._giving_up.set()
        self._queue.put(_STOP)
        self._thread.join(timeout=max(5.0, self.options.timeout + 1))
        self._http.close()

    def _flush_at_exit(self) -> None:
        if not self._closed and self._queue.unfinished_tasks:
            log.info("flushing %d tracked events at exit", self._queue.unfinished_tasks)
        self.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- the sending thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            batch: list[Item] = [first]
            size = len(first.payload)
            deadline = time.monotonic() + self.options.flush_interval
            while len(batch) < self.options.batch_size and size < self.options.max_request_bytes:
                wait = 0.0 if self._flushing.is_set() else deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:  # put it back for the outer loop, after this batch
                    self._queue.task_done()
                    self._queue.put(_STOP)
                    break
                batch.append(item)
                size += len(item.payload)
            try:
                self._deliver(batch)
            except Exception:  # a callback's bug must not stop the thread
                log.exception("the gateway client's sending thread met an error")
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _deliver(self, items: Sequence[Item]) -> list[TrackResult]:
        delivery = Delivery(items, self.options, self.stats)
        while (batch := delivery.next(self._giving_up.is_set())) is not None:
            pause = delivery.answer(self._request(batch))
            if pause:
                self._giving_up.wait(pause)
        return delivery.results

    def _request(self, batch: Sequence[Item]) -> Verdict:
        try:
            r = self._http.post(self.options.endpoint, content=body(batch))
        except httpx.HTTPError as e:
            return Verdict("retry", reason=f"{type(e).__name__} reaching {self.options.url}")
        return judge(r.status_code, r.content, r.headers, batch)
