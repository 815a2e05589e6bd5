"""Routes of the browser tag, mounted by the collector app.

- ``GET /tag.js``: the first-party tag, cached for a year under ``?v=`` :data:`TAG_VERSION` (its hash).
- ``GET /v1/twclid?twclid=…``: the landing call; answers 204 with a server-set twclid cookie. Declared to
  the app's CORS (:func:`allow_browsers`, :mod:`xgate.collect.cors`) for the origins a source names: a page
  only a wildcard allows is refused here (403) and reads no answer, since the call sets a cookie.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request, Response

from xgate.collect.auth import origin_grant
from xgate.collect.cors import BrowserPaths
from xgate.collect.enrich import request_facts
from xgate.collect.problems import problem
from xgate.config import Config, ServerSettings
from xgate.observe.redact import excerpt
from xgate.tag.script import TAG_ETAG, TAG_JS, TAG_VERSION
from xgate.tag.twclid import clean_twclid, twclid_set_cookie

#: cache of the versioned URL (the content never changes under one version) and of the bare URL
VERSIONED_MAX_AGE = 365 * 86400
UNVERSIONED_MAX_AGE = 300

router = APIRouter(tags=["browser"])


def _config(request: Request) -> Config:
    """The configuration of the app this router is mounted in (the collector keeps it in app.state)."""
    config = getattr(request.app.state, "config", None)
    if not isinstance(config, Config):
        raise RuntimeError("an app including xgate.tag.routes.router must set app.state.config")
    return config


@router.get(
    "/tag.js",
    summary="The first-party browser tag",
    response_class=Response,
    responses={
        200: {"content": {"application/javascript": {"schema": {"type": "string"}}}},
        304: {"description": "the cached copy (If-None-Match) is current"},
    },
)
async def tag_js(
    request: Request,
    v: str | None = Query(None, description="the tag version (content hash) for a long-cached URL"),
) -> Response:
    max_age = VERSIONED_MAX_AGE if v == TAG_VERSION else UNVERSIONED_MAX_AGE
    headers = {
        "ETag": TAG_ETAG,
        "Cache-Control": f"public, max-age={max_age}" + (", immutable" if v == TAG_VERSION else ""),
        "X-Content-Type-Options": "nosniff",
        # lets sites load it with <script crossorigin integrity=...>
        "Access-Control-Allow-Origin": "*",
    }
    if TAG_ETAG in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(TAG_JS, media_type="application/javascript; charset=utf-8", headers=headers)


def _all_origins(config: Config) -> frozenset[str]:
    return frozenset(o for s in config.sources for o in s.allowed_origins)


def allow_browsers(config: Config, paths: BrowserPaths) -> None:
    """Declare ``GET /v1/twclid`` to the app's CORS: pages on an origin a source names, never one only a
    wildcard allows (docs/security.md)."""
    paths.allow("/v1/twclid", _all_origins(config), ("GET",), listed_only=True)


def _refusal(request: Request, config: Config) -> Response | None:
    """The 403 for a call from an origin no source names, including one only a wildcard allows: a wildcard
    never gets cookies (docs/security.md); None for a page that may call."""
    origin = request.headers.get("origin")
    if not origin:
        return None
    grant = origin_grant(_all_origins(config), origin)
    if grant is None:
        return problem(
            403, "origin_not_allowed", f"origin {excerpt(origin)} is not in the allowed_origins of any source"
        )
    if grant == "wildcard":
        return problem(
            403,
            "origin_not_allowed",
            f"origin {excerpt(origin)} is allowed only by a wildcard, which never gets cookies: "
            "list it in the source's allowed_origins",
        )
    return None


@router.get(
    "/v1/twclid",
    summary="Keep the X click id in a server-set first-party cookie (called by the tag on landing)",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "the cookie is set (Set-Cookie)"},
        400: {"description": "twclid is missing or malformed"},
        403: {"description": "the page's origin is not an allowed origin of any source"},
    },
)
async def keep_twclid(
    request: Request,
    twclid: str | None = Query(None, description="the X click id from the landing URL"),
) -> Response:
    config = _config(request)
    refusal = _refusal(request, config)
    if refusal is not None:
        return refusal
    value = clean_twclid(twclid)
    if value is None:
        reason = "missing" if not twclid else "must be 1 to 256 URL-safe characters (A-Z a-z 0-9 _ . ~ -)"
        return problem(400, "invalid_twclid", f"twclid: {reason}")
    settings: ServerSettings = config.server
    secure = request_facts(request, settings, datetime.now(UTC)).secure
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.headers.append("set-cookie", twclid_set_cookie(value, settings, secure=secure))
    return response
