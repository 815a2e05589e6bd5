"""The console's shared counts survive an outbox that is down: nothing counted is lost while the buffer
has room, and a full buffer gives up the oldest minutes first (xgate.observe.counts.SharedCounts)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from xgate.errors import OutboxUnavailable
from xgate.observe.counts import SharedCounts
from xgate.outbox.base import OutcomeCount

MINUTE = 1_764_561_600  # a multiple of 60


class FlakyTotals:
    """The one outbox call SharedCounts makes, failing while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.totals: dict[tuple[int, str, str, str], int] = {}

    def add_counts(self, counts: Sequence[OutcomeCount]) -> None:
        if self.down:
            raise OutboxUnavailable("database restarting")
        for c in counts:
            key = (c.minute, c.kind, c.name, c.outcome)
            self.totals[key] = self.totals.get(key, 0) + c.n


def test_counts_written_while_the_outbox_is_down_are_added_with_the_next_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = FlakyTotals()
    counts = SharedCounts(outbox, flush_seconds=3600)  # type: ignore[arg-type]
    counts.add("event", "web", {"accepted": 2, "rejected": 1}, at=MINUTE + 5)
    counts.flush()
    counts.add("event", "web", {"accepted": 3}, at=MINUTE + 30)
    counts.flush()
    assert outbox.totals == {}
    assert [r.message for r in caplog.records].count(
        "event and delivery counts wait for the outbox (kept for the next write): database restarting"
    ) == 1  # one warning per outage, not one per write

    outbox.down = False
    counts.flush()
    assert outbox.totals == {
        (MINUTE, "event", "web", "accepted"): 5,
        (MINUTE, "event", "web", "rejected"): 1,
    }
    counts.flush()  # nothing twice
    assert outbox.totals[(MINUTE, "event", "web", "accepted")] == 5
    counts.close()


def test_a_full_buffer_drops_the_oldest_minutes_first_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = FlakyTotals()
    counts = SharedCounts(outbox, flush_seconds=3600, kept=2)  # type: ignore[arg-type]
    for i in range(4):
        counts.add("event", "web", {"accepted": 1}, at=MINUTE + 60 * i)
    counts.flush()
    assert any("counts dropped" in r.message for r in caplog.records)

    outbox.down = False
    counts.flush()
    assert outbox.totals == {
        (MINUTE + 120, "event", "web", "accepted"): 1,
        (MINUTE + 180, "event", "web", "accepted"): 1,
    }
    counts.close()
