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
    assert ready.json()["status"] == "not ready"
    assert ready.json()["problems"][0].startswith("outbox unavailable: sqlite outbox ")


def test_readyz_is_not_ready_while_the_outbox_cannot_store(gateway: Gateway) -> None:
    """Readiness asks what ingest needs (the write lock), not whether a read works."""
    import sqlite3

    holder = sqlite3.connect(gateway.outbox.path, isolation_level=None)  # type: ignore[attr-defined]
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        ready = gateway.http.get("/readyz")
        readable = gateway.outbox.rows(limit=1) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert readable  # reading works, storing does not: not ready
    assert ready.status_code == 503
    assert ready.json()["problems"][0].startswith("outbox unavailable")
    assert gateway.http.get("/readyz").status_code == 200


def test_ingest_answers_503_with_retry_after_when_the_outbox_cannot_store(gateway: Gateway) -> None:
    gateway.outbox.close()
    stored = gateway.send(purchase("while-down"))
    assert stored.status_code == 503  # never a 2xx for an event not stored
    assert stored.json()["error"] == "outbox_unavailable"
    assert stored.headers["retry-after"] == "5"


def test_metrics_count_events_per_source_and_show_queue_depth(gateway: Gateway) -> None:
    gateway.send({"events": [purchase("m1"), purchase("m2"), {"event_name": ""}]})
    text = gateway.admin.get("/metrics").text
    assert 'xgate_events_total{source="backend",status="accepted"} 2.0' in text
    assert 'xgate_events_total{source="backend",status="rejected"} 1.0' in text
    assert 'xgate_conversions_queued_total{destination="x-main"} 2.0' in text
    assert 'xgate_outbox_rows{destination="x-main",state="queued"} 2.0' in text
    assert 'xgate_ingest_request_seconds_count{code="200"} 1.0' in text


def test_openapi_describes_the_ingest_body_and_answers(gateway: Gateway) -> None:
    doc = gateway.admin.get("/openapi.json").json()
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
    assert gateway.http.get("/v1/activity", headers={"X-Write-Key": SERVER_KEY}).status_code == 200


def test_secret_keys_are_never_taken_from_a_url(gateway: Gateway) -> None:
    for key in (SERVER_KEY, ADMIN_KEY):
        read = gateway.http.get("/v1/activity", params={"write_key": key})
        assert read.status_code == 401
        assert "never in the URL" in read.json()["message"]
    sent = gateway.send(purchase("url-1"), key=None, params={"write_key": SERVER_KEY})
    assert sent.status_code == 401
    assert "never travels in a URL" in sent.json()["message"]
    assert gateway.send(purchase("url-2"), key=None, params={"write_key": ADMIN_KEY}).status_code == 401
    # a browser source's public key is what a URL may carry
    assert gateway.send(purchase("url-3"), key=None, params={"write_key": BROWSER_KEY}).status_code == 200


def test_activity_lists_conversions_and_rejections_without_raw_values(gateway: Gateway) -> None:
    gateway.send(purchase("act-1", partners={"twitter": {"twclid": "26act"}}))
    gateway.send(
        {"event_name": "purchase", "id": "act-2", "user": {"email": "Raw.Person@Example.com"}, "value": "x"}
    )
    entries = gateway.http.get("/v1/activity", headers={"X-Write-Key": ADMIN_KEY}).json()["entries"]
    queued = next(e for e in entries if e["conversion_id"] == "act-1")
    assert queued["state"] == "queued"
    assert queued["destination"] == "x-main"
    assert {"twclid", "email"} <= set(queued["match_signals"])
    rejected = next(e for e in entries if e["state"] == "rejected")
    assert "value" in rejected["error"]
    assert "raw.person" not in str(entries).lower()


def test_the_old_activity_page_redirects_to_the_console_and_drops_the_key_from_the_url(
    gateway: Gateway,
) -> None:
    page = gateway.http.get("/activity", params={"write_key": ADMIN_KEY})
    assert page.status_code == 308
    assert page.headers["location"] == "/console/events"
    assert ADMIN_KEY not in page.headers["location"]


def test_a_parameter_or_body_the_api_refuses_is_one_problem_naming_the_field_never_echoing_the_value(
    gateway: Gateway,
) -> None:
    # FastAPI's own 422 is {"detail": [{..., "input": <the value>}]}: another shape, and it echoes what was
    # sent (an e-mail pasted where the console's test form wants an event)
    refused = gateway.admin.post("/console/api/test", json={"event": "ada.lovelace@example.com"})
    assert refused.status_code == 422
    assert refused.json() == {
        "error": "invalid_request",
        "message": "event: Input should be a valid dictionary",
    }
    assert "lovelace" not in refused.text
    limit = gateway.admin.get("/v1/activity", params={"limit": "many"})
    assert limit.status_code == 422
    assert (
        limit.json()["message"]
        == "limit: Input should be a valid integer, unable to parse string as an integer"
    )
    not_json = gateway.admin.post(
        "/console/api/test", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and set(not_json.json()) == {"error", "message"}
    # and the OpenAPI document says so: every 422 it declares is a problem (or the ingest answer)
    document = gateway.admin.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in {"Problem", "IngestAnswer"}, (path, ref)
