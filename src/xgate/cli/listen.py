"""Listening for ``xgate serve`` and ``xgate sandbox``: the port is bound before anything starts.

Left to bind by itself, uvicorn runs the app's startup first (the gateway opens its outbox and starts the
dispatcher), then logs ``[Errno 98] … address already in use`` and exits with status 3. Binding here first
turns a port in use into one ``error:`` line and exit 1, before any work, as every other command fails;
uvicorn then serves on the bound socket (``Server.run(sockets=...)``, as its own reload and worker modes do).

uvicorn bounds neither the time a request's headers or body may take nor the size of its headers, so
:func:`guarded_protocol` adds those limits (``[server]``, docs/security.md "Limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import time

import orjson
import uvicorn

from xgate.cli.output import fail
from xgate.config import ServerSettings

log = logging.getLogger("xgate.serve")

#: open files kept aside from max_connections: the outbox, its lock, logs, connections to X
_RESERVED_FILES = 64


def bind_or_exit(host: str, port: int, fix: str) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (IPv6 when ``host`` has a colon, ``SO_REUSEADDR`` as uvicorn
    sets it), or exit 1: ``error: port P on H is already in use: stop the other process or FIX``; any other
    refusal (no such address, a privileged port) is named by the system's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is already in use: stop the other process or {fix}")
        fail(f"cannot listen on {host} port {port}: {e.strerror or e}")
    sock.set_inheritable(True)
    return sock


def serve_on(sock: socket.socket | list[socket.socket], config: uvicorn.Config) -> None:
    """Serve ``config``'s app on the bound socket(s) until a signal stops it; exit 1 when the app's
    startup failed (uvicorn has logged why)."""
    sockets = sock if isinstance(sock, list) else [sock]
    server = uvicorn.Server(config)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for bound in sockets:
            bound.close()
    if not server.started:
        fail("the server did not start: see the log above")


def _answer(status: int, reason: str, error: str, message: str) -> bytes:
    """A bare HTTP/1.1 answer (problem JSON) for a connection closed before the app saw a request."""
    body = orjson.dumps({"error": error, "message": message})
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def guarded_protocol(settings: ServerSettings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the limits uvicorn lacks, from ``[server]``:

    - ``header_timeout_seconds``: a request's line and headers must arrive within this time of the
      connection's opening (or of the request's first byte on a kept-alive connection), else 408 and the
      connection is closed: a slow-header (slowloris) client cannot hold a connection open.
    - ``body_timeout_seconds``: the rest of the body within this time of the headers, else the connection
      is closed (the app sees a disconnect; nothing of the request is stored).
    - ``max_header_bytes``: the request line and headers together, counted as they arrive, before the
      parser holds them; more is answered 431 and the connection closed.
    - ``max_connections``: a connection beyond this many open ones is answered 503 and closed at once.

    Idle kept-alive connections close after ``keep_alive_seconds`` (uvicorn's ``timeout_keep_alive``).
    Built on uvicorn's ``HttpToolsProtocol`` hooks (``data_received``, ``on_headers_complete``,
    ``on_message_complete``); ``tests/collect/test_server_limits.py`` pins each limit against a real
    ``xgate serve``.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    header_timeout = settings.header_timeout_seconds
    body_timeout = settings.body_timeout_seconds
    max_header = settings.max_header_bytes
    max_connections = settings.max_connections
    too_slow = _answer(
        408, "Request Timeout", "request_timeout", f"the headers took longer than {header_timeout:g} s"
    )
    too_big = _answer(
        431,
        "Request Header Fields Too Large",
        "headers_too_large",
        f"the request line and headers exceed {max_header} bytes (server.max_header_bytes)",
    )
    too_many = _answer(
        503, "Service Unavailable", "too_many_connections", "too many open connections; retry later"
    )

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _in_headers = True
        _header_bytes = 0
        _tail = b""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                _note_refused_connection(max_connections)
                self._refuse(too_many)
                return
            self._arm(header_timeout, too_slow)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_headers:
                if self._timer is None:  # the first byte of a request on a kept-alive connection
                    self._arm(header_timeout, too_slow)
                seen = self._tail + data
                end = seen.find(b"\r\n\r\n")
                self._header_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
                if self._header_bytes > max_header:
                    self._refuse(too_big)
                    return
                self._tail = seen[-3:]
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._header_bytes, self._tail = 0, b""
            self._arm(body_timeout, None)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            self._in_headers = True  # what comes next is the next request's
            super().on_message_complete()

        def _arm(self, seconds: float, answer: bytes | None) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expire, answer)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self, answer: bytes | None) -> None:
            self._timer = None
            if answer is None:  # mid-body: the app may be answering; just end the connection
                self.transport.close()
            else:
                self._refuse(answer)

        def _refuse(self, answer: bytes) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

    return GuardedHttpToolsProtocol


_refused = {"count": 0, "logged_at": 0.0}


def _note_refused_connection(limit: int) -> None:
    """A warning at most every 10 s, with how many connections were refused since the last one."""
    _refused["count"] += 1
    now = time.monotonic()
    if now - _refused["logged_at"] >= 10.0:
        log.warning(
            "connections refused: more than server.max_connections open",
            extra={"fields": {"max_connections": limit, "refused": _refused["count"]}},
        )
        _refused["count"], _refused["logged_at"] = 0, now


def fit_open_files(max_connections: int) -> None:
    """Raise this process's soft limit of open files (``ulimit -n``) up to its hard limit when
    ``max_connections`` plus a reserve for the outbox, logs and X connections would not fit; warn when even
    the hard limit is too low (connections past it fail with EMFILE, every request with them)."""
    needed = max_connections + _RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "the open-file limit is below server.max_connections plus a reserve: lower max_connections "
            "or raise the limit (ulimit -n, LimitNOFILE= in systemd)",
            extra={"fields": {"open_files": soft, "needed": needed}},
        )
