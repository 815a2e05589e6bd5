"""Which X pixel events the tag fires on a web source's pages: only those of destinations that would take
the same event from that source (so the pixel never counts an event meant for another destination)."""

from __future__ import annotations

from typing import Any

import pytest

from xgate.config import Config, parse_config
from xgate.tag.script import pixel_events

PIXEL = "o8z6j"


def config(*destinations: dict[str, Any], origins: tuple[str, ...] = ("https://shop.example",)) -> Config:
    return parse_config(
        {
            "sources": [
                {"name": "web", "write_key": "pub-1", "allowed_origins": list(origins)},
                {"name": "web-de", "write_key": "pub-2", "allowed_origins": ["https://shop.example.de"]},
            ],
            "destinations": list(destinations),
        }
    )


def destination(name: str, events: dict[str, str], *when: dict[str, Any], **filter: Any) -> dict[str, Any]:
    return {"name": name, "pixel_id": PIXEL, "events": events, "filter": {"when": list(when), **filter}}


def events_for(cfg: Config, source: str = "web") -> dict[str, str]:
    return pixel_events(cfg, next(s for s in cfg.sources if s.name == source)).events


def test_a_destination_that_needs_a_property_the_tag_never_sets_fires_no_pixel_event() -> None:
    cfg = config(
        destination("x-main", {"purchase": "o87ne"}, {"path": "channel", "op": "ne", "value": "store"}),
        destination(
            "x-stores",
            {"purchase": "o87nj", "lead": "o87nk"},
            {"path": "channel", "op": "eq", "value": "store"},
        ),
    )
    plan = pixel_events(cfg, cfg.sources[0])
    assert plan.events == {"purchase": "tw-o8z6j-o87ne"}  # no offline "lead", and purchase is x-main's
    assert plan.left_out == {"x-stores": "filter channel eq 'store': the tag never sets channel"}


def test_a_server_only_destination_fires_no_pixel_event() -> None:
    cfg = config(
        destination(
            "x-server", {"sign_up": "o87nf"}, {"path": "context.page_url", "op": "not_exists", "value": None}
        )
    )
    assert events_for(cfg) == {}


def test_conditions_on_event_fields_the_page_passes_keep_the_destination() -> None:
    cfg = config(
        destination(
            "x-main",
            {"purchase": "o87ne", "lead": "o87nk"},
            {"path": "value", "op": "gt", "value": 0},
            {"path": "user.email", "op": "exists"},
            {"path": "items.0.product.name", "op": "exists"},
            {"path": "context.page_url", "op": "exists"},
        )
    )
    assert events_for(cfg) == {"purchase": "tw-o8z6j-o87ne", "lead": "tw-o8z6j-o87nk"}


def test_excluded_events_and_event_name_conditions_are_judged_per_name() -> None:
    cfg = config(
        destination(
            "x-main",
            {"purchase": "o87ne", "lead": "o87nk", "test_event": "o87nz"},
            {"path": "event_name", "op": "ne", "value": "lead"},
            exclude_events=["test_event"],
        )
    )
    assert events_for(cfg) == {"purchase": "tw-o8z6j-o87ne"}


@pytest.mark.parametrize(
    "condition",
    [
        {"path": "context.page_url", "op": "matches", "value": r"^https://shop\.example\.de/"},
        {"path": "context.page_url", "op": "eq", "value": "https://shop.example.de/thanks"},
        {"path": "context.page_url", "op": "in", "value": ["https://shop.example.de/thanks"]},
    ],
)
def test_each_web_source_gets_the_destinations_of_its_own_pages(condition: dict[str, Any]) -> None:
    cfg = config(
        destination("x-de", {"purchase": "o87nd"}, condition),
        destination(
            "x-main",
            {"purchase": "o87ne"},
            {"path": "context.page_url", "op": "matches", "value": "^https://shop\\.example/"},
        ),
    )
    assert events_for(cfg, "web-de") == {"purchase": "tw-o8z6j-o87nd"}
    assert events_for(cfg, "web") == {"purchase": "tw-o8z6j-o87ne"}


def test_a_page_url_pattern_that_cannot_be_read_simply_keeps_the_destination() -> None:
    cfg = config(
        destination(
            "x-any",
            {"purchase": "o87ne"},
            {"path": "context.page_url", "op": "matches", "value": "checkout|thanks"},
        )
    )
    assert events_for(cfg, "web-de") == {"purchase": "tw-o8z6j-o87ne"}
