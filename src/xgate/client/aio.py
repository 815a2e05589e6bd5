"""The asyncio gateway client: ``track()`` only queues; a background task sends in batches."""

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
            while len(batch) < self.options.batch_size and size < self.options.max_request_bytes:
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
