"""The collector: the gateway's HTTP API as an ASGI app (FastAPI)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from xgate import __version__
from xgate.collect.auth import Keyring, key_from_request, origin_allowed
from xgate.collect.body import BodyTooLarge, read_body
from xgate.collect.docs import add_pages
from xgate.collect.enrich import request_facts
from xgate.collect.ingest import EventMapper, Ingest
from xgate.collect.runner import Background, BackgroundRunner
from xgate.collect.schema import (
    AUTH_RESPONSES,
    INGEST_OPENAPI,
    ActivityAnswer,
    component_schemas,
)
from xgate.collect.sources import add_source_routes
from xgate.collect.writer import GroupWriter, TakesLeasedRows
from xgate.config import Config, Source
from xgate.errors import OutboxUnavailable
from xgate.observe.activity import ActivityLog, RejectionRing
from xgate.observe.destinations import DestinationState, destination_states
from xgate.observe.metrics import CONTENT_TYPE, Metrics
from xgate.observe.page import render_activity_page
from xgate.observe.redact import register_secrets
from xgate.outbox.base import EnqueueOutcome, Outbox
from xgate.tag.twclid import twclid_set_cookie

log = logging.getLogger("xgate.collect")

_CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Write-Key"
#: requests with at most this many events are mapped on the event loop; bigger ones in a thread
INLINE_EVENTS = 10
#: seconds a 503 asks the sender to wait while the outbox cannot store (xgate's backend client honours it)
RETRY_AFTER_SECONDS = 5


def _problem(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": error, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _batch(data: Any, max_events: int) -> list[Any] | Response:
    """The events of a body: one event object, or ``{"events": [...]}``."""
    if isinstance(data, dict) and "events" in data and "event_name" not in data:
        events = data["events"]
        if not isinstance(events, list):
            return _problem(400, "invalid_batch", "events: must be an array of event objects")
        if not events:
            return _problem(400, "invalid_batch", "events: must hold at least one event")
        if len(events) > max_events:
            return _problem(
                413,
                "batch_too_large",
                f"events: {len(events)} events; at most {max_events} per request "
                "(server.max_batch_events): split the batch",
            )
        return events
    if isinstance(data, dict):
        return [data]
    return _problem(400, "invalid_body", 'body: must be an event object or {"events": [...]}')


class _Gateway:
    """The state and the handlers of one app."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        mapper: EventMapper,
        metrics: Metrics,
        rejections: RejectionRing,
        handoff: TakesLeasedRows | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.keys = Keyring(config)
        register_secrets(self.keys.secrets)
        self.metrics = metrics
        self.activity = ActivityLog(outbox, rejections)
        self.ingest = Ingest(mapper, metrics, rejections)
        self.writer = GroupWriter(outbox, handoff=handoff)

    def authorize_reader(self, request: Request) -> Response | None:
        """Reading the activity log needs the admin key or a server source's write key."""
        key = key_from_request(request)
        if self.keys.is_admin(key):
            return None
        source = self.keys.source_for(key)
        if source is None:
            return _problem(
                401,
                "unauthorized",
                "send the admin key or a server write key "
                "(Authorization: Bearer KEY, X-Write-Key or ?write_key=)",
            )
        if source.allowed_origins:
            return _problem(
                403,
                "forbidden",
                f"source {source.name!r} is a browser source whose key is "
                "public; use the admin key or a server source's write key",
            )
        return None

    async def events(self, request: Request) -> Response:
        started = time.perf_counter()
        response = await self._events(request)
        self.metrics.record_request(response.status_code, time.perf_counter() - started)
        return response

    async def _events(self, request: Request) -> Response:
        source = self.keys.source_for(key_from_request(request))
        if source is None:
            return _problem(
                401,
                "unauthorized",
                "unknown or missing write key: send the source's key as "
                "Authorization: Bearer KEY, X-Write-Key: KEY or ?write_key=KEY",
            )
        origin = request.headers.get("origin")
        cors: dict[str, str] | None = None
        if origin:
            if not origin_allowed(source.allowed_origins, origin):
                return _problem(
                    403,
                    "origin_not_allowed",
                    f"origin {origin!r} is not in the allowed_origins of source {source.name!r}",
                )
            cors = _cors_headers(origin)
        try:
            raw = await read_body(request, self.config.server.max_body_bytes)
        except BodyTooLarge as e:
            return _problem(413, "body_too_large", str(e), cors)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return _problem(400, "invalid_json", f"body: not valid JSON ({e})", cors)
        events = _batch(data, self.config.server.max_batch_events)
        if isinstance(events, Response):
            events.headers.update(cors or {})
            return events
        return await self.ingest_events(request, source, events, cors)

    async def ingest_events(
        self, request: Request, source: Source, events: list[Any], cors: dict[str, str] | None
    ) -> Response:
        """Map, store and report ``events`` of ``source`` (xgate events, or :class:`~xgate.collect.ingest.
        Settled` entries a source kind made): the one ingest path of every endpoint."""
        settings = self.config.server
        facts = request_facts(request, settings, datetime.now(UTC))
        if not source.takes_request_context:  # a backend's address and user agent are not its user's
            facts = replace(facts, ip=None, user_agent=None)
        if len(events) <= INLINE_EVENTS:  # cheaper than a hop to a thread
            prepared = self.ingest.prepare(events, facts)
        else:  # a big batch would hold up the other requests
            prepared = await anyio.to_thread.run_sync(self.ingest.prepare, events, facts)
        outcomes: list[EnqueueOutcome] = []
        if prepared.conversions:
            try:
                outcomes = await self.writer.enqueue(prepared.conversions)
            except OutboxUnavailable:  # nothing stored: the sender must try again (logged by the writer)
                return _problem(
                    503,
                    "outbox_unavailable",
                    "the outbox could not store the events; nothing was stored, retry later",
                    (cors or {}) | {"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
        report = self.ingest.finish(prepared, outcomes, source.name)
        twclid = next(
            (e.twclid for e in reversed(report.events) if e.twclid and e.status != "rejected"), None
        )
        response = Response(
            orjson.dumps(report.as_json()),
            status_code=422 if report.all_rejected else 200,
            media_type="application/json",
            headers=cors,
        )
        if twclid:
            response.headers.append("set-cookie", twclid_set_cookie(twclid, settings, secure=facts.secure))
        return response

    def preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if not origin:
            return _problem(400, "not_a_preflight", "a CORS preflight needs an Origin header")
        key = request.query_params.get("write_key")
        source = self.keys.source_for(key) if key else None
        allowed = source.allowed_origins if source else self.keys.origins
        if not origin_allowed(frozenset(allowed), origin):
            return _problem(403, "origin_not_allowed", f"origin {origin!r} is not allowed to send events")
        headers = _cors_headers(origin) | {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
        }
        return Response(status_code=204, headers=headers)


class _IngestLane:
    """``POST /v1/events`` straight to its handler, past FastAPI's routing, dependency solving and
    per-route middleware: about 45 µs a request on the development machine, an eighth of what a
    one-event request costs the gateway. Everything else, and the OpenAPI document (from the declared
    route, which answers the same when this lane is absent), stays FastAPI's. Sits inside Starlette's
    ``ServerErrorMiddleware``: an unexpected error is still a logged 500."""

    def __init__(self, app: ASGIApp, gateway: _Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/events" and scope["method"] == "POST":
            response = await self.gateway.events(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(
    config: Config,
    outbox: Outbox,
    *,
    dispatcher: Background | None = None,
    handoff: TakesLeasedRows | None = None,
    mapper: EventMapper | None = None,
    metrics: Metrics | None = None,
    credential_problems: Callable[[], Mapping[str, list[str]]] | None = None,
) -> FastAPI:
    """The gateway's ASGI app. ``dispatcher`` (if given) runs beside it for the app's lifetime;
    ``handoff`` (the dispatcher's) takes new rows already leased.

    ``mapper`` defaults to :class:`xgate.mapping.Mapper` of ``config``; ``metrics`` to a fresh registry that
    also reads the outbox's queue depth at scrape time. ``credential_problems`` (the dispatcher's, per
    destination) makes ``/readyz`` report a destination this process cannot sign requests for.
    """
    if mapper is None:
        from xgate.mapping import Mapper

        mapper = Mapper(config)
    metrics = metrics or Metrics(outbox)
    gateway = _Gateway(config, outbox, mapper, metrics, RejectionRing(), handoff)
    runner = BackgroundRunner(dispatcher) if dispatcher is not None else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        missing = gateway.keys.unresolved
        if missing:
            log.warning(
                "sources without a write key (environment variable unset): they cannot send",
                extra={"fields": {"sources": missing}},
            )
        gateway.writer.start()
        if runner:
            runner.start()
        try:
            yield
        finally:
            if runner:
                await runner.stop()
            await anyio.to_thread.run_sync(gateway.writer.stop)

    app = FastAPI(
        title="xgate",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted gateway for X's Conversions API.",
        # served by add_pages with assets from the gateway itself, not a CDN
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    app.state.gateway = gateway
    app.state.metrics = metrics
    app.add_middleware(_IngestLane, gateway=gateway)

    @app.post(
        "/v1/events",
        openapi_extra=INGEST_OPENAPI,
        summary="Send one event or a batch",
        response_class=Response,
    )
    async def post_events(request: Request) -> Response:
        return await gateway.events(request)

    @app.options("/v1/events", include_in_schema=False)
    async def preflight_events(request: Request) -> Response:
        return gateway.preflight(request)

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Ready to take events: the outbox can store and the dispatcher (if enabled) runs",
        description=(
            "200 `ready`, or 200 `degraded` when a destination cannot deliver (its credentials, or X "
            "refusing them: 401/403/404) while ingest still works; 503 `not ready` when the outbox cannot "
            "store or this process's dispatcher stopped. `destinations` gives each one's status and reason."
        ),
        responses={503: {"description": "not ready, with the reasons"}},
    )
    async def readyz() -> Response:
        return await anyio.to_thread.run_sync(readiness)

    def readiness() -> Response:
        problems: list[str] = []
        states: list[DestinationState] = []
        try:
            outbox.ping()
            health = outbox.health()
        except OutboxUnavailable as e:
            problems.append(f"outbox unavailable: {e}")
        else:
            credentials = credential_problems() if credential_problems is not None else None
            states = destination_states((d.name for d in config.destinations), health, credentials)
        if runner is not None and not runner.running:
            problems.append("dispatcher not running")
        blocked = any(state.status == "blocked" for state in states)
        body = {
            "status": "not ready" if problems else "degraded" if blocked else "ready",
            "problems": problems,
            "destinations": {state.name: state.as_json() for state in states},
        }
        return Response(
            orjson.dumps(body), status_code=503 if problems else 200, media_type="application/json"
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics_endpoint() -> Response:
        body = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get(
        "/v1/activity",
        summary="Recent events, newest first",
        response_model=ActivityAnswer,
        responses=AUTH_RESPONSES,
    )
    async def activity(request: Request, limit: int = Query(50, ge=1, le=500)) -> Response:
        denied = gateway.authorize_reader(request)
        if denied:
            return denied
        entries = await anyio.to_thread.run_sync(gateway.activity.recent, limit)
        return Response(
            orjson.dumps({"entries": [e.as_json() for e in entries]}), media_type="application/json"
        )

    @app.get(
        "/activity", summary="The activity page (HTML)", response_class=HTMLResponse, responses=AUTH_RESPONSES
    )
    async def activity_page(request: Request, limit: int = Query(100, ge=1, le=500)) -> Response:
        denied = gateway.authorize_reader(request)
        if denied:
            return denied
        entries = await anyio.to_thread.run_sync(gateway.activity.recent, limit)
        return HTMLResponse(render_activity_page(entries))

    from xgate.tag.routes import router as tag_router

    app.include_router(tag_router)
    add_source_routes(app, gateway)
    add_pages(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
