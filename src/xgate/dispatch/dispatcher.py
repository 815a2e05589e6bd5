"""The dispatcher: lease due conversions, send them to X in batches, record every outcome.

- Rows are leased in bulk, grouped per (destination, pixel) and cut into batches of X's limit; up to
  ``[dispatch] concurrency`` batches are in flight at once.
- delivered → ``mark_delivered`` with X's debug id.
- retry (5xx, timeouts, connection errors) → back to the queue with exponential backoff and full jitter;
  after ``max_attempts`` → dead.
- 429 → that destination's pixel pauses until X's reset time; its rows wait without an attempt counted.
- permanent 4xx → a 400 rejects a whole request, so the batch is split in halves until the culprits are
  alone: the good conversions are delivered, the bad ones become dead letters with X's error. Other 4xx
  (401/403/404: credentials or pixel) are dead letters at once; fix and ``xgate dlq replay``.
- A crash loses nothing: an unsettled lease expires and its rows return to the queue.
- In ``xgate serve`` the collector hands new rows over already leased (:mod:`xgate.dispatch.handoff`): the
  dispatcher sends those first and polls the outbox for the rest every ``poll_interval_ms``, or at once
  while the outbox has a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from xgate.config import Config, Destination
from xgate.dispatch.backoff import RequestBudget, backoff_delay
from xgate.dispatch.handoff import Handoff
from xgate.outbox.base import LeasedRow, Outbox
from xgate.x.client import Conversion
from xgate.x.result import SendResult

log = logging.getLogger("xgate.dispatch")


class SendsConversions(Protocol):
    async def send(self, pixel_id: str, conversions: Sequence[Conversion]) -> SendResult: ...


ClientFactory = Callable[[Destination], SendsConversions]
#: called after each settled batch: (destination, pixel_id, outcome, count, result)
Observer = Callable[[str, str, str, int, SendResult], None]

_PURGE_EVERY = 300.0


class Dispatcher:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        client_factory: ClientFactory,
        *,
        observer: Observer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self._settings = config.dispatch
        self._limit = min(config.dispatch.batch_size, config.x.max_conversions_per_request)
        self._client_factory = client_factory
        self._clients: dict[str, SendsConversions] = {}
        self._destinations = {d.name: d for d in config.destinations}
        self._observer = observer
        self._rng = rng or random.Random()
        self._paused_until: dict[tuple[str, str], float] = {}
        self._budgets: dict[str, RequestBudget] = {}
        self._slots = asyncio.Semaphore(config.dispatch.concurrency)
        self._busy = 0
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._last_purge = 0.0
        #: rows the collector of this process stored already leased to us (wired by ``build_gateway``), room
        #: for a round in flight and the next one waiting
        self.handoff = Handoff(2 * config.dispatch.concurrency * self._limit, config.dispatch.lease_seconds)
        self._next_poll = 0.0  # monotonic time of the next look into the outbox while rows are handed over

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Deliver until :meth:`stop`; in-flight batches finish, leased but unsent rows are released."""
        self.handoff.open()
        try:
            while not self._stopping.is_set():
                sent = await self.step()
                if self._stopping.is_set():
                    break
                if not sent:
                    await self.handoff.wait(self._settings.poll_interval_ms / 1000)
                elif sent < self._limit and self._settings.linger_ms:  # a thin queue: let batches fill
                    await self.handoff.wait(self._settings.linger_ms / 1000, rows=self._limit)
        finally:
            await self._drain()

    async def stop(self) -> None:
        self._stopping.set()
        self.handoff.wake()

    async def run_until_idle(self, timeout: float = 60.0) -> None:
        """Deliver until nothing is due (for tests and one-shot runs); rows waiting on backoff stay queued."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await self.step():
                await self._drain()
                return
        await self._drain()
        raise TimeoutError(f"queue not idle after {timeout} s")

    async def _drain(self) -> None:
        unsent = self.handoff.close()
        if unsent:
            await asyncio.to_thread(self.outbox.release, [r.id for r in unsent], self.handoff.token)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        for client in self._clients.values():
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()
        self._clients.clear()

    # -- one round ---------------------------------------------------------------------------------
    async def step(self) -> int:
        """Take the rows handed over, lease what is due, and start sending; returns how many rows.

        Only as many rows as free sending slots can take are leased, so a lease is not spent waiting.
        """
        now = time.time()
        if now - self._last_purge > _PURGE_EVERY:
            self._last_purge = now
            await asyncio.to_thread(self.outbox.purge)
        async with self._slots:  # wait until at least one batch can go out
            free = self._settings.concurrency - self._busy
        wanted = free * self._limit
        rows = self.handoff.take(wanted)
        if len(rows) < wanted and (not rows or time.monotonic() >= self._next_poll):
            more = await asyncio.to_thread(
                self.outbox.lease, wanted - len(rows), self._settings.lease_seconds
            )
            backlog = len(more) == wanted - len(rows)
            self._next_poll = time.monotonic() + (0 if backlog else self._settings.poll_interval_ms / 1000)
            rows += more
        if not rows:
            return 0
        # one batch settles with one lease token: rows handed over and rows leased here go apart
        groups: dict[tuple[str, str, str], list[LeasedRow]] = defaultdict(list)
        for row in rows:
            groups[(row.destination, row.pixel_id, row.lease_token)].append(row)
        batches: list[tuple[str, str, list[LeasedRow]]] = []
        for (destination, pixel_id, _), group in groups.items():
            paused = self._paused_until.get((destination, pixel_id), 0.0)
            if paused > time.time():
                await self._defer(group, paused, "waiting for X's rate-limit reset")
                continue
            batches += [
                (destination, pixel_id, group[i : i + self._limit]) for i in range(0, len(group), self._limit)
            ]
        for n, (destination, pixel_id, batch) in enumerate(batches):
            await self._slots.acquire()
            if self._stopping.is_set():  # shutting down: hand back what has not gone out
                self._slots.release()
                for _, _, unsent in batches[n:]:
                    ids = [r.id for r in unsent]
                    await asyncio.to_thread(self.outbox.release, ids, unsent[0].lease_token)
                break
            self._busy += 1
            task = asyncio.create_task(self._deliver(destination, pixel_id, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(rows)

    async def _deliver(self, destination: str, pixel_id: str, batch: list[LeasedRow]) -> None:
        try:
            await self._send(destination, pixel_id, batch)
        except Exception:  # never let one batch kill the loop; its lease expires and it is retried
            log.exception(
                "dispatch failed", extra={"fields": {"destination": destination, "rows": len(batch)}}
            )
        finally:
            self._busy -= 1
            self._slots.release()

    async def _send(self, destination: str, pixel_id: str, batch: list[LeasedRow]) -> None:
        dest = self._destinations.get(destination)
        if dest is None:
            await self._dead(batch, f"destination {destination!r} is no longer configured")
            return
        client = self._clients.get(destination)
        if client is None:
            try:
                client = self._clients[destination] = self._client_factory(dest)
            except Exception as e:  # missing credentials: keep the rows, say why, try later
                await self._retry(batch, f"cannot build X client: {e}", count_attempt=False, delay=30.0)
                return
        await self._budget(destination).take()
        result = await client.send(pixel_id, [orjson.Fragment(row.body_json) for row in batch])
        self._heed_rate_limit(destination, pixel_id, result)
        if result.outcome == "delivered":
            await asyncio.to_thread(
                self.outbox.mark_delivered, [r.id for r in batch], batch[0].lease_token, result.debug_id
            )
        elif result.status_code == 429:
            until = result.retry_at or time.time() + backoff_delay(
                batch[0].attempts,
                self._settings.backoff_base_seconds,
                self._settings.backoff_max_seconds,
                self._rng,
            )
            self._paused_until[(destination, pixel_id)] = until
            await self._defer(batch, until, f"429 rate limited until {until:.0f}")
        elif result.outcome == "retry":
            await self._retry(batch, result.reason or f"HTTP {result.status_code}")
        elif result.status_code == 400 and len(batch) > 1:
            half = len(batch) // 2
            await self._send(destination, pixel_id, batch[:half])
            await self._send(destination, pixel_id, batch[half:])
            return
        else:
            await self._dead(batch, _describe(result))
        self._observe(destination, pixel_id, batch, result)

    # -- settling ----------------------------------------------------------------------------------
    async def _defer(self, batch: Sequence[LeasedRow], until: float, why: str) -> None:
        await asyncio.to_thread(
            self.outbox.mark_retry,
            [r.id for r in batch],
            batch[0].lease_token,
            until,
            why,
            count_attempt=False,
        )

    async def _retry(
        self, batch: Sequence[LeasedRow], why: str, *, count_attempt: bool = True, delay: float | None = None
    ) -> None:
        token = batch[0].lease_token
        exhausted: list[LeasedRow] = []
        rest: list[LeasedRow] = []
        for r in batch:
            last_try = count_attempt and r.attempts + 1 >= self._settings.max_attempts
            (exhausted if last_try else rest).append(r)
        if exhausted:
            await self._dead(exhausted, f"gave up after {self._settings.max_attempts} attempts: {why}")
        if not rest:
            return
        attempts = max(r.attempts for r in rest)
        wait = (
            delay
            if delay is not None
            else backoff_delay(
                attempts, self._settings.backoff_base_seconds, self._settings.backoff_max_seconds, self._rng
            )
        )
        await asyncio.to_thread(
            self.outbox.mark_retry,
            [r.id for r in rest],
            token,
            time.time() + wait,
            why,
            count_attempt=count_attempt,
        )

    async def _dead(self, batch: Sequence[LeasedRow], why: str) -> None:
        await asyncio.to_thread(self.outbox.mark_dead, [r.id for r in batch], batch[0].lease_token, why)

    def _heed_rate_limit(self, destination: str, pixel_id: str, result: SendResult) -> None:
        """X says no requests remain in this window: hold this pixel until the window resets."""
        limit = result.rate_limit
        if limit and limit.remaining == 0 and limit.reset and limit.reset > time.time():
            key = (destination, pixel_id)
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), limit.reset)

    def _budget(self, destination: str) -> RequestBudget:
        budget = self._budgets.get(destination)
        if budget is None:
            x = self.config.x
            budget = self._budgets[destination] = RequestBudget(
                x.rate_limit_requests, x.rate_limit_window_seconds
            )
        return budget

    def _observe(
        self, destination: str, pixel_id: str, batch: Sequence[LeasedRow], result: SendResult
    ) -> None:
        if self._observer is not None:
            self._observer(destination, pixel_id, result.outcome, len(batch), result)
        log.info(
            "batch settled",
            extra={
                "fields": {
                    "destination": destination,
                    "pixel_id": pixel_id,
                    "conversions": len(batch),
                    "outcome": result.outcome,
                    "status": result.status_code,
                    "debug_id": result.debug_id,
                    "reason": result.reason,
                }
            },
        )


def _describe(result: SendResult) -> str:
    parts = [f"HTTP {result.status_code}" if result.status_code else "no answer"]
    parts += [f"{e.code}: {e.message}" + (f" ({e.parameter})" if e.parameter else "") for e in result.errors]
    if result.reason and not result.errors:
        parts.append(result.reason)
    return "; ".join(parts)


__all__ = ["ClientFactory", "Dispatcher", "Observer", "SendsConversions"]
