"""Django middleware: add ``"xgate.middleware.django.TwclidMiddleware"`` to ``MIDDLEWARE``.

``request.twclid`` (and :func:`xgate.middleware.current_twclid`) hold the click id; the response renews
the cookie. Settings: ``XGATE_TWCLID_COOKIE`` (default ``_xgate_twclid``), ``XGATE_TWCLID_COOKIE_DAYS``
(default 30). ``request.is_secure()`` decides ``Secure`` (configure ``SECURE_PROXY_SSL_HEADER`` behind a
proxy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings  # type: ignore[import-untyped]

from xgate.config import ServerSettings
from xgate.middleware.capture import bound, capture


def _settings() -> ServerSettings:
    defaults = ServerSettings()
    return ServerSettings(
        twclid_cookie=getattr(django_settings, "XGATE_TWCLID_COOKIE", defaults.twclid_cookie),
        twclid_cookie_days=getattr(django_settings, "XGATE_TWCLID_COOKIE_DAYS", defaults.twclid_cookie_days),
    )


class TwclidMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.settings = _settings()

    def __call__(self, request: Any) -> Any:
        found = capture(
            request.META.get("QUERY_STRING", ""),
            request.META.get("HTTP_COOKIE"),
            self.settings,
            secure=request.is_secure(),
        )
        request.twclid = found.twclid
        with bound(found.twclid):
            response = self.get_response(request)
        if found.twclid:
            response.set_cookie(
                self.settings.twclid_cookie,
                found.twclid,
                max_age=self.settings.twclid_cookie_days * 86400,
                path="/",
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response
