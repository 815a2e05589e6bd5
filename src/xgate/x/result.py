"""X's answer to one request, classified for the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["delivered", "retry", "permanent"]


@dataclass(frozen=True, slots=True)
class XError:
    code: str
    message: str
    parameter: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """X's rate-limit headers; account-level ones preferred when present. ``reset`` is epoch seconds."""

    limit: int | None
    remaining: int | None
    reset: float | None
    scope: Literal["account", "user"]


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    #: None when no HTTP answer came (timeout, connection error)
    status_code: int | None
    conversions: int
    debug_id: str | None = None
    conversions_processed: int | None = None
    errors: tuple[XError, ...] = ()
    rate_limit: RateLimit | None = None
    #: for retry outcomes: the earliest epoch time X allows another try (from 429 reset), if known
    retry_at: float | None = None
    #: short human-readable reason for logs and dead letters
    reason: str = ""
    raw: dict[str, Any] | None = field(default=None, repr=False)
