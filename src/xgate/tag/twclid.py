"""The X click id (twclid): read it from landing URLs and cookies, keep it in a first-party cookie.

Its format is undocumented, so it is read defensively: printable URL-safe text of bounded length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, unquote, urlsplit

from xgate.config import ServerSettings
from xgate.validation import usable_twclid

#: the X pixel's own first-party cookie, read as a fallback
PIXEL_TWCLID_COOKIE = "_twclid"


def clean_twclid(value: str | None) -> str | None:
    """The twclid if it looks like one, else None."""
    if not value:
        return None
    value = value.strip()
    return value if usable_twclid(value) else None


def twclid_from_url(url: str | None) -> str | None:
    """The ``twclid`` query parameter of a landing URL."""
    if not url:
        return None
    try:
        values = parse_qs(urlsplit(url).query).get("twclid")
    except ValueError:
        return None
    return clean_twclid(values[0]) if values else None


def twclid_from_cookies(cookies: Mapping[str, str], settings: ServerSettings) -> str | None:
    """Our first-party cookie first, then the X pixel's ``_twclid`` cookie (value read defensively)."""
    ours = clean_twclid(cookies.get(settings.twclid_cookie))
    if ours:
        return ours
    pixel = cookies.get(PIXEL_TWCLID_COOKIE)
    if not pixel:
        return None
    # the pixel's cookie format is undocumented; it has been seen as (URL-encoded) JSON or as a bare value
    pixel = unquote(pixel)
    match = re.search(r'"twclid"\s*:\s*"([^"]+)"', pixel)
    return clean_twclid(match.group(1) if match else pixel)


def twclid_set_cookie(twclid: str, settings: ServerSettings, *, secure: bool) -> str:
    """A ``Set-Cookie`` header value keeping the twclid for ``server.twclid_cookie_days``.

    Server-set cookies outlive script-set ones under Safari's ITP, so the collector sets this.
    """
    cookie: SimpleCookie = SimpleCookie()
    name = settings.twclid_cookie
    cookie[name] = twclid
    morsel = cookie[name]
    morsel["path"] = "/"
    morsel["max-age"] = str(settings.twclid_cookie_days * 86400)
    morsel["samesite"] = "Lax"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()
