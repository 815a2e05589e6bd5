"""Helpers of the client tests: a real gateway in process (real mapper, real SQLite outbox, no dispatcher)."""

from __future__ import annotations

from dataclasses import dataclass

from xgate.outbox import Outbox

WRITE_KEY = "backend-key-5d1c9e"
WRITE_KEY_ENV = "XGATE_CLIENT_TEST_KEY"
PIXEL = "o8z6j"


@dataclass
class LiveGateway:
    url: str
    outbox: Outbox

    def queued_ids(self) -> list[str]:
        return [r.conversion_id for r in self.outbox.rows(limit=100_000)]


def purchase(order: str, **extra: object) -> dict[str, object]:
    return {
        "event_name": "purchase",
        "id": order,
        "value": 10,
        "currency": "EUR",
        "user": {"email": f"{order}@example.com"},
        **extra,
    }
