"""``GET /v1/activity``: recent events, newest first (admin key or a server source's key); ``GET /activity``
redirects to the console."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import RedirectResponse

from xgate.collect.schema import AUTH_RESPONSES, ActivityAnswer
from xgate.collect.services import Services, require_reader, services

router = APIRouter(dependencies=[Depends(require_reader)])
#: without access rules: the redirect to the console, which asks for a sign-in
pages = APIRouter()


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
    unmatched = await anyio.to_thread.run_sync(gateway.activity.unmatched)
    return Response(
        orjson.dumps({"entries": [e.as_json() for e in entries], "unmatched": unmatched}),
        media_type="application/json",
    )


@pages.get("/activity", include_in_schema=False)
async def activity_page() -> Response:
    """The old activity page (opened with a key in its URL) is the console's events page now; the query
    (``?write_key=``) is dropped, never passed on."""
    return RedirectResponse("/console/events", status_code=308)
