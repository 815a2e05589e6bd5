"""Helpers of the source-kind tests: a real gateway (real mapper, real SQLite outbox, optionally its
dispatcher delivering to the sandbox) configured with sources of any kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from xgate.config import Config, parse_config
from xgate.gateway import build_gateway
from xgate.outbox.base import Outbox
from xgate.testing import RunningSandbox, free_port, serve_app

PIXEL = "o8z6j"
#: an X event id for every standard xgate event name, so each converted event has somewhere to go
EVENTS = {
    name: f"tw-{PIXEL}-{code}"
    for name, code in {
        "purchase": "o87ne",
        "add_to_cart": "o87nf",
        "view_item": "o87ng",
        "page_view": "o87nh",
        "begin_checkout": "o87ni",
        "add_payment_info": "o87nj",
        "add_to_wishlist": "o87nk",
        "search": "o87nl",
        "generate_lead": "o87nm",
        "sign_up": "o87nn",
        "subscribe": "o87no",
        "start_trial": "o87np",
    }.items()
}


def source_config(
    tmp: Path, sources: list[dict[str, Any]], *, sandbox: RunningSandbox | None = None, **extra: Any
) -> Config:
    tmp.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp / 'outbox.db'}"},
        "server": {"max_batch_events": 50},
        "dispatch": {"enabled": sandbox is not None, "linger_ms": 0, "poll_interval_ms": 20},
        "sources": sources,
        "destinations": [{"name": "x-main", "pixel_id": PIXEL, "events": EVENTS}],
        **extra,
    }
    if sandbox is not None:
        data["x"] = {"api_url": sandbox.url, "timeout_seconds": 5}
    return parse_config(data)


@dataclass
class SourceGateway:
    url: str
    outbox: Outbox
    http: httpx.Client

    def queued(self) -> list[dict[str, Any]]:
        """The bodies of every conversion in the outbox, oldest first."""
        rows = sorted(self.outbox.rows(limit=10_000), key=lambda r: r.id)
        return [r.body for r in rows]


@contextmanager
def source_gateway(config: Config) -> Iterator[SourceGateway]:
    """``xgate serve``'s app for ``config`` on loopback (its dispatcher too when ``[dispatch] enabled``;
    the sandbox's credentials must be in the environment then). Its one listener is also its admin
    listener (``[server] admin_port``), so ``/metrics`` answers there."""
    port = free_port()
    config = config.model_copy(update={"server": config.server.model_copy(update={"admin_port": port})})
    process = build_gateway(config)
    try:
        with serve_app(process.app, port=port) as url, httpx.Client(base_url=url, timeout=30) as http:
            yield SourceGateway(url, process.outbox, http)
    finally:
        process.close()


def wait_for_conversions(sandbox: RunningSandbox, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The conversions the sandbox accepted, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        got = sandbox.conversions()
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)
