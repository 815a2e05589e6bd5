"""``GET /v1/activity``: recent events, newest first (admin key or a server source's key)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse

from xgate.collect.schema import AUTH_RESPONSES, ActivityAnswer
from xgate.collect.services import Services, require_reader, services
from xgate.observe.page import render_activity_page

router = APIRouter(dependencies=[Depends(require_reader)])


@router.get(
    "/v1/activity",
    summary="Recent events, newest first",
    response_model=ActivityAnswer,
    responses=AUTH_RESPONSES,
)
async def activity(
    gateway: Annotated[Services, Depends(services)], limit: int = Query(50, ge=1, le=500)
) -> Response:
    entries = await anyio.to_thread.run_sync(gateway.activity.recent, limit)
    return Response(orjson.dumps({"entries": [e.as_json() for e in entries]}), media_type="application/json")


@router.get(
    "/activity", summary="The activity page (HTML)", response_class=HTMLResponse, responses=AUTH_RESPONSES
)
async def activity_page(
    gateway: Annotated[Services, Depends(services)], limit: int = Query(100, ge=1, le=500)
) -> Response:
    entries = await anyio.to_thread.run_sync(gateway.activity.recent, limit)
    return HTMLResponse(render_activity_page(entries))
