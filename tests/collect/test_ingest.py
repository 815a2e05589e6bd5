"""POST /v1/events: what the collector answers, stores and fills in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from gatewaykit import BROWSER_KEY, PIXEL, SERVER_KEY, SHOP, Gateway, purchase


def stored(gateway: Gateway) -> dict[str, dict[str, object]]:
    """Outbox bodies by conversion id."""
    return {r.conversion_id: r.body for r in gateway.outbox.rows(limit=100)}


def identifiers(gateway: Gateway, conversion_id: str) -> list[dict[str, str]]:
    body = stored(gateway)[conversion_id]
    idents = body["identifiers"]
    assert isinstance(idents, list)
    return idents


def test_one_event_is_queued_and_answered_per_conversion(gateway: Gateway) -> None:
    r = gateway.send(purchase("ord-1"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accepted": 1,
        "duplicates": 0,
        "skipped": 0,
        "rejected": 0,
        "results": [
            {
                "index": 0,
                "status": "accepted",
                "conversions": [
                    {"destination": "x-main", "pixel_id": PIXEL, "conversion_id": "ord-1", "status": "queued"}
                ],
            }
        ],
    }
    assert "ord-1" in stored(gateway)


def test_raw_email_never_reaches_the_outbox(gateway: Gateway) -> None:
    gateway.send(purchase("ord-pii", user={"email": "Shopper@Example.com", "phone": "+1 415 555 0100"}))
    row_text = str(stored(gateway)["ord-pii"]).lower()
    assert "shopper@example.com" not in row_text
    assert "555" not in row_text


def test_a_batch_accepts_the_valid_events_and_names_the_invalid_ones(gateway: Gateway) -> None:
    r = gateway.send({"events": [purchase("ord-a"), {"event_name": 7}, purchase("ord-b")]})
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [e["status"] for e in body["results"]] == ["accepted", "rejected", "accepted"]
    assert body["results"][1]["errors"][0]["field"] == "event_name"
    assert {"ord-a", "ord-b"} <= set(stored(gateway))


def test_every_event_rejected_is_422_with_field_and_reason(gateway: Gateway) -> None:
    r = gateway.send({"events": [{"event_name": ""}, {"value": 3}]})
    assert r.status_code == 422
    results = r.json()["results"]
    assert all(e["status"] == "rejected" for e in results)
    assert all(err["field"] and err["reason"] for e in results for err in e["errors"])


def test_a_resent_event_is_reported_duplicate_and_stored_once(gateway: Gateway) -> None:
    assert gateway.send(purchase("ord-dup")).json()["results"][0]["status"] == "accepted"
    again = gateway.send(purchase("ord-dup")).json()
    assert again["duplicates"] == 1
    assert again["results"][0]["conversions"][0]["status"] == "duplicate"
    assert [r.conversion_id for r in gateway.outbox.rows(limit=100)].count("ord-dup") == 1


def test_an_event_no_destination_takes_is_skipped_with_the_reason(gateway: Gateway) -> None:
    r = gateway.send({"event_name": "newsletter_open", "user": {"email": "a@b.example"}})
    assert r.status_code == 200
    result = r.json()["results"][0]
    assert result["status"] == "skipped"
    assert "x-main" in result["skipped"]


def test_any_content_type_is_read_as_json(gateway: Gateway) -> None:
    import orjson

    r = gateway.send(orjson.dumps(purchase("ord-text")), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    assert r.json()["accepted"] == 1


def test_each_conversion_is_stored_with_the_name_of_the_source_that_sent_it(gateway: Gateway) -> None:
    assert gateway.send(purchase("from-server")).status_code == 200
    browser = gateway.send(purchase("from-browser"), key=BROWSER_KEY, headers={"Origin": SHOP})
    assert browser.status_code == 200
    sources = {r.conversion_id: r.source for r in gateway.outbox.rows(limit=100)}
    assert (sources["from-server"], sources["from-browser"]) == ("backend", "web")


def test_the_write_key_may_come_as_header_or_query(gateway: Gateway) -> None:
    assert gateway.send(purchase("k1"), key=None, headers={"X-Write-Key": BROWSER_KEY}).status_code == 200
    assert gateway.send(purchase("k2"), key=None, params={"write_key": BROWSER_KEY}).status_code == 200


def test_client_ip_and_user_agent_are_filled_from_a_browsers_request(gateway: Gateway) -> None:
    headers = {"User-Agent": "Mozilla/5.0 TestBrowser", "Origin": SHOP}
    gateway.send(purchase("ord-ctx"), key=BROWSER_KEY, headers=headers)
    assert {"ip_address": "127.0.0.1", "user_agent": "Mozilla/5.0 TestBrowser"} in identifiers(
        gateway, "ord-ctx"
    )


def test_a_backends_own_address_and_user_agent_are_not_taken_for_its_users(gateway: Gateway) -> None:
    gateway.send(purchase("ord-srv"), headers={"User-Agent": "python-httpx/0.27"})
    assert all("ip_address" not in i and "user_agent" not in i for i in identifiers(gateway, "ord-srv"))


def test_forwarded_for_is_ignored_unless_trusted(make_gateway: Callable[..., Gateway]) -> None:
    plain, trusting = make_gateway(), make_gateway(trust_forwarded=True)
    headers = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "User-Agent": "UA/1", "Origin": SHOP}
    plain.send(purchase("ord-xff-1"), key=BROWSER_KEY, headers=headers)
    trusting.send(purchase("ord-xff-2"), key=BROWSER_KEY, headers=headers)
    assert {"ip_address": "127.0.0.1", "user_agent": "UA/1"} in identifiers(plain, "ord-xff-1")
    assert {"ip_address": "203.0.113.9", "user_agent": "UA/1"} in identifiers(trusting, "ord-xff-2")


def test_twclid_comes_from_the_cookie_and_is_kept_in_a_first_party_cookie(gateway: Gateway) -> None:
    r = gateway.send(purchase("ord-ck"), headers={"Cookie": "_xgate_twclid=26abcDEF123"})
    assert {"twclid": "26abcDEF123"} in identifiers(gateway, "ord-ck")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("_xgate_twclid=26abcDEF123")
    assert "Secure" not in cookie  # plain http on loopback


def test_twclid_comes_from_the_landing_url_when_no_cookie(gateway: Gateway) -> None:
    event = purchase("ord-url", context={"page_url": "https://shop.example/p?twclid=26fromURL9&x=1"})
    r = gateway.send(event)
    assert {"twclid": "26fromURL9"} in identifiers(gateway, "ord-url")
    assert "26fromURL9" in r.headers["set-cookie"]


def test_a_twclid_the_event_carries_wins_over_the_cookie(gateway: Gateway) -> None:
    event = purchase("ord-own", partners={"twitter": {"twclid": "26own"}})
    gateway.send(event, headers={"Cookie": "_xgate_twclid=26cookie"})
    assert {"twclid": "26own"} in identifiers(gateway, "ord-own")


def test_no_cookie_is_set_when_there_is_no_twclid(gateway: Gateway) -> None:
    assert "set-cookie" not in gateway.send(purchase("ord-nock")).headers


def test_an_allowed_origin_gets_cors_headers(gateway: Gateway) -> None:
    pre = gateway.http.options(
        "/v1/events",
        params={"write_key": BROWSER_KEY},
        headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == SHOP
    assert "POST" in pre.headers["access-control-allow-methods"]
    r = gateway.send(purchase("ord-cors"), key=BROWSER_KEY, headers={"Origin": SHOP})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SHOP
    assert r.headers["access-control-allow-credentials"] == "true"


async def test_concurrent_requests_are_each_committed_and_answered(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/events", json=purchase(f"conc-{i}"), headers=headers) for i in range(60))
        )
    assert [a.status_code for a in answers] == [200] * 60
    assert [a.json()["results"][0]["conversions"][0]["conversion_id"] for a in answers] == [
        f"conc-{i}" for i in range(60)
    ]
    assert {f"conc-{i}" for i in range(60)} <= set(stored(gateway))
