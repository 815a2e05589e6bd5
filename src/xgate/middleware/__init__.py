"""Backend twclid capture: read the X click id from ``?twclid=`` or the cookie, renew the cookie, expose it.

- ASGI (Starlette, FastAPI): :class:`TwclidMiddleware` → ``request.state.twclid``
- WSGI (Flask, any WSGI app): :class:`TwclidWSGIMiddleware` → ``environ["xgate.twclid"]``;
  :class:`xgate.middleware.flask.XGateFlask` adds ``flask.g.twclid``
- Django: ``xgate.middleware.django.TwclidMiddleware`` → ``request.twclid``

Everywhere, :func:`current_twclid` answers the twclid of the request being handled.
"""

from __future__ import annotations

from xgate.middleware.asgi import TwclidMiddleware
from xgate.middleware.capture import ENVIRON_KEY, Capture, capture, current_twclid
from xgate.middleware.wsgi import TwclidWSGIMiddleware

__all__ = ["ENVIRON_KEY", "Capture", "TwclidMiddleware", "TwclidWSGIMiddleware", "capture", "current_twclid"]
