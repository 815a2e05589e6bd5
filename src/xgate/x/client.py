"""X's Conversions API client, sync (:class:`XClient`) and async (:class:`AsyncXClient`).

``send(pixel_id, conversions)`` makes one signed request of at most X's limit and never raises for what X
or the network does: the answer is a :class:`~xgate.x.result.SendResult` classified for the dispatcher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import httpx
import orjson

from xgate.config import XSettings
from xgate.x.auth import Credentials
from xgate.x.result import FailureReason, Outcome, RateLimit, SendResult, XError

#: one conversion of a request: a mapping, or JSON already encoded (the outbox's stored body, sent as is)
Conversion = Mapping[str, Any] | orjson.Fragment


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_RATE_SCOPES: tuple[tuple[Literal["account", "user"], str], ...] = (
    ("account", "x-account-rate-limit-"),
    ("user", "x-rate-limit-"),
)


def rate_limit_from(headers: Mapping[str, str]) -> RateLimit | None:
    """X's rate-limit headers, account-level ones first (SPEC.md)."""
    for scope, prefix in _RATE_SCOPES:
        limit, remaining, reset = (headers.get(prefix + k) for k in ("limit", "remaining", "reset"))
        if limit or remaining or reset:
            reset_at = _int(reset)
            return RateLimit(_int(limit), _int(remaining), float(reset_at) if reset_at else None, scope)
    return None


def _failure(status: int) -> FailureReason:
    if status == 401:
        return "auth"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status in (400, 413, 422):
        return "invalid"
    return "server_error" if status >= 500 else "rejected"


def classify(status: int, body: bytes, headers: Mapping[str, str], count: int) -> SendResult:
    """Turn X's HTTP answer to a request of ``count`` conversions into an outcome (SPEC.md, "Answers"):
    2xx delivered; 429 rate_limited until X's reset; 5xx and 408 retry; 400 split when ``count`` > 1 (X
    refuses the whole request for one bad conversion); any other answer permanent."""
    try:
        data: Any = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    rate = rate_limit_from(headers)
    info = data.get("data") if isinstance(data.get("data"), dict) else {}
    debug_id = info.get("debug_id") or headers.get("x-transaction-id")
    if 200 <= status < 300:
        return SendResult(
            "delivered",
            status,
            count,
            debug_id=debug_id,
            conversions_processed=info.get("conversions_processed"),
            rate_limit=rate,
        )
    errors = tuple(
        XError(str(e.get("code", "")), str(e.get("message", "")), e.get("parameter"))
        for e in data.get("errors", [])
        if isinstance(e, dict)
    )
    reason = "; ".join(f"{e.code}: {e.message}" for e in errors) or f"HTTP {status}"
    failure = _failure(status)
    outcome: Outcome
    retry_at = None
    if failure == "rate_limited":
        outcome = "rate_limited"
        retry_at = rate.reset if rate and rate.reset and rate.reset > time.time() else None
    elif failure in ("server_error", "timeout"):
        outcome = "retry"
    elif status == 400 and count > 1:
        outcome = "split"
    else:
        outcome = "permanent"
    return SendResult(
        outcome,
        status,
        count,
        debug_id=debug_id,
        errors=errors,
        rate_limit=rate,
        retry_at=retry_at,
        reason=reason,
        failure=failure,
    )


def network_failure(exc: httpx.HTTPError, count: int) -> SendResult:
    """No answer from X: a timeout or a connection refused / dropped; always worth another try."""
    failure: FailureReason = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
    detail = str(exc)[:200]
    reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return SendResult("retry", None, count, reason=reason, failure=failure)


def _answer(r: httpx.Response, count: int) -> SendResult:
    """Classify X's answer, then break the cycle httpx leaves between a read response and its stream:
    until the cyclic GC ran, it kept each request's body (up to 500 conversions) alive, which took the
    gateway's RSS from 180 to over 300 MB with a backlog to deliver (``make bench``, row (d))."""
    try:
        return classify(r.status_code, r.content, r.headers, count)
    finally:
        r.stream = httpx.ByteStream(b"")


def conversions_url(settings: XSettings, pixel_id: str) -> str:
    """X's Conversions API endpoint: ``{api_url}/{api_version}/measurement/conversions/{pixel_id}``."""
    return f"{settings.api_url}/{settings.api_version}/measurement/conversions/{pixel_id}"


class _Requests:
    def __init__(self, settings: XSettings, credentials: Credentials) -> None:
        self.settings = settings
        self.credentials = credentials

    def url(self, pixel_id: str) -> str:
        return conversions_url(self.settings, pixel_id)

    def prepare(self, pixel_id: str, conversions: Sequence[Conversion]) -> tuple[str, dict[str, str], bytes]:
        limit = self.settings.max_conversions_per_request
        if not conversions:
            raise ValueError("no conversions to send")
        if len(conversions) > limit:
            raise ValueError(f"{len(conversions)} conversions in one request; X's limit is {limit}")
        url = self.url(pixel_id)
        headers = {"Content-Type": "application/json", **self.credentials.auth_headers("POST", url)}
        return url, headers, orjson.dumps({"conversions": list(conversions)})

    def chunks(self, conversions: Sequence[Conversion]) -> list[Sequence[Conversion]]:
        n = self.settings.max_conversions_per_request
        return [conversions[i : i + n] for i in range(0, len(conversions), n)]


class XClient:
    """Blocking client: ``with XClient(settings, credentials) as x: x.send(pixel_id, conversions)``."""

    def __init__(
        self, settings: XSettings, credentials: Credentials, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._requests = _Requests(settings, credentials)
        self._http = httpx.Client(timeout=settings.timeout_seconds, transport=transport)

    def send(self, pixel_id: str, conversions: Sequence[Conversion]) -> SendResult:
        url, headers, content = self._requests.prepare(pixel_id, conversions)
        try:
            r = self._http.post(url, content=content, headers=headers)
        except httpx.HTTPError as e:
            return network_failure(e, len(conversions))
        return _answer(r, len(conversions))

    def send_batches(self, pixel_id: str, conversions: Sequence[Conversion]) -> list[SendResult]:
        return [self.send(pixel_id, chunk) for chunk in self._requests.chunks(conversions)]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> XClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncXClient:
    """Asyncio client with a shared connection pool, for the dispatcher."""

    def __init__(
        self,
        settings: XSettings,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._requests = _Requests(settings, credentials)
        self._http = httpx.AsyncClient(
            timeout=settings.timeout_seconds,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def send(self, pixel_id: str, conversions: Sequence[Conversion]) -> SendResult:
        url, headers, content = self._requests.prepare(pixel_id, conversions)
        try:
            r = await self._http.post(url, content=content, headers=headers)
        except httpx.HTTPError as e:
            return network_failure(e, len(conversions))
        return _answer(r, len(conversions))

    async def send_batches(self, pixel_id: str, conversions: Sequence[Conversion]) -> list[SendResult]:
        """Send in requests of at most X's limit, concurrently; results in the order of the chunks."""
        chunks = self._requests.chunks(conversions)
        return list(await asyncio.gather(*(self.send(pixel_id, chunk) for chunk in chunks)))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncXClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()
