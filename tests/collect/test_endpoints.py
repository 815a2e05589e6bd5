"""Health, readiness, metrics, OpenAPI and the activity log of the collector."""

from __future__ import annotations

from gatewaykit import ADMIN_KEY, BROWSER_KEY, SERVER_KEY, Gateway, purchase


def test_healthz_and_readyz_answer_ok(gateway: Gateway) -> None:
    assert gateway.http.get("/healthz").json() == {"status": "ok"}
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_readyz_reports_an_unreachable_outbox(gateway: Gateway) -> None:
    gateway.outbox.close()
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 503
    assert "outbox unreachable" in ready.json()["problems"][0]


def test_metrics_count_events_per_source_and_show_queue_depth(gateway: Gateway) -> None:
    gateway.send({"events": [purchase("m1"), purchase("m2"), {"event_name": ""}]})
    text = gateway.http.get("/metrics").text
    assert 'xgate_events_total{source="backend",status="accepted"} 2.0' in text
    assert 'xgate_events_total{source="backend",status="rejected"} 1.0' in text
    assert 'xgate_conversions_queued_total{destination="x-main"} 2.0' in text
    assert 'xgate_outbox_rows{destination="x-main",state="queued"} 2.0' in text
    assert 'xgate_ingest_request_seconds_count{code="200"} 1.0' in text


def test_openapi_describes_the_ingest_body_and_answers(gateway: Gateway) -> None:
    doc = gateway.http.get("/openapi.json").json()
    post = doc["paths"]["/v1/events"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {"200", "400", "401", "403", "413", "422"} <= set(post["responses"])
    assert "Event" in doc["components"]["schemas"]
    assert "IngestAnswer" in doc["components"]["schemas"]


def test_activity_needs_the_admin_key_or_a_server_write_key(gateway: Gateway) -> None:
    assert gateway.http.get("/v1/activity").status_code == 401
    assert gateway.http.get("/v1/activity", headers={"X-Write-Key": "nope"}).status_code == 401
    browser = gateway.http.get("/v1/activity", headers={"X-Write-Key": BROWSER_KEY})
    assert browser.status_code == 403
    assert "public" in browser.json()["message"]
    assert (
        gateway.http.get("/v1/activity", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    )
    assert gateway.http.get("/v1/activity", params={"write_key": SERVER_KEY}).status_code == 200


def test_activity_lists_conversions_and_rejections_without_raw_values(gateway: Gateway) -> None:
    gateway.send(purchase("act-1", partners={"twitter": {"twclid": "26act"}}))
    gateway.send(
        {"event_name": "purchase", "id": "act-2", "user": {"email": "Raw.Person@Example.com"}, "value": "x"}
    )
    entries = gateway.http.get("/v1/activity", params={"write_key": ADMIN_KEY}).json()["entries"]
    queued = next(e for e in entries if e["conversion_id"] == "act-1")
    assert queued["state"] == "queued"
    assert queued["destination"] == "x-main"
    assert {"twclid", "email"} <= set(queued["match_signals"])
    rejected = next(e for e in entries if e["state"] == "rejected")
    assert "value" in rejected["error"]
    assert "raw.person" not in str(entries).lower()


def test_the_activity_page_is_a_refreshing_html_table(gateway: Gateway) -> None:
    gateway.send(purchase("page-1"))
    page = gateway.http.get("/activity", params={"write_key": ADMIN_KEY})
    assert page.headers["content-type"].startswith("text/html")
    assert 'http-equiv="refresh"' in page.text
    assert '<td class="mono">page-1</td>' in page.text
    assert gateway.http.get("/activity").status_code == 401
