"""The console's routes: HTML pages under ``/console`` and the JSON API under ``/console/api`` (in the
OpenAPI document, tag ``console``): the pages are one client of the API's data, scripts another.

Access (:mod:`xgate.console.access`): a page without a session redirects to the sign-in page; the API
answers 401. A viewer reads; replay and discard need the admin role (403) and, with a session cookie, the
CSRF token (403 ``csrf``). Pages carry a Content-Security-Policy that allows scripts and styles from the
gateway only (the console's scripts are static files; nothing comes from a CDN).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from xgate import __version__
from xgate.collect.auth import key_from_headers
from xgate.collect.enrich import request_facts
from xgate.collect.problems import (
    Problem,
    http_problem_handler,
    problem_handler,
    validation_problem_handler,
)
from xgate.collect.services import Services, services
from xgate.config_check import findings
from xgate.console import views
from xgate.console.access import (
    COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_FORM_SECONDS,
    ConsoleAccess,
    Session,
    SessionUnverifiable,
    SignInThrottle,
)
from xgate.errors import OutboxUnavailable
from xgate.observe.redact import error_text, scrub
from xgate.outbox.base import Outbox, OutboxRow, RowState

PREFIX = "/console"
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
#: seconds between two looks at the outbox by a live stream
STREAM_POLL_SECONDS = 1.0
#: a live stream's life: then it sends ``event: renew`` and ends, and the page opens the next one, watching
#: the rows it shows by then (an EventSource reconnecting on its own would reuse its first address)
STREAM_LIFE_SECONDS = 300.0
#: rows per page of the events page; dead letters on the dead letters page; dead letters one action may select
PAGE_ROWS = 100
DEAD_PAGE_ROWS = 500
DEAD_ROWS = 10_000
#: a live stream's look at the outbox: the newest rows, and at most this many rows watched besides them
STREAM_ROWS = 100
STREAM_WATCH = 500

_templates = Environment(
    loader=PackageLoader("xgate.console", "templates"), autoescape=select_autoescape(["html"])
)


def _time(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) + " UTC" if value else "—"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return (
        f"{value * 1000:.0f} ms"
        if value < 1
        else f"{value:.1f} s"
        if value < 120
        else f"{value / 60:.0f} min"
    )


def _setting(value: Any) -> str:
    """A setting's value: text as it is, anything else as JSON (``false``, ``[]``,
    ``{"path": "custom.channel"}``, spaced so that a long one wraps); ``—`` when unset."""
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


_templates.filters["time"] = _time
_templates.filters["setting"] = _setting
_templates.filters["seconds"] = _seconds
_templates.filters["share"] = lambda v: "—" if v is None else f"{v:.0%}"
_templates.filters["pretty"] = lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()


#: the largest form the console reads (a selection of dead letters is the biggest)
MAX_FORM_BYTES = 256_000


async def _form(request: Request) -> dict[str, list[str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body (the console's forms send nothing
    else); an empty dict for another type. Read once: Starlette caches the body."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Problem(413, "form_too_large", f"body: larger than {MAX_FORM_BYTES} bytes")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


class SignInRequired(Exception):
    """Raised by a page's access dependency without a session: answered with a redirect to sign in."""


class Viewer:
    """Who is asking: a session (cookie) or a key (``Authorization: Bearer``, scripts)."""

    def __init__(self, role: str, session: Session | None) -> None:
        self.role = role
        self.session = session

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _access(request: Request) -> ConsoleAccess:
    found = getattr(request.app.state, "console_access", None)
    if not isinstance(found, ConsoleAccess):
        raise RuntimeError("the console's routes need app.state.console_access (include_console)")
    return found


def _who(request: Request) -> Viewer | None:
    """Who sent ``request``. Blocking (a session check reads the outbox's sign-outs): call it from a
    thread. Raises Problem 503 when a session cannot be checked."""
    access = _access(request)
    try:
        session = access.session(request.cookies.get(COOKIE))
    except SessionUnverifiable as e:
        raise Problem(503, "storage_unavailable", f"cannot check the session now ({e}): try again") from e
    if session is not None:
        return Viewer(session.role, session)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        role = access.role_for(key_from_headers(request))
        if role is not None:
            return Viewer(role, None)
    return None


