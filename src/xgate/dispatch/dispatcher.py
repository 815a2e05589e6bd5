"""The dispatcher: lease due conversions, send them to X in batches, record every outcome.

- Rows are leased in bulk, grouped per (destination, pixel) and cut into batches of X's limit; up to
  ``[dispatch] concurrency`` batches are in flight at once.
- The X client classifies each answer (:mod:`xgate.x.result`); the dispatcher acts on the outcome and
  never reads an HTTP status itself:

  - ``delivered`` → ``mark_delivered`` with X's debug id.
  - ``retry`` (5xx, timeouts, connection errors) → back to the queue with exponential backoff and full
    jitter, until the conversion has waited ``[dispatch] give_up_after_hours`` since the gateway accepted
    it; then a dead letter with the reason.
  - ``rate_limited`` → that ad account (or pixel) pauses until X's reset time on every node of the outbox;
    its rows wait without an attempt counted.
  - ``split`` → X refused a request of several for one bad conversion: the batch is halved until the
    culprits are alone; the good conversions are delivered, the bad ones become dead letters.
  - ``permanent`` → dead letters at once (a 400 for one conversion; 401/403/404: credentials, access or
    pixel, logged at WARNING); fix the cause and ``xgate dlq replay``.

- X's rate limit is shared by every node of the outbox (:mod:`xgate.dispatch.limits`): before each request a
  node takes from the account's budget and checks its pause in one outbox call, so N nodes together stay
  within X's budget and none sends to an account another node saw paused.
- Purges and other housekeeping run on one node at a time (``Outbox.claim_duty("housekeeping")``).
- Every request that does not deliver is reported to the observer with its failure reason (metrics).
- A crash loses nothing: an unsettled lease expires and its rows return to the queue. At start the
  dispatcher takes back at once the leases its node held before a crash (``Outbox.reclaim``), and a batch
  that takes long (a slow X, a wait for the request budget) keeps its lease (``Outbox.extend``).
- Delivery never stops by itself: a failing round (the outbox unavailable, or anything unexpected) is
  logged, the loop backs off (capped) and resumes when the store answers again.
- In ``xgate serve`` the collector hands new rows over already leased (:mod:`xgate.dispatch.handoff`): the
  dispatcher sends those first and polls the outbox for the rest every ``poll_interval_ms``, or at once
  while the outbox has a backlog.
- An idle dispatcher does not only sleep ``poll_interval_ms``: a thread of its own waits in
  ``Outbox.wait_for_work`` and wakes it as soon as rows are queued (on PostgreSQL by any node, through
  ``LISTEN``/``NOTIFY``; on SQLite by this process), so a row stored elsewhere goes out at once. The poll
  stays, for rows that become due by the clock (a retry's backoff) and wake-ups lost on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict

import orjson

from xgate.config import Config, Destination
from xgate.dispatch.backoff import backoff_delay
from xgate.dispatch.handoff import Handoff
from xgate.dispatch.limits import SharedRateLimit, limit_key
from xgate.errors import OutboxUnavailable
from xgate.outbox.base import CapacityReading, LeasedRow, Outbox
from xgate.x.auth import destination_credential_problems
from xgate.x.client import Conversion
from xgate.x.result import SendResult

log = logging.getLogger("xgate.dispatch")


class SendsConversions(Protocol):
    async def send(self, pixel_id: str, conversions: Sequence[Conversion]) -> SendResult: ...


ClientFactory = Callable[[Destination], SendsConversions]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at delivering a batch: a request to X, or a batch that could not be sent at all."""

    destination: str
    pixel_id: str
    conversions: int
    #: X's outcome (delivered, retry, rate_limited, split, permanent), or ``unsent``
    outcome: str
    #: why it did not deliver: X's :data:`~xgate.x.result.FailureReason`, or ``credentials`` (no client
    #: could be built) or ``unconfigured`` (the destination left the configuration); None when delivered
    failure: str | None
    #: X's answer (None when nothing was sent)
    result: SendResult | None


#: called after every attempt (metrics)
Observer = Callable[[Attempt], None]

