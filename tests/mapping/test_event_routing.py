"""Per-event routing: a destination's ``mapping.event_id`` reads the X event id an event names for itself
(as RudderStack's ``properties.eventId`` and the server-side tags' event id field do), checked against the
destination's pixel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from xgate.config import ConfigError, parse_config
from xgate.mapping import Mapper

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
PIXEL = "o8z6j"


def mapper(**destination: Any) -> Mapper:
    dest = {
        "name": "x-main",
        "pixel_id": PIXEL,
        "events": {"purchase": f"tw-{PIXEL}-o87ne"},
        "mapping": {"event_id": "partners.twitter.event_id"},
        **destination,
    }
    return Mapper(parse_config({"destinations": [dest]}))


def event(name: str = "purchase", event_id: Any = None, **extra: Any) -> dict[str, Any]:
    twitter = {} if event_id is None else {"event_id": event_id}
    return {
        "event_name": name,
        "id": "ord-1",
        "user": {"email": "ada@example.com"},
        "context": {"event_timestamp": "2026-11-22T11:00:00Z"},
        "partners": {"twitter": twitter},
        **extra,
    }


def test_an_event_naming_its_x_event_is_sent_as_that_event() -> None:
    result = mapper().map(event(event_id=f"tw-{PIXEL}-o87nx"), now=NOW)
    [conversion] = result.conversions
    assert conversion.event_id == f"tw-{PIXEL}-o87nx"
    assert conversion.body["event_id"] == f"tw-{PIXEL}-o87nx"


def test_an_event_name_outside_the_event_map_goes_when_it_names_its_x_event() -> None:
    result = mapper().map(event("newsletter_optin", event_id="o87ny"), now=NOW)
    [conversion] = result.conversions
    assert conversion.body["event_id"] == "o87ny"


def test_an_event_naming_no_x_event_falls_back_to_the_event_map() -> None:
    m = mapper()
    [conversion] = m.map(event(), now=NOW).conversions
    assert conversion.event_id == f"tw-{PIXEL}-o87ne"
    assert m.map(event("newsletter_optin"), now=NOW).skipped == {
        "x-main": "no X event configured for event_name 'newsletter_optin'"
    }


def test_an_event_id_of_another_pixel_is_rejected_naming_the_field() -> None:
    result = mapper().map(event(event_id="tw-zzz9-o87nx"), now=NOW)
    assert not result.conversions
    [rejection] = result.rejections
    [error] = rejection.errors
    assert error.field == "partners.twitter.event_id"
    assert error.reason == "'tw-zzz9-o87nx' belongs to pixel 'zzz9', not x-main's pixel 'o8z6j'"


@pytest.mark.parametrize("bad", ["Purchase", "tw-o8z6j-", "tw o8z6j o87ne", 42, ["o87ne"]])
def test_a_value_that_is_no_x_event_id_is_rejected_without_quoting_it(bad: Any) -> None:
    [rejection] = mapper().map(event(event_id=bad), now=NOW).rejections
    [error] = rejection.errors
    assert error.field == "partners.twitter.event_id"
    assert error.reason.startswith("is not an X event id (tw-PIXEL-EVENT or EVENT")


def test_the_filter_still_decides_before_the_event_id_is_judged() -> None:
    m = mapper(filter={"exclude_events": ["test_event"]})
    result = m.map(event("test_event", event_id="tw-zzz9-bad"), now=NOW)
    assert result.skipped == {"x-main": "filter: event_name 'test_event' is excluded"}
    assert not result.rejections


def test_each_destination_takes_only_event_ids_of_its_own_pixel() -> None:
    config = parse_config(
        {
            "destinations": [
                {
                    "name": "x-a",
                    "pixel_id": "aaaa1",
                    "default_event": "o87n1",
                    "mapping": {"event_id": "x_event"},
                },
                {"name": "x-b", "pixel_id": "bbbb2", "default_event": "o87n2"},
            ]
        }
    )
    result = Mapper(config).map(event(x_event="tw-aaaa1-o87nq"), now=NOW)
    assert {c.destination: c.event_id for c in result.conversions} == {
        "x-a": "tw-aaaa1-o87nq",
        "x-b": "o87n2",
    }


def test_a_constant_event_id_mapping_is_refused_pointing_to_the_event_map() -> None:
    with pytest.raises(ConfigError, match=r"mapping\.event_id: read from a path of the event"):
        parse_config(
            {
                "destinations": [
                    {
                        "name": "x",
                        "pixel_id": PIXEL,
                        "events": {"a": "b"},
                        "mapping": {"event_id": {"const": "o87ne"}},
                    }
                ]
            }
        )


def test_a_destination_may_route_by_event_alone() -> None:
    config = parse_config(
        {
            "destinations": [
                {"name": "x", "pixel_id": PIXEL, "mapping": {"event_id": "partners.twitter.event_id"}}
            ]
        }
    )
    [conversion] = Mapper(config).map(event("anything", event_id="o87nz"), now=NOW).conversions
    assert conversion.event_id == "o87nz"
    assert Mapper(config).map(event("anything"), now=NOW).skipped == {
        "x": "no X event configured for event_name 'anything'"
    }
