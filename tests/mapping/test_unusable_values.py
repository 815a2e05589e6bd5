"""One policy for unusable values (docs/events.md, "What xgate does with an unusable value"): a field X can
do without is dropped with a warning and the conversion kept; what X requires (and the value, currency and
dedup key) refuses the event, naming the field; numbers are bounded by X's types and sane limits."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from mappingkit import NOW, mapper, purchase

from xgate.conversion import MappedConversion
from xgate.events import InvalidEvent
from xgate.identifiers import normalize_ip
from xgate.validation import MAX_AMOUNT, MAX_COUNT


def mapped(event: dict[str, Any]) -> MappedConversion:
    result = mapper().map(event, now=NOW, received_at=NOW)
    assert not result.rejections, result.rejections
    (conversion,) = result.conversions
    orjson.dumps(conversion.body)  # the outbox can store it
    return conversion


def refusal(event: dict[str, Any]) -> dict[str, str]:
    result = mapper().map(event, now=NOW, received_at=NOW)
    assert not result.conversions
    (rejection,) = result.rejections
    return {e.field: e.reason for e in rejection.errors}


# -- numbers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1e20, 2**64 + 1, 10**30, MAX_AMOUNT + 1])
def test_a_value_beyond_the_bound_refuses_the_event_naming_value(value: Any) -> None:
    assert "value" in refusal(purchase(value=value, currency="USD"))


@pytest.mark.parametrize("field", ["value", "revenue"])
@pytest.mark.parametrize("flag", [True, False])
def test_a_boolean_amount_refuses_the_event_instead_of_being_read_as_1_or_0(field: str, flag: bool) -> None:
    # a data layer's `"value": true` is a wrong field, not a sale worth 1 (docs/events.md: not a number)
    with pytest.raises(InvalidEvent) as e:
        mapper().map(purchase(currency="USD", **{field: flag}), now=NOW)
    assert [(err.field, err.reason) for err in e.value.errors] == [
        (field, "must be a number, not true or false")
    ]


def test_the_largest_plausible_value_passes_as_a_json_number() -> None:
    assert mapped(purchase(value=MAX_AMOUNT, currency="IDR")).body["value"] == MAX_AMOUNT


@pytest.mark.parametrize("price", [1e20, 10**25, -1, "price on request", "12,50 €", True])
def test_an_unusable_item_price_is_dropped_with_a_warning_and_the_conversion_kept(price: Any) -> None:
    event = purchase(value=40, currency="EUR", items=[{"id": "sku-1", "price": price, "quantity": 2}])
    c = mapped(event)
    assert c.body["contents"] == [{"content_id": "sku-1", "num_items": 2}]
    assert c.body["value"] == 40
    assert any(w.startswith("items.0.price") or "content_price" in w for w in c.warnings), c.warnings
    assert not any(str(price) in w for w in c.warnings if isinstance(price, str))


@pytest.mark.parametrize("quantity", [10**20, MAX_COUNT + 1, 0, -3, True])
def test_an_unusable_quantity_is_dropped_with_a_warning(quantity: int) -> None:
    c = mapped(purchase(items=[{"id": "sku-1", "quantity": quantity}]))
    assert "num_items" not in c.body["contents"][0]
    assert "number_items" not in c.body or 0 < c.body["number_items"] <= MAX_COUNT
    assert c.warnings


# -- IP addresses --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("198.51.100.23:51234", "198.51.100.23"),
        ("[2001:db8::7334]:443", "2001:db8::7334"),
        ("[2001:DB8::7334]", "2001:db8::7334"),
        ("::ffff:198.51.100.23", "198.51.100.23"),
        (" 203.0.113.9 ", "203.0.113.9"),
    ],
)
def test_ip_addresses_are_parsed_ports_and_brackets_stripped(given: str, sent: str) -> None:
    c = mapped(purchase(context={"ip": given, "user_agent": "Mozilla/5.0"}))
    assert {"ip_address": sent, "user_agent": "Mozilla/5.0"} in c.body["identifiers"]
    assert not c.warnings


@pytest.mark.parametrize(
    "given", ["shop.example", "198.51.100.300", "198.51.100.23:port", "fe80::1%eth0", "[2001:db8::1", "1.2.3"]
)
def test_an_unusable_ip_is_dropped_with_its_user_agent_and_a_warning(given: str) -> None:
    c = mapped(purchase(context={"ip": given, "user_agent": "Mozilla/5.0"}))
    assert [list(i) for i in c.body["identifiers"]] == [["hashed_email"]]
    assert any(w.startswith("context.ip: not an IP address") for w in c.warnings)
    assert any(w.startswith("context.user_agent") for w in c.warnings)
    assert normalize_ip(given) is None


@pytest.mark.parametrize("agent", ["Mozilla/5.0\x00", "Mozilla\n/5.0", "x" * 1025, "Mo\u200bzilla"])
def test_a_user_agent_with_control_characters_or_too_long_is_dropped_and_the_ip_kept(agent: str) -> None:
    c = mapped(purchase(context={"ip": "203.0.113.9", "user_agent": agent}))
    assert {"ip_address": "203.0.113.9"} in c.body["identifiers"]
    assert any(w.startswith("context.user_agent") for w in c.warnings)


# -- twclid, conversion_id, description, contents --------------------------------------------------------
@pytest.mark.parametrize("twclid", ["abc def", "abc\x00", "x" * 257, "<script>", "ab\u200bc"])
def test_a_twclid_of_the_wrong_shape_is_dropped_with_a_warning(twclid: str) -> None:
    c = mapped(purchase(partners={"twitter": {"twclid": twclid}}))
    assert "twclid" not in c.match_signals
    assert any(w.startswith("partners.twitter.twclid") for w in c.warnings)


@pytest.mark.parametrize("conversion_id", ["ord\x00-1", "ord-\u200b1", "ord\n1"])
def test_a_conversion_id_with_invisible_characters_refuses_the_event(conversion_id: str) -> None:
    # the dedup key shared with the pixel: dropping or cleaning it would break X's deduplication
    assert "invisible" in refusal(purchase(id=conversion_id))["conversion_id"]


def test_a_description_with_control_characters_is_cleaned_and_an_unusable_one_dropped() -> None:
    assert mapped(purchase(type="gift\x00 card\n order")).body["description"] == "gift card order"
    c = mapped(purchase(type="\u200b\x00"))
    assert "description" not in c.body
    assert any(w.startswith("description") and "dropped" in w for w in c.warnings)
    c = mapped(purchase(type="x" * 1001))
    assert "description" not in c.body


def test_content_text_fields_are_cleaned_or_dropped() -> None:
    item = {"id": "sku\x001", "product": {"name": "x" * 501, "category_1": "Shoes"}}
    c = mapped(purchase(items=[item]))
    assert c.body["contents"] == [{"content_id": "sku1", "content_type": "Shoes"}]


def test_an_unusable_value_of_the_wrong_type_still_refuses_the_event() -> None:
    with pytest.raises(InvalidEvent) as e:
        mapper().map(purchase(value="price on request"), now=NOW)
    assert [err.field for err in e.value.errors] == ["value"]


# -- identifiers ------------------------------------------------------------------------------------------
def test_when_every_identifier_is_unusable_the_refusal_names_each_and_why() -> None:
    event = purchase(
        user={"email": "not-an-email", "phone": "12"},
        partners={"twitter": {"twclid": "no spaces allowed"}},
        context={"ip": "localhost", "user_agent": "Mozilla/5.0"},
    )
    reasons = refusal(event)
    assert set(reasons) == {
        "identifiers",
        "user.email",
        "user.phone",
        "partners.twitter.twclid",
        "context.ip",
        "context.user_agent",
    }
    assert reasons["user.email"] == "not a usable e-mail address"
    assert "not-an-email" not in str(reasons)
