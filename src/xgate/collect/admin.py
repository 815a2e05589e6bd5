"""What is not for browsers: ``/metrics`` (source and destination names, a shop's sales volume) and the API
documents (``/openapi.json``, ``/docs``, ``/redoc``).

The collector faces the internet, since browsers post to it. These paths answer only on the admin listener
(``[server] admin_port``, on ``admin_host``: loopback by default) or, on any listener, to a request with
the admin key (``Authorization: Bearer KEY``). With ``admin_port`` set the public listener answers 404 to
a request without the key, as if they were not there; without it, 401 saying how to reach them
(docs/security.md, "Trust model"; docs/deploy.md).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from xgate.collect.auth import Keyring, key_from_headers
from xgate.collect.problems import problem

#: paths served only on the admin listener or with the admin key
ADMIN_PATHS = frozenset({"/metrics", "/openapi.json", "/docs", "/redoc"})


class AdminGuard:
    """ASGI middleware keeping :data:`ADMIN_PATHS` to the admin listener or the admin key."""

    def __init__(self, app: ASGIApp, keys: Keyring, admin_port: int | None) -> None:
        self.app = app
        self.keys = keys
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in ADMIN_PATHS and not self._admitted(scope):
            if self.admin_port is not None:
                answer = problem(404, "not_found", "not served on this listener")
            else:
                answer = problem(
                    401,
                    "unauthorized",
                    f"{scope['path']} needs the admin key (Authorization: Bearer KEY), or set "
                    "[server] admin_port to serve it on a listener of its own",
                )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _admitted(self, scope: Scope) -> bool:
        server = scope.get("server")
        if self.admin_port is not None and server is not None and server[1] == self.admin_port:
            return True
        return self.keys.is_admin(key_from_headers(Request(scope)))
