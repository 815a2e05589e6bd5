"""A small shop (landing, product, thank-you pages) with the X pixel base code and the xgate snippet.

The X pixel itself (``https://static.ads-twitter.com/uwt.js``) is stood in for by :data:`PIXEL_STUB`, which
reports every ``twq`` call to ``POST /pixel/hits``; the shop serves it at :data:`PIXEL_URL`, its own path.
Not through Playwright's routing: a browser context with any route has its CORS preflights answered by
Playwright, never by the gateway (tests/browser/test_cors_in_chromium.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

#: where the page loads X's pixel script from: the shop's own path, in the place of
#: ``https://static.ads-twitter.com/uwt.js`` (:func:`browserkit.block_pixel` blocks it as an ad blocker does)
PIXEL_URL = "/x/uwt.js"

#: X's pixel base code, as X hands it out (uwt.js at :data:`PIXEL_URL`): a queueing twq stub, then uwt.js
#: loaded async
PIXEL_BASE = (
    "<script>!function(e,t,n,s,u,a){e.twq||(s=e.twq=function(){s.exe?s.exe.apply(s,arguments)"
    ":s.queue.push(arguments);},s.version='1.1',s.queue=[],u=t.createElement(n),u.async=!0,"
    f"u.src='{PIXEL_URL}',a=t.getElementsByTagName(n)[0],a.parentNode.insertBefore(u,a))}}"
    "(window,document,'script');twq('config','o8z6j');</script>"
)

#: stands in for uwt.js: runs the queued and later calls and reports each to the shop
PIXEL_STUB = """
(function () {
  var twq = window.twq;
  function record(args) {
    var call = Array.prototype.slice.call(args);
    navigator.sendBeacon("/pixel/hits", new Blob([JSON.stringify(call)], {type: "text/plain"}));
  }
  twq.exe = function () { record(arguments); };
  var queued = twq.queue; twq.queue = [];
  for (var i = 0; i < queued.length; i++) record(queued[i]);
})();
"""

PURCHASE = {"value": 42.5, "currency": "EUR", "items": [{"id": "sku-1", "quantity": 2, "price": 21.25}]}


@dataclass
class Shop:
    """The shop's state: the snippet to paste (set once the gateway is known) and what the pixel saw."""

    snippet: str = ""
    pixel_hits: list[list[Any]] = field(default_factory=list)

    def pixel_events(self) -> list[list[Any]]:
        return [hit for hit in self.pixel_hits if hit and hit[0] == "event"]


def _page(shop: Shop, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"{PIXEL_BASE}\n{shop.snippet}</head><body><h1>{title}</h1>{body}</body></html>"
    )


def shop_app(shop: Shop) -> Starlette:
    async def landing(request: Request) -> Response:
        return _page(shop, "Trail gear", '<a id="product" href="/product">Trail socks</a>')

    async def product(request: Request) -> Response:
        return _page(shop, "Trail socks", '<a id="buy" href="/thanks">Buy</a>')

    async def thanks(request: Request) -> Response:
        """Tracks the purchase; ``?order=ID`` passes the shop's order id, else the tag makes one up."""
        props = dict(PURCHASE)
        order = request.query_params.get("order")
        if order:
            props["id"] = order
        script = f"window.conversionId = xgate.track('purchase', {json.dumps(props)});"
        buttons = (
            '<button id="accept" onclick="xgate.consent({advertising: true})">Accept</button>'
            '<button id="refuse" onclick="xgate.consent({advertising: false})">Refuse</button>'
        )
        return _page(shop, "Thank you", f"{buttons}<script>{script}</script>")

    async def signup(request: Request) -> Response:
        script = f"xgate.track('sign_up', {{id: {json.dumps(request.query_params['id'])}}});"
        return _page(shop, "Welcome aboard", f"<script>{script}</script>")

    async def hits(request: Request) -> Response:
        shop.pixel_hits.append(json.loads(await request.body()))
        return Response(status_code=204)

    async def list_hits(request: Request) -> Response:
        return JSONResponse(shop.pixel_hits)

    async def pixel(request: Request) -> Response:
        return Response(PIXEL_STUB, media_type="text/javascript")

    return Starlette(
        routes=[
            Route("/", landing),
            Route("/product", product),
            Route("/thanks", thanks),
            Route("/signup", signup),
            Route("/pixel/hits", hits, methods=["POST"]),
            Route("/pixel/hits", list_hits, methods=["GET"]),
            Route(PIXEL_URL, pixel),
        ]
    )