def api_reader(request: Request) -> Viewer:
    """Dependency of the API: a session or a console key, else 401."""
    who = _who(request)
    if who is None:
        raise Problem(
            401,
            "unauthorized",
            "sign in at /console, or send the admin or viewer key as Authorization: Bearer KEY",
        )
    return who


def page_reader(request: Request) -> Viewer:
    """Dependency of the pages: a session, else a redirect to the sign-in page."""
    who = _who(request)
    if who is None or who.session is None:
        raise SignInRequired()
    return who


async def admin(request: Request, who: Annotated[Viewer, Depends(api_reader)]) -> Viewer:
    """Dependency of every state-changing request: the admin role, and with a session its CSRF token
    (``X-CSRF-Token`` header or ``csrf`` form field)."""
    if not who.is_admin:
        raise Problem(
            403, "forbidden", "replay, discard and test sends need the admin role; you signed in as viewer"
        )
    if who.session is not None:
        token = request.headers.get("x-csrf-token")
        if token is None and request.headers.get("content-type", "").startswith("application/x-www-form"):
            token = (await _form(request)).get("csrf", [None])[0]
        if not _access(request).csrf_ok(who.session, token):
            raise Problem(403, "csrf", "missing or wrong CSRF token: reload the page and try again")
    return who


Gateway = Annotated[Services, Depends(services)]
Reader = Annotated[Viewer, Depends(api_reader)]
PageReader = Annotated[Viewer, Depends(page_reader)]
Admin = Annotated[Viewer, Depends(admin)]

router = APIRouter(prefix=PREFIX)


