"""Which events a destination takes (``filter``) and what consent allows (``consent``)."""

from __future__ import annotations

import re
from typing import Any

from xgate.config import Condition, ConsentAction, ConsentPolicy, Destination, Filter
from xgate.events import EventData, get_path


def condition_holds(condition: Condition, actual: Any, pattern: re.Pattern[str] | None) -> bool:
    """Whether ``condition`` holds for the value ``actual`` read at its path (None: absent); ``pattern`` is
    its compiled regular expression for ``matches``."""
    op, expected = condition.op, condition.value
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if op == "matches":
        return actual is not None and pattern is not None and pattern.search(str(actual)) is not None
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)  # lte


class EventFilter:
    """A destination's filter, compiled once: ``refusal(event)`` is None when the event goes, else why not."""

    def __init__(self, destination: Destination) -> None:
        f: Filter = destination.filter
        self._excluded = frozenset(f.exclude_events)
        self._event_ids = dict(destination.events)
        self._default_event_id = destination.default_event
        self._conditions = [(c, re.compile(c.value) if c.op == "matches" else None) for c in f.when]

    def event_id(self, event_name: str) -> str | None:
        """The X event id this destination sends ``event_name`` as, if any."""
        return self._event_ids.get(event_name, self._default_event_id)

    def refusal(self, event: EventData, names_its_event: bool = False) -> str | None:
        """Why the destination does not take ``event`` (None: it does). ``names_its_event``: the event
        carries its own X event id (``mapping.event_id``), so its name needs no entry in ``events``."""
        name: str = event["event_name"]
        if name in self._excluded:
            return f"filter: event_name {name!r} is excluded"
        if not names_its_event and self.event_id(name) is None:
            return f"no X event configured for event_name {name!r}"
        for condition, pattern in self._conditions:
            if not condition_holds(condition, get_path(event, condition.path), pattern):
                return f"filter: {condition.path} {condition.op} {condition.value!r} does not hold"
        return None


class ConsentRule:
    """A destination's consent policy, compiled once: ``action(event)`` is send / restricted / drop, by
    whether ``user.consent_categories`` grants the policy's category."""

    def __init__(self, policy: ConsentPolicy) -> None:
        self.category = policy.category
        self.granted: ConsentAction = policy.granted
        self.denied: ConsentAction = policy.denied
        self.unknown: ConsentAction = policy.unknown

    def action(self, event: EventData) -> ConsentAction:
        user = event.get("user")
        granted = user.get("consent_categories") if user else None
        if granted is None:
            return self.unknown
        return self.granted if self.category in granted else self.denied
