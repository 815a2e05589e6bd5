"""Helpers of the collector tests: a real gateway over loopback (real mapper, real SQLite outbox)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from xgate.collect.app import create_app
from xgate.config import Config, parse_config
from xgate.outbox import open_outbox

PIXEL = "o8z6j"
SERVER_KEY_ENV = "XGATE_TEST_SERVER_KEY"
SERVER_KEY = "srv-key-7c1f0e2b9a4d"
BROWSER_KEY = "pub-key-3e8a51d0"
ADMIN_KEY_ENV = "XGATE_TEST_ADMIN_KEY"
ADMIN_KEY = "adm-key-5b2d7f90c3"
SHOP = "https://shop.example"


def gateway_config(tmp: Path, **server: Any) -> Config:
    tmp.mkdir(parents=True, exist_ok=True)
    return parse_config(
        {
            "storage": {"url": f"sqlite:///{tmp / 'outbox.db'}"},
            "server": {
                "max_body_bytes": 64_000,
                "max_batch_events": 50,
                "admin_key_env": ADMIN_KEY_ENV,
                **server,
            },
            "sources": [
                {"name": "backend", "write_key_env": SERVER_KEY_ENV},
                {"name": "web", "write_key": BROWSER_KEY, "allowed_origins": [SHOP]},
            ],
            "destinations": [
                {
                    "name": "x-main",
                    "pixel_id": PIXEL,
                    "events": {"purchase": f"tw-{PIXEL}-o87ne", "sign_up": f"tw-{PIXEL}-o87nf"},
                },
            ],
        }
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: no uvicorn handlers bound to this test's sys.stderr (see xgate.testing.serve_app)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class Gateway:
    def __init__(self, url: str, outbox: Any, app: Any) -> None:
        self.url = url
        self.outbox = outbox
        self.app = app
        self.http = httpx.Client(base_url=url, timeout=30)
        #: a client presenting the admin key: /metrics and the API documents answer it (collect/admin.py)
        self.admin = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    def send(self, body: Any, *, key: str | None = SERVER_KEY, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key:
            headers.setdefault("Authorization", f"Bearer {key}")
        if not isinstance(body, bytes | str):
            headers.setdefault("Content-Type", "application/json")
            body = json.dumps(body).encode()  # the stdlib writes integers of any size
        return self.http.post("/v1/events", content=body, headers=headers, **kw)


@contextmanager
def gateways() -> Iterator[Callable[[Config], Gateway]]:
    """Yield ``start(config)``: a real gateway for ``config`` (its own outbox, opened with the
    configuration's ``[storage]`` settings, served over loopback); every one started is stopped and its
    outbox closed at exit, the last first."""
    stack: list[tuple[Any, Any]] = []

    def start(config: Config) -> Gateway:
        outbox = open_outbox(config.storage.url, config.storage)
        app = create_app(config, outbox)
        cm = serve(app)
        url = cm.__enter__()
        stack.append((cm, outbox))
        return Gateway(url, outbox, app)

    try:
        yield start
    finally:
        for cm, outbox in reversed(stack):
            cm.__exit__(None, None, None)
            outbox.close()


def purchase(order: str = "ord-1", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": "purchase",
        "id": order,
        "value": 42.5,
        "currency": "usd",
        "user": {"email": "Shopper@Example.com"},
    }
    event.update(extra)
    return event
