"""The endpoints of source kinds (Segment, GA4, webhooks: :mod:`xgate.collect.kinds`), added to the
collector for each kind a ``[[sources]]`` entry names.

A request goes: body under ``server.max_body_bytes`` → the kind authenticates it and picks the source →
the Origin, when sent, must be one of the source's ``allowed_origins`` → the kind's messages → each converted
(:func:`~xgate.collect.kinds.source_events`) → the same ingest as ``POST /v1/events``
(:func:`xgate.collect.routes.ingest.ingest_events`), answered with the same report. 401 for a request that
does not authenticate, 400 for a body the kind cannot read, 413 past the size or batch limits, 503 when the
outbox cannot store (nothing was: the sender retries). A kind whose senders take any 4xx for their own error
(:attr:`~xgate.collect.kinds.Kind.unmatched_ok`: Segment's) answers 200 when its events are rejected only for
want of an identifier X can match; they are reported, logged and counted as rejected all the same.

Every endpoint is declared to the app's CORS (:mod:`xgate.collect.cors`) for the origins of the kind's
sources: a page on one of them reads every answer, the 401 of a refused key included, and gets its
preflights; a handler here only refuses (403) an origin the key's own source does not allow.

A kind's telemetry endpoint (analytics.js's ``/v1/m``, :attr:`~xgate.collect.kinds.Endpoint.telemetry`)
takes no key and reads nothing: ``204``, 403 for a page on an origin no source of the kind allows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from xgate.collect.auth import origin_grant
from xgate.collect.cors import BrowserPaths
from xgate.collect.ingest import Settled
from xgate.collect.kinds import Inbound, Keyed, Kind, Refusal, kind_for, source_events
from xgate.collect.problems import problem as _problem
from xgate.collect.routes.ingest import ingest_events, request_body, source_grant
from xgate.collect.services import Services
from xgate.config import Config, WebhookSource
from xgate.observe.redact import excerpt, register_secrets

log = logging.getLogger("xgate.collect")


def keyed_sources(config: Config) -> dict[str, list[Keyed]]:
    """The sources of each kind other than ``xgate``, with their secrets read from the environment now."""
    by_kind: dict[str, list[Keyed]] = {}
    for source in config.sources:
        if source.kind == "xgate":
            continue
        secret = (
            source.resolve_signing_secret()
            if isinstance(source, WebhookSource)
            else source.resolve_write_key()
        )
        by_kind.setdefault(source.kind, []).append(Keyed(source, secret))
    return by_kind


class KindEndpoint:
    """The handler of one kind's endpoints."""

    def __init__(self, kind: Kind, sources: list[Keyed], gateway: Services) -> None:
        self.kind = kind
        self.sources = sources
        self.gateway = gateway

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        response = await self._handle(request)
        self.gateway.metrics.record_request(response.status_code, time.perf_counter() - started)
        return response

    async def _handle(self, request: Request) -> Response:
        settings = self.gateway.config.server
        body = await request_body(request, settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        inbound = Inbound(
            path=request.url.path,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
        )
        source = self.kind.authenticate(inbound, self.sources)
        if isinstance(source, Refusal):
            return _problem(source.status, source.error, source.message)
        grant = source_grant(source, request)
        if isinstance(grant, Response):
            return grant
        messages = self.kind.messages(inbound)
        if isinstance(messages, Refusal):
            return _problem(messages.status, messages.error, messages.message)
        converted = source_events(self.kind, source, messages)
        if len(converted) > settings.max_batch_events:
            return _problem(
                413,
                "batch_too_large",
                f"{len(converted)} events; at most {settings.max_batch_events} per request "
                "(server.max_batch_events): split the batch",
            )
        for c in converted:
            if c.ignored is not None:  # a refund, a cancellation, an unpaid order: on record, not sent
                log.info(
                    "recorded, not sent",
                    extra={
                        "fields": {
                            "source": source.name,
                            "kind": self.kind.name,
                            "name": c.name,
                            "reason": c.ignored,
                        }
                    },
                )
        events: list[Any] = [
            c.event
            if c.event is not None and not c.errors
            else Settled(c.name, ignored=c.ignored, errors=c.errors)
            for c in converted
        ]
        if not events:
            return Response(
                orjson.dumps({"accepted": 0, "duplicates": 0, "skipped": 0, "rejected": 0, "results": []}),
                media_type="application/json",
            )
        return await ingest_events(
            self.gateway,
            request,
            source,
            events,
            cookies=grant != "wildcard",
            unmatched_ok=self.kind.unmatched_ok,
        )


class TelemetryEndpoint:
    """The handler of a kind's telemetry endpoint: ``204`` and nothing read (see the module's docstring)."""

    def __init__(self, sources: list[Keyed]) -> None:
        self.origins = _origins(sources)

    async def __call__(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin and origin_grant(self.origins, origin) is None:
            return _problem(403, "origin_not_allowed", f"origin {excerpt(origin)} is not allowed to send")
        return Response(status_code=204)


def _origins(sources: list[Keyed]) -> frozenset[str]:
    """The allowed origins of every source of a kind: the pages that may call its endpoints."""
    return frozenset(o for keyed in sources for o in keyed.source.allowed_origins)


def add_source_routes(app: FastAPI, gateway: Services, paths: BrowserPaths) -> None:
    """Add the endpoints of every kind the configuration's sources name (none for ``xgate`` alone), each
    declared to the app's CORS for the origins of the kind's sources."""
    by_kind = keyed_sources(gateway.config)
    register_secrets(k.secret for keyed in by_kind.values() for k in keyed)
    for name, keyed in by_kind.items():
        kind = kind_for(name)
        if kind is None:
            log.warning(
                "no endpoint for this kind of source in this version",
                extra={"fields": {"kind": name, "sources": [k.source.name for k in keyed]}},
            )
            continue
        events: Callable[[Request], Awaitable[Response]] = KindEndpoint(kind, keyed, gateway)
        telemetry: Callable[[Request], Awaitable[Response]] = TelemetryEndpoint(keyed)
        for endpoint in kind.endpoints:
            app.add_api_route(
                endpoint.path,
                telemetry if endpoint.telemetry else events,
                methods=list(endpoint.methods),
                summary=endpoint.summary or f"{name} source",
                tags=[f"source: {name}"],
                response_class=Response,
            )
            paths.allow(endpoint.path, _origins(keyed), endpoint.methods)
