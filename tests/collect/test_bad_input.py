"""Bad input gets a 4xx naming the field and the reason; never a 5xx; valid events beside it still go in."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from gatewaykit import (
    ADMIN_KEY,
    ADMIN_KEY_ENV,
    BROWSER_KEY,
    SERVER_KEY,
    SERVER_KEY_ENV,
    SHOP,
    Gateway,
    gateway_config,
    purchase,
    serve,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from xgate.collect.app import create_app
from xgate.outbox import open_outbox


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b'{"event_name": "purchase",}', b"\xff\xfe\x00", b'{"a": NaN}', b"[1, 2"],
    ids=["empty", "open-brace", "text", "trailing-comma", "binary", "nan", "open-array"],
)
def test_malformed_json_is_400_with_the_reason(gateway: Gateway, body: bytes) -> None:
    r = gateway.send(body)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_json"
    assert r.json()["message"].startswith("body: not valid JSON")


@pytest.mark.parametrize("body", [[purchase()], 42, "purchase", None, True])
def test_json_that_is_not_an_event_or_batch_is_400(gateway: Gateway, body: Any) -> None:
    import orjson

    r = gateway.send(orjson.dumps(body))
    assert r.status_code == 400
    assert "event object" in r.json()["message"]


@pytest.mark.parametrize(
    ("events", "message"),
    [({"events": "purchase"}, "must be an array"), ({"events": []}, "at least one event")],
)
def test_a_malformed_batch_is_400(gateway: Gateway, events: Any, message: str) -> None:
    r = gateway.send(events)
    assert r.status_code == 400
    assert message in r.json()["message"]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"event_name": 123}, "event_name"),
        ({"value": 10}, "event_name"),
        ({"event_name": "purchase", "value": "ten"}, "value"),
        ({"event_name": "purchase", "items": {"id": 1}}, "items"),
        # an unusable quantity is dropped with a warning instead (tests/mapping/test_unusable_values.py)
        ({"event_name": "purchase", "user": {"consent_categories": "all"}}, "user.consent_categories"),
        ({"event_name": "purchase", "context": "web"}, "context"),
        ({"event_name": "purchase", "context": {"event_timestamp": "yesterday"}}, "context.event_timestamp"),
        ({"event_name": "purchase", "user": {"email": ["a@b.c"]}}, "user.email"),
    ],
)
def test_wrong_types_are_rejected_naming_the_field(
    gateway: Gateway, event: dict[str, Any], field: str
) -> None:
    r = gateway.send({"events": [event, purchase("still-ok")]})
    assert r.status_code == 200
    bad, good = r.json()["results"]
    assert bad["status"] == "rejected"
    assert field in [e["field"] for e in bad["errors"]]
    assert all(e["reason"] for e in bad["errors"])
    assert good["status"] == "accepted"


def test_a_body_over_the_limit_is_413_by_content_length(gateway: Gateway) -> None:
    r = gateway.send(b"{" + b" " * 70_000 + b"}")
    assert r.status_code == 413
    assert "max_body_bytes" in r.json()["message"]


def test_a_streamed_body_over_the_limit_is_413_while_reading(gateway: Gateway) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"event_name": "purchase", "pad": "'
        for _ in range(1000):  # 16 MB if the server read it all; it stops at 64 kB
            sent += 1
            yield b"x" * 16_384

    try:
        r = gateway.http.post(
            "/v1/events", content=chunks(), headers={"Authorization": f"Bearer {SERVER_KEY}"}
        )
    except httpx.HTTPError:  # the server may close the connection before the client finishes writing
        assert sent < 1000
        return
    assert r.status_code == 413


def test_a_gzip_body_is_unpacked_as_docs_sources_md_says_of_every_endpoint(gateway: Gateway) -> None:
    packed = gzip.compress(json.dumps(purchase("ord-gz")).encode())
    r = gateway.send(packed, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    "body",
    [json.dumps(purchase()).encode(), gzip.compress(b" " * 70_000), gzip.compress(b"{}")[:-6]],
    ids=["not-gzip", "past-the-limit-unpacked", "cut-short"],
)
def test_a_gzip_body_that_does_not_unpack_is_400_saying_so(gateway: Gateway, body: bytes) -> None:
    """Not a JSON parser's 'str is not valid UTF-8: surrogates not allowed' about the packed bytes."""
    r = gateway.send(body, headers={"Content-Encoding": "gzip"})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "invalid_body", "message": "body: not gzip data, or more than 64000 bytes unpacked"},
    )


