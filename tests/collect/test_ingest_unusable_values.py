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
