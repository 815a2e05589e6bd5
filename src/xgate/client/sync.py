"""The blocking gateway client: ``track()`` returns at once; a background thread sends in batches.

Exit is bounded: ``close()`` (called at exit) waits ``shutdown_timeout`` seconds for the queue to drain, then
fails what is left at once, logs one WARNING counting it, and waits at most ``_GRACE`` more for the thread.

Fork-safe the way sentry-python's ``BackgroundWorker`` is (``_thread_for_pid``): the client remembers the
process that made its thread; in a forked child the first call starts a fresh queue, thread and connection
pool. The inherited queue holds the parent's events (the parent sends them) and the inherited sockets are
the parent's connections, so the child uses neither.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
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
    warn_given_up,
)
from xgate.events import Event

log = logging.getLogger("xgate.client")

_STOP = object()
#: how long ``close()`` waits, after giving up, for the thread to fail what is queued and stop (seconds)
_GRACE = 1.0
#: how often the thread, filling a batch, looks whether a flush or close wants it sent now (seconds)
_POLL = 0.05


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
    ``on_result`` (and rejected or failed ones ``on_error``) from the sending thread; rejected and failed
    events are also logged on the ``xgate.client`` logger (see :mod:`xgate.client.common`).

    At exit (an ``atexit`` hook) and in ``close()``, the client waits at most ``shutdown_timeout`` seconds
    (default 5) for the gateway, then reports what is left failed and logs a WARNING saying how many events
    were not sent and why. After ``os.fork()`` the child gets its own queue and thread on first use.
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
        self._transport = transport
        self._lock = threading.Lock()
        self._closed = False
        self._start_state()
        atexit.register(self._flush_at_exit)

    def _start_state(self) -> None:
        """Fresh counts, queue, connection pool and (lazily started) thread, owned by this process."""
        self.stats = ClientStats()
        self._http = httpx.Client(
            timeout=self.options.timeout, transport=self._transport, headers=self.options.headers
        )
        self._queue: queue.Queue[Any] = queue.Queue(self.options.max_queue_size)
        self._flushing = threading.Event()
        self._giving_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def _in_this_process(self) -> None:
        """After a fork, leave the parent's queue, thread and sockets to the parent and start afresh."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._start_state()

    # -- the caller's side -------------------------------------------------------------------------
    def track(self, event: Event | Mapping[str, Any] | None = None, /, **fields: Any) -> bool:
        """Queue one event (a dict, an :class:`~xgate.events.Event`, or keyword fields); False if dropped.

        Raises ``ValueError`` naming the field when it cannot be an event (no event_name, not JSON).
        """
        if self._closed:
            raise RuntimeError("the client is closed")
        self._in_this_process()
        item = prepare(event, fields)
        self.stats.tracked += 1
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="xgate-client", daemon=True)
                    self._thread.start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return self.options.drop(self.stats, item)
        return True

    def send(self, *events: Event | Mapping[str, Any]) -> list[TrackResult]:
        """Send ``events`` now, in the calling thread (with retries); their results, in order.

        The results are returned, not logged (the callbacks still get them).
        """
        self._in_this_process()
        items = [prepare(e, {}) for e in events]
        results: list[TrackResult] = []
        for batch in self.options.batches(items):
            results.extend(self._deliver(batch, logged=False))
        return results

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked so far is sent (or given up); False if ``timeout`` passed first.

        A batch still filling is sent at once, without waiting for ``flush_interval``.
        """
        self._in_this_process()
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

    def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` seconds (None: the client's ``shutdown_timeout``), then stop.

        What is not sent by then is reported failed at once (reason: the client closed) and counted in one
        WARNING with the last error. A request still unanswered is left to finish on its own (its events
        are counted as unanswered): ``close()`` returns within about ``timeout`` + 1 s.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._flush_at_exit)
        self._in_this_process()
        wait = self.options.shutdown_timeout if timeout is None else timeout
        settled = self.flush(wait) or self._give_up(wait)
        thread = self._thread
        if thread is not None:
            # no room: a request is stuck with the queue full; the thread stops once it has drained it
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
            thread.join(_GRACE if settled else 0)
        if thread is None or not thread.is_alive():
            self._http.close()

    def _give_up(self, waited: float) -> bool:
        """Have the thread fail what is left without sending it; True if it did within ``_GRACE``."""
        failed_before = self.stats.failed  # from here only the sending thread counts
        self._giving_up.set()
        settled = self.flush(_GRACE)
        unanswered = self._queue.unfinished_tasks
        warn_given_up(self.options, self.stats, waited, self.stats.failed - failed_before, unanswered)
        return settled

    def _flush_at_exit(self) -> None:
        if self._pid != os.getpid():
            return  # a forked child that never used the client: the parent's events are not its own
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
                hurry = self._flushing.is_set() or self._giving_up.is_set()
                wait = 0.0 if hurry else deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=min(wait, _POLL)) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    if wait > _POLL:
                        continue
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
            if self._closed and self._giving_up.is_set() and self._queue.empty():
                return  # close() may have found no room for _STOP

    def _deliver(self, items: Sequence[Item], *, logged: bool = True) -> list[TrackResult]:
        delivery = Delivery(items, self.options, self.stats, logged=logged)
        while (batch := delivery.next(self._giving_up.is_set())) is not None:
            pause = delivery.answer(self._request(batch))
            if pause:
                self._giving_up.wait(pause)
        return delivery.results

    def _request(self, batch: Sequence[Item]) -> Verdict:
        try:
            r = self._http.post(self.options.endpoint, content=body(batch))
        except httpx.HTTPError as e:
            return self.options.unreachable(e)
        return judge(r.status_code, r.content, r.headers, batch)
