"""``POST /v1/events``: events in, conversions stored in the outbox, one answer per event.

The route is declared for FastAPI (and the OpenAPI document) but served by :class:`IngestLane`, which
calls :func:`receive_events` straight away; both answer the same. Its preflight and the CORS headers of
every answer are :mod:`xgate.collect.cors`'s (:func:`allow_browsers` declares the path); a handler here only
refuses an origin the key's source does not allow.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from xgate.collect.auth import OriginGrant, origin_grant
from xgate.collect.body import BodyTooLarge, not_gzip, read_body, unpacked
from xgate.collect.cors import BrowserPaths
from xgate.collect.enrich import request_facts
from xgate.collect.problems import problem
from xgate.collect.schema import INGEST_OPENAPI
from xgate.collect.services import Services, services
from xgate.config import Source
from xgate.errors import OutboxUnavailable
from xgate.observe.redact import excerpt
from xgate.outbox.base import EnqueueOutcome
from xgate.tag.twclid import twclid_set_cookie

#: requests with at most this many events are mapped on the event loop; bigger ones in a thread
INLINE_EVENTS = 10
#: seconds a 503 asks the sender to wait while the outbox cannot store (xgate's backend client honours it)
RETRY_AFTER_SECONDS = 5

router = APIRouter()


def _batch(data: Any, max_events: int) -> list[Any] | Response:
    """The events of a body: one event object, or ``{"events": [...]}``."""
    if isinstance(data, dict) and "events" in data and "event_name" not in data:
        events = data["events"]
        if not isinstance(events, list):
            return problem(400, "invalid_batch", "events: must be an array of event objects")
        if not events:
            return problem(400, "invalid_batch", "events: must hold at least one event")
        if len(events) > max_events:
            return problem(
                413,
                "batch_too_large",
                f"events: {len(events)} events; at most {max_events} per request "
                "(server.max_batch_events): split the batch",
            )
        return events
    if isinstance(data, dict):
        return [data]
    return problem(400, "invalid_body", 'body: must be an event object or {"events": [...]}')


async def receive_events(gateway: Services, request: Request) -> Response:
    """The whole of ``POST /v1/events``, timed into the request metrics."""
    started = time.perf_counter()
    response = await _receive(gateway, request)
    gateway.metrics.record_request(response.status_code, time.perf_counter() - started)
    return response


async def _receive(gateway: Services, request: Request) -> Response:
    source, refusal = gateway.keys.sender(request)
    if source is None:
        return problem(
            401,
            "unauthorized",
            refusal
            or "unknown or missing write key: send the source's key as Authorization: Bearer KEY or "
            "X-Write-Key: KEY (a browser source's public key may also be ?write_key=KEY)",
        )
    grant = source_grant(source, request)
    if isinstance(grant, Response):
        return grant
    raw = await request_body(request, gateway.config.server.max_body_bytes)
    if isinstance(raw, Response):
        return raw
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return problem(400, "invalid_json", f"body: not valid JSON ({e})")
    events = _batch(data, gateway.config.server.max_batch_events)
    if isinstance(events, Response):
        return events
    # the kept twclid cookie is read and renewed for a page the configuration names (or a request without
    # an Origin); a page only a wildcard allows neither reads nor plants it (docs/security.md)
    return await ingest_events(gateway, request, source, events, cookies=grant != "wildcard")


async def request_body(request: Request, limit: int) -> bytes | Response:
    """The body of ``request`` (unpacked when it says gzip), or the answer refusing it: 413 for more than
    ``limit`` bytes sent (``[server] max_body_bytes``), 400 for a gzip body that does not unpack within
    ``limit`` (:func:`~xgate.collect.body.not_gzip`): the one body rule of every endpoint taking events."""
    try:
        raw = unpacked(request, await read_body(request, limit), limit)
    except BodyTooLarge as e:
        return problem(413, "body_too_large", str(e))
    if raw is None:
        return problem(400, "invalid_body", not_gzip(limit))
    return raw


def source_grant(source: Source, request: Request) -> OriginGrant | Response | None:
    """How the page that sent ``request`` may send with ``source``'s key: None without an ``Origin`` (not
    a browser), the grant of the source's ``allowed_origins``, or the 403 for an origin they do not
    name. Whether the page may read that 403 is the path's affair (:mod:`xgate.collect.cors`)."""
    origin = request.headers.get("origin")
    if not origin:
        return None
    grant = origin_grant(source.allowed_origins, origin)
    if grant is None:
        return problem(
            403,
            "origin_not_allowed",
            f"origin {excerpt(origin)} is not in the allowed_origins of source {source.name!r}",
        )
    return grant


