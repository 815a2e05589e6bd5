"""Where each destination's delivery stands now, for ``/readyz`` and ``xgate status``.

A destination's current problem is, in this order: what keeps this process from building its X client
(its credentials, :func:`xgate.x.credential_problems`), else the outbox's last error for it when no
delivery succeeded since (:meth:`xgate.outbox.base.Outbox.health`, shared by every node). The reason
leading that error (``auth: HTTP 401; …``, written by the dispatcher) says whether the destination is
``blocked`` — nothing will be delivered until its configuration changes: credentials, auth, forbidden,
not_found, unconfigured — or only ``failing``: its last attempt failed in a way the next may not (5xx,
timeouts, rate limits, one conversion X refused).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from xgate.outbox.base import DestinationHealth
from xgate.x.result import DESTINATION_FAILURES, failure_of

#: reasons that stop a destination as a whole until its configuration changes
BLOCKING_REASONS = DESTINATION_FAILURES | {"credentials", "unconfigured"}

DestinationStatus = Literal["ok", "failing", "blocked"]


@dataclass(frozen=True, slots=True)
class DestinationState:
    name: str
    status: DestinationStatus
    #: the current problem (an error text naming variables, never secrets), None when there is none
    problem: str | None = None
    #: the reason leading the problem (auth, server_error, credentials, …), when it names one
    reason: str | None = None
    last_success_at: float | None = None
    last_error_at: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "reason": self.reason,
            "problem": self.problem,
            "last_success_at": self.last_success_at,
            "last_error_at": self.last_error_at,
        }


def destination_states(
    names: Iterable[str],
    health: Mapping[str, DestinationHealth],
    credential_problems: Mapping[str, list[str]] | None = None,
) -> list[DestinationState]:
    """One state per destination of ``names`` and of ``health``, sorted by name."""
    states = []
    for name in sorted(set(names) | set(health)):
        seen = health.get(name, DestinationHealth())
        found = (credential_problems or {}).get(name)
        problem: str | None
        reason: str | None
        if found:
            problem, reason = "credentials: " + "; ".join(found), "credentials"
        else:
            problem = seen.problem
            reason = failure_of(problem)
        status: DestinationStatus = (
            "ok" if problem is None else "blocked" if reason in BLOCKING_REASONS else "failing"
        )
        states.append(
            DestinationState(name, status, problem, reason, seen.last_success_at, seen.last_error_at)
        )
    return states


__all__ = ["BLOCKING_REASONS", "DestinationState", "destination_states"]
