"""``/healthz`` (alive), ``/readyz`` (ready to take events) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Response

from xgate.collect.schema import ADMIN_RESPONSES
from xgate.collect.services import Services, services
from xgate.errors import OutboxUnavailable
from xgate.observe.destinations import DestinationState, destination_states
from xgate.observe.metrics import CONTENT_TYPE

router = APIRouter()


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness(gateway: Services) -> Response:
    """The ``/readyz`` answer: blocking (it asks the outbox), so run in a thread."""
    problems: list[str] = []
    states: list[DestinationState] = []
    try:
        gateway.outbox.ping()
        health = gateway.outbox.health()
    except OutboxUnavailable as e:
        problems.append(f"outbox unavailable: {e}")
    else:
        found = gateway.credential_problems() if gateway.credential_problems is not None else None
        states = destination_states((d.name for d in gateway.config.destinations), health, found)
    if gateway.runner is not None and not gateway.runner.running:
        problems.append("dispatcher not running")
    blocked = any(state.status == "blocked" for state in states)
    body = {
        "status": "not ready" if problems else "degraded" if blocked else "ready",
        "problems": problems,
        "destinations": {state.name: state.as_json() for state in states},
    }
    return Response(orjson.dumps(body), status_code=503 if problems else 200, media_type="application/json")


@router.get(
    "/readyz",
    summary="Ready to take events: the outbox can store and the dispatcher (if enabled) runs",
    description=(
        "200 `ready`, or 200 `degraded` when a destination cannot deliver (its credentials, or X "
        "refusing them: 401/403/404) while ingest still works; 503 `not ready` when the outbox cannot "
        "store or this process's dispatcher stopped. `destinations` gives each one's status and reason."
    ),
    responses={503: {"description": "not ready, with the reasons"}},
)
async def readyz(gateway: Annotated[Services, Depends(services)]) -> Response:
    return await anyio.to_thread.run_sync(readiness, gateway)


@router.get(
    "/metrics",
    summary="Prometheus metrics (the admin listener, or the admin key)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **ADMIN_RESPONSES},
)
async def metrics_endpoint(gateway: Annotated[Services, Depends(services)]) -> Response:
    body = await anyio.to_thread.run_sync(gateway.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