def test_a_batch_over_the_limit_is_413_and_says_how_to_fix_it(gateway: Gateway) -> None:
    r = gateway.send({"events": [purchase(f"o{i}") for i in range(51)]})
    assert r.status_code == 413
    assert "split the batch" in r.json()["message"]
    assert gateway.outbox.rows(limit=1) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + SERVER_KEY},
        {"X-Write-Key": ""},
        {"X-Write-Key": SERVER_KEY[:-1]},
        {"X-Write-Key": ADMIN_KEY},
    ],
    ids=["none", "wrong-bearer", "basic", "empty", "prefix", "admin-key-cannot-send"],
)
def test_unknown_write_keys_are_401(gateway: Gateway, headers: dict[str, str]) -> None:
    r = gateway.send(purchase(), key=None, headers=headers)
    assert r.status_code == 401
    assert "write key" in r.json()["message"]
    assert gateway.outbox.rows(limit=1) == []


def test_disallowed_origins_are_403_on_preflight_and_request(gateway: Gateway) -> None:
    evil = "https://evil.example"
    pre = gateway.http.options(
        "/v1/events", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert pre.status_code == 403
    assert "access-control-allow-origin" not in pre.headers
    r = gateway.send(purchase(), key=BROWSER_KEY, headers={"Origin": evil})
    assert r.status_code == 403
    assert evil in r.json()["message"]
    # a server source lists no origins: browsers may not use its key
    assert gateway.send(purchase(), headers={"Origin": SHOP}).status_code == 403
    assert gateway.outbox.rows(limit=1) == []


# --- generated input -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"event_name": st.one_of(st.sampled_from(["purchase", "sign_up", "page_view", ""]), json_values)},
    optional={
        "id": st.one_of(st.text(max_size=30), st.integers(), json_values),
        "value": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.text(max_size=8)
        ),
        "currency": st.one_of(st.sampled_from(["usd", "EUR", "xx"]), json_values),
        "user": st.one_of(
            st.fixed_dictionaries({}, optional={"email": json_values | st.emails(), "phone": json_values}),
            json_values,
        ),
        "items": st.one_of(
            st.lists(st.dictionaries(st.sampled_from(["id", "quantity", "price"]), json_values)), json_values
        ),
        "context": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "event_timestamp": st.one_of(st.integers(), st.text(max_size=30), json_values),
                    "page_url": st.text(max_size=60),
                    "ip": json_values,
                },
            ),
            json_values,
        ),
        "partners": json_values,
    },
)


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SERVER_KEY_ENV, SERVER_KEY)
        mp.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
        config = gateway_config(Path(tmp_path_factory.mktemp("shared")))
        outbox = open_outbox(config.storage.url)
        app = create_app(config, outbox)
        with serve(app) as url:
            yield Gateway(url, outbox, app)
        outbox.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=event_like)
def test_generated_events_never_cause_a_server_error(shared_gateway: Gateway, event: dict[str, Any]) -> None:
    r = shared_gateway.send({"events": [event, purchase("anchor")]})
    assert r.status_code == 200, r.text
    first, anchor = r.json()["results"]
    assert first["status"] in {"accepted", "duplicate", "skipped", "rejected"}
    if first["status"] == "rejected":
        assert first["errors"] and all(e["field"] and e["reason"] for e in first["errors"])
        assert "internal error" not in str(first["errors"])
    assert anchor["status"] in {"accepted", "duplicate"}


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_generated_bodies_get_an_answer_below_500(shared_gateway: Gateway, body: bytes) -> None:
    r = shared_gateway.send(body, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code in {200, 400, 413, 422}, r.text
    assert r.headers["content-type"] == "application/json"


# --- schemathesis against the OpenAPI document ----------------------------------------------------


def _openapi_document() -> dict[str, Any]:
    """The app's own OpenAPI document (schemathesis needs it when the tests are collected)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = gateway_config(Path(tmp))
        outbox = open_outbox(config.storage.url)
        try:
            return create_app(config, outbox).openapi()
        finally:
            outbox.close()


schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_conforms_to_its_openapi_document(case: Any, shared_gateway: Gateway) -> None:
    case.call_and_validate(
        base_url=shared_gateway.url,
        headers={"Authorization": f"Bearer {SERVER_KEY}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
