"""Retry timing: exponential backoff with full jitter (X's request budget: :mod:`xgate.dispatch.limits`)."""

from __future__ import annotations

import random


def backoff_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempts + 1``: uniform in [0, min(cap, base * 2**attempts)]."""
    ceiling = min(cap, base * (2 ** min(attempts, 60)))
    return (rng or random).uniform(0, ceiling)
