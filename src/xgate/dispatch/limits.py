"""X's rate limit, shared by every node that delivers from one outbox.

X counts requests per ad account (its ``x-account-rate-limit-*`` headers; X's Ads API "Rate Limiting"
page, docs/x-capi.md "Limits"), whichever machine sends them. So the budget and the pause after a
429 live in the outbox (:meth:`~xgate.outbox.base.Outbox.take_requests`, :meth:`~xgate.outbox.base.Outbox.
pause`), keyed by :func:`limit_key`: ``account:<ad_account_id>`` when the destination names its ad account,
else ``pixel:<pixel_id>`` — a pixel is all xgate knows of an account otherwise, so two destinations of one
account without ``ad_account_id`` each get a whole budget (set it to share one).

**The budget** is a token bucket that never lets the nodes together send more than ``requests`` in any
``window`` seconds: it holds ``burst`` = a tenth of ``requests`` and refills at ``(requests - burst) /
(window + hold)`` a second, so any ``window`` (plus the ``hold`` a token may wait on a node, below) sees at
most ``burst + (requests - burst)`` sends. The price: the steady rate is 90% of X's; X's own headers still
pause us when its count says so (another tool spending the same account). (``requests = 1`` cannot be
split: then 2 may go in one window.)

**Batched grants, the trade-off.** A node takes up to ``batch`` tokens in one call (its concurrency) and
spends them on its next requests for at most ``hold`` seconds; tokens not spent by then lapse. Fewer
writes on the shared row — on SQLite each is a write transaction with an ``fsync`` competing with ingest —
for a small cost: lapsed tokens (a node that goes idle or dies holding some) are budget wasted, never
exceeded, and a node may spend a token up to ``hold`` late (the refill rate counts that ``hold``).

**The pause** is checked on every request, in the same call: a request spending a cached token reads the
pause (``n = 0``, a read without locks), so no node sends to a paused key, whichever node met the 429.
That is one outbox round trip per request to X, never more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from xgate.config import Destination
from xgate.errors import OutboxUnavailable
from xgate.outbox.base import Outbox

log = logging.getLogger("xgate.dispatch")

#: seconds a node may keep tokens it took before they lapse
HOLD_SECONDS = 1.0


def limit_key(destination: Destination | None, pixel_id: str) -> str:
    """``account:<ad_account_id>`` when the destination names its ad account, else ``pixel:<pixel_id>``."""
    if destination is not None and destination.ad_account_id:
        return f"account:{destination.ad_account_id}"
    return f"pixel:{pixel_id}"


class SharedRateLimit:
    """At most ``requests`` per ``window`` seconds per key over every node of ``outbox``, and X's pauses
    (module docstring). One instance per dispatcher; its methods run on the event loop and call the
    outbox in a thread."""

    def __init__(
        self, outbox: Outbox, requests: int, window: float, *, batch: int, hold: float = HOLD_SECONDS
    ) -> None:
        self._outbox = outbox
        self.burst = float(max(1, requests // 10))
        spread = window + hold
        self.rate = (requests - self.burst) / spread if requests > self.burst else requests / spread
        self._batch = max(1, min(batch, int(self.burst)))
        self._hold = hold
        #: key -> (tokens this node holds, monotonic time they lapse)
        self._tokens: dict[str, tuple[int, float]] = {}
        #: key -> the latest pause this node knows of (epoch s); pauses only grow
        self._paused: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def paused_until(self, key: str, now: float | None = None) -> float | None:
        """The pause this node knows of on ``key`` when it is still in force (no round trip), else None."""
        until = self._paused.get(key, 0.0)
        return until if until > (time.time() if now is None else now) else None

    async def pause(self, key: str, until: float) -> float:
        """Pause ``key`` until ``until`` on every node; returns the pause in force. When the outbox
        cannot record it, this node still holds the key (logged); the others learn from X."""
        self._paused[key] = max(self._paused.get(key, 0.0), until)
        try:
            shared = await asyncio.to_thread(self._outbox.pause, key, until)
        except OutboxUnavailable as e:
            log.warning("could not share a rate-limit pause: %s", e, extra={"fields": {"key": key}})
            return self._paused[key]
        self._paused[key] = max(self._paused[key], shared)
        return self._paused[key]

    async def take(self, key: str) -> float | None:
        """Wait until one request to ``key`` may go, then return None; or return the end of the pause in
        force on ``key`` (X's reset, epoch s) at once: the caller defers its rows rather than wait.
        One outbox call, more only while the budget is spent. Raises OutboxUnavailable."""
        async with self._locks[key]:
            while True:
                paused = self.paused_until(key)
                if paused is not None:
                    return paused
                held, lapse = self._tokens.get(key, (0, 0.0))
                if time.monotonic() >= lapse:
                    held = 0
                want = 0 if held else self._batch  # with tokens in hand: only the pause is read
                grant = await asyncio.to_thread(
                    self._outbox.take_requests, key, want, rate=self.rate, burst=self.burst
                )
                if grant.paused_until is not None:
                    self._paused[key] = max(self._paused.get(key, 0.0), grant.paused_until)
                    return grant.paused_until
                if held:
                    self._tokens[key] = (held - 1, lapse)
                    return None
                if grant.granted:
                    self._tokens[key] = (grant.granted - 1, time.monotonic() + self._hold)
                    return None
                retry_at = grant.retry_at if grant.retry_at is not None else time.time() + 1 / self.rate
                await asyncio.sleep(max(0.005, retry_at - time.time()))


__all__ = ["HOLD_SECONDS", "SharedRateLimit", "limit_key"]
