"""Backend twclid capture: Starlette/FastAPI (ASGI), Flask (WSGI) and Django read the click id from the
landing URL or the cookie, renew the first-party cookie and expose the id to the app's own code."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest
from flask import Flask, g
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xgate.config import ServerSettings
from xgate.middleware import ENVIRON_KEY, TwclidMiddleware, TwclidWSGIMiddleware, current_twclid
from xgate.middleware.flask import XGateFlask

DAYS_30 = str(30 * 86400)


def cookie_of(set_cookie: str, name: str = "_xgate_twclid") -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    morsel = jar[name]
    attrs = {k: str(v) for k, v in morsel.items() if v}
    return {"value": morsel.value, **attrs}


# ---------------------------------------------------------------- ASGI (Starlette / FastAPI)
def starlette_app(settings: ServerSettings | None = None) -> Starlette:
    async def page(request: Request) -> JSONResponse:
        return JSONResponse({"state": request.state.twclid, "context": current_twclid()})

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(TwclidMiddleware, settings=settings)
    return app


def asgi_client(app: Starlette, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """A client calling ``app`` in this task, through httpx's own ASGI transport (Starlette's TestClient
    is httpx over the same kind of transport, but importing it warns that it wants httpx2 instead)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def test_asgi_landing_with_twclid_exposes_it_and_sets_the_cookie() -> None:
    async with asgi_client(starlette_app()) as client:
        response = await client.get("/?twclid=abc")
    assert response.json() == {"state": "abc", "context": "abc"}
    cookie = cookie_of(response.headers["set-cookie"])
    assert cookie["value"] == "abc"
    assert cookie["max-age"] == DAYS_30
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert "secure" not in cookie


async def test_asgi_later_request_reads_the_cookie_and_renews_it() -> None:
    async with asgi_client(starlette_app()) as client:
        client.cookies.set("_xgate_twclid", "abc")
        response = await client.get("/checkout")
        assert response.status_code == 404  # no route, yet the cookie is renewed on every answer
        assert cookie_of(response.headers["set-cookie"])["value"] == "abc"
        assert (await client.get("/")).json() == {"state": "abc", "context": "abc"}


async def test_asgi_fresh_click_id_replaces_the_cookie() -> None:
    async with asgi_client(starlette_app()) as client:
        client.cookies.set("_xgate_twclid", "old")
        response = await client.get("/?twclid=new")
    assert response.json()["state"] == "new"
    assert cookie_of(response.headers["set-cookie"])["value"] == "new"


async def test_asgi_without_twclid_sets_nothing_and_exposes_none() -> None:
    async with asgi_client(starlette_app()) as client:
        response = await client.get("/")
    assert response.json() == {"state": None, "context": None}
    assert "set-cookie" not in response.headers


async def test_asgi_ignores_a_malformed_twclid() -> None:
    async with asgi_client(starlette_app()) as client:
        response = await client.get("/", params={"twclid": "<script>"})
    assert response.json()["state"] is None
    assert "set-cookie" not in response.headers


async def test_asgi_https_cookie_is_secure_and_settings_rename_it() -> None:
    settings = ServerSettings(twclid_cookie="clk", twclid_cookie_days=7)
    async with asgi_client(starlette_app(settings), "https://shop.example") as client:
        cookie = cookie_of((await client.get("/?twclid=abc")).headers["set-cookie"], "clk")
    assert cookie["secure"] == "True"
    assert cookie["max-age"] == str(7 * 86400)


async def test_asgi_forwarded_proto_counts_only_when_trusted() -> None:
    headers = {"x-forwarded-proto": "https"}
    async with asgi_client(starlette_app(ServerSettings(trust_forwarded=True))) as trusted:
        assert "secure" in cookie_of((await trusted.get("/?twclid=a", headers=headers)).headers["set-cookie"])
    async with asgi_client(starlette_app()) as untrusted:
        answer = await untrusted.get("/?twclid=a", headers=headers)
        assert "secure" not in cookie_of(answer.headers["set-cookie"])


async def test_asgi_falls_back_to_the_x_pixel_cookie() -> None:
    async with asgi_client(starlette_app()) as client:
        client.cookies.set("_twclid", '{"twclid":"px1","twclid_ts":1700000000}')
        response = await client.get("/")
    assert response.json()["state"] == "px1"
    assert cookie_of(response.headers["set-cookie"])["value"] == "px1"


