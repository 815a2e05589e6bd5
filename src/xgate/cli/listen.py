"""Listening for ``xgate serve`` and ``xgate sandbox``: the port is bound before anything starts.

Left to bind by itself, uvicorn runs the app's startup first (the gateway opens its outbox and starts the
dispatcher), then logs ``[Errno 98] … address already in use`` and exits with status 3. Binding here first
turns a port in use into one ``error:`` line and exit 1, before any work, as every other command fails;
uvicorn then serves on the bound socket (``Server.run(sockets=...)``, as its own reload and worker modes do).
"""

from __future__ import annotations

import errno
import socket

import uvicorn

from xgate.cli.output import fail


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


def serve_on(sock: socket.socket, config: uvicorn.Config) -> None:
    """Serve ``config``'s app on the bound ``sock`` until a signal stops it; exit 1 when the app's startup
    failed (uvicorn has logged why)."""
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if not server.started:
        fail("the server did not start: see the log above")
