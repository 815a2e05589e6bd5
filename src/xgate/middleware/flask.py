"""Flask extension: ``XGateFlask(app)`` (or ``init_app``) → ``flask.g.twclid`` and a renewed cookie.

Settings come from the Flask config: ``XGATE_TWCLID_COOKIE`` (default ``_xgate_twclid``),
``XGATE_TWCLID_COOKIE_DAYS`` (default 30), ``XGATE_TRUST_FORWARDED`` (default False).
"""

from __future__ import annotations

from flask import Flask, g, request

from xgate.config import ServerSettings
from xgate.middleware.capture import ENVIRON_KEY
from xgate.middleware.wsgi import TwclidWSGIMiddleware


def settings_from(config: dict[str, object] | Flask) -> ServerSettings:
    mapping = config.config if isinstance(config, Flask) else config
    defaults = ServerSettings()
    return ServerSettings(
        twclid_cookie=mapping.get("XGATE_TWCLID_COOKIE", defaults.twclid_cookie),
        twclid_cookie_days=mapping.get("XGATE_TWCLID_COOKIE_DAYS", defaults.twclid_cookie_days),
        trust_forwarded=mapping.get("XGATE_TRUST_FORWARDED", defaults.trust_forwarded),
    )


class XGateFlask:
    """Wraps the app's WSGI callable with :class:`TwclidWSGIMiddleware` and sets ``g.twclid``."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.wsgi_app = TwclidWSGIMiddleware(app.wsgi_app, settings_from(app))  # type: ignore[method-assign]
        app.before_request(_expose)
        app.extensions["xgate"] = self


def _expose() -> None:
    g.twclid = request.environ.get(ENVIRON_KEY)
