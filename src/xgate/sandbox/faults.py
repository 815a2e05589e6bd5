"""Faults the sandbox injects on request: 5xx, 429 bursts, slow answers, timeouts, dropped connections."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Fault = Literal["error", "rate_limit", "timeout", "drop", "slow"]


class FaultSettings(BaseModel):
    """Shares are probabilities per request, drawn from a seedable generator."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    #: share of requests answered 500 or 503
    error_rate: float = Field(default=0.0, ge=0, le=1)
    #: share of requests that start a 429 burst of ``rate_limit_burst`` requests
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_burst: int = Field(default=5, ge=1)
    rate_limit_reset_seconds: float = Field(default=2.0, ge=0)
    #: share of requests that hang for ``timeout_seconds`` (longer than a client's timeout), then succeed
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_seconds: float = Field(default=15.0, ge=0)
    #: share of requests whose connection is closed mid-answer, before anything is recorded
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    #: share of requests answered after ``slow_ms``
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    slow_ms: int = Field(default=500, ge=0)


@dataclass
class FaultPlan:
    """What happens to one request."""

    fault: Fault | None = None
    status: int = 200
    delay: float = 0.0


class FaultInjector:
    def __init__(self, settings: FaultSettings | None = None) -> None:
        self.configure(settings or FaultSettings())

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._burst_left = 0
        self.rate_limited_until = 0.0

    def describe(self) -> dict[str, Any]:
        return self.settings.model_dump()

    def plan(self, now: float) -> FaultPlan:
        s = self.settings
        if self._burst_left > 0:
            self._burst_left -= 1
            return FaultPlan("rate_limit", 429)
        roll = self._rng.random()
        for fault, share in (
            ("drop", s.drop_rate),
            ("error", s.error_rate),
            ("rate_limit", s.rate_limit_rate),
            ("timeout", s.timeout_rate),
            ("slow", s.slow_rate),
        ):
            if roll < share:
                if fault == "drop":
                    return FaultPlan("drop", 0)
                if fault == "error":
                    return FaultPlan("error", self._rng.choice((500, 503)))
                if fault == "rate_limit":
                    self._burst_left = s.rate_limit_burst - 1
                    self.rate_limited_until = now + s.rate_limit_reset_seconds
                    return FaultPlan("rate_limit", 429)
                if fault == "timeout":
                    return FaultPlan("timeout", 200, s.timeout_seconds)
                return FaultPlan("slow", 200, s.slow_ms / 1000)
            roll -= share
        return FaultPlan()


__all__ = ["FaultInjector", "FaultPlan", "FaultSettings"]
