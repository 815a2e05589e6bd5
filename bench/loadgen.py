"""The end-to-end benchmarks' load generator: real HTTP/1.1 ``POST``s with keep-alive over loopback, as
cheap on the client side as we can make them, since it shares the machine's two cores with what it measures.

Each client is one keep-alive connection (an :class:`asyncio.Protocol` on uvloop) that sends a request
built beforehand (request line, headers and body in one ``bytes``), parses the answer with httptools (the
parser uvicorn uses), checks its status and reads how many events the gateway stored (``"accepted"`` in
the answer) before sending the next. No per-request coroutine, future or header dictionary: aiohttp, used
before, spent about 240 µs of CPU per one-event request, a sixth of the whole stack's cost per event.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import cast
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop


class IngestFailed(RuntimeError):
    """A request was not answered 200 (or the connection closed under it): the run's figures are void."""


class _Client(asyncio.Protocol):
    """One keep-alive connection: sends the next prepared request whenever the previous one is answered."""

    def __init__(self, requests: Iterator[bytes], done: asyncio.Future[int]) -> None:
        self._requests = requests
        self._done = done
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.accepted = 0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is one, without subclassing it
        self._send_next()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except Exception as e:  # a malformed answer
            self._fail(e)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_exception(IngestFailed(f"the gateway closed the connection ({exc or 'EOF'})"))

    # -- httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        body = b"".join(self._body)
        self._body.clear()
        if status != 200:
            self._fail(IngestFailed(f"ingest answered {status}: {body[:500]!r}"))
        elif not self._parser.should_keep_alive():
            self._fail(IngestFailed("the gateway did not keep the connection alive"))
        else:
            self.accepted += orjson.loads(body)["accepted"]  # stored in the outbox, per the gateway
            self._send_next()

    def _send_next(self) -> None:
        assert self._transport is not None
        request = next(self._requests, None)
        if request is None:
            self._transport.close()
            if not self._done.done():
                self._done.set_result(self.accepted)
            return
        self._transport.write(request)

    def _fail(self, e: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(e)
        if self._transport is not None:
            self._transport.close()


def requests_for(url: str, headers: dict[str, str], bodies: list[bytes]) -> list[bytes]:
    """Each body as a complete ``POST`` to ``url`` (``http://host:port/path``) with ``headers``."""
    parts = urlsplit(url)
    head = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]


async def _post_all(urls: list[str], headers: dict[str, str], bodies: list[bytes], concurrency: int) -> int:
    # every body is prepared for every node; client i takes the next body not yet sent and posts it to
    # urls[i % len(urls)], as a round-robin load balancer would spread the load
    prepared = [requests_for(u, headers, bodies) for u in urls]
    order = iter(range(len(bodies)))
    loop = asyncio.get_running_loop()
    clients: list[asyncio.Future[int]] = []
    for i, url in zip(range(concurrency), itertools.cycle(urls), strict=False):
        host, port = urlsplit(url).hostname, urlsplit(url).port
        assert host and port
        mine = prepared[i % len(urls)]
        done: asyncio.Future[int] = loop.create_future()
        await loop.create_connection(lambda m=mine, d=done: _Client((m[n] for n in order), d), host, port)
        clients.append(done)
    return sum(await asyncio.gather(*clients))


def post_all(urls: list[str], headers: dict[str, str], bodies: list[bytes], concurrency: int) -> int:
    """POST every body once with ``concurrency`` keep-alive clients spread over ``urls``; returns how many
    events the gateways answered as stored (the sum of each answer's ``accepted``). Raises
    :class:`IngestFailed` on the first answer that is not 200 or a connection the gateway closed."""
    return uvloop.run(_post_all(urls, headers, bodies, concurrency))