def _render(
    request: Request, name: str, who: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    access = _access(request)
    csrf = access.csrf_token(who.session) if who is not None and who.session is not None else ""
    html = _templates.get_template(name).render(
        request=request, who=who, csrf=csrf, version=__version__, prefix=PREFIX, **context
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


# -- sign-in ------------------------------------------------------------------------------------------
def _secure(request: Request, gateway: Services) -> bool:
    return request_facts(request, gateway.config.server, datetime.now(UTC)).secure


def _sign_in_page(request: Request, gateway: Services, status: int = 200, **context: Any) -> Response:
    """The sign-in page with a fresh form: its token in the page, its pre-session cookie set."""
    access = _access(request)
    cookie, token = access.sign_in_form()
    context |= {"configured": access.configured, "form_token": token}
    response = _render(request, "sign_in.html", None, status=status, **context)
    response.set_cookie(
        SIGN_IN_COOKIE,
        cookie,
        max_age=SIGN_IN_FORM_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request, gateway),
    )
    return response


@router.get("/sign-in", include_in_schema=False)
async def sign_in_page(request: Request, gateway: Gateway) -> Response:
    if request.cookies.get(COOKIE) and await anyio.to_thread.run_sync(_who, request) is not None:
        return RedirectResponse(PREFIX, status_code=303)
    return _sign_in_page(request, gateway)


@router.post("/sign-in", include_in_schema=False)
async def sign_in(request: Request, gateway: Gateway) -> Response:
    form = await _form(request)
    access = _access(request)
    if not access.sign_in_form_ok(request.cookies.get(SIGN_IN_COOKIE), form.get("csrf", [""])[0]):
        # login CSRF: a form this console did not just issue (another site's, or an expired one)
        return _sign_in_page(request, gateway, status=403, stale=True)
    key = form.get("key", [""])[0]
    throttle: SignInThrottle = request.app.state.console_throttle
    client = _client(request)
    wait = throttle.delay(client)
    if wait:
        await asyncio.sleep(wait)
    role = access.role_for(key.strip())
    if role is None:
        throttle.failed(client)
        return _sign_in_page(
            request,
            gateway,
            status=401,
            failed=True,
            wait=throttle.delay(client),  # said, so a slow answer to the next try is no mystery
        )
    throttle.succeeded(client)
    cookie, session = access.open_session(role)
    secure = _secure(request, gateway)
    response = RedirectResponse(PREFIX, status_code=303)
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(session.expires_at - time.time()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    return response


@router.post("/sign-out", include_in_schema=False)
async def sign_out(request: Request, who: Annotated[Viewer, Depends(page_reader)]) -> Response:
    form = await _form(request)
    assert who.session is not None
    if not _access(request).csrf_ok(who.session, form.get("csrf", [""])[0]):
        raise Problem(403, "csrf", "missing or wrong CSRF token: reload the page and try again")
    try:
        await anyio.to_thread.run_sync(_access(request).close_session, who.session)
    except OutboxUnavailable as e:
        raise Problem(503, "storage_unavailable", f"could not sign out ({e}): try again") from e
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


#: the overview's window for events received and X's answers, every node's (views.WINDOWS)
OverviewWindow = Annotated[
    views.Window, Query(description="the last hour, day or week: events and X's answers of every node in it")
]


# -- pages --------------------------------------------------------------------------------------------
@router.get("", include_in_schema=False)
async def overview_page(
    request: Request, who: PageReader, gateway: Gateway, window: OverviewWindow = "day"
) -> Response:
    data = await anyio.to_thread.run_sync(_overview, gateway, window)
    return _render(
        request, "overview.html", who, page="overview", data=data, chart=orjson.dumps(data["charts"]).decode()
    )


@dataclass(frozen=True)
class EventFilters:
    """The filters of the events page and of ``/api/events`` (None: no filter), and ``before``: only ids
    below it (the next page)."""

    destination: str | None = None
    state: RowState | None = None
    event_name: str | None = None
    source: str | None = None
    error: str | None = None
    before: int | None = None

    def rows(self, outbox: Outbox, *, limit: int, conversion_id: str | None = None) -> list[OutboxRow]:
        """Newest first, at most ``limit`` stored conversions these filters (and ``conversion_id``) take."""
        return views.filter_rows(outbox, **asdict(self), conversion_id=conversion_id, limit=limit)

    def form(self) -> dict[str, str]:
        """The filters as the page's form shows them (empty: none)."""
        return {k: v or "" for k, v in asdict(self).items() if k != "before"}


def event_filters(
    destination: str | None = None,
    state: RowState | None = None,
    event_name: str | None = None,
    source: str | None = None,
    error: Annotated[str | None, Query(description="a case-insensitive substring of the last error")] = None,
    before: Annotated[int | None, Query(description="only ids below this one: the next page")] = None,
) -> EventFilters:
    """Dependency: the :class:`EventFilters` of a request's query."""
    return EventFilters(destination, state, event_name, source, error, before)


Filters = Annotated[EventFilters, Depends(event_filters)]


@router.get("/events", include_in_schema=False)
async def events_page(request: Request, who: PageReader, gateway: Gateway, filters: Filters) -> Response:
    rows = await anyio.to_thread.run_sync(lambda: filters.rows(gateway.outbox, limit=PAGE_ROWS))
    unmatched = await anyio.to_thread.run_sync(gateway.activity.unmatched)
    shown = filters.form()
    older = None
    if len(rows) == PAGE_ROWS:
        older = urlencode({k: v for k, v in shown.items() if v} | {"before": rows[-1].id})
    return _render(
        request,
        "events.html",
        who,
        page="events",
        rows=[views.row_json(r) for r in rows],
        watch_most=STREAM_WATCH,
        filters=shown,
        destinations=[d.name for d in gateway.config.destinations],
        sources=[s.name for s in gateway.config.sources],
        states=views.STATES,
        older=older,
        paged=filters.before is not None,
        unmatched=unmatched,
    )


@router.get("/events/{row_id}", include_in_schema=False)
async def event_page(request: Request, row_id: int, who: PageReader, gateway: Gateway) -> Response:
    data = await anyio.to_thread.run_sync(views.event_page, gateway.config, gateway.outbox, row_id)
    if data is None:
        return _render(request, "missing.html", who, status=404, page="events", row_id=row_id)
    return _render(request, "event.html", who, page="events", data=data)


@router.get("/dead", include_in_schema=False)
async def dead_page(
    request: Request, who: PageReader, gateway: Gateway, error: str | None = None
) -> Response:
    rows = await anyio.to_thread.run_sync(
        lambda: views.filter_rows(gateway.outbox, state="dead", error=error, limit=DEAD_PAGE_ROWS + 1)
    )
    return _render(
        request,
        "dead.html",
        who,
        page="dead",
        rows=[views.row_json(r) for r in rows[:DEAD_PAGE_ROWS]],
        more=len(rows) > DEAD_PAGE_ROWS,  # then "replay all" acts on more than the page shows
        most=DEAD_ROWS,
        error=error or "",
    )


@router.post("/dead", include_in_schema=False)
async def dead_action(request: Request, who: Admin, gateway: Gateway) -> Response:
    form = await _form(request)
    action = form.get("action", [None])[0]
    ids = [int(v) for v in form.get("id", []) if v.isdigit()]
    error = form.get("error", [""])[0] or None
    if action not in ("replay", "replay_all", "discard"):
        raise Problem(400, "invalid_action", "action: must be replay, replay_all or discard")
    if action == "replay_all":
        ids = await _dead_ids(gateway, error)
    if not ids:
        raise Problem(400, "nothing_selected", "id: select at least one dead letter")
    if action == "discard":
        moved = await _settle_dead(gateway, "discard", ids)
        return _render(request, "dead_result.html", who, page="dead", action="discarded", moved=moved, ids=[])
    moved = await _settle_dead(gateway, "replay", ids)
    # followed as it happens: as many as a page lists (every id rides in the fragment's URL)
    followed = ids[:DEAD_PAGE_ROWS]
    return _render(
        request, "dead_result.html", who, page="dead", action="replayed", moved=moved, ids=followed
    )


@router.get("/quality", include_in_schema=False)
async def quality_page(
    request: Request, who: PageReader, gateway: Gateway, period: Period = "day"
) -> Response:
    data = await anyio.to_thread.run_sync(lambda: views.match_quality(gateway.config, gateway.outbox, period))
    return _render(
        request,
        "quality.html",
        who,
        page="quality",
        data=data,
        periods=list(views.PERIODS),
        chart=orjson.dumps({"t": data["t"], "rows": [r["series"] for r in data["rows"]]}).decode(),
    )


@router.get("/config", include_in_schema=False)
async def config_page(request: Request, who: PageReader, gateway: Gateway) -> Response:
    return _render(request, "config.html", who, page="config", data=_configuration(gateway))


@router.get("/test", include_in_schema=False)
async def test_page(
    request: Request, who: PageReader, gateway: Gateway, sample: str = "purchase"
) -> Response:
    event = views.SAMPLE_EVENTS.get(sample, views.SAMPLE_EVENTS["purchase"])
    return _render(
        request,
        "test.html",
        who,
        page="test",
        text=orjson.dumps(event, option=orjson.OPT_INDENT_2).decode(),
        samples=list(views.SAMPLE_EVENTS),
        sample=sample,
    )


@router.post("/test", include_in_schema=False)
async def test_action(request: Request, who: PageReader, gateway: Gateway) -> Response:
    form = await _form(request)
    text = form.get("event", [""])[0]
    action = form.get("action", ["dry_run"])[0]
    if action == "send":
        await admin(request, who)
    event, problem = _event_of(text)
    result = (
        views.dry_run(gateway.config, event) if problem is None else {"errors": [problem], "destinations": []}
    )
    sent = await _send(gateway, result) if action == "send" and not result["errors"] else None
    if request.headers.get("hx-request"):  # the result only: the pasted text stays in the browser
        return _render(request, "_test_result.html", who, result=result, sent=sent)
    return _render(
        request,
        "test.html",
        who,
        page="test",
        text=scrub(text),  # shown again without a page's worth of e-mail addresses or phone numbers
        samples=list(views.SAMPLE_EVENTS),
        sample="",
        result=result,
        sent=sent,
    )


@router.get("/fragments/rows", include_in_schema=False)
async def rows_fragment(request: Request, who: PageReader, gateway: Gateway, ids: str = "") -> Response:
    wanted = [int(i) for i in ids.split(",") if i.isdigit()][:500]
    rows = await anyio.to_thread.run_sync(lambda: [r for i in wanted if (r := gateway.outbox.row(i))])
    return _render(request, "rows_fragment.html", who, rows=[views.row_json(r) for r in rows])


# -- the JSON API -------------------------------------------------------------------------------------
def _overview(gateway: Services, window: views.Window) -> dict[str, Any]:
    return views.overview(
        gateway.config, gateway.outbox, gateway.metrics, gateway.credential_problems, window=window
    )


def _dead_matching(gateway: Services, error: str | None) -> list[Any]:
    return views.filter_rows(gateway.outbox, state="dead", error=error, limit=DEAD_ROWS)


async def _dead_ids(gateway: Services, error: str | None) -> list[int]:
    """The ids of the dead letters whose error contains ``error`` (all when None), newest first."""
    return [r.id for r in await anyio.to_thread.run_sync(_dead_matching, gateway, error)]


#: what the console does to dead letters: replay (queued again, due now) or discard (deleted, never sent)
DeadAction = Literal["replay", "discard"]


async def _settle_dead(gateway: Services, action: DeadAction, ids: list[int]) -> int:
    """Replay or discard the dead letters ``ids`` (the page's and the API's one way): how many moved
    (those still dead)."""
    if not ids:
        return 0
    act = gateway.outbox.replay if action == "replay" else gateway.outbox.discard
    return await anyio.to_thread.run_sync(act, ids)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


TAGS: list[str | Enum] = ["console"]
READ: dict[int | str, dict[str, Any]] = {401: {"description": "not signed in and no console key"}}


@router.get(
    "/api/overview",
    summary="Per destination and source: counts, latency, answers, health",
    tags=TAGS,
    responses=READ,
)
async def api_overview(who: Reader, gateway: Gateway, window: OverviewWindow = "day") -> Response:
    return _json(await anyio.to_thread.run_sync(_overview, gateway, window))


@router.get("/api/events", summary="Stored conversions, newest first, filtered", tags=TAGS, responses=READ)
async def api_events(
    who: Reader,
    gateway: Gateway,
    filters: Filters,
    conversion_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    rows = await anyio.to_thread.run_sync(
        lambda: filters.rows(gateway.outbox, limit=limit, conversion_id=conversion_id)
    )
    page: dict[str, Any] = {"conversions": [views.row_json(r) for r in rows]}
    page["next_before"] = rows[-1].id if len(rows) == limit else None
    return _json(page)


@router.get(
    "/api/events/{row_id}",
    summary="One conversion: the body sent to X, attempts, X's answer, dedup diagnostics",
    tags=TAGS,
    responses=READ | {404: {"description": "no such conversion"}},
)
async def api_event(row_id: int, who: Reader, gateway: Gateway) -> Response:
    data = await anyio.to_thread.run_sync(views.event_page, gateway.config, gateway.outbox, row_id)
    if data is None:
        raise Problem(404, "not_found", f"row_id: no conversion {row_id} (never stored, purged or discarded)")
    return _json(data)


@router.get(
    "/api/stream",
    summary="Server-sent events: each conversion stored or changing state, and each rejected event; "
    "a session's stream ends (event signed-out) within a second of its sign-out on any node; "
    f"every stream ends after {STREAM_LIFE_SECONDS:.0f} s (event renew): open the next one, watching the "
    "conversions shown by then",
    tags=["console"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        401: {"description": "not signed in"},
    },
)
async def api_stream(
    request: Request,
    who: Reader,
    gateway: Gateway,
    watch: Annotated[
        str,
        Query(
            description="comma-separated ids of conversions the client shows: each change of their state is "
            f"sent too, even when they are not among the newest {STREAM_ROWS} (at most {STREAM_WATCH} ids)"
        ),
    ] = "",
) -> StreamingResponse:
    access = _access(request)
    # conversions whose next state change is sent even when they are not among the newest: those the
    # client shows and those this stream sent, until they are delivered (a delivered row changes no more)
    watched = {int(i) for i in watch.split(",")[:STREAM_WATCH] if i.isdigit()}

    def changed_rows() -> list[Any]:
        rows = gateway.outbox.rows(limit=STREAM_ROWS)
        newest = {r.id for r in rows}
        for i in sorted(watched - newest):
            row = gateway.outbox.row(i)
            if row is None:
                watched.discard(i)  # purged or discarded
            else:
                rows.append(row)
        return sorted(rows, key=lambda r: r.updated_at)

    def still_open(session: Session) -> bool:
        try:
            return access.is_open(session)
        except SessionUnverifiable:
            return False

    async def stream() -> Any:
        seen: dict[int, tuple[str, float]] = {}
        rejected_seen: set[tuple[float, str, str]] = set()
        ends = time.monotonic() + STREAM_LIFE_SECONDS
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            if time.monotonic() >= ends:
                yield b"event: renew\ndata: {}\n\n"  # the client opens the next stream, with its rows now
                return
            if who.session is not None and not await anyio.to_thread.run_sync(still_open, who.session):
                yield b"event: signed-out\ndata: {}\n\n"  # signed out on some node, or expired
                return
            for r in await anyio.to_thread.run_sync(changed_rows):
                if r.state == "delivered":
                    watched.discard(r.id)
                elif len(watched) < STREAM_WATCH:
                    watched.add(r.id)
                mark = (r.state, r.updated_at)
                if seen.get(r.id) != mark:
                    seen[r.id] = mark
                    yield b"event: conversion\ndata: " + orjson.dumps(views.row_json(r)) + b"\n\n"
            rejected = await anyio.to_thread.run_sync(gateway.rejections.recent, 50)  # every node's
            for e in reversed(rejected):
                key = (e.at, e.event_name, e.error or "")
                if key not in rejected_seen:
                    rejected_seen.add(key)
                    yield b"event: rejected\ndata: " + orjson.dumps(e.as_json()) + b"\n\n"
            if len(seen) > 5000:
                seen = dict(list(seen.items())[-1000:])
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get(
    "/api/dead",
    summary="Dead letters, newest first (those whose error contains `error`)",
    tags=TAGS,
    responses=READ,
)
async def api_dead(who: Reader, gateway: Gateway, error: str | None = None) -> Response:
    rows = await anyio.to_thread.run_sync(_dead_matching, gateway, error)
    return _json({"dead": [views.row_json(r) for r in rows]})


class DeadSelection(BaseModel):
    """Which dead letters: these ``ids``, or (without ids) every dead letter whose error contains ``error``
    (every dead letter when both are absent)."""

    ids: list[int] | None = Field(default=None, max_length=10_000)
    error: str | None = None


async def _select(gateway: Services, selection: DeadSelection) -> list[int]:
    return selection.ids if selection.ids is not None else await _dead_ids(gateway, selection.error)


WRITE: dict[int | str, dict[str, Any]] = READ | {
    400: {"description": "the body is not JSON"},
    403: {"description": "not an admin, or no CSRF token"},
}


def _dead_letters_route(action: DeadAction, done: str, summary: str) -> None:
    """``POST /api/dead/{action}`` (admin): the selected dead letters replayed or discarded; answers
    ``{done: how many moved, "ids": the ids selected}``. One handler for both actions."""

    async def settle(selection: DeadSelection, who: Admin, gateway: Gateway) -> Response:
        ids = await _select(gateway, selection)
        return _json({done: await _settle_dead(gateway, action, ids), "ids": ids})

    router.add_api_route(
        f"/api/dead/{action}",
        settle,
        methods=["POST"],
        name=f"api_{action}",
        summary=summary,
        tags=TAGS,
        responses=WRITE,
    )


_dead_letters_route("replay", "replayed", "Replay dead letters (admin): queued again, due now")
_dead_letters_route("discard", "discarded", "Discard dead letters (admin): deleted, never sent")


Period = Literal["hour", "day", "week"]


def _configuration(gateway: Services) -> dict[str, Any]:
    return views.configuration(gateway.config, findings(gateway.config))


def _event_of(text: str) -> tuple[Any, str | None]:
    """The event pasted on the test page, or why it cannot be read (never the text itself: it may hold
    an e-mail address)."""
    if len(text) > MAX_FORM_BYTES:
        return None, f"event: larger than {MAX_FORM_BYTES} bytes"
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as e:
        return None, f"event: not JSON ({e.msg} at line {e.lineno}, column {e.colno})"


async def _send(gateway: Services, dry: dict[str, Any]) -> list[dict[str, Any]]:
    """Send each body of a dry run to X for real, one request per destination, outside the outbox (not
    stored, not deduplicated: X's own dedup on conversion_id still applies). X's answer per destination,
    or why it could not be sent (missing credentials)."""
    from xgate.x import AsyncXClient, Credentials

    answers: list[dict[str, Any]] = []
    destinations = {d.name: d for d in gateway.config.destinations}
    for planned in dry["destinations"]:
        if planned["status"] != "would send":
            continue
        d = destinations[planned["destination"]]
        try:
            credentials = Credentials.from_env(
                prefix=d.credentials_env_prefix, auth=d.auth, secrets_file=gateway.config.x.secrets_file
            )
        except Exception as e:  # a missing variable: say which, send nothing
            answers.append({"destination": d.name, "outcome": "unsent", "reason": scrub(f"credentials: {e}")})
            continue
        async with AsyncXClient(gateway.config.x, credentials) as client:
            result = await client.send(d.pixel_id, [planned["body"]])
        answers.append(
            {
                "destination": d.name,
                "outcome": result.outcome,
                "status": result.status_code,
                "debug_id": result.debug_id,
                "reason": scrub(result.reason) if result.reason else None,
            }
        )
    return answers


@router.get("/api/quality", summary="Match quality per destination and X event", tags=TAGS, responses=READ)
async def api_quality(who: Reader, gateway: Gateway, period: Period = "day") -> Response:
    return _json(
        await anyio.to_thread.run_sync(lambda: views.match_quality(gateway.config, gateway.outbox, period))
    )


@router.get(
    "/api/config",
    summary="Sources, destinations, event maps, filters, consent and config check's findings (no secrets)",
    tags=TAGS,
    responses=READ,
)
async def api_config(who: Reader, gateway: Gateway) -> Response:
    return _json(_configuration(gateway))


class TestEvent(BaseModel):
    """An xgate event to map (``dry_run``) or, as admin, to send to X for real (``send``)."""

    event: dict[str, Any]
    send: bool = False


@router.post(
    "/api/test",
    summary="Map an event for every destination (a dry run); with send=true (admin) send it to X",
    tags=TAGS,
    responses=WRITE,
)
async def api_test(test: TestEvent, request: Request, who: Reader, gateway: Gateway) -> Response:
    if test.send:
        await admin(request, who)
    result = views.dry_run(gateway.config, test.event)
    sent = await _send(gateway, result) if test.send and not result["errors"] else None
    return _json(result | {"sent": sent})


# -- wiring -------------------------------------------------------------------------------------------
async def _sign_in_redirect(request: Request, exc: Exception) -> Response:
    if request.headers.get("hx-request"):  # htmx would put the sign-in page inside the page: it goes there
        return Response(status_code=200, headers={"HX-Redirect": f"{PREFIX}/sign-in", **PAGE_HEADERS})
    return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)


def _is_page(request: Request) -> bool:
    """Whether ``request`` came from a person on a console page (HTML), not from a script (the API)."""
    path = request.url.path
    return path.startswith(PREFIX) and not path.startswith((f"{PREFIX}/api/", f"{PREFIX}/static/"))


#: the heading of a console page's error, by HTTP status (others: the first)
_ERROR_HEADINGS = {
    400: "That could not be done",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    413: "Too large",
    422: "That request is not valid",
    503: "Not available right now",
}


def _html_errors(json_handler: Any) -> Any:
    """An exception handler answering a console page's error as a page (or, to htmx, as a fragment it
    swaps into its target) that says what went wrong in words; every other route keeps ``json_handler``'s
    JSON answer (``{"error", "message"}``, :mod:`xgate.collect.problems`), whose message the page shows."""

    async def handle(request: Request, exc: Exception) -> Response:
        answer: Response = await json_handler(request, exc)
        if not _is_page(request) or answer.media_type != "application/json":
            return answer
        found = orjson.loads(bytes(answer.body))
        message = found.get("message") or "something went wrong"
        if isinstance(exc, StarletteHTTPException) and found.get("error") == "not_found":
            message = f"There is no console page at {error_text(request.url.path, 200)}."
        try:
            who = await anyio.to_thread.run_sync(_who, request)
        except Problem:  # the session cannot be checked: the page has no menu
            who = None
        referer = request.headers.get("referer", "")
        back = referer if referer.startswith(f"{request.base_url}{PREFIX.lstrip('/')}") else None
        page = _render(
            request,
            "_error.html" if request.headers.get("hx-request") else "error.html",
            who,
            status=answer.status_code,
            heading=_ERROR_HEADINGS.get(answer.status_code, _ERROR_HEADINGS[400]),
            message=str(message),
            back=back,
        )
        for name in ("allow", "retry-after", "www-authenticate"):  # what the JSON answer said besides
            if name in answer.headers:
                page.headers[name] = answer.headers[name]
        return page

    return handle


def include_console(app: FastAPI, gateway: Services) -> None:
    """Serve the console in ``app``: its routes, its static files and its access state."""
    app.state.console_access = ConsoleAccess(gateway.config, revocations=gateway.outbox)
    app.state.console_throttle = SignInThrottle()
    app.add_exception_handler(SignInRequired, _sign_in_redirect)
    app.add_exception_handler(Problem, _html_errors(problem_handler))
    app.add_exception_handler(RequestValidationError, _html_errors(validation_problem_handler))
    app.add_exception_handler(StarletteHTTPException, _html_errors(http_problem_handler))
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
