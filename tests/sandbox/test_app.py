"""The sandbox over real HTTP: authentication, X's answers and headers, inspection and fault injection."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from oauthlib.oauth1 import Client

from xgate.sandbox import create_sandbox
from xgate.testing import RunningSandbox, random_x_credentials, serve_app
from xgate.x import Credentials

PIXEL = "o8z6j"


def conversion(conversion_id: str = "c1") -> dict[str, Any]:
    return {
        "conversion_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "event_id": f"tw-{PIXEL}-o87ne",
        "conversion_id": conversion_id,
        "identifiers": [{"twclid": "26l6412g5p4iyj65a2oic2ayg2"}],
    }


def endpoint(sandbox: RunningSandbox, pixel: str = PIXEL, version: str = "12") -> str:
    return f"{sandbox.url}/{version}/measurement/conversions/{pixel}"


def post(
    sandbox: RunningSandbox,
    body: Any = None,
    *,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    url = url or endpoint(sandbox)
    if headers is None:
        headers = sandbox.credentials.auth_headers("POST", url)
    if content is None:
        content = orjson.dumps(body if body is not None else {"conversions": [conversion()]})
    return httpx.post(url, content=content, headers={"Content-Type": "application/json", **headers})


def statuses(sandbox: RunningSandbox) -> dict[str, int]:
    return dict(httpx.get(f"{sandbox.url}/_sandbox/requests").json()["by_status"])


def test_an_accepted_request_gets_x_success_shape(sandbox: RunningSandbox) -> None:
    r = post(sandbox, {"conversions": [conversion("a"), conversion("b")]})
    assert r.status_code == 200
    body = r.json()
    assert body["data"]["conversions_processed"] == 2
    assert len(body["data"]["debug_id"]) == 16
    assert body["request"] == {"params": {"pixel_id": PIXEL}}
    recorded = sandbox.conversions()
    assert [(c["pixel_id"], c["conversion_id"]) for c in recorded] == [(PIXEL, "a"), (PIXEL, "b")]


def test_rate_limit_headers_at_user_and_account_level_count_down(sandbox: RunningSandbox) -> None:
    first, second = post(sandbox).headers, post(sandbox, {"conversions": [conversion("c2")]}).headers
    for prefix in ("x-rate-limit-", "x-account-rate-limit-"):
        assert int(second[prefix + "remaining"]) == int(first[prefix + "remaining"]) - 1
        assert second[prefix + "limit"] == first[prefix + "limit"]
        assert int(first[prefix + "reset"]) > time.time()


def test_a_replayed_signature_is_refused(sandbox: RunningSandbox) -> None:
    headers = sandbox.credentials.auth_headers("POST", endpoint(sandbox))
    assert post(sandbox, headers=headers).status_code == 200
    replay = post(sandbox, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["errors"] == [{"code": "UNAUTHORIZED_ACCESS", "message": "nonce already used"}]


def test_a_stale_timestamp_is_refused(sandbox: RunningSandbox) -> None:
    c = sandbox.credentials
    signer = Client(
        c.consumer_key,
        client_secret=c.consumer_secret,
        resource_owner_key=c.access_token,
        resource_owner_secret=c.access_token_secret,
        timestamp=str(int(time.time()) - 3600),
    )
    _, headers, _ = signer.sign(endpoint(sandbox), http_method="POST")
    r = post(sandbox, headers={"Authorization": headers["Authorization"]})
    assert (r.status_code, r.json()["errors"][0]["message"]) == (401, "oauth_timestamp out of window")


def test_a_signature_for_another_url_is_refused(sandbox: RunningSandbox) -> None:
    headers = sandbox.credentials.auth_headers("POST", endpoint(sandbox, pixel="p2"))
    r = post(sandbox, headers=headers)
    assert (r.status_code, r.json()["errors"][0]["message"]) == (401, "invalid signature")


def test_no_authorization_is_refused_and_nothing_recorded(sandbox: RunningSandbox) -> None:
    r = post(sandbox, headers={})
    assert (r.status_code, r.json()["errors"][0]["message"]) == (401, "missing OAuth Authorization header")
    assert sandbox.conversions() == []


def test_an_unknown_version_answers_404(sandbox: RunningSandbox) -> None:
    assert post(sandbox, url=endpoint(sandbox, version="9")).status_code == 404


def test_a_body_that_is_not_json_answers_400(sandbox: RunningSandbox) -> None:
    r = post(sandbox, content=b"conversions=1")
    assert (r.status_code, r.json()["errors"][0]["message"]) == (400, "Invalid JSON body")


def test_a_400_names_each_bad_parameter(sandbox: RunningSandbox) -> None:
    bad = {**conversion(), "value": "ten", "identifiers": [{"hashed_email": "x"}]}
    errors = post(sandbox, {"conversions": [conversion(), bad]}).json()["errors"]
    assert {(e["parameter"], e["message"]) for e in errors} == {
        ("conversions[1].identifiers.hashed_email", "Hashed_email is not a valid SHA-256 hash"),
        ("conversions[1].value", "Invalid type for value"),
    }


def test_requests_are_counted_by_status_and_reset_clears_everything(sandbox: RunningSandbox) -> None:
    post(sandbox)
    post(sandbox, headers={})
    post(sandbox, content=b"{")
    assert statuses(sandbox) == {"200": 1, "401": 1, "400": 1}
    sandbox.set_faults(error_rate=1)
    sandbox.reset()
    assert statuses(sandbox) == {}
    assert sandbox.conversions() == []
    assert httpx.get(f"{sandbox.url}/_sandbox/faults").json()["error_rate"] == 0


def test_conversions_listing_counts_duplicates_and_honours_limit(sandbox: RunningSandbox) -> None:
    post(sandbox, {"conversions": [conversion("a"), conversion("b")]})
    post(sandbox, {"conversions": [conversion("a")]})
    body = httpx.get(f"{sandbox.url}/_sandbox/conversions", params={"limit": 1}).json()
    assert (body["total"], body["unique"], body["duplicate_conversion_ids"]) == (3, 2, 1)
    assert [c["conversion_id"] for c in body["conversions"]] == ["a"]
    everything = httpx.get(f"{sandbox.url}/_sandbox/conversions", params={"limit": 10}).json()
    assert [c["conversion_id"] for c in everything["conversions"]] == ["a", "b", "a"]
    bad = httpx.get(f"{sandbox.url}/_sandbox/conversions", params={"limit": "many"})
    assert bad.status_code == 422 and "limit" in bad.json()["error"]


def test_invalid_fault_settings_are_refused_naming_the_field(sandbox: RunningSandbox) -> None:
    r = httpx.put(f"{sandbox.url}/_sandbox/faults", json={"error_rate": 2})
    assert r.status_code == 422 and "error_rate" in r.json()["error"]
    r = httpx.put(f"{sandbox.url}/_sandbox/faults", json={"eror_rate": 0.5})
    assert r.status_code == 422 and "eror_rate" in r.json()["error"]


def test_a_429_burst_answers_n_requests_then_recovers(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(rate_limit_rate=1, rate_limit_burst=3, rate_limit_reset_seconds=60)
    first = post(sandbox)
    assert first.status_code == 429
    assert int(first.headers["x-account-rate-limit-reset"]) >= time.time() + 59
    assert first.headers["x-account-rate-limit-remaining"] == "0"
    assert [post(sandbox).status_code for _ in range(2)] == [429, 429]
    sandbox.set_faults()
    assert post(sandbox).status_code == 200


def test_seeded_faults_repeat_exactly(sandbox: RunningSandbox) -> None:
    def run() -> list[int]:
        sandbox.set_faults(seed=7, error_rate=0.5)
        return [post(sandbox, {"conversions": [conversion(str(i))]}).status_code for i in range(12)]

    first = run()
    assert set(first) > {200} and first == run()


def test_a_dropped_connection_gets_no_answer_and_records_nothing(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(drop_rate=1)
    try:
        post(sandbox)
    except httpx.HTTPError as e:
        assert isinstance(e, httpx.RemoteProtocolError | httpx.ReadError)
    else:
        raise AssertionError("a dropped connection produced an answer")
    sandbox.set_faults()
    assert statuses(sandbox) == {"0": 1}
    assert sandbox.conversions() == []


def test_the_window_limit_answers_429_once_used_up() -> None:
    credentials = Credentials.from_env(env=random_x_credentials())
    app, _ = create_sandbox(credentials, rate_limit=2)
    with serve_app(app) as url:
        sandbox = RunningSandbox(url, {}, credentials, None)
        answers = [post(sandbox, {"conversions": [conversion(str(i))]}) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["x-rate-limit-remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[2].json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