_PURGE_EVERY = 300.0
#: housekeeping (purges) is one node's duty at a time (Outbox.claim_duty): its holder renews the claim each
#: round, and another node takes over when a claim was not renewed for this long (its holder died)
_HOUSEKEEPING_CLAIM = 2 * _PURGE_EVERY
#: a failing round waits this long, doubling per failure in a row up to the cap
_ROUND_BACKOFF_BASE = 0.5
_ROUND_BACKOFF_MAX = 30.0
#: a destination's repeated failure of one kind is logged at WARNING at most this often
_WARN_EVERY = 60.0
#: a batch without credentials waits this long before it is tried again
_NO_CREDENTIALS_WAIT = 30.0
#: the longest one ``Outbox.wait_for_work`` call of the watcher thread lasts (how soon it sees a stop)
_WATCH_SECONDS = 1.0


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
        self._give_up_after = config.dispatch.give_up_after_hours * 3600
        self._limit = min(config.dispatch.batch_size, config.x.max_conversions_per_request)
        self._client_factory = client_factory
        self._clients: dict[str, SendsConversions] = {}
        self._destinations = {d.name: d for d in config.destinations}
        self._observer = observer
        self._rng = rng or random.Random()
        self._limits = SharedRateLimit(
            outbox,
            config.x.rate_limit_requests,
            config.x.rate_limit_window_seconds,
            batch=config.dispatch.concurrency,
        )
        self._slots = asyncio.Semaphore(config.dispatch.concurrency)
        self._busy = 0
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._last_purge = 0.0
        self._warned: dict[str, tuple[str, float]] = {}
        #: per destination, what keeps this process from building its X client (credentials), for /readyz
        self.credential_problems: dict[str, list[str]] = {}
        #: rows the collector of this process stored already leased to us (wired by ``build_gateway``), room
        #: for a round in flight and the next one waiting
        self.handoff = Handoff(2 * config.dispatch.concurrency * self._limit, config.dispatch.lease_seconds)
        self._next_poll = 0.0  # monotonic time of the next look into the outbox while rows are handed over
        #: set (by the watcher thread) when the outbox says rows were queued; cleared before each lease
        self._work_queued = asyncio.Event()
        self._watcher: threading.Thread | None = None
        self._watching = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Deliver until :meth:`stop`; in-flight batches finish, leased but unsent rows are released.

        First warns about each destination whose credentials cannot work, and takes back the leases this
        node held when it last stopped (before the hand-off opens, so none of the new ones). A round that
        raises (the outbox unavailable, or any bug) is logged and retried after a capped backoff: the
        loop only ends on :meth:`stop`."""
        self._check_credentials()
        self._start_watcher()
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    if not self.handoff.taking:
                        reclaimed = await asyncio.to_thread(self.outbox.reclaim)
                        if reclaimed:
                            log.info(
                                "took back the leases of this node's previous run",
                                extra={"fields": {"rows": reclaimed}},
                            )
                        self.handoff.open()
                    sent = await self.step()
                except Exception as e:
                    failures += 1
                    delay = min(_ROUND_BACKOFF_MAX, _ROUND_BACKOFF_BASE * 2 ** min(failures - 1, 16))
                    fields = {"failures_in_a_row": failures, "retry_in_seconds": delay}
                    if isinstance(e, OutboxUnavailable):
                        log.warning("outbox unavailable: %s", e, extra={"fields": fields})
                    else:
                        log.exception("dispatch round failed", extra={"fields": fields})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    continue
                if failures:
                    log.info("delivery resumed", extra={"fields": {"after_failures": failures}})
                    failures = 0
                if self._stopping.is_set():
                    break
                if not sent:
                    await self._idle(self._settings.poll_interval_ms / 1000)
                elif sent < self._limit and self._settings.linger_ms:  # a thin queue: let batches fill
                    await self.handoff.wait(self._settings.linger_ms / 1000, rows=self._limit)
        finally:
            await self._drain()

    async def stop(self) -> None:
        self._stopping.set()
        self.handoff.wake()

    def _start_watcher(self) -> None:
        """The thread that waits in ``outbox.wait_for_work`` and sets ``_work_queued`` on the loop."""
        loop = asyncio.get_running_loop()
        if self._watcher is not None:  # run again after a stop: the last run's watcher ends first
            self._watcher.join()
        self._watching.set()

        def watch() -> None:
            while self._watching.is_set():
                if self.outbox.wait_for_work(_WATCH_SECONDS) and self._watching.is_set():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        loop.call_soon_threadsafe(self._work_queued.set)

        self._watcher = threading.Thread(target=watch, name="xgate-dispatch-watch", daemon=True)
        self._watcher.start()

    async def _idle(self, seconds: float) -> None:
        """Nothing was due: wait ``seconds``, or until rows are handed over, or until the outbox says rows
        were queued (since the last lease), or :meth:`stop`."""
        if self._work_queued.is_set():
            return
        waits = {
            asyncio.ensure_future(self._work_queued.wait()),
            asyncio.ensure_future(self.handoff.wait(seconds)),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def run_until_idle(self, timeout: float = 60.0) -> None:
        """Deliver until nothing is due (for tests and one-shot runs); rows waiting on backoff stay queued."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await self.step():
                await self._drain()
                return
        await self._drain()
        raise TimeoutError(f"queue not idle after {timeout} s")

    def _check_credentials(self) -> None:
        """Warn once per destination whose credentials cannot sign a request (names, never values)."""
        self.credential_problems = destination_credential_problems(self.config)
        for name, problems in self.credential_problems.items():
            log.warning(
                "destination cannot deliver: %s",
                "; ".join(problems),
                extra={"fields": {"destination": name, "reason": "credentials"}},
            )

    async def _drain(self) -> None:
        self._watching.clear()
        unsent = self.handoff.close()
        if unsent:
            try:
                await asyncio.to_thread(self.outbox.release, [r.id for r in unsent], self.handoff.token)
            except Exception:  # they are stored: their lease expires (or the next start reclaims them)
                log.warning("could not release the rows still waiting in the hand-off", exc_info=True)
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
        Raises what the outbox raises (:class:`~xgate.errors.OutboxUnavailable`)."""
        now = time.time()
        if now - self._last_purge > _PURGE_EVERY:
            self._last_purge = now
            if await asyncio.to_thread(self.outbox.claim_duty, "housekeeping", _HOUSEKEEPING_CLAIM):
                await asyncio.to_thread(self.outbox.purge)
        async with self._slots:  # wait until at least one batch can go out
            free = self._settings.concurrency - self._busy
        wanted = free * self._limit
        rows = self.handoff.take(wanted)
        woken = self._work_queued.is_set()
        if len(rows) < wanted and (not rows or woken or time.monotonic() >= self._next_poll):
            self._work_queued.clear()  # a wake-up from now on is for rows this lease may not see
            try:
                more = await asyncio.to_thread(
                    self.outbox.lease, wanted - len(rows), self._settings.lease_seconds
                )
            except Exception:
                await self._release_quietly(rows)
                raise
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
            paused = self._limits.paused_until(self._limit_key(destination, pixel_id))
            if paused is not None:  # known here already: no need to ask the outbox
                await self._defer(group, paused, f"rate_limited: waiting for X's reset at {paused:.0f}", None)
                continue
            batches += [
                (destination, pixel_id, group[i : i + self._limit]) for i in range(0, len(group), self._limit)
            ]
        for n, (destination, pixel_id, batch) in enumerate(batches):
            await self._slots.acquire()
            if self._stopping.is_set():  # shutting down: hand back what has not gone out
                self._slots.release()
                for _, _, unsent in batches[n:]:
                    await self._release_quietly(unsent)
                break
            self._busy += 1
            task = asyncio.create_task(self._deliver(destination, pixel_id, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(rows)

    async def _release_quietly(self, rows: Sequence[LeasedRow]) -> None:
        by_token: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            by_token[r.lease_token].append(r.id)
        for token, ids in by_token.items():
            try:
                await asyncio.to_thread(self.outbox.release, ids, token)
            except Exception:  # they stay leased until the lease expires
                log.warning("could not release leased rows", exc_info=True)

    async def _deliver(self, destination: str, pixel_id: str, batch: list[LeasedRow]) -> None:
        keeper = asyncio.create_task(self._keep_leased(batch))
        try:
            await self._send(destination, pixel_id, batch)
        except Exception as e:  # never let one batch kill the loop; its lease expires and it is retried
            fields = {"destination": destination, "rows": len(batch)}
            if isinstance(e, OutboxUnavailable):
                log.warning("could not settle a batch: %s", e, extra={"fields": fields})
            else:
                log.exception("dispatch failed", extra={"fields": fields})
        finally:
            keeper.cancel()
            self._busy -= 1
            self._slots.release()

    async def _keep_leased(self, batch: list[LeasedRow]) -> None:
        """While the batch is in flight, renew its lease every third of ``lease_seconds``: a row handed
        over is taken with at least half its lease left, so the lease never runs out under a slow send."""
        seconds = self._settings.lease_seconds
        ids, token = [r.id for r in batch], batch[0].lease_token
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                held = await asyncio.to_thread(self.outbox.extend, ids, token, seconds)
            except Exception as e:
                log.warning("could not extend a lease: %s", e)
                continue
            if held == 0:
                log.warning(
                    "a batch in flight lost its lease; its settle will count nothing",
                    extra={"fields": {"destination": batch[0].destination, "rows": len(ids)}},
                )
                return

    async def _send(self, destination: str, pixel_id: str, batch: list[LeasedRow]) -> None:
        dest = self._destinations.get(destination)
        if dest is None:
            why = f"unconfigured: destination {destination!r} is no longer configured"
            await self._dead(batch, why)
            self._report(Attempt(destination, pixel_id, len(batch), "unsent", "unconfigured", None), why)
            return
        client = self._clients.get(destination)
        if client is None:
            try:
                client = self._clients[destination] = self._client_factory(dest)
            except Exception as e:  # missing credentials: keep the rows, say why, try later
                why = f"credentials: {e}"
                self.credential_problems[destination] = [str(e)]
                await self._retry(batch, why, count_attempt=False, delay=_NO_CREDENTIALS_WAIT)
                self._report(Attempt(destination, pixel_id, len(batch), "unsent", "credentials", None), why)
                return
            self.credential_problems.pop(destination, None)
        key = self._limit_key(destination, pixel_id)
        paused = await self._limits.take(key)
        if paused is not None:  # another node met X's 429 (or this one did, meanwhile)
            await self._defer(batch, paused, f"rate_limited: waiting for X's reset at {paused:.0f}", None)
            return
        result = await client.send(pixel_id, [orjson.Fragment(row.body_json) for row in batch])
        hold = result.exhausted_until(time.time())
        if hold is not None:
            await self._limits.pause(key, hold)
        if result.outcome == "split":
            self._report(Attempt(destination, pixel_id, len(batch), "split", result.failure, result))
            half = len(batch) // 2
            await self._send(destination, pixel_id, batch[:half])
            await self._send(destination, pixel_id, batch[half:])
            return
        why = result.describe()
        if result.outcome == "delivered":
            await asyncio.to_thread(
                functools.partial(
                    self.outbox.mark_delivered,
                    [r.id for r in batch],
                    batch[0].lease_token,
                    result.debug_id,
                    status=result.status_code,
                    capacity=_capacity(result),
                )
            )
        elif result.outcome == "rate_limited":
            until = await self._limits.pause(
                key, result.retry_at or time.time() + self._backoff(batch[0].attempts)
            )
            await self._defer(batch, until, f"{why}; until {until:.0f}", result)
        elif result.outcome == "retry":
            await self._retry(batch, why, answer=result)
        else:
            await self._dead(batch, why, result)
        self._report(Attempt(destination, pixel_id, len(batch), result.outcome, result.failure, result), why)

    # -- settling ----------------------------------------------------------------------------------
    def _backoff(self, attempts: int) -> float:
        s = self._settings
        return backoff_delay(attempts, s.backoff_base_seconds, s.backoff_max_seconds, self._rng)

    def _expired(self, batch: Sequence[LeasedRow], now: float) -> tuple[list[LeasedRow], list[LeasedRow]]:
        """The rows accepted ``give_up_after_hours`` ago or earlier (``LeasedRow.created_at``), and the
        others."""
        old: list[LeasedRow] = []
        young: list[LeasedRow] = []
        for r in batch:
            (old if now - r.created_at >= self._give_up_after else young).append(r)
        return old, young

    async def _give_up(self, rows: Sequence[LeasedRow], why: str, answer: SendResult | None) -> None:
        hours = self._settings.give_up_after_hours
        head, _, detail = why.partition(": ")
        await self._dead(rows, f"{head}: gave up after {hours:g} h of retries; {detail}", answer)

    async def _defer(
        self, batch: Sequence[LeasedRow], until: float, why: str, answer: SendResult | None
    ) -> None:
        """Back to the queue until ``until`` without an attempt counted (X asked us to wait)."""
        old, rest = self._expired(batch, time.time())
        if old:
            await self._give_up(old, why, answer)
        if rest:
            await asyncio.to_thread(
                functools.partial(
                    self.outbox.mark_retry,
                    [r.id for r in rest],
                    rest[0].lease_token,
                    until,
                    why,
                    count_attempt=False,
                    **_answer(answer),
                )
            )

    async def _retry(
        self,
        batch: Sequence[LeasedRow],
        why: str,
        *,
        count_attempt: bool = True,
        delay: float | None = None,
        answer: SendResult | None = None,
    ) -> None:
        """Back to the queue after a backoff (or ``delay``); rows past ``give_up_after_hours`` are dead.
        ``answer``: X's, recorded in the rows' history."""
        now = time.time()
        old, rest = self._expired(batch, now)
        if old:
            await self._give_up(old, why, answer)
        if not rest:
            return
        wait = delay if delay is not None else self._backoff(max(r.attempts for r in rest))
        await asyncio.to_thread(
            functools.partial(
                self.outbox.mark_retry,
                [r.id for r in rest],
                rest[0].lease_token,
                now + wait,
                why,
                count_attempt=count_attempt,
                **_answer(answer),
            )
        )

    async def _dead(self, batch: Sequence[LeasedRow], why: str, answer: SendResult | None = None) -> None:
        await asyncio.to_thread(
            functools.partial(
                self.outbox.mark_dead, [r.id for r in batch], batch[0].lease_token, why, **_answer(answer)
            )
        )

    def _limit_key(self, destination: str, pixel_id: str) -> str:
        """The key of X's rate limit this pixel counts against (:func:`~xgate.dispatch.limits.limit_key`)."""
        return limit_key(self._destinations.get(destination), pixel_id)

    # -- telling ------------------------------------------------------------------------------------
    def _report(self, attempt: Attempt, why: str = "") -> None:
        """The observer hears of every attempt; the log gets one line per settled batch, and a WARNING
        when the destination itself is refused (credentials, access, pixel), at most once a minute per
        destination and kind."""
        if self._observer is not None:
            self._observer(attempt)
        result = attempt.result
        fields = {
            "destination": attempt.destination,
            "pixel_id": attempt.pixel_id,
            "conversions": attempt.conversions,
            "outcome": attempt.outcome,
            "failure": attempt.failure,
            "status": result.status_code if result else None,
            "debug_id": result.debug_id if result else None,
            "reason": why or None,
        }
        if attempt.failure in ("auth", "forbidden", "not_found", "credentials", "unconfigured"):
            now = time.monotonic()
            last = self._warned.get(attempt.destination)
            if last is None or last[0] != attempt.failure or now - last[1] >= _WARN_EVERY:
                self._warned[attempt.destination] = (attempt.failure, now)
                log.warning("destination cannot deliver: %s", why, extra={"fields": fields})
                return
        elif attempt.outcome == "delivered":
            self._warned.pop(attempt.destination, None)
        log.info("batch settled", extra={"fields": fields})


class _Answer(TypedDict, total=False):
    status: int | None
    debug_id: str | None
    capacity: CapacityReading | None


def _answer(result: SendResult | None) -> _Answer:
    """X's HTTP status and debug id of ``result`` as the settle calls take them (for the history), and its
    rate-limit headers (the destination's capacity reading, shown by every node's console)."""
    if result is None:
        return {}
    return {"status": result.status_code, "debug_id": result.debug_id, "capacity": _capacity(result)}


def _capacity(result: SendResult) -> CapacityReading | None:
    """X's rate-limit headers on ``result``, read now (None when it carried none)."""
    limit = result.rate_limit
    if limit is None:
        return None
    return CapacityReading(limit.limit, limit.remaining, limit.reset, limit.scope, time.time())


__all__ = ["Attempt", "ClientFactory", "Dispatcher", "Observer", "SendsConversions"]
