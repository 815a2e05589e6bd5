"""The gateway's pages about itself: ``GET /`` and the API docs (``/docs``, ``/redoc``) served offline.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google),
so on a server without internet they render blank. Here they load everything from the gateway, as FastAPI's
how-to "Custom Docs UI Static Assets (Self-Hosting)" describes. The files come from the ``fastapi-offline``
package (MIT; it ships Swagger UI, Apache-2.0, and ReDoc, MIT, as published on npm, and nothing else we
use), served under a path holding that package's version, so a year's immutable cache is safe: an upgrade
changes every asset URL. Swagger UI's online validator badge (a request to validator.swagger.io) is off, and
both pages forbid images from elsewhere (ReDoc's sidebar always asks cdn.redoc.ly for its logo; blocked, the
logo is left out and nothing else changes).

``GET /`` names the gateway, its version and its pages (on the public listener of a gateway with an admin
listener, only those served there): HTML, or JSON when the request's ``Accept`` prefers
``application/json``. It shows no configuration (no source, destination or pixel), only names.

The gateway's icon is served on every listener: ``/favicon.svg`` (the console's pages link it) and
``/favicon.ico`` (the same drawing at 16, 32 and 48 pixels, which a browser asks for on any page that links
no icon), so that no page load ends in a 404 for it.
"""

from __future__ import annotations

from html import escape
from importlib.metadata import version
from pathlib import Path

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from xgate import __version__
from xgate.collect.admin import ADMIN_PATHS

#: where the docs' JavaScript, CSS and icon are served; the version makes each URL name one file's content
ASSETS_PATH = f"/docs/assets/{version('fastapi-offline')}"
#: ``Cache-Control`` of the versioned assets
ASSETS_CACHE = "public, max-age=31536000, immutable"

#: the gateway's icon (:func:`add_pages`): path served → (file in ``static/``, media type)
ICONS = {
    "/favicon.ico": ("favicon.ico", "image/x-icon"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
#: ``Cache-Control`` of the icon: its URL is fixed, so a day, not a year
ICON_CACHE = "public, max-age=86400"
STATIC = Path(__file__).parent / "static"

#: images only from the gateway: nothing on the docs pages reaches another host
DOCS_CSP = "img-src 'self' data:"

#: the pages ``GET /`` links to, with what each is for
LINKS = {
    "/docs": "the HTTP API, interactive (Swagger UI)",
    "/redoc": "the HTTP API, to read (ReDoc)",
    "/openapi.json": "the OpenAPI document",
    "/readyz": "readiness: the outbox answers and the dispatcher runs",
    "/metrics": "Prometheus metrics",
}
DESCRIPTION = "A self-hosted gateway for X's Conversions API"


class _ImmutableFiles(StaticFiles):
    """Static files that a browser may keep for a year (their URL changes with their content)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = ASSETS_CACHE
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _prefers_json(request: Request) -> bool:
    """True when ``Accept`` rates ``application/json`` above ``text/html`` (RFC 9110 §12.5.1 q-values)."""
    weights: dict[str, float] = {}
    for part in request.headers.get("accept", "").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media.strip().lower()] = q
    json_q = weights.get("application/json", 0.0)
    html_q = weights.get("text/html", weights.get("text/*", weights.get("*/*", 0.0)))
    return json_q > html_q


def _links(request: Request) -> dict[str, str]:
    """:data:`LINKS` served where ``request`` came in: on the public listener of a gateway with an admin
    listener, not the admin pages (they answer 404 there, :mod:`xgate.collect.admin`)."""
    config = getattr(request.app.state, "config", None)
    admin_port = config.server.admin_port if config is not None else None
    server = request.scope.get("server")
    if admin_port is None or (server is not None and server[1] == admin_port):
        return LINKS
    return {path: what for path, what in LINKS.items() if path not in ADMIN_PATHS}


def _home_html(links: dict[str, str]) -> str:
    items = "\n".join(f'<li><a href="{p}">{p}</a>: {escape(what)}</li>' for p, what in links.items())
    elsewhere = (
        ""
        if links.keys() >= ADMIN_PATHS
        else "\n<p>The API documents and <code>/metrics</code> are served on the admin listener "
        "(<code>[server] admin_port</code>), not on this one.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xgate {__version__}</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>body{{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#0f1419}}code{{font-size:.9em}}</style>
</head><body>
<h1>xgate {__version__}</h1>
<p>{escape(DESCRIPTION)}. It collects conversion events (<code>POST /v1/events</code>, with a source's
write key), maps and hashes them, and delivers them to X from a durable queue.</p>
<ul>
{items}
</ul>{elsewhere}
</body></html>
"""


def add_pages(app: FastAPI) -> None:
    """Add ``GET /``, ``/docs``, ``/redoc`` and the docs' assets to ``app`` (made with ``docs_url=None``
    and ``redoc_url=None``, so FastAPI's CDN-loading pages are not there)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_PATH, _ImmutableFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        links = _links(request)
        if _prefers_json(request):
            body = {"name": "xgate", "version": __version__, "description": DESCRIPTION, "links": links}
            return Response(orjson.dumps(body), media_type="application/json", headers={"Vary": "Accept"})
        return HTMLResponse(_home_html(links), headers={"Vary": "Accept"})

    for path, (name, media_type) in ICONS.items():
        _add_icon(app, path, (STATIC / name).read_bytes(), media_type)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


def _add_icon(app: FastAPI, path: str, body: bytes, media_type: str) -> None:
    headers = {"Cache-Control": ICON_CACHE, "X-Content-Type-Options": "nosniff"}

    async def icon() -> Response:
        return Response(body, media_type=media_type, headers=headers)

    app.add_api_route(path, icon, methods=["GET"], include_in_schema=False, name=path.lstrip("/"))
