"""The asyncio gateway client: ``track()`` only queues; a background task sends in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from xgate.client.common import (
    ClientStats,
    Delivery,
    Item,
    Options,
    ResultCallback,
    TrackResult,
    Verdict,
    body,
    failed,
    judge,
    prepare,
)
from xgate.events import Event

log = logging.getLogger("xgate.client")


class AsyncGatewayClient:
    """:class:`~xgate.client.GatewayClient` for asyncio services (same options, same guarantees).

        async with AsyncGatewayClient("https://collect.example.com") as client:
            client.track({"event_name": "sign_up", "user": {"email": "ada@example.com"}})
        # leaving the block flushes: every tracked event is sent or reported failed

    Flushing at exit needs the loop: close the client (``await aclose()`` or ``async with``) before the
    loop ends; events still queued when a loop is torn down without it are lost.
    """

    def __init__(
        self,
        url: str | None = None,
        write_key: str | None = None,
        *,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 10.0,
        max_request_bytes: int = 512_000,
        on_result: ResultCallback | None = None,
        on_error: ResultCallback | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = Options.build(
            url,
            write_key,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            timeout=timeout,
            on_result=on_result,
            on_error=on_error,
        )
        self.stats = ClientStats()
        self._max_request_bytes = max_request_bytes
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, headers=self.options.headers)
        self._queue: asyncio.Queue[Item] = asyncio.Queue(max_queue_size)
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
            self.stats.dropped += 1
            self.options.report(self.stats, failed([item], "dropped: the client's queue is full"))
            return False
        return True

    async def send(self, *events: Event | Mapping[str, Any]) -> list[TrackResult]:
        """Send ``events`` now (with retries); their results, in order."""
        items = [prepare(e, {}) for e in events]
        results: list[TrackResult] = []
        for start in range(0, len(items), self.options.batch_size):
            results.extend(await self._deliver(items[start : start + self.options.batch_size]))
        return results

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event tracked so far is sent (or given up); False if ``timeout`` passed first."""
        self._flushing.set()
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._flushing.clear()

    async def aclose(self, timeout: float | None = 30.0) -> None:
        """Flush (up to ``timeout`` seconds; then what is left is reported failed) and stop."""
        if self._closed:
            return
        self._closed = True
        if not await self.flush(timeout):
            self._giving_up.set()
            await self.flush(self.options.timeout + 1)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].payload)
            deadline = time.monotonic() + self.options.flush_interval
            while len(batch) < self.options.batch_size and size < self._max_request_bytes:
                wait = 0.0 if self._flushing.is_set() else deadline - time.monotonic()
                try:
                    item = (
                        await asyncio.wait_for(self._queue.get(), wait)
                        if wait > 0
                        else self._queue.get_nowait()
                    )
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                batch.append(item)
                size += len(item.payload)
            try:
                await self._deliver(batch)
            except Exception:
                log.exception("the gateway client's sending task met an error")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _deliver(self, items: Sequence[Item]) -> list[TrackResult]:
        delivery = Delivery(items, self.options, self.stats)
        while (batch := delivery.next(self._giving_up.is_set())) is not None:
            pause = delivery.answer(await self._request(batch))
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._giving_up.wait(), pause)
        return delivery.results

    async def _request(self, batch: Sequence[Item]) -> Verdict:
        try:
            r = await self._http.post(self.options.endpoint, content=body(batch))
        except httpx.HTTPError as e:
            return Verdict("retry", reason=f"{type(e).__name__} reaching {self.options.url}")
        return judge(r.status_code, r.content, r.headers, batch)
