"""The default mapping (every row of shared/events/REFERENCE.md), filters, overrides and consent."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from mappingkit import NOW, PIXEL, mapper, purchase

from xgate.config import parse_config
from xgate.events import InvalidEvent
from xgate.mapping import Mapper


def body(event: dict[str, Any], m: Mapper | None = None) -> dict[str, Any]:
    result = (m or mapper()).map(event, now=NOW, received_at=NOW)
    assert not result.rejections, result.rejections
    (conversion,) = result.conversions
    return conversion.body


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- REFERENCE.md, row by row ------------------------------------------------------------------------
def test_conversion_time_from_event_timestamp_as_utc_with_milliseconds() -> None:
    b = body(purchase(context={"event_timestamp": "2026-11-22T12:30:00.5+02:00"}))
    assert b["conversion_time"] == "2026-11-22T10:30:00.500Z"
    assert (
        body(purchase(context={"event_timestamp": 1795338000123}))["conversion_time"]
        == "2026-11-22T09:00:00.123Z"
    )


def test_conversion_time_is_the_receive_time_when_absent() -> None:
    assert body(purchase(context={}))["conversion_time"] == "2026-11-22T12:00:00.000Z"


def test_event_id_comes_from_the_destination_event_map() -> None:
    assert body(purchase())["event_id"] == f"tw-{PIXEL}-o87ne"


def test_identifiers_twclid_email_phone_and_ip_with_user_agent_in_one_object() -> None:
    b = body(
        purchase(
            user={"email": " Ada@Example.com", "phone": "+1 415 555 0123"},
            context={"ip": "203.0.113.7", "user_agent": "UA/1"},
            partners={"twitter": {"twclid": "abc123"}},
        )
    )
    assert b["identifiers"] == [
        {"twclid": "abc123"},
        {"hashed_email": sha("ada@example.com")},
        {"hashed_phone_number": sha("+14155550123")},
        {"ip_address": "203.0.113.7", "user_agent": "UA/1"},
    ]


def test_conversion_id_value_currency_description_and_search_string() -> None:
    b = body(purchase(id="ord-9", value=12.5, currency=" eur ", type="phone order", search_term="socks"))
    assert (b["conversion_id"], b["value"], b["price_currency"]) == ("ord-9", 12.5, "EUR")
    assert (b["description"], b["search_string"]) == ("phone order", "socks")


def test_revenue_is_the_value_when_value_is_absent() -> None:
    assert body(purchase(revenue=99, currency="USD"))["value"] == 99
    assert body(purchase(value=5, revenue=99, currency="USD"))["value"] == 5


def test_number_items_is_the_sum_of_quantities_one_when_absent() -> None:
    items = [{"id": "a", "quantity": 2}, {"id": "b"}, {"id": "c", "quantity": 3}]
    assert body(purchase(items=items))["number_items"] == 6


def test_contents_from_items() -> None:
    items = [
        {
            "id": "sku-1",
            "quantity": 2,
            "price": 9.5,
            "product": {
                "id": "p-1",
                "name": "Socks",
                "price": 11,
                "group_id": "g-1",
                "category_1": "Apparel",
                "category_3": "Socks",
                "category_5": "Wool",
            },
        },
        {"quantity": 1, "product": {"id": "p-2", "price": 20}},
    ]
    assert body(purchase(items=items))["contents"] == [
        {
            "content_id": "sku-1",
            "content_group_id": "g-1",
            "content_name": "Socks",
            "content_price": 9.5,
            "content_type": "Apparel>Socks>Wool",
            "num_items": 2,
        },
        {"content_id": "p-2", "content_price": 20, "num_items": 1},
    ]


def test_numbers_stay_json_numbers() -> None:
    b = body(purchase(value=10, currency="USD", items=[{"id": "a", "quantity": 1, "price": 3}]))
    assert isinstance(b["value"], int) and isinstance(b["contents"][0]["content_price"], int)
    assert isinstance(b["number_items"], int)


def test_without_an_id_a_stable_conversion_id_is_derived() -> None:
    event = {
        "event_name": "purchase",
        "user": {"email": "ada@example.com"},
        "context": {"event_timestamp": "2026-11-22T11:00:00Z"},
    }
    first, again = body(event)["conversion_id"], body(dict(event))["conversion_id"]
    assert first == again and first.startswith("xg-")
    other = body({**event, "user": {"email": "bob@example.com"}})["conversion_id"]
    assert other != first


# -- identifiers that cannot be used ---------------------------------------------------------------
def test_an_unusable_phone_is_dropped_with_a_warning_that_does_not_quote_it() -> None:
    result = mapper().map(purchase(user={"email": "ada@example.com", "phone": "12"}), now=NOW)
    (c,) = result.conversions
    assert [i for i in c.body["identifiers"] if "hashed_phone_number" in i] == []
    assert c.warnings and "12" not in " ".join(c.warnings)
    assert c.match_signals == frozenset({"email"})


def test_ip_and_user_agent_alone_are_rejected_naming_identifiers() -> None:
    event = {"event_name": "purchase", "context": {"ip": "203.0.113.7", "user_agent": "UA"}}
    result = mapper().map(event, now=NOW)
    assert not result.conversions
    assert [e.field for e in result.rejections[0].errors] == ["identifiers"]


def test_not_an_event_raises_with_the_field() -> None:
    with pytest.raises(InvalidEvent) as e:
        mapper().map({"value": 3})
    assert e.value.errors[0].field == "event_name"


# -- destinations ------------------------------------------------------------------------------------
def test_one_event_feeds_several_destinations_and_others_are_skipped_with_a_reason() -> None:
    config = parse_config(
        {
            "destinations": [
                {"name": "a", "pixel_id": "p1", "events": {"purchase": "tw-p1-e1"}},
                {"name": "b", "pixel_id": "p2", "events": {"purchase": "e2"}},
                {"name": "c", "pixel_id": "p3", "events": {"sign_up": "e3"}},
            ]
        }
    )
    result = Mapper(config).map(purchase(), now=NOW)
    assert [(c.destination, c.pixel_id, c.event_id) for c in result.conversions] == [
        ("a", "p1", "tw-p1-e1"),
        ("b", "p2", "e2"),
    ]
    assert "no X event" in result.skipped["c"]


def test_default_event_takes_unlisted_event_names() -> None:
    m = mapper(default_event=f"tw-{PIXEL}-cust1")
    assert body({**purchase(), "event_name": "newsletter"}, m)["event_id"] == f"tw-{PIXEL}-cust1"


@pytest.mark.parametrize(
    ("when", "event_extra", "goes"),
    [
        ({"path": "value", "op": "gt", "value": 10}, {"value": 11, "currency": "USD"}, True),
        ({"path": "value", "op": "gt", "value": 10}, {"value": 10, "currency": "USD"}, False),
        ({"path": "custom.channel", "op": "eq", "value": "web"}, {"custom": {"channel": "web"}}, True),
        (
            {"path": "custom.channel", "op": "in", "value": ["app", "pos"]},
            {"custom": {"channel": "web"}},
            False,
        ),
        (
            {"path": "context.page_url", "op": "matches", "value": "^https://shop\\."},
            {"context": {"page_url": "https://shop.example/thanks"}},
            True,
        ),
        ({"path": "user.phone", "op": "exists"}, {}, False),
        ({"path": "user.phone", "op": "not_exists"}, {}, True),
    ],
)
def test_filter_conditions(when: dict[str, Any], event_extra: dict[str, Any], goes: bool) -> None:
    result = mapper(filter={"when": [when]}).map({**purchase(), **event_extra}, now=NOW)
    assert bool(result.conversions) is goes
    assert ("x-main" in result.skipped) is not goes


def test_excluded_events_never_go() -> None:
    result = mapper(filter={"exclude_events": ["purchase"]}).map(purchase(), now=NOW)
    assert result.conversions == [] and "excluded" in result.skipped["x-main"]


def test_overrides_read_dotted_paths_constants_and_transforms() -> None:
    m = mapper(
        mapping={
            "description": "custom.channel",
            "conversion_id": {"path": "custom.order_ref", "transform": ["upper"]},
            "price_currency": {"const": "EUR"},
            "value": {"path": "custom.total", "transform": ["number"]},
            "search_string": {"path": "custom.tags", "transform": ["join"], "separator": " "},
        }
    )
    b = body(purchase(custom={"channel": "pos", "order_ref": "r-7", "total": "12,50", "tags": ["a", "b"]}), m)
    assert (b["description"], b["conversion_id"], b["price_currency"]) == ("pos", "R-7", "EUR")
    assert (b["value"], b["search_string"]) == (12.5, "a b")


def test_an_identifier_override_is_normalized_and_hashed() -> None:
    m = mapper(mapping={"email": "traits.mail", "twclid": "custom.click"})
    b = body({**purchase(user=None), "traits": {"mail": " Ada@Example.com "}, "custom": {"click": "xyz"}}, m)
    assert {"hashed_email": sha("ada@example.com")} in b["identifiers"]
    assert {"twclid": "xyz"} in b["identifiers"]


def test_a_transform_that_fails_rejects_naming_the_override() -> None:
    result = mapper(mapping={"value": {"path": "custom.total", "transform": ["number"]}}).map(
        purchase(custom={"total": "twelve"}), now=NOW
    )
    assert result.rejections[0].errors[0].field == "mapping.value"


@pytest.mark.parametrize(
    ("categories", "expected"),
    [(["advertising"], "send"), (["analytics"], "drop"), (None, "send")],
)
def test_consent_policy_decides_by_category(categories: list[str] | None, expected: str) -> None:
    user = {
        "email": "ada@example.com",
        **({"consent_categories": categories} if categories is not None else {}),
    }
    result = mapper(consent={"denied": "drop"}).map(purchase(user=user), now=NOW)
    assert ("sent" if result.conversions else "drop") == ("sent" if expected == "send" else "drop")
    if expected == "drop":
        assert "consent" in result.skipped["x-main"]


def test_restricted_consent_sends_hashed_identifiers_only_and_no_product_names() -> None:
    m = mapper(consent={"denied": "restricted", "restricted_extra": {"restricted_data_use": True}})
    event = purchase(
        user={"email": "ada@example.com", "consent_categories": []},
        context={"ip": "203.0.113.7", "user_agent": "UA"},
        items=[{"id": "a", "quantity": 1, "product": {"name": "Socks"}}],
    )
    result = m.map(event, now=NOW)
    (c,) = result.conversions
    assert c.restricted
    assert c.body["identifiers"] == [{"hashed_email": sha("ada@example.com")}]
    assert c.body["contents"] == [{"content_id": "a", "num_items": 1}]
    assert c.body["restricted_data_use"] is True
