"""X's answer to one request, classified: the dispatcher acts on :attr:`SendResult.outcome` and never reads
HTTP status codes itself (X's protocol rules stay in :mod:`xgate.x`).

Outcomes (SPEC.md, "Answers"):

- ``delivered``: 2xx; X recorded the conversions (``debug_id`` kept for X support).
- ``retry``: a transient failure (5xx, 408, a timeout, a dropped connection); send again after a backoff.
- ``rate_limited``: 429; send again at ``retry_at`` (X's reset time) when known. Not a failed attempt.
- ``split``: 400 for a request of several conversions: X refuses the whole request for one bad conversion,
  so halve the batch and send the halves to isolate it.
- ``permanent``: sending the same request again cannot succeed (401, 403, 404, a 400 for one conversion,
  any other 4xx): a dead letter with X's error; fix the cause and replay.

Every answer that is not ``delivered`` names its :data:`FailureReason` in ``failure`` (metrics, logs and
dead letters use it); :data:`DESTINATION_FAILURES` are those that stop a whole destination, not one
conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["delivered", "retry", "rate_limited", "split", "permanent"]

#: why a request did not deliver: 401 ``auth``, 403 ``forbidden``, 404 ``not_found``, 400 / 413 / 422
#: ``invalid``, other 4xx ``rejected``, 429 ``rate_limited``, 5xx ``server_error``, 408 or no answer in
#: time ``timeout``, a refused or dropped connection ``connection``
FailureReason = Literal[
    "auth",
    "forbidden",
    "not_found",
    "invalid",
    "rejected",
    "rate_limited",
    "server_error",
    "timeout",
    "connection",
]
#: failures of the destination as a whole (its credentials, its access, its pixel): every request fails the
#: same way until the configuration changes
DESTINATION_FAILURES: frozenset[str] = frozenset({"auth", "forbidden", "not_found"})


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
    #: X's debug id (from a 200's ``data``, else the ``x-transaction-id`` header): X support asks for it
    debug_id: str | None = None
    conversions_processed: int | None = None
    errors: tuple[XError, ...] = ()
    rate_limit: RateLimit | None = None
    #: for ``rate_limited``: the epoch time X allows another try (its reset time), when it says
    retry_at: float | None = None
    #: short human-readable reason for logs and dead letters (X's error codes and messages)
    reason: str = ""
    #: why it did not deliver (None when delivered)
    failure: FailureReason | None = None

    @property
    def destination_failed(self) -> bool:
        """The destination itself is refused (credentials, access, pixel), not this request's content."""
        return self.failure in DESTINATION_FAILURES

    def exhausted_until(self, now: float) -> float | None:
        """X's reset time when its rate-limit headers say no request remains in this window (hold the
        pixel until then, before X has to answer 429); None otherwise."""
        limit = self.rate_limit
        if limit and limit.remaining == 0 and limit.reset and limit.reset > now:
            return limit.reset
        return None

    def describe(self) -> str:
        """``auth: HTTP 401; UNAUTHORIZED_ACCESS: bad signature``: the failure, then the status and X's
        errors (what a dead letter and the destination's health keep; :func:`failure_of` reads the head)."""
        detail = [f"HTTP {self.status_code}" if self.status_code else "no answer"]
        detail += [
            f"{e.code}: {e.message}" + (f" ({e.parameter})" if e.parameter else "") for e in self.errors
        ]
        if self.reason and not self.errors and self.reason != detail[0]:
            detail.append(self.reason)
        return f"{self.failure or self.outcome}: " + "; ".join(detail)


def failure_of(error: str | None) -> str | None:
    """The reason leading an error text written by :meth:`SendResult.describe` (or by the dispatcher in the
    same ``reason: …`` form, e.g. ``credentials: …``); None for any other text."""
    if not error:
        return None
    head, sep, _ = error.partition(":")
    return head if sep and head.isidentifier() else None
