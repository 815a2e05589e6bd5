"""WSGI twclid middleware (Flask or any WSGI app): ``app.wsgi_app = TwclidWSGIMiddleware(app.wsgi_app)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from xgate.config import ServerSettings
from xgate.middleware.capture import ENVIRON_KEY, bound, capture, forwarded_secure

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class TwclidWSGIMiddleware:
    """Puts the request's twclid in ``environ["xgate.twclid"]`` (and :func:`current_twclid` while the app
    runs) and renews the first-party cookie on the response."""

    def __init__(self, app: WSGIApplication, settings: ServerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or ServerSettings()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        secure = forwarded_secure(
            environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_X_FORWARDED_PROTO"), self.settings
        )
        found = capture(
            environ.get("QUERY_STRING", ""), environ.get("HTTP_COOKIE"), self.settings, secure=secure
        )
        environ[ENVIRON_KEY] = found.twclid
        if not found.set_cookie:
            with bound(None):
                return self.app(environ, start_response)
        cookie = found.set_cookie

        def start_with_cookie(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
            return start_response(status, [*headers, ("Set-Cookie", cookie)], exc_info)  # type: ignore[arg-type]

        with bound(found.twclid):
            return self.app(environ, start_with_cookie)  # type: ignore[arg-type]
