"""CORS for the paths browsers call, in one place: who may read each path's answers, its preflights, and the
headers on every answer, error answers included.

Each area that serves browsers declares its paths (:meth:`BrowserPaths.allow`): ``POST /v1/events`` for the
origins of the ``xgate`` sources, each source kind's endpoints for those of its own sources (none for a
webhook kind: platforms post webhooks, never a page), ``GET /v1/twclid`` for the origins a source names (a
wildcard never: it sets a cookie). :class:`CorsMiddleware` does the rest, for those paths only:

- a **preflight** (``OPTIONS`` with an ``Origin``) is answered here: 204 with the path's methods, the
  request headers a page may send (:data:`ALLOW_HEADERS`) and ``Access-Control-Max-Age``; 403 without any
  CORS header for an origin the path does not allow, so the browser never sends the call;
- **every answer** to a page on an allowed origin carries the CORS headers, whatever made it: the handler's
  report, its 401 / 403 / 413 / 400 / 503, FastAPI's 404 and 405, and the 500 of an unexpected error
  (:meth:`BrowserPaths.server_error`, which the app installs as its handler: Starlette sends that answer
  outside every middleware). An answer the page cannot read is, to its library, a network failure, which
  it retries (analytics.js ten times) and the shop's console shows as a CORS error;
- an origin the path does not allow gets **no** CORS header on any answer.

Why a refusal is readable (docs/security.md, "Browsers and CORS"): CORS protects the answer, not the
endpoint — anyone can send a request with any ``Origin`` outside a browser and read what comes back. What
the header decides is whether a script on a page may read it, and for a path whose sources allow the page's
origin the answer is meant for that page: the 403 of a key whose own source does not allow the origin
included, which then says why (RudderStack's gateway, rs/cors around its whole router, lets any page read
every status; the Fetch standard asks nothing else of an error). So the rule is per path, not per key:
the page reads every answer the path gives it, or none.

The headers (:func:`cors_headers`): ``Access-Control-Allow-Origin: <origin>`` with ``…-Credentials: true``
for an origin a source names; ``*`` without credentials for one only ``"*"`` allows; ``Origin: null`` is
never allowed (:func:`xgate.collect.auth.origin_grant`). ``Access-Control-Expose-Headers: Retry-After``
lets a page read how long a 503 asks it to wait. ``Vary: Origin`` goes on every answer of a path that
allows any origin, since the answer depends on it (the Fetch standard's "CORS protocol and HTTP caches").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xgate.collect.auth import OriginGrant, origin_grant
from xgate.collect.problems import internal_problem_handler, problem
from xgate.observe.redact import excerpt

#: the request headers a page may send: its key (``Authorization``, ``X-Write-Key``), the body's type, the
#: retry count analytics.js adds when it sends a call again (``X-Retry-Count``), and what RudderStack's
#: JavaScript SDK v3 puts on every call (``AnonymousId``, the base64 of the call's anonymousId;
#: ``SentAt``), on a retry (``Rsa-Retry-Attempt``, ``Rsa-Retry-Reason``, ``Rsa-Since-First-Attempt``,
#: ``Rsa-Since-Last-Attempt``) and on a call it kept in the page's storage from an earlier page
#: (``Rsa-Recovered``). A header missing here makes the browser block the call at the preflight, which the
#: library takes for a network failure and retries (tests/browser/test_analyticsjs.py and
#: test_rudderstack.py see each of them pass)
ALLOW_HEADERS = (
    "Authorization, Content-Type, X-Write-Key, X-Retry-Count, AnonymousId, SentAt, Rsa-Retry-Attempt, "
    "Rsa-Retry-Reason, Rsa-Since-First-Attempt, Rsa-Since-Last-Attempt, Rsa-Recovered"
)
#: seconds a browser may keep a preflight's answer
PREFLIGHT_MAX_AGE = 600
#: the answer headers beyond the CORS-safelisted ones a page may read: how long a 503 asks it to wait
EXPOSE_HEADERS = "Retry-After"


def cors_headers(origin: str, grant: OriginGrant) -> dict[str, str]:
    """The CORS headers of an answer to a page at ``origin`` that ``grant`` allows: credentialed for an
    origin the configuration names, ``*`` without credentials for one only a wildcard allows; ``Vary``
    aside."""
    if grant == "wildcard":
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSE_HEADERS}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSE_HEADERS,
    }


@dataclass(frozen=True, slots=True)
class BrowserPath:
    """A path browsers call: the origins its sources allow, its methods (other than ``OPTIONS``),
    ``listed_only`` when a wildcard does not count (the path sets a cookie), and ``preflight_origins``, the
    origins a preflight is judged by when the request itself narrows them (``POST /v1/events?write_key=``
    names its source), else None for :attr:`origins`."""

    origins: frozenset[str]
    methods: tuple[str, ...] = ("POST",)
    listed_only: bool = False
    preflight_origins: Callable[[Request], Collection[str] | None] | None = None

    def grant(self, origin: str, origins: Collection[str] | None = None) -> OriginGrant | None:
        """How a page at ``origin`` may call this path (None: it may not)."""
        found = origin_grant(frozenset(self.origins if origins is None else origins), origin)
        return None if found == "wildcard" and self.listed_only else found


class BrowserPaths:
    """The paths browsers call, by path (see the module's docstring); one per app."""

    def __init__(self) -> None:
        self._paths: dict[str, BrowserPath] = {}

    def allow(
        self,
        path: str,
        origins: Iterable[str],
        methods: Iterable[str] = ("POST",),
        *,
        listed_only: bool = False,
        preflight_origins: Callable[[Request], Collection[str] | None] | None = None,
    ) -> None:
        """Declare ``path``: pages on ``origins`` may call it with ``methods`` and read every answer."""
        if path in self._paths:
            raise ValueError(f"{path} is declared twice for browsers")
        self._paths[path] = BrowserPath(
            frozenset(origins), tuple(m for m in methods if m != "OPTIONS"), listed_only, preflight_origins
        )

    def get(self, path: str) -> BrowserPath | None:
        return self._paths.get(path)

    def headers(self, path: str, origin: str | None) -> dict[str, str]:
        """The CORS headers an answer on ``path`` to a page at ``origin`` carries (none for a path not
        declared, a request without ``Origin`` or an origin the path does not allow), ``Vary`` aside."""
        entry = self._paths.get(path)
        grant = entry.grant(origin) if entry is not None and origin else None
        if grant is None or origin is None:
            return {}
        return cors_headers(origin, grant)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """The app's answer to an unexpected error (its handler for ``Exception``): the 500 of
        :func:`~xgate.collect.problems.internal_problem_handler`, readable by the pages that may read the
        path's answers."""
        response = await internal_problem_handler(request, exc)
        response.headers.update(self.headers(request.url.path, request.headers.get("origin")))
        entry = self._paths.get(request.url.path)
        if entry is not None and entry.origins:
            response.headers["Vary"] = "Origin"
        return response


def _origin(scope: Scope) -> str | None:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"origin":
            return value.decode("latin-1")
    return None


class CorsMiddleware:
    """ASGI middleware answering the preflights of the declared :class:`BrowserPaths` and putting the CORS
    headers on every answer they give (see the module's docstring). Other paths pass through untouched.
    Sits outside :class:`~xgate.collect.routes.ingest.IngestLane`, so ``POST /v1/events`` is covered."""

    def __init__(self, app: ASGIApp, paths: BrowserPaths) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if entry is None:
            await self.app(scope, receive, send)
            return
        origin = _origin(scope)
        if scope["method"] == "OPTIONS":
            await _preflight(entry, scope, origin)(scope, receive, send)
            return
        if not entry.origins:  # no page may call it: nothing to add, and the answer does not vary
            await self.app(scope, receive, send)
            return
        grant = entry.grant(origin) if origin is not None else None
        added = (
            [(k.lower().encode(), v.encode("latin-1")) for k, v in cors_headers(origin, grant).items()]
            if origin is not None and grant is not None
            else []
        )

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_cors(message.get("headers", ()), added)
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _with_cors(
    headers: Iterable[tuple[bytes, bytes]], added: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """An answer's raw headers with ``added`` (unless it has its own ``Access-Control-Allow-Origin``) and
    ``Vary: Origin`` (merged into its ``Vary``), in bytes as ASGI has them: the middleware costs about 1 µs
    a request without an ``Origin`` and 2 µs with one on the development machine (``MutableHeaders``:
    9 µs)."""
    out = list(headers)
    vary = -1
    own_origin = False
    for i, (name, _) in enumerate(out):
        if name == b"vary":
            vary = i
        elif name == b"access-control-allow-origin":
            own_origin = True
    if not own_origin:
        out.extend(added)
    if vary < 0:
        out.append((b"vary", b"Origin"))
    elif b"origin" not in out[vary][1].lower():
        out[vary] = (b"vary", out[vary][1] + b", Origin")
    return out


def _preflight(entry: BrowserPath, scope: Scope, origin: str | None) -> Response:
    """The answer to an ``OPTIONS`` request on a declared path."""
    if origin is None:
        return problem(400, "not_a_preflight", "a CORS preflight needs an Origin header")
    narrowed = entry.preflight_origins(Request(scope)) if entry.preflight_origins is not None else None
    grant = entry.grant(origin, narrowed)
    if grant is None:
        return problem(
            403, "origin_not_allowed", f"origin {excerpt(origin)} is not allowed to call {scope['path']}"
        )
    headers = cors_headers(origin, grant) | {
        "Access-Control-Allow-Methods": ", ".join((*entry.methods, "OPTIONS")),
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        "Vary": "Origin",
    }
    return Response(status_code=204, headers=headers)
