"""At ingest, a value X would refuse is refused alone (a 4xx naming the field) and the rest of the batch is
stored; a field X can do without is dropped with a warning in the answer and the conversion stored."""

from __future__ import annotations

from gatewaykit import Gateway, purchase


def test_a_value_of_1e20_is_refused_alone_and_the_good_events_of_its_batch_are_stored(
    gateway: Gateway,
) -> None:
    events = [purchase(f"ord-{i}") for i in range(5)]
    events[2]["value"] = 1e20
    events[3]["value"] = 2**70  # an integer beyond 64 bits
    r = gateway.send({"events": events})
    assert r.status_code == 200, r.text
    statuses = [e["status"] for e in r.json()["results"]]
    assert statuses == ["accepted", "accepted", "rejected", "rejected", "accepted"]
    for bad in r.json()["results"][2:4]:
        assert [e["field"] for e in bad["errors"]] == ["value"]
        assert "1,000,000,000,000" in bad["errors"][0]["reason"]
    assert sorted(row.conversion_id for row in gateway.outbox.rows()) == ["ord-0", "ord-1", "ord-4"]


def test_a_single_event_with_a_value_of_1e20_answers_422_naming_value(gateway: Gateway) -> None:
    r = gateway.send(purchase(value=1e20))
    assert r.status_code == 422
    assert r.json()["results"][0]["errors"][0]["field"] == "value"


def test_price_on_request_is_dropped_with_a_warning_and_the_conversion_stored(gateway: Gateway) -> None:
    event = purchase(
        items=[{"id": "sku-1", "price": "price on request"}], context={"ip": "198.51.100.23:443"}
    )
    r = gateway.send(event)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["status"] == "accepted"
    assert any(w.startswith("items.0.price") for w in result["warnings"])
    (row,) = gateway.outbox.rows()
    assert row.body["contents"] == [{"content_id": "sku-1"}]
    assert {"ip_address": "198.51.100.23"} in row.body["identifiers"]


def test_a_misspelled_identifier_is_kept_with_a_warning_naming_the_key_it_was_meant_for(
    gateway: Gateway,
) -> None:
    kept = purchase(
        "ord-typo",
        valeu=3,
        user={"emial": "ada@example.com", "phone": "+1 415 555 0134"},
        context={"user_agnet": "Mozilla/5.0", "page_url": "https://shop.example/done"},
        custom={"channel": "web"},
    )
    refused = purchase("ord-phon", user={"phon": "+1 415 555 0134"})
    r = gateway.send({"events": [kept, refused]})
    assert r.status_code == 200, r.text
    accepted, rejected = r.json()["results"]
    assert accepted["status"] == "accepted"  # a near miss never refuses the event
    assert accepted["warnings"] == [
        "valeu is not a known field; did you mean value?",
        "user.emial is not a known field; did you mean user.email?",
        "context.user_agnet is not a known field; did you mean context.user_agent?",
    ]
    assert "ada@example.com" not in r.text and "555" not in r.text and "Mozilla" not in r.text
    (row,) = gateway.outbox.rows()
    assert [set(i) for i in row.body["identifiers"]] == [{"hashed_phone_number"}]  # the e-mail was lost
    # refused for want of an identifier, the warning says which key it lacked
    assert rejected["status"] == "rejected"
    assert rejected["warnings"] == ["user.phon is not a known field; did you mean user.phone?"]
