"""The sandbox: an HTTP stand-in for X's Conversions API endpoint.

``POST /{version}/measurement/conversions/{pixel_id}`` checks the OAuth 1.0a signature (or pixel token),
validates the body by the sandbox's own statement of X's schema, answers with X's shapes and rate-limit
headers, and records what it accepted. Inspection under ``/_sandbox/``:

- ``GET /_sandbox/conversions[?limit=N]`` — ``total`` accepted, ``unique`` by (pixel, event_id,
  conversion_id) as X deduplicates, ``duplicate_conversion_ids``, and the last N conversions (all by default);
- ``GET /_sandbox/requests`` — requests by status, and a ``log`` of every conversions request (``at``: its
  arrival, epoch seconds; ``pixel_id``; ``status``, 0 for a dropped connection); ``POST /_sandbox/reset``;
- ``GET / PUT /_sandbox/faults`` — fault injection (:class:`~xgate.sandbox.faults.FaultSettings`).

The read-only Ads API calls ``xgate verify`` makes — ``GET /{version}/accounts``, ``…/accounts/{id}``,
``…/accounts/{id}/authenticated_user_access`` and ``…/accounts/{id}/web_event_tags`` — are answered from
the declared ad accounts (:mod:`xgate.sandbox.accounts`), OAuth 1.0a only, in X's ``{"data", "request"}``
envelope and its error shapes (401 unsigned or badly signed, 404 unknown account). Declared accounts also
make the conversions endpoint refuse an event id its pixel does not have. Nothing declared: any pixel and
event are taken, and the reads list no account.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from xgate.sandbox.accounts import AdAccount, bare_event_id, known_events
from xgate.sandbox.faults import FaultInjector, FaultPlan, FaultSettings
from xgate.sandbox.oauth import SignatureChecker
from xgate.sandbox.schema import check_request
from xgate.x.auth import Credentials

RATE_WINDOW = 900


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


class Recorder:
    """What the sandbox accepted, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.conversions: list[dict[str, Any]] = []
            self.keys: set[tuple[str, str, str]] = set()
            self.duplicates = 0
            self.by_status: Counter[str] = Counter()
            #: every conversions request: (arrival epoch s, pixel id, status; 0 = connection dropped)
            self.log: list[tuple[float, str, int]] = []

    def request(self, status: int) -> None:
        with self._lock:
            self.by_status[str(status)] += 1

    def arrived(self, at: float, pixel_id: str, status: int) -> None:
        with self._lock:
            self.log.append((at, pixel_id, status))

    def accept(self, pixel_id: str, conversions: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            for c in conversions:
                key = (pixel_id, str(c.get("event_id")), str(c.get("conversion_id", "")))
                if c.get("conversion_id") and key in self.keys:
                    self.duplicates += 1
                else:
                    self.keys.add(key)
                self.conversions.append({**c, "pixel_id": pixel_id})


class Sandbox:
    def __init__(
        self,
        credentials: Credentials,
        *,
        pixels: Iterable[str] | None = None,
        accounts: Iterable[AdAccount] = (),
        faults: FaultSettings | None = None,
        rate_limit: int = 100_000,
        versions: Iterable[str] = ("11", "12"),
    ) -> None:
        self.checker = SignatureChecker(credentials)
        self.accounts = {a.id: a for a in accounts}
        self.events = known_events(self.accounts.values())
        declared = frozenset(pixels or ()) | frozenset(self.events)
        #: None: any pixel is known (nothing declared)
        self.pixels = declared or None
        self.faults = FaultInjector(faults)
        self.recorder = Recorder()
        self.versions = frozenset(versions)
        self.rate_limit = rate_limit
        self._window_start = time.time()
        self._window_used = 0
        self.app = Starlette(
            routes=[
                Route(
                    "/{version}/measurement/conversions/{pixel_id}",
                    self.conversions_endpoint,
                    methods=["POST"],
                ),
                Route("/{version}/accounts", self.ads_accounts, methods=["GET"]),
                Route("/{version}/accounts/{account_id}", self.ads_account, methods=["GET"]),
                Route(
                    "/{version}/accounts/{account_id}/authenticated_user_access",
                    self.ads_user_access,
                    methods=["GET"],
                ),
                Route(
                    "/{version}/accounts/{account_id}/web_event_tags",
                    self.ads_web_event_tags,
                    methods=["GET"],
                ),
                Route("/_sandbox/conversions", self.list_conversions, methods=["GET"]),
                Route("/_sandbox/requests", self.list_requests, methods=["GET"]),
                Route("/_sandbox/reset", self.reset, methods=["POST"]),
                Route("/_sandbox/faults", self.faults_endpoint, methods=["GET", "PUT"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- X's endpoint ------------------------------------------------------------------------------
    def _rate_headers(self, now: float) -> dict[str, str]:
        if now - self._window_start >= RATE_WINDOW:
            self._window_start, self._window_used = now, 0
        self._window_used += 1
        reset = str(int(self._window_start + RATE_WINDOW))
        remaining = str(max(0, self.rate_limit - self._window_used))
        limit = str(self.rate_limit)
        return {
            "x-rate-limit-limit": limit,
            "x-rate-limit-remaining": remaining,
            "x-rate-limit-reset": reset,
            "x-account-rate-limit-limit": limit,
            "x-account-rate-limit-remaining": remaining,
            "x-account-rate-limit-reset": reset,
        }

    def _answer(self, status: int, data: Any, headers: dict[str, str]) -> Response:
        self.recorder.request(status)
        return _json(data, status, headers)

    async def conversions_endpoint(self, request: Request) -> Response:
        now = time.time()
        response = await self._conversions(request, now)
        self.recorder.arrived(now, request.path_params["pixel_id"], response.status_code)
        return response

    async def _conversions(self, request: Request, now: float) -> Response:
        pixel_id, version = request.path_params["pixel_id"], request.path_params["version"]
        params = {"pixel_id": pixel_id}
        headers = self._rate_headers(now)
        plan: FaultPlan = request.scope.get("xgate.fault_plan") or FaultPlan()
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.fault == "rate_limit" or (self._window_used > self.rate_limit):
            reset = max(self.faults.rate_limited_until, now + 1)
            headers.update(
                {
                    "x-account-rate-limit-remaining": "0",
                    "x-rate-limit-remaining": "0",
                    "x-account-rate-limit-reset": str(int(reset + 0.999)),
                    "x-rate-limit-reset": str(int(reset + 0.999)),
                }
            )
            return self._answer(
                429,
                {
                    "errors": [{"code": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded"}],
                    "request": {"params": params},
                },
                headers,
            )
        if plan.fault == "error":
            return self._answer(
                plan.status, {"errors": [{"code": "INTERNAL_ERROR", "message": "Internal error"}]}, headers
            )
        if version not in self.versions:
            return self._answer(
                404, {"errors": [{"code": "NOT_FOUND", "message": "Unknown API version"}]}, headers
            )
        problem = self.checker.problem(
            "POST",
            str(request.url),
            request.headers.get("authorization"),
            request.headers.get("x-pixel-token"),
        )
        if problem:
            return self._answer(
                401,
                {
                    "errors": [{"code": "UNAUTHORIZED_ACCESS", "message": problem}],
                    "request": {"params": params},
                },
                headers,
            )
        if self.pixels is not None and pixel_id not in self.pixels:
            return self._answer(
                404,
                {
                    "errors": [{"code": "NOT_FOUND", "message": f"Pixel {pixel_id} not found"}],
                    "request": {"params": params},
                },
                headers,
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return self._answer(
                400,
                {
                    "errors": [{"code": "INVALID_REQUEST", "message": "Invalid JSON body"}],
                    "request": {"params": params},
                },
                headers,
            )
        errors = check_request(pixel_id, body) or self._undeclared_events(pixel_id, body["conversions"])
        if errors:
            return self._answer(400, {"errors": errors, "request": {"params": params}}, headers)
        conversions = body["conversions"]
        self.recorder.accept(pixel_id, conversions)
        debug_id = secrets.token_hex(8)
        return self._answer(
            200,
            {
                "data": {"conversions_processed": len(conversions), "debug_id": debug_id},
                "request": {"params": params},
            },
            headers,
        )

    def _undeclared_events(self, pixel_id: str, conversions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """X's 400 for an event id that is not an event tag of this pixel (only when events are declared)."""
        declared = self.events.get(pixel_id)
        if declared is None:
            return []
        return [
            {
                "code": "INVALID_PARAMETER",
                "message": f"Event_id ({c['event_id']}) is not a single event tag (SET)",
                "parameter": f"conversions[{i}].event_id",
            }
            for i, c in enumerate(conversions)
            if bare_event_id(str(c["event_id"])) not in declared
        ]

    # -- the Ads API's read-only calls (what `xgate verify` asks) ------------------------------------
    def _ads_refusal(self, request: Request, params: dict[str, Any]) -> Response | None:
        """401 as X's Ads API answers it: the reads take OAuth 1.0a user context only."""
        version = request.path_params["version"]
        if version not in self.versions:
            return self._answer(
                404, {"errors": [{"code": "NOT_FOUND", "message": "Unknown API version"}]}, {}
            )
        if self.checker.credentials.auth != "oauth1":
            problem: str | None = "the Ads API takes OAuth 1.0a user context; a pixel token cannot read it"
        else:
            problem = self.checker.problem(
                "GET", str(request.url), request.headers.get("authorization"), None
            )
        if problem:
            return self._answer(
                401,
                {
                    "errors": [
                        {
                            "code": "UNAUTHORIZED_ACCESS",
                            "message": f"This request is not properly authenticated: {problem}",
                        }
                    ],
                    "request": {"params": params},
                },
                {},
            )
        return None

    def _ads_account(self, request: Request, params: dict[str, Any]) -> AdAccount | Response:
        """The account the path names, or X's refusal (401, or 404 for an account the user cannot read)."""
        account_id = params["account_id"] = request.path_params["account_id"]
        refusal = self._ads_refusal(request, params)
        if refusal:
            return refusal
        account = self.accounts.get(account_id)
        if account is None:
            return self._answer(
                404,
                {
                    "errors": [{"code": "NOT_FOUND", "message": "The requested resource was not found"}],
                    "request": {"params": params},
                },
                {},
            )
        return account

    async def ads_accounts(self, request: Request) -> Response:
        refusal = self._ads_refusal(request, {})
        if refusal:
            return refusal
        data = [a.as_x() for a in self.accounts.values()]
        return self._answer(200, {"data": data, "next_cursor": None, "request": {"params": {}}}, {})

    async def ads_account(self, request: Request) -> Response:
        params: dict[str, Any] = {}
        account = self._ads_account(request, params)
        if isinstance(account, Response):
            return account
        return self._answer(200, {"data": account.as_x(), "request": {"params": params}}, {})

    async def ads_user_access(self, request: Request) -> Response:
        params: dict[str, Any] = {}
        account = self._ads_account(request, params)
        if isinstance(account, Response):
            return account
        data = {"user_id": 2417045708, "permissions": list(account.permissions)}
        return self._answer(200, {"data": data, "request": {"params": params}}, {})

    async def ads_web_event_tags(self, request: Request) -> Response:
        """X's paging: ``count`` (1-1000, default 200) per page, ``next_cursor`` to ask for the next one;
        ``web_event_tag_ids`` (comma-separated) narrows the answer."""
        params: dict[str, Any] = {}
        account = self._ads_account(request, params)
        if isinstance(account, Response):
            return account
        query = request.query_params
        tags = [t.as_x() for t in account.event_tags]
        if query.get("web_event_tag_ids"):
            wanted = query["web_event_tag_ids"].split(",")
            params["web_event_tag_ids"] = wanted
            tags = [t for t in tags if t["id"] in wanted]
        count_arg, cursor_arg = query.get("count", "200"), query.get("cursor", "0")
        if not (count_arg.isdigit() and 1 <= int(count_arg) <= 1000 and cursor_arg.isdigit()):
            return self._answer(
                400,
                {
                    "errors": [
                        {
                            "code": "INVALID_PARAMETER",
                            "message": "Invalid count or cursor",
                            "parameter": "count",
                        }
                    ],
                    "request": {"params": params},
                },
                {},
            )
        start, count = int(cursor_arg), int(count_arg)
        page = tags[start : start + count]
        next_cursor = str(start + count) if start + count < len(tags) else None
        return self._answer(
            200, {"data": page, "next_cursor": next_cursor, "request": {"params": params}}, {}
        )

    # -- inspection --------------------------------------------------------------------------------
    async def list_conversions(self, request: Request) -> Response:
        rec = self.recorder
        limit_arg = request.query_params.get("limit")
        limit = None
        if limit_arg is not None:
            if not limit_arg.isdigit():
                return _json({"error": f"limit: expected a whole number >= 0, got {limit_arg!r}"}, 422)
            limit = int(limit_arg)
        with rec._lock:
            start = 0 if limit is None else max(0, len(rec.conversions) - limit)
            items = rec.conversions[start:]
            return _json(
                {
                    "total": len(rec.conversions),
                    "unique": len(rec.keys),
                    "duplicate_conversion_ids": rec.duplicates,
                    "conversions": list(items),
                }
            )

    async def list_requests(self, request: Request) -> Response:
        with self.recorder._lock:
            by_status = dict(self.recorder.by_status)
            log = [{"at": at, "pixel_id": pixel, "status": status} for at, pixel, status in self.recorder.log]
        return _json({"total": sum(by_status.values()), "by_status": by_status, "log": log})

    async def reset(self, request: Request) -> Response:
        self.recorder.reset()
        self.faults.configure(FaultSettings())
        return Response(status_code=204)

    async def faults_endpoint(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.faults.configure(
                    FaultSettings.model_validate(orjson.loads(await request.body() or b"{}"))
                )
            except (ValidationError, orjson.JSONDecodeError) as e:
                return _json({"error": str(e)}, 422)
        return _json(self.faults.describe())


class FaultingApp:
    """Outermost layer: draws each X request's fault.

    A dropped request gets half an answer, then the connection is closed (uvicorn aborts the transport when
    the app raises after the response started), so the client sees a broken connection, not a status.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and "/measurement/conversions/" in scope["path"]
        ):
            plan = self.sandbox.faults.plan(time.time())
            if plan.fault == "drop":
                self.sandbox.recorder.request(0)
                self.sandbox.recorder.arrived(time.time(), scope["path"].rpartition("/")[2], 0)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"data":', "more_body": True})
                raise ConnectionAbortedError("sandbox fault: connection dropped")
            scope = {**scope, "xgate.fault_plan": plan}
        await self.sandbox(scope, receive, send)


def create_sandbox(credentials: Credentials, **kwargs: Any) -> tuple[FaultingApp, Sandbox]:
    """The sandbox's ASGI app (with fault injection) and the sandbox itself (for inspection in tests)."""
    sandbox = Sandbox(credentials, **kwargs)
    return FaultingApp(sandbox), sandbox
