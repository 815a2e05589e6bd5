"""A shop that uses Segment's analytics.js, the real library: ``@segment/analytics-next`` from the npm
registry (:data:`ANALYTICS_NEXT`, pinned by version and integrity, see :mod:`npmkit`), served by the shop
itself the way a site self-hosts it, so the browser fetches nothing from Segment.

The shop's origin is the library's CDN (``analytics._cdn``): it serves ``analytics.min.js`` (the package's
standalone build, what cdn.segment.com serves), the chunks it loads lazily (``/analytics-next/bundles/``) and
the source's CDN settings (``/v1/projects/KEY/settings``, :func:`cdn_settings`) that analytics.js reads before
it sends anything. A page loads it either with Segment's snippet (:data:`SEGMENT_SNIPPET`, what Segment's
source settings hand out) or, as an npm user's bundle does, with ``AnalyticsBrowser.load`` from the
package's UMD build (``window.AnalyticsNext``) and the CDN settings inline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npmkit import NpmPackage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

ANALYTICS_NEXT = NpmPackage(
    "@segment/analytics-next",
    "1.84.3",
    "sha512-5l7cPBzScxhfJ0zdcKQI4daDvMIWWUk7hClT1xGRelnHUltIEoQ9w8+ZpFPoWJMpX8D7IA1nVAfJbpiKi3XaKw==",
)

#: Segment's snippet 5.2.0 as ``@segment/snippet`` 5.2.1 renders it (``min({apiKey, host,
#: useHostForBundles: true, page: false, load: false})``), with ``{cdn}`` where it writes
#: ``https://<host>``: the shop's own origin, plain http on loopback
SEGMENT_SNIPPET = (
    '!function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)'
    'if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included twice.");'
    'else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm",'
    '"pageview","identify","reset","group","track","ready","alias","debug","page","screen","once","off",'
    '"on","addSourceMiddleware","addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware",'
    '"register"];analytics.factory=function(e){return function(){if(window[i].initialized)return '
    'window[i][e].apply(window[i],arguments);var n=Array.prototype.slice.call(arguments);if(["track",'
    '"screen","alias","group","page","identify"].indexOf(e)>-1){var c=document.querySelector('
    '"link[rel=\'canonical\']");n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,'
    "p:location.pathname,u:location.href,s:location.search,t:document.title,r:document.referrer})}"
    "n.unshift(e);analytics.push(n);return analytics}};for(var n=0;n<analytics.methods.length;n++)"
    "{var key=analytics.methods[n];analytics[key]=analytics.factory(key)}analytics.load=function(key,n)"
    '{var t=document.createElement("script");t.type="text/javascript";t.async=!0;'
    't.setAttribute("data-global-segment-analytics-key",i);t.src="{cdn}/analytics.js/v1/" + key + '
    '"/analytics.min.js";var r=document.getElementsByTagName("script")[0];r.parentNode.insertBefore(t,r);'
    'analytics._loadOptions=n};analytics._writeKey="{key}";analytics._cdn = "{cdn}";'
    'analytics.SNIPPET_VERSION="5.2.0";}}();'
)


def cdn_settings(write_key: str) -> dict[str, Any]:
    """A source's CDN settings as Segment's CDN answers them for a source with no destinations: the
    ``Segment.io`` integration (its ``apiKey`` is the write key analytics.js sends) and the delivery
    metrics analytics.js posts to ``<apiHost>/m`` for a tenth of its calls."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": "api.segment.io/v1",
                "addBundledMetadata": True,
                "unbundledIntegrations": [],
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            }
        },
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0.1, "host": "api.segment.io/v1"},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


@dataclass
class SegmentShop:
    """The shop's state: its library files, the CDN settings per write key, and the page the test writes:
    ``loader`` (the page's origin, which is the CDN -> the HTML that loads analytics.js) and ``page_script``
    (the JavaScript ``/checkout`` runs after it)."""

    library: dict[str, bytes]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    loader: Callable[[str], str] = lambda origin: ""
    page_script: str = ""
    #: the library files the browser fetched, in order
    served: list[str] = field(default_factory=list)


def snippet(cdn: str, write_key: str, load_options: dict[str, Any]) -> str:
    """Segment's snippet with ``analytics.load(write_key, load_options)``, the library from ``cdn``."""
    loader = SEGMENT_SNIPPET.replace("{cdn}", cdn).replace("{key}", write_key)
    return f"<script>{loader}\nanalytics.load({json.dumps(write_key)}, {json.dumps(load_options)});</script>"


def npm_loader(write_key: str, settings: dict[str, Any], load_options: dict[str, Any]) -> str:
    """What an npm user's bundle runs: ``AnalyticsBrowser.load({writeKey, cdnSettings}, options)``, here
    from the package's UMD build, as ``window.analytics``."""
    return (
        '<script src="/umd/index.js"></script><script>window.analytics = '
        f"AnalyticsNext.AnalyticsBrowser.load({{writeKey: {json.dumps(write_key)}, "
        f"cdnSettings: {json.dumps(settings)}}}, {json.dumps(load_options)});</script>"
    )


def segment_shop_app(shop: SegmentShop) -> Starlette:
    async def checkout(request: Request) -> Response:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>Checkout</title>"
            f"{shop.loader(origin)}</head><body><h1>Thank you</h1><a id='away' href='/elsewhere'>Home</a>"
            f"<script>{shop.page_script}</script></body></html>"
        )

    async def elsewhere(request: Request) -> Response:
        return HTMLResponse("<!doctype html><title>Elsewhere</title><h1>Elsewhere</h1>")

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    def library_file(name: str, media_type: str = "text/javascript") -> Response:
        body = shop.library.get(name)
        if body is None:
            return Response(status_code=404)
        shop.served.append(name)
        return Response(body, media_type=media_type)

    async def standalone(request: Request) -> Response:
        return library_file("standalone.js")

    async def umd(request: Request) -> Response:
        return library_file("index.js")

    async def bundle(request: Request) -> Response:
        return library_file(request.path_params["name"])

    async def settings(request: Request) -> Response:
        found = shop.settings.get(request.path_params["key"])
        if found is None:  # what Segment's CDN answers for a key it does not know
            return Response("Not Found", status_code=404)
        return JSONResponse(found)

    return Starlette(
        routes=[
            Route("/checkout", checkout),
            Route("/elsewhere", elsewhere),
            Route("/favicon.ico", favicon),
            Route("/analytics.js/v1/{key}/analytics.min.js", standalone),
            Route("/umd/index.js", umd),
            Route("/analytics-next/bundles/{name}", bundle),
            Route("/v1/projects/{key}/settings", settings),
        ]
    )
