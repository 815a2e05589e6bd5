"""What the mapping tests share: a fixed clock, the test pixel, a one-destination configuration and mapper,
and a purchase that maps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xgate.config import Config, parse_config
from xgate.mapping import Mapper

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
PIXEL = "o8z6j"


def config(**destination: Any) -> Config:
    """One destination ``x-main`` on :data:`PIXEL` sending ``purchase``, ``destination``'s keys on top."""
    dest = {"name": "x-main", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}, **destination}
    return parse_config({"destinations": [dest]})


def mapper(**destination: Any) -> Mapper:
    return Mapper(config(**destination))


def purchase(**extra: Any) -> dict[str, Any]:
    """A purchase with an e-mail and a timestamp an hour before :data:`NOW`, with ``extra``'s keys on top."""
    return {
        "event_name": "purchase",
        "id": "ord-1",
        "user": {"email": "ada@example.com"},
        "context": {"event_timestamp": "2026-11-22T11:00:00Z"},
        **extra,
    }
