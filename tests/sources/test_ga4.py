"""The ``ga4`` kind: Measurement Protocol bodies and gtag hits in, xgate events out (docs/sources.md)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sourcekit import PIXEL, source_config, source_gateway, wait_for_conversions

from xgate.collect.kinds import Converted, Ignored, Refusal
from xgate.collect.kinds.ga4 import EVENT_NAMES, KIND, convert_event_data, hit_event_data, mp_event_data
from xgate.testing import RunningSandbox

API_SECRET = "ga4-api-secret-81c3"
GA4 = {"name": "ga", "kind": "ga4", "write_key": API_SECRET, "measurement_ids": ["G-SHOP123"]}
EMAIL_HASH = hashlib.sha256(b"shopper@example.com").hexdigest()
PHONE_HASH = hashlib.sha256(b"+14155550100").hexdigest()


def convert(data: dict[str, Any]) -> dict[str, Any]:
    outcome = convert_event_data(data, EVENT_NAMES)
    assert isinstance(outcome, Converted), outcome
    return outcome.event


ITEMS = [
    {
        "item_id": "SKU_1",
        "item_name": "Tee",
        "price": 9.99,
        "quantity": 2,
        "item_category": "Apparel",
        "item_category2": "Adult",
        "item_category3": "Shirts",
    },
    {"item_id": 77, "price": "5", "quantity": 1},
]


def test_purchase_event_data_maps_transaction_value_currency_and_items() -> None:
    assert convert(
        {"event_name": "purchase", "transaction_id": "T-1", "value": 24.98, "currency": "EUR", "items": ITEMS}
    ) == {
        "event_name": "purchase",
        "id": "T-1",
        "value": 24.98,
        "currency": "EUR",
        "items": [
            {
                "id": "SKU_1",
                "quantity": 2,
                "price": 9.99,
                "product": {
                    "id": "SKU_1",
                    "name": "Tee",
                    "category_1": "Apparel",
                    "category_2": "Adult",
                    "category_3": "Shirts",
                },
            },
            {"id": "77", "quantity": 1, "price": 5.0, "product": {"id": "77"}},
        ],
    }


def test_event_id_is_the_conversion_id_when_there_is_no_transaction_id() -> None:
    assert convert({"event_name": "generate_lead", "event_id": "ev-9"})["id"] == "ev-9"
    assert convert({"event_name": "purchase", "event_id": "ev-9", "transaction_id": "T-2"})["id"] == "T-2"


@pytest.mark.parametrize("name", sorted(EVENT_NAMES))
def test_each_ga4_standard_event_name_is_its_xgate_event(name: str) -> None:
    assert convert({"event_name": name})["event_name"] == name


def test_a_custom_event_keeps_its_name_and_a_refund_is_ignored() -> None:
    assert convert({"event_name": "video_complete"})["event_name"] == "video_complete"
    refund = convert_event_data({"event_name": "refund", "transaction_id": "T-1"}, EVENT_NAMES)
    assert isinstance(refund, Ignored) and refund.reason == "a refund is not a conversion: recorded, not sent"


@pytest.mark.parametrize(
    ("user_data", "email", "phone"),
    [
        (
            {"email_address": "Shopper@Example.com", "phone_number": "+1 415 555 0100"},
            "Shopper@Example.com",
            "+1 415 555 0100",
        ),
        ({"sha256_email_address": [EMAIL_HASH], "sha256_phone_number": [PHONE_HASH]}, EMAIL_HASH, PHONE_HASH),
        ({"sha256_email_address": EMAIL_HASH}, EMAIL_HASH, None),
    ],
)
def test_user_data_gives_email_and_phone_plain_or_already_hashed(
    user_data: dict[str, Any], email: str, phone: str | None
) -> None:
    user = convert({"event_name": "sign_up", "user_id": 42, "user_data": user_data})["user"]
    assert user == {k: v for k, v in {"id": "42", "email": email, "phone": phone}.items() if v}


def test_page_location_ip_override_user_agent_and_search_term_fill_the_context() -> None:
    event = convert(
        {
            "event_name": "search",
            "search_term": "tees",
            "ip_override": "203.0.113.5",
            "user_agent": "UA/1",
            "page_location": "https://shop.example/s?q=tees&twclid=tw-9",
            "twclid": "tw-explicit",
        }
    )
    assert event == {
        "event_name": "search",
        "search_term": "tees",
        "context": {
            "ip": "203.0.113.5",
            "user_agent": "UA/1",
            "page_url": "https://shop.example/s?q=tees&twclid=tw-9",
        },
        "partners": {"twitter": {"twclid": "tw-explicit"}},
    }


def test_conversion_timestamp_in_ms_wins_over_timestamp_micros() -> None:
    both = {
        "event_name": "purchase",
        "conversion_timestamp": 1764496800123,
        "timestamp_micros": 1764496700000000,
    }
    assert convert(both)["context"]["event_timestamp"] == 1764496800123
    assert convert({"event_name": "purchase", "timestamp_micros": "1764496700000999"})["context"] == {
        "event_timestamp": 1764496700000
    }


def test_a_measurement_protocol_body_gives_one_event_data_per_event() -> None:
    body = {
        "client_id": "123.456",
        "user_id": "u-1",
        "timestamp_micros": 1764496700000000,
        "user_data": {"sha256_email_address": [EMAIL_HASH]},
        "events": [
            {"name": "purchase", "params": {"transaction_id": "T-1", "value": 5}},
            {"name": "sign_up", "params": {}, "timestamp_micros": 1764496799000000},
        ],
    }
    first, second = mp_event_data(body)  # type: ignore[misc]
    assert first == {
        "client_id": "123.456",
        "user_id": "u-1",
        "user_data": {"sha256_email_address": [EMAIL_HASH]},
        "timestamp_micros": 1764496700000000,
        "transaction_id": "T-1",
        "value": 5,
        "event_name": "purchase",
    }
    assert second["timestamp_micros"] == 1764496799000000
    refusal = mp_event_data({"events": [{"params": {}}]})
    assert isinstance(refusal, Refusal) and refusal.message == "events[0]: must be an object with a name"


def test_a_gtag_hit_reads_en_ep_epn_cu_dl_uid_and_items() -> None:
    assert hit_event_data(
        {
            "v": "2",
            "tid": "G-SHOP123",
            "cid": "1.2",
            "en": "purchase",
            "ep.transaction_id": "T-7",
            "epn.value": "30.5",
            "cu": "USD",
            "dl": "https://shop.example/ok?twclid=tw-1",
            "uid": "u-7",
            "_uip": "198.51.100.4",
            "pr2": "idB~nmCap~pr10.5~qt1",
            "pr1": "idA~nmTee~pr10~qt2~caApparel~c2Adult",
        }
    ) == {
        "transaction_id": "T-7",
        "value": 30.5,
        "event_name": "purchase",
        "client_id": "1.2",
        "user_id": "u-7",
        "currency": "USD",
        "page_location": "https://shop.example/ok?twclid=tw-1",
        "ip_override": "198.51.100.4",
        "items": [
            {
                "item_id": "A",
                "item_name": "Tee",
                "price": "10",
                "quantity": "2",
                "item_category": "Apparel",
                "item_category2": "Adult",
            },
            {"item_id": "B", "item_name": "Cap", "price": "10.5", "quantity": "1"},
        ],
    }


# --- over HTTP, through the gateway ----------------------------------------------------------------------


def test_a_measurement_protocol_purchase_as_sgtm_forwards_it_arrives_at_x(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    now_ms = int(time.time() * 1000)
    body = {
        "client_id": "555.777",
        "user_data": {"sha256_email_address": [EMAIL_HASH], "phone_number": "+1 415-555-0100"},
        "events": [
            {
                "name": "purchase",
                "params": {
                    "transaction_id": "T-100",
                    "value": 24.98,
                    "currency": "eur",
                    "items": ITEMS,
                    "page_location": "https://shop.example/thanks?twclid=2-abc",
                    "ip_override": "203.0.113.5",
                    "user_agent": "Mozilla/5.0",
                    "conversion_timestamp": now_ms,
                },
            }
        ],
    }
    with source_gateway(source_config(tmp_path, [GA4], sandbox=sandbox)) as gw:
        answer = gw.http.post(f"/mp/collect?api_secret={API_SECRET}&measurement_id=G-SHOP123", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 1
        [conversion] = wait_for_conversions(sandbox, 1)
    assert conversion["pixel_id"] == PIXEL
    assert conversion["event_id"] == f"tw-{PIXEL}-o87ne"
    assert (conversion["conversion_id"], conversion["value"], conversion["price_currency"]) == (
        "T-100",
        24.98,
        "EUR",
    )
    assert conversion["number_items"] == 3
    assert conversion["contents"][0] == {
        "content_id": "SKU_1",
        "content_name": "Tee",
        "content_price": 9.99,
        "content_type": "Apparel>Adult>Shirts",
        "num_items": 2,
    }
    assert conversion["identifiers"] == [
        {"twclid": "2-abc"},
        {"hashed_email": EMAIL_HASH},
        {"hashed_phone_number": PHONE_HASH},
        {"ip_address": "203.0.113.5", "user_agent": "Mozilla/5.0"},
    ]


def test_gtag_hits_are_taken_for_a_listed_measurement_id_and_redelivery_queues_nothing(
    tmp_path: Path,
) -> None:
    with source_gateway(source_config(tmp_path, [GA4])) as gw:
        query = (
            "v=2&tid=G-SHOP123&cid=1.2&dl=https%3A%2F%2Fshop.example%2Fok%3Ftwclid%3Dtw-1&_uip=198.51.100.4"
        )
        lines = "en=purchase&ep.transaction_id=T-7&epn.value=30&cu=USD\r\nen=scroll\r\n"
        first = gw.http.post(f"/g/collect?{query}", content=lines, headers={"User-Agent": "Mozilla/5.0"})
        assert first.status_code == 200, first.text
        assert [r["status"] for r in first.json()["results"]] == ["accepted", "skipped"]
        again = gw.http.post(f"/g/collect?{query}", content=lines)
        assert again.json()["duplicates"] == 1
        [queued] = gw.queued()
        assert (queued["conversion_id"], queued["value"], queued["price_currency"]) == ("T-7", 30, "USD")
        assert queued["identifiers"][0] == {"twclid": "tw-1"}
        other = gw.http.get("/g/collect?v=2&tid=G-OTHER&en=purchase&ep.transaction_id=T-8")
        assert other.status_code == 401 and "measurement_ids" in other.json()["message"]
        assert (
            gw.http.post("/mp/collect?api_secret=wrong", json={"events": [{"name": "purchase"}]}).status_code
            == 401
        )
        assert len(gw.queued()) == 1


def test_read_file_takes_an_mp_body_or_a_gtag_hit_url() -> None:
    body = json.dumps({"events": [{"name": "sign_up", "params": {"event_id": "e1"}}]}).encode()
    assert KIND.read_file(body) == [{"event_name": "sign_up", "event_id": "e1"}]
    hit = b"https://xgate.shop.example/g/collect?v=2&tid=G-SHOP123&en=generate_lead&ep.event_id=l-1\n"
    assert KIND.read_file(hit) == [{"event_id": "l-1", "event_name": "generate_lead"}]


def test_a_hit_without_any_identifier_is_answered_200_and_kept_as_rejected(tmp_path: Path) -> None:
    """GA4's own endpoints answer 2xx to every well-formed hit, and gtag writes any other answer into the
    page's console: a page view no identifier comes with gets a 200, and is still reported as rejected
    naming the reason. A value that is wrong is still a 422."""
    with source_gateway(source_config(tmp_path, [GA4])) as gw:
        anonymous = gw.http.get("/g/collect?v=2&tid=G-SHOP123&cid=1.2&en=page_view")
        assert anonymous.status_code == 200, anonymous.text
        [result] = anonymous.json()["results"]
        assert result["status"] == "rejected" and result["errors"][0]["field"] == "identifiers"
        wrong = gw.http.get(
            "/g/collect?v=2&tid=G-SHOP123&cid=1.2&en=purchase&ep.transaction_id=T-9&epn.value=5&cu=dollars"
            "&dl=https%3A%2F%2Fshop.example%2F%3Ftwclid%3Dtw-2"
        )
        assert wrong.status_code == 422, wrong.text
        assert gw.queued() == []
