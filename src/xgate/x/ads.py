"""The few calls to X that record nothing, for ``xgate verify``: read-only Ads API requests and an empty
request to the Conversions API.

Reads (X's Ads API reference, v12; OAuth 1.0a user context only):

- ``GET accounts`` — the ad accounts the authenticated user can read;
- ``GET accounts/:account_id`` — one of them (404 when it is not one of them);
- ``GET accounts/:account_id/authenticated_user_access`` — the user's permissions there
  (``ACCOUNT_ADMIN``, ``AD_MANAGER``, ``CAMPAIGN_ANALYST`` …);
- ``GET accounts/:account_id/web_event_tags`` — the account's conversion events: ``id`` is the base-36
  event id, ``website_tag_id`` the pixel it belongs to; paged by ``count`` (at most 1000) and ``cursor``.

Answers come in X's envelope ``{"data": …, "request": {"params": …}, "next_cursor": …}``, errors as
``{"errors": [{"code", "message"}]}``. Nothing here raises for what X or the network does: an
:class:`AdsAnswer` carries the status (None when no answer came) and X's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from xgate.config import XSettings
from xgate.x.auth import Credentials
from xgate.x.client import conversions_url
from xgate.x.result import XError

#: the most event tags X lists per page
PAGE_SIZE = 1000
#: pages read before giving up on an account (200,000 event tags)
MAX_PAGES = 200


@dataclass(frozen=True)
class AdsAnswer:
    """X's answer to one call: ``status`` None when none came (``reason`` says why)."""

    status: int | None
    data: Any = None
    errors: tuple[XError, ...] = ()
    next_cursor: str | None = None
    reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def why(self) -> str:
        """X's error messages, else the HTTP status or the network failure: for a person to read."""
        if self.errors:
            return "; ".join(f"{e.code}: {e.message}" if e.code else e.message for e in self.errors)
        return self.reason or f"HTTP {self.status}"


def _answer(r: httpx.Response) -> AdsAnswer:
    try:
        body: Any = orjson.loads(r.content) if r.content else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors = tuple(
        XError(str(e.get("code", "")), str(e.get("message", "")), e.get("parameter"))
        for e in body.get("errors", [])
        if isinstance(e, dict)
    )
    cursor = body.get("next_cursor")
    return AdsAnswer(
        r.status_code,
        body.get("data"),
        errors,
        str(cursor) if cursor else None,
        "" if errors else f"HTTP {r.status_code}",
        body,
    )


def _failure(exc: httpx.HTTPError) -> AdsAnswer:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not connect"
    return AdsAnswer(None, reason=f"{kind} ({type(exc).__name__})")


class AdsReader:
    """Blocking client for the calls above: ``with AdsReader(settings, credentials) as x: x.accounts()``."""

    def __init__(
        self, settings: XSettings, credentials: Credentials, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self._http = httpx.Client(timeout=settings.timeout_seconds, transport=transport)

    def _get(self, path: str, params: dict[str, str] | None = None) -> AdsAnswer:
        url = f"{self.settings.api_url}/{self.settings.api_version}/{path}"
        if params:
            url = f"{url}?{urlencode(params)}"
        try:
            r = self._http.get(url, headers=self.credentials.auth_headers("GET", url))
        except httpx.HTTPError as e:
            return _failure(e)
        return _answer(r)

    def accounts(self) -> AdsAnswer:
        """``GET accounts``: ``data`` is a list of accounts (``id``, ``name`` …)."""
        return self._get("accounts", {"count": "1000"})

    def account(self, account_id: str) -> AdsAnswer:
        return self._get(f"accounts/{account_id}")

    def user_access(self, account_id: str) -> AdsAnswer:
        """``data``: ``{"user_id", "permissions": [...]}``."""
        return self._get(f"accounts/{account_id}/authenticated_user_access")

    def web_event_tags(self, account_id: str) -> tuple[list[dict[str, Any]], AdsAnswer]:
        """Every event tag of the account, all pages read; with the last answer (check ``.ok``)."""
        tags: list[dict[str, Any]] = []
        params = {"count": str(PAGE_SIZE)}
        for _ in range(MAX_PAGES):
            answer = self._get(f"accounts/{account_id}/web_event_tags", params)
            if not answer.ok:
                return tags, answer
            tags.extend(t for t in answer.data or [] if isinstance(t, dict))
            if not answer.next_cursor:
                break
            params = {"count": str(PAGE_SIZE), "cursor": answer.next_cursor}
        return tags, answer

    def empty_conversions(self, pixel_id: str) -> AdsAnswer:
        """``POST measurement/conversions/:pixel_id`` with ``{"conversions": []}``: signed as a real
        delivery, but with nothing X could record."""
        url = conversions_url(self.settings, pixel_id)
        headers = {"Content-Type": "application/json", **self.credentials.auth_headers("POST", url)}
        try:
            r = self._http.post(url, content=b'{"conversions":[]}', headers=headers)
        except httpx.HTTPError as e:
            return _failure(e)
        return _answer(r)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdsReader:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
