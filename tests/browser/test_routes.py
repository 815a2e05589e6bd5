"""``GET /tag.js`` (versioned, cacheable) and ``GET /v1/twclid`` (the server-set landing cookie)."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest
from browserkit import tag_host

from xgate.config import Config, parse_config
from xgate.tag.routes import UNVERSIONED_MAX_AGE, VERSIONED_MAX_AGE
from xgate.tag.script import TAG_JS, TAG_VERSION, SnippetError, snippet
from xgate.testing import serve_app

SHOP = "https://shop.example"


def config(**server: object) -> Config:
    return parse_config(
        {
            "server": server,
            "sources": [
                {"name": "web", "write_key": "pub-key-1", "allowed_origins": [SHOP]},
                {"name": "backend", "write_key_env": "XGATE_TEST_UNSET_KEY"},
            ],
            "destinations": [
                {
                    "name": "x-main",
                    "pixel_id": "o8z6j",
                    "events": {"purchase": "tw-o8z6j-o87ne", "lead": "o87nf"},
                },
                {"name": "x-other", "pixel_id": "a1b2c", "events": {"purchase": "tw-a1b2c-zzz"}},
            ],
        }
    )


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve_app(tag_host(config(twclid_cookie_days=14))) as url:
        yield url


def test_tag_js_is_javascript_with_an_etag_and_a_short_cache(base: str) -> None:
    r = httpx.get(f"{base}/tag.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.content == TAG_JS
    assert r.headers["etag"] == f'"{TAG_VERSION}"'
    assert r.headers["cache-control"] == f"public, max-age={UNVERSIONED_MAX_AGE}"


def test_versioned_tag_js_is_cached_for_a_year(base: str) -> None:
    r = httpx.get(f"{base}/tag.js", params={"v": TAG_VERSION})
    assert r.headers["cache-control"] == f"public, max-age={VERSIONED_MAX_AGE}, immutable"
    stale = httpx.get(f"{base}/tag.js", params={"v": "0ld0ld0ld0ld"})
    assert stale.headers["cache-control"] == f"public, max-age={UNVERSIONED_MAX_AGE}"


def test_tag_js_revalidates_with_if_none_match(base: str) -> None:
    r = httpx.get(f"{base}/tag.js", headers={"if-none-match": f'"other", "{TAG_VERSION}"'})
    assert r.status_code == 304
    assert r.content == b""
    assert httpx.get(f"{base}/tag.js", headers={"if-none-match": '"other"'}).status_code == 200


def test_tag_js_is_small_and_dependency_free() -> None:
    assert len(TAG_JS) < 16_000
    assert b"import " not in TAG_JS and b"require(" not in TAG_JS


def _cookie(set_cookie: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    morsel = jar["_xgate_twclid"]
    return {"value": morsel.value, **{k: str(v) for k, v in morsel.items() if v}}


def test_landing_sets_the_twclid_cookie_for_an_allowed_origin(base: str) -> None:
    r = httpx.get(f"{base}/v1/twclid", params={"twclid": "abc"}, headers={"origin": SHOP})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == SHOP
    assert r.headers["access-control-allow-credentials"] == "true"
    cookie = _cookie(r.headers["set-cookie"])
    assert cookie == {"value": "abc", "path": "/", "max-age": str(14 * 86400), "samesite": "Lax"}


def test_landing_without_origin_sets_the_cookie_too(base: str) -> None:
    r = httpx.get(f"{base}/v1/twclid", params={"twclid": "abc"})
    assert r.status_code == 204
    assert "access-control-allow-origin" not in r.headers
    assert _cookie(r.headers["set-cookie"])["value"] == "abc"


def test_landing_from_another_origin_is_refused(base: str) -> None:
    r = httpx.get(f"{base}/v1/twclid", params={"twclid": "abc"}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    assert "set-cookie" not in r.headers
    assert "https://evil.example" in r.json()["message"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [({}, "twclid: missing"), ({"twclid": "a b<"}, "twclid: must be 1 to 256 URL-safe characters")],
)
def test_landing_with_a_bad_twclid_names_the_field(base: str, query: dict[str, str], reason: str) -> None:
    r = httpx.get(f"{base}/v1/twclid", params=query, headers={"origin": SHOP})
    assert r.status_code == 400
    assert r.json()["message"].startswith(reason)
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "set-cookie" not in r.headers


def test_snippet_carries_key_pixel_events_and_versioned_url() -> None:
    text = snippet(config(), "web", "https://xgate.shop.example/", consent_required=True)
    first, second = text.splitlines()
    assert '"writeKey":"pub-key-1"' in first
    # the first destination wins for a shared event name; bare event ids get the pixel prefix
    assert '"pixelEvents":{"purchase":"tw-o8z6j-o87ne","lead":"tw-o8z6j-o87nf"}' in first
    assert '"consent":"required"' in first
    assert second == f'<script async src="https://xgate.shop.example/tag.js?v={TAG_VERSION}"></script>'


@pytest.mark.parametrize(
    ("source", "url", "message"),
    [
        ("nope", "https://x.example", "source 'nope': no such source (configured: web, backend)"),
        ("backend", "https://x.example", "sources.backend.allowed_origins: empty"),
        ("web", "x.example", "collector URL 'x.example': must start with https://"),
        # the tag posts to the origin tag.js came from: a path would load the tag and lose the events
        (
            "web",
            "https://shop.example/xgate",
            "collector URL 'https://shop.example/xgate': the gateway's origin only",
        ),
        ("web", "https://x.example/?utm=1", "the gateway's origin only"),
        ("web", 'https://x.example/"><script>', "the gateway's origin only"),
        ("web", "https://x.example#top", "the gateway's origin only"),
    ],
)
def test_snippet_explains_what_is_wrong(source: str, url: str, message: str) -> None:
    with pytest.raises(SnippetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        snippet(config(), source, url)
