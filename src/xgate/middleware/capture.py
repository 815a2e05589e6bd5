"""What every twclid middleware does, free of any framework: find the twclid and the cookie to set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import cookie_parser

from xgate.config import ServerSettings
from xgate.tag.twclid import clean_twclid, twclid_from_cookies, twclid_set_cookie

#: where the WSGI middleware puts the twclid in ``environ``
ENVIRON_KEY = "xgate.twclid"

_current: ContextVar[str | None] = ContextVar("xgate_twclid", default=None)


def current_twclid() -> str | None:
    """The twclid of the request being handled (None outside a request or when it has none)."""
    return _current.get()


@contextmanager
def bound(twclid: str | None) -> Iterator[None]:
    """Make ``twclid`` the :func:`current_twclid` for the duration of the block."""
    token = _current.set(twclid)
    try:
        yield
    finally:
        _current.reset(token)


@dataclass(frozen=True, slots=True)
class Capture:
    """The twclid of a request and the ``Set-Cookie`` value that keeps (or renews) it, if any."""

    twclid: str | None
    set_cookie: str | None


def capture(
    query_string: str, cookie_header: str | None, settings: ServerSettings, *, secure: bool
) -> Capture:
    """A fresh ``?twclid=`` wins over the cookie; either way the cookie is (re)set for
    ``server.twclid_cookie_days`` from now."""
    values = parse_qs(query_string).get("twclid") if "twclid" in query_string else None
    twclid = clean_twclid(values[0]) if values else None
    twclid = twclid or twclid_from_cookies(cookie_parser(cookie_header or ""), settings)
    if twclid is None:
        return Capture(None, None)
    return Capture(twclid, twclid_set_cookie(twclid, settings, secure=secure))


def forwarded_secure(scheme: str, forwarded_proto: str | None, settings: ServerSettings) -> bool:
    """Whether the visitor's connection is https (``X-Forwarded-Proto`` counts only with trust_forwarded)."""
    if settings.trust_forwarded and forwarded_proto:
        return forwarded_proto.rsplit(",", 1)[-1].strip().lower() == "https"
    return scheme == "https"
