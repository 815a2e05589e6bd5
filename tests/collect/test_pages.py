"""``GET /`` says what the gateway is; ``/docs`` and ``/redoc`` load every asset from the gateway itself."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from gatewaykit import ADMIN_KEY, BROWSER_KEY, PIXEL, SERVER_KEY, Gateway

from xgate import __version__
from xgate.collect.docs import ASSETS_CACHE
from xgate.testing import free_port

CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _References(HTMLParser):
    """Every URL an HTML page makes the browser load: ``src`` and ``href`` of any tag, ``spec-url`` of
    ReDoc's element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in {"src", "href", "spec-url"} and v]


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_every_asset_from_the_gateway_with_a_long_cache(
    gateway: Gateway, page: str
) -> None:
    r = gateway.admin.get(page)
    assert r.status_code == 200
    assert "://" not in r.text, "the page names another host (a CDN, Google Fonts, a validator)"
    # ReDoc's bundle asks cdn.redoc.ly for a logo by itself: the page forbids images from elsewhere
    assert "img-src 'self'" in r.headers["content-security-policy"]
    urls = _references(r.text)
    assert any(u.endswith(".js") for u in urls) and "/openapi.json" in r.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        if url == "/openapi.json":
            continue
        asset = gateway.admin.get(url)
        assert asset.status_code == 200, url
        kind = next(v for k, v in CONTENT_TYPES.items() if url.endswith(k))
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert asset.headers["cache-control"] == ASSETS_CACHE
        assert len(asset.content) > 1000


def test_the_swagger_ui_does_not_ask_the_online_validator(gateway: Gateway) -> None:
    assert '"validatorUrl": null' in gateway.admin.get("/docs").text


def test_the_home_page_names_the_gateway_its_version_and_its_pages(gateway: Gateway) -> None:
    r = gateway.admin.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"xgate {__version__}" in r.text and "Conversions API" in r.text
    linked = set(_references(r.text))
    assert {"/docs", "/redoc", "/readyz", "/metrics"} <= linked
    for path in linked:
        assert gateway.admin.get(path).status_code == 200, path


def test_with_an_admin_listener_the_public_home_page_links_only_what_it_serves(
    make_gateway: Callable[..., Gateway],
) -> None:
    """The admin pages answer 404 on the public listener: linked there, every link but /readyz was dead."""
    gateway = make_gateway(admin_port=free_port())
    r = gateway.http.get("/")
    linked = set(_references(r.text))
    assert linked == {"/readyz", "/favicon.svg"}  # the icon is the gateway's own, on every listener
    assert "served on the admin listener" in r.text
    for path in linked:
        assert gateway.http.get(path).status_code == 200, path
    assert set(gateway.http.get("/", headers={"Accept": "application/json"}).json()["links"]) == {"/readyz"}


@pytest.mark.parametrize("accept", ["application/json", "text/html;q=0.5, application/json"])
def test_the_home_page_answers_json_when_accept_prefers_it(gateway: Gateway, accept: str) -> None:
    r = gateway.admin.get("/", headers={"Accept": accept})
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["name"] == "xgate" and body["version"] == __version__
    assert {"/docs", "/redoc", "/readyz", "/metrics"} <= set(body["links"])
    assert r.headers["vary"] == "Accept"


@pytest.mark.parametrize("accept", ["*/*", "text/html, application/json;q=0.9", ""])
def test_the_home_page_is_html_unless_json_is_preferred(gateway: Gateway, accept: str) -> None:
    r = gateway.admin.get("/", headers={"Accept": accept})
    assert r.headers["content-type"].startswith("text/html")


def test_the_home_page_shows_no_configuration(gateway: Gateway) -> None:
    for accept in ("text/html", "application/json"):
        r = gateway.admin.get("/", headers={"Accept": accept})
        assert r.status_code == 200
        text = r.text
        for secret_or_detail in (ADMIN_KEY, SERVER_KEY, BROWSER_KEY, PIXEL, "x-main", "backend", "sqlite"):
            assert secret_or_detail not in text
