"""ASGI twclid middleware for Starlette and FastAPI: ``app.add_middleware(TwclidMiddleware)``."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xgate.config import ServerSettings
from xgate.middleware.capture import bound, capture, forwarded_secure


class TwclidMiddleware:
    """Puts the request's twclid in ``request.state.twclid`` (and :func:`current_twclid`) and renews the
    first-party cookie on the response."""

    def __init__(self, app: ASGIApp, settings: ServerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or ServerSettings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme = scope.get("scheme", "http")
        secure = forwarded_secure(scheme, headers.get("x-forwarded-proto"), self.settings)
        query = scope.get("query_string", b"").decode("latin-1")
        found = capture(query, headers.get("cookie"), self.settings, secure=secure)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["twclid"] = found.twclid

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and found.set_cookie:
                MutableHeaders(scope=message).append("set-cookie", found.set_cookie)
            await send(message)

        with bound(found.twclid):
            await self.app(scope, receive, send_with_cookie)
