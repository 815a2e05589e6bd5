"""The sandbox answers the Ads API's read-only calls as X does, from the ad accounts it is told about."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from xgate.sandbox import AdAccount, EventTag, create_sandbox
from xgate.testing import random_x_credentials, serve_app
from xgate.x import Credentials

TAGS = (*(EventTag(f"e{i}", "o8z6j", f"event {i}") for i in range(5)), EventTag("q1", "p2"))
ACCOUNT = AdAccount("18ce54d4x5t", "Shop", TAGS)


@pytest.fixture(scope="module")
def x() -> Iterator[tuple[str, Credentials]]:
    credentials = Credentials.from_env(env=random_x_credentials())
    app, _ = create_sandbox(credentials, accounts=[ACCOUNT])
    with serve_app(app) as url:
        yield url, credentials


def get(x: tuple[str, Credentials], path: str, *, signed: bool = True) -> httpx.Response:
    url, credentials = x
    full = f"{url}/12/{path}"
    return httpx.get(full, headers=credentials.auth_headers("GET", full) if signed else {})


def test_accounts_lists_the_declared_account_in_xs_envelope(x: tuple[str, Credentials]) -> None:
    body = get(x, "accounts").json()
    assert [a["id"] for a in body["data"]] == ["18ce54d4x5t"] and body["request"] == {"params": {}}
    assert get(x, "accounts/18ce54d4x5t").json()["data"]["name"] == "Shop"


def test_reads_need_a_valid_oauth_signature_even_over_the_query(x: tuple[str, Credentials]) -> None:
    unsigned = get(x, "accounts", signed=False)
    assert unsigned.status_code == 401
    assert unsigned.json()["errors"][0]["code"] == "UNAUTHORIZED_ACCESS"
    url, credentials = x
    signed_for = f"{url}/12/accounts/18ce54d4x5t/web_event_tags?count=1"
    headers = credentials.auth_headers("GET", signed_for)
    assert httpx.get(signed_for, headers=headers).status_code == 200
    tampered = httpx.get(
        signed_for.replace("count=1", "count=2"), headers=credentials.auth_headers("GET", signed_for)
    )
    assert tampered.status_code == 401


def test_an_account_the_user_cannot_read_is_404(x: tuple[str, Credentials]) -> None:
    r = get(x, "accounts/zzz1/web_event_tags")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"
    assert r.json()["request"] == {"params": {"account_id": "zzz1"}}


def test_event_tags_name_their_pixel_and_page_by_cursor(x: tuple[str, Credentials]) -> None:
    seen: list[dict[str, Any]] = []
    path = "accounts/18ce54d4x5t/web_event_tags?count=4"
    body = get(x, path).json()
    seen += body["data"]
    body = get(x, f"{path}&cursor={body['next_cursor']}").json()
    seen += body["data"]
    assert body["next_cursor"] is None
    assert [(t["id"], t["website_tag_id"]) for t in seen] == [(t.id, t.pixel_id) for t in TAGS]
    only = get(x, "accounts/18ce54d4x5t/web_event_tags?web_event_tag_ids=e1,q1").json()["data"]
    assert [t["id"] for t in only] == ["e1", "q1"]


def test_the_user_role_is_the_declared_permissions(x: tuple[str, Credentials]) -> None:
    data = get(x, "accounts/18ce54d4x5t/authenticated_user_access").json()["data"]
    assert data["permissions"] == ["ACCOUNT_ADMIN"]


def test_a_conversion_for_an_event_its_pixel_lacks_is_refused(x: tuple[str, Credentials]) -> None:
    url, credentials = x
    endpoint = f"{url}/12/measurement/conversions/o8z6j"
    conversion = {
        "conversion_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "identifiers": [{"twclid": "26l6412g5p4iyj65a2oic2ayg2"}],
    }
    for event_id, status in (("tw-o8z6j-e1", 200), ("q1", 400), ("tw-o8z6j-zz", 400)):
        body = {"conversions": [{**conversion, "event_id": event_id}]}
        r = httpx.post(endpoint, json=body, headers=credentials.auth_headers("POST", endpoint))
        assert r.status_code == status, (event_id, r.text)
    assert r.json()["errors"][0]["parameter"] == "conversions[0].event_id"
    assert (
        httpx.post(
            f"{url}/12/measurement/conversions/zz9",
            json=body,
            headers=credentials.auth_headers("POST", f"{url}/12/measurement/conversions/zz9"),
        ).status_code
        == 404
    )


def test_a_pixel_token_cannot_read_the_ads_api() -> None:
    env = {"XGATE_X_PIXEL_TOKEN": "tok-1"}
    credentials = Credentials.from_env(auth="pixel_token", env=env)
    app, _ = create_sandbox(credentials, accounts=[ACCOUNT])
    with serve_app(app) as url:
        r = httpx.get(f"{url}/12/accounts", headers=credentials.auth_headers("GET", f"{url}/12/accounts"))
    assert r.status_code == 401 and "OAuth 1.0a" in r.json()["errors"][0]["message"]
