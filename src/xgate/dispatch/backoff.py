"""Retry timing: exponential backoff with full jitter, and a per-destination request budget."""

from __future__ import annotations

import asyncio
import random
import time


def backoff_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempts + 1``: uniform in [0, min(cap, base * 2**attempts)]."""
    ceiling = min(cap, base * (2 ** min(attempts, 60)))
    return (rng or random).uniform(0, ceiling)


class RequestBudget:
    """At most ``requests`` sends per ``window`` seconds (X's per-account rate limit), for all workers."""

    def __init__(self, requests: int, window: float) -> None:
        self._rate = requests / window
        self._capacity = float(requests)
        self._tokens = float(requests)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)