async def ingest_events(
    gateway: Services,
    request: Request,
    source: Source,
    events: list[Any],
    *,
    cookies: bool = True,
    unmatched_ok: bool = False,
) -> Response:
    """Map, store and report ``events`` of ``source`` (xgate events, or :class:`~xgate.collect.ingest.
    Settled` entries a source kind made): the one ingest path of every endpoint that takes events.
    ``cookies``: read and renew the twclid cookie (False for a page only a wildcard allows).
    ``unmatched_ok``: answer 200 when the events are rejected only for want of an identifier X can match
    (:meth:`~xgate.collect.ingest.IngestReport.status`; a kind's :attr:`~xgate.collect.kinds.Kind.
    unmatched_ok`)."""
    settings = gateway.config.server
    facts = request_facts(request, settings, datetime.now(UTC))
    if not source.takes_request_context:  # a backend's address and user agent are not its user's
        facts = replace(facts, ip=None, user_agent=None)
    if not cookies and facts.cookie_twclid:
        facts = replace(facts, cookie_twclid=None)
    # a public key's conversions never pre-empt a server's with the same key (docs/security.md)
    prepare = partial(gateway.ingest.prepare, public=source.key_is_public)
    if len(events) <= INLINE_EVENTS:  # cheaper than a hop to a thread
        prepared = prepare(events, facts, source.name)
    else:  # a big batch would hold up the other requests
        prepared = await anyio.to_thread.run_sync(prepare, events, facts, source.name)
    outcomes: list[EnqueueOutcome] = []
    if prepared.conversions:
        try:
            outcomes = await gateway.writer.enqueue(prepared.conversions)
        except OutboxUnavailable:  # nothing stored: the sender must try again (logged by the writer)
            return problem(
                503,
                "outbox_unavailable",
                "the outbox could not store the events; nothing was stored, retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
    report = gateway.ingest.finish(prepared, outcomes, source.name)
    response = Response(
        orjson.dumps(report.as_json()),
        status_code=report.status(unmatched_ok=unmatched_ok),
        media_type="application/json",
    )
    if cookies:
        twclid = next(
            (e.twclid for e in reversed(report.events) if e.twclid and e.status != "rejected"), None
        )
        if twclid:
            response.headers.append("set-cookie", twclid_set_cookie(twclid, settings, secure=facts.secure))
    return response


@router.post(
    "/v1/events",
    openapi_extra=INGEST_OPENAPI,
    summary="Send one event or a batch",
    response_class=Response,
)
async def post_events(request: Request, gateway: Annotated[Services, Depends(services)]) -> Response:
    return await receive_events(gateway, request)


def allow_browsers(gateway: Services, paths: BrowserPaths) -> None:
    """Declare ``POST /v1/events`` to the app's CORS (:mod:`xgate.collect.cors`): pages on the origins of
    the ``xgate`` sources; a preflight naming a source's ``?write_key=`` (the tag's way) is judged by that
    source's origins alone."""

    def preflight_origins(request: Request) -> list[str] | None:
        source, _ = gateway.keys.sender(request)
        return source.allowed_origins if source is not None else None

    origins = (o for s in gateway.config.sources if s.kind == "xgate" for o in s.allowed_origins)
    paths.allow("/v1/events", origins, preflight_origins=preflight_origins)


class IngestLane:
    """``POST /v1/events`` straight to its handler, past FastAPI's routing, dependency solving and
    per-route middleware: about 45 µs a request on the development machine, an eighth of what a
    one-event request costs the gateway. Everything else, and the OpenAPI document (from the declared
    route, which answers the same when this lane is absent), stays FastAPI's. Sits inside Starlette's
    ``ServerErrorMiddleware``: an unexpected error is still a logged 500."""

    def __init__(self, app: ASGIApp, gateway: Services) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/events" and scope["method"] == "POST":
            response = await receive_events(self.gateway, Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
