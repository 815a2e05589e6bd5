"""The collector: the gateway's HTTP API as an ASGI app (FastAPI), composed from declared routes.

``create_app`` builds the app's :class:`~xgate.collect.services.Services`, includes each area's router
(:mod:`xgate.collect.routes`, the browser tag's, the docs pages) and installs :class:`IngestLane` for the
hot path. Each area that serves browsers declares its paths to one :class:`~xgate.collect.cors.
BrowserPaths`, and :class:`~xgate.collect.cors.CorsMiddleware` (outside the lane) answers their preflights
and puts the CORS headers on all their answers. Building the outbox, the metrics and the dispatcher is the
caller's (:mod:`xgate.gateway`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException

from xgate import __version__
from xgate.collect.admin import AdminGuard
from xgate.collect.cors import BrowserPaths, CorsMiddleware
from xgate.collect.docs import add_pages
from xgate.collect.ingest import EventMapper
from xgate.collect.problems import (
    Problem,
    http_problem_handler,
    problem_handler,
    validation_problem_handler,
)
from xgate.collect.routes import activity, health, ingest
from xgate.collect.routes.ingest import IngestLane
from xgate.collect.routes.ingest import allow_browsers as allow_ingest
from xgate.collect.routes.sources import add_source_routes
from xgate.collect.runner import Background, BackgroundRunner
from xgate.collect.schema import component_schemas, validation_answers_are_problems
from xgate.collect.services import Services
from xgate.collect.writer import TakesLeasedRows
from xgate.config import Config
from xgate.observe.metrics import Metrics
from xgate.outbox.base import Outbox
from xgate.tag.routes import allow_browsers as allow_tag
from xgate.tag.routes import router as tag_router

log = logging.getLogger("xgate.collect")


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
    gateway = Services.build(
        config,
        outbox,
        mapper,
        metrics or Metrics(outbox),
        handoff=handoff,
        runner=BackgroundRunner(dispatcher) if dispatcher is not None else None,
        credential_problems=credential_problems,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        missing = gateway.keys.unresolved
        if missing:
            log.warning(
                "sources without a write key (environment variable unset): they cannot send",
                extra={"fields": {"sources": missing}},
            )
        gateway.writer.start()
        if gateway.runner:
            gateway.runner.start()
        try:
            yield
        finally:
            if gateway.runner:
                await gateway.runner.stop()
            await anyio.to_thread.run_sync(gateway.writer.stop)
            await anyio.to_thread.run_sync(gateway.rejections.close)
            await anyio.to_thread.run_sync(gateway.metrics.close)

    browser_paths = BrowserPaths()
    app = FastAPI(
        title="xgate",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted gateway for X's Conversions API.",
        # served by add_pages with assets from the gateway itself, not a CDN
        docs_url=None,
        redoc_url=None,
        # every error answer in one shape, those FastAPI and starlette make themselves too (404, 405, 422);
        # a 500 readable by the pages that may call its path (starlette sends it outside every middleware)
        exception_handlers={
            Problem: problem_handler,
            RequestValidationError: validation_problem_handler,
            HTTPException: http_problem_handler,
            Exception: browser_paths.server_error,
        },
    )
    app.state.config = config
    app.state.services = gateway
    app.state.metrics = gateway.metrics
    app.add_middleware(IngestLane, gateway=gateway)
    app.add_middleware(CorsMiddleware, paths=browser_paths)
    app.add_middleware(AdminGuard, keys=gateway.keys, admin_port=config.server.admin_port)
    for router in (ingest.router, health.router, activity.router, activity.pages, tag_router):
        app.include_router(router)
    allow_ingest(gateway, browser_paths)
    allow_tag(config, browser_paths)
    add_source_routes(app, gateway, browser_paths)
    if config.console.enabled:
        from xgate.console.routes import include_console

        include_console(app, gateway)
    add_pages(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
            validation_answers_are_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
