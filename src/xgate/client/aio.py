"""The asyncio gateway client: ``track()`` only queues; a background task sends in batches.

``aclose()`` is bounded like the blocking client's ``close()``: ``shutdown_timeout`` seconds for the queue to
drain, then the sending task fails what is left (the request in flight is cancelled, its events reported
failed too) and one WARNING counts what was not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

import httpx

from xgate.client.common import (
    CLOSED,
    ClientOptions,
    ClientStats,
    Delivery,
    Item,
    Options,
    TrackResult,
    Verdict,
    body,
    failed,
    judge,
    prepare,
    warn_given_up,
)
from xgate.events import Event

log = logging.getLogger("xgate.client")

#: how long ``aclose()`` waits, after giving up, for the task to fail what is queued (seconds)
_GRACE = 1.0
#: how often the task, filling a batch, looks whether a flush or close wants it sent now (seconds)
_POLL = 0.05


class AsyncGatewayClient:
    """:class:`~xgate.client.GatewayClient` for asyncio services (same options, same guarantees).

        async with AsyncGatewayClient("https://collect.example.com") as client:
            client.track({"event_name": "sign_up", "user": {"email": "ada@example.com"}})
        # leaving the block flushes: every tracked event is sent or reported failed

    Flushing at exit needs the loop: close the client (``await aclose()`` or ``async with``) before the
    loop ends; events still queued when a loop is torn down without it are lost. Closing waits at most
    ``shutdown_timeout`` seconds (default 5), then reports what is left failed and logs a WARNING.
    """

    def __init__(
        self,
        url: str | None = None,
        write_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.options = Options.build(url, write_key, **options)
        self.stats = ClientStats()
        self._http = httpx.AsyncClient(
            timeout=self.options.timeout, transport=transport, headers=self.options.headers
        )
        self._queue: asyncio.Queue[Item] = asyncio.Queue(self.options.max_queue_size)
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Event()
        self._giving_up = asyncio.Event()
        self._closed = False

    def track(self, event: Event | Mapping[str, Any] | None = None, /, **fields: Any) -> bool:
        """Queue one event (call from the loop's thread); False if the queue was full and it was dropped."""
        if self._closed:
            raise RuntimeError("the client is closed")
        item = prepare(event, fields)
        self.stats.tracked += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="xgate-client")
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return self.options.drop(self.stats, item)
        return True

    async def send(self, *events: Event | Mapping[str, Any]) -> list[TrackResult]:
        """Send ``events`` now (with retries); their results, in order (returned, not logged)."""
        items = [prepare(e, {}) for e in events]
        results: list[TrackResult] = []
        for batch in self.options.batches(items):
            results.extend(await self._deliver(batch, logged=False))
        return results

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked so far is sent (or given up); False if ``timeout`` passed first.

        A batch still filling is sent at once, without waiting for ``flush_interval``.
        """
        self._flushing.set()
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._flushing.clear()

    async def aclose(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` seconds (None: the client's ``shutdown_timeout``), then stop.

        What is not sent by then (a request in flight included: it is cancelled) is reported failed and
        counted in one WARNING with the last error; returns within about ``timeout`` + 1 s.
        """
        if self._closed:
            return
        self._closed = True
        wait = self.options.shutdown_timeout if timeout is None else timeout
        if not await self.flush(wait):
            failed_before = self.stats.failed
            self._giving_up.set()  # the task fails what is queued without sending it
            await self.flush(_GRACE)
            await self._stop()  # cancels a request still in flight: its events are failed too
            warn_given_up(self.options, self.stats, wait, self.stats.failed - failed_before, 0)
        await self._stop()
        await self._http.aclose()

    async def _stop(self) -> None:
        """Cancel the sending task; fail (unlogged: ``aclose`` counts them) what it leaves queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left: list[Item] = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
            self._queue.task_done()
        self.options.report(self.stats, failed(left, CLOSED), logged=False)

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].payload)
            deadline = time.monotonic() + self.options.flush_interval
            try:
                await self._fill(batch, size, deadline)
            except asyncio.CancelledError:  # closing, while the batch filled: not sent
                self.options.report(self.stats, failed(batch, CLOSED), logged=False)
                for _ in batch:
                    self._queue.task_done()
                raise
            try:
                await self._deliver(batch)
            except Exception:
                log.exception("the gateway client's sending task met an error")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _fill(self, batch: list[Item], size: int, deadline: float) -> None:
        """Add queued items to ``batch`` until it is full or ``deadline`` (sooner when flushing)."""
        while len(batch) < self.options.batch_size and size < self.options.max_request_bytes:
            hurry = self._flushing.is_set() or self._giving_up.is_set()
            wait = 0.0 if hurry else deadline - time.monotonic()
            try:
                item = (
                    await asyncio.wait_for(self._queue.get(), min(wait, _POLL))
                    if wait > 0
                    else self._queue.get_nowait()
                )
            except (TimeoutError, asyncio.QueueEmpty):
                if wait > _POLL:
                    continue
                return
            batch.append(item)
            size += len(item.payload)

    async def _deliver(self, items: Sequence[Item], *, logged: bool = True) -> list[TrackResult]:
        delivery = Delivery(items, self.options, self.stats, logged=logged)
        try:
            while (batch := delivery.next(self._giving_up.is_set())) is not None:
                pause = delivery.answer(await self._request(batch))
                if pause:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._giving_up.wait(), pause)
        except asyncio.CancelledError:
            delivery.abandon()
            raise
        return delivery.results

    async def _request(self, batch: Sequence[Item]) -> Verdict:
        try:
            r = await self._http.post(self.options.endpoint, content=body(batch))
        except httpx.HTTPError as e:
            return self.options.unreachable(e)
        return judge(r.status_code, r.content, r.headers, batch)