async def test_context_is_empty_outside_a_request() -> None:
    async with asgi_client(starlette_app()) as client:
        assert (await client.get("/?twclid=abc")).json()["context"] == "abc"
    assert current_twclid() is None  # reset in this very task once the request is answered


# ---------------------------------------------------------------- WSGI and Flask
def flask_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/")
    def page() -> dict[str, object]:
        from flask import request

        return {"g": g.twclid, "environ": request.environ[ENVIRON_KEY], "context": current_twclid()}

    XGateFlask(app)
    return app


def test_flask_landing_sets_cookie_and_exposes_twclid_to_views() -> None:
    client = flask_app().test_client()
    response = client.get("/?twclid=abc")
    assert response.json == {"g": "abc", "environ": "abc", "context": "abc"}
    cookie = cookie_of(response.headers["Set-Cookie"])
    assert (cookie["value"], cookie["max-age"], cookie["samesite"]) == ("abc", DAYS_30, "Lax")


def test_flask_keeps_twclid_across_pages_through_the_cookie() -> None:
    client = flask_app(XGATE_TWCLID_COOKIE="clk", XGATE_TWCLID_COOKIE_DAYS=3).test_client()
    client.get("/?twclid=abc")
    response = client.get("/")
    assert response.json == {"g": "abc", "environ": "abc", "context": "abc"}
    assert cookie_of(response.headers["Set-Cookie"], "clk")["max-age"] == str(3 * 86400)


def test_flask_without_twclid() -> None:
    response = flask_app().test_client().get("/")
    assert response.json == {"g": None, "environ": None, "context": None}
    assert "Set-Cookie" not in response.headers


def test_plain_wsgi_wrapper_keeps_the_apps_own_headers() -> None:
    from werkzeug.test import Client

    seen: dict[str, object] = {}

    def app(environ: dict[str, object], start_response):  # type: ignore[no-untyped-def]
        seen["twclid"] = environ[ENVIRON_KEY]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "session=1")])
        return [b"ok"]

    response = Client(TwclidWSGIMiddleware(app)).get("/?twclid=abc", base_url="https://shop.example")
    assert seen["twclid"] == "abc"
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies[0] == "session=1"
    assert cookie_of(cookies[1])["secure"] == "True"


# ---------------------------------------------------------------- Django
@pytest.fixture(scope="module")
def django_client():  # type: ignore[no-untyped-def]
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["xgate.middleware.django.TwclidMiddleware"],
            XGATE_TWCLID_COOKIE_DAYS=10,
        )
        django.setup()
    from django.test import Client

    return Client()


def _django_view(request):  # type: ignore[no-untyped-def]
    from django.http import JsonResponse

    return JsonResponse({"request": request.twclid, "context": current_twclid()})


def __getattr__(name: str) -> object:
    # Django resolves ROOT_URLCONF=this module lazily: build urlpatterns only once Django is set up
    if name == "urlpatterns":
        from django.urls import path

        return [path("", _django_view)]
    raise AttributeError(name)


def test_django_landing_sets_cookie_and_exposes_twclid(django_client) -> None:  # type: ignore[no-untyped-def]
    response = django_client.get("/?twclid=abc")
    assert response.json() == {"request": "abc", "context": "abc"}
    morsel = response.cookies["_xgate_twclid"]
    assert (morsel.value, morsel["max-age"], morsel["samesite"]) == ("abc", 864000, "Lax")
    assert morsel["path"] == "/"
    assert not morsel["secure"]


def test_django_reads_and_renews_the_cookie(django_client) -> None:  # type: ignore[no-untyped-def]
    django_client.cookies.load({"_xgate_twclid": "abc"})
    response = django_client.get("/", secure=True)
    assert response.json() == {"request": "abc", "context": "abc"}
    assert response.cookies["_xgate_twclid"]["secure"] is True
    django_client.cookies.clear()
    response = django_client.get("/")
    assert response.json() == {"request": None, "context": None}
    assert "_xgate_twclid" not in response.cookies


async def test_asgi_reads_the_url_encoded_x_pixel_cookie() -> None:
    async with asgi_client(starlette_app()) as client:
        response = await client.get("/", headers={"cookie": "_twclid=%7B%22twclid%22%3A%22px2%22%7D"})
    assert response.json()["state"] == "px2"
