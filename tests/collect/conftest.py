"""Fixtures: a real gateway over loopback with the real mapper and a real SQLite outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gatewaykit import ADMIN_KEY, ADMIN_KEY_ENV, SERVER_KEY, SERVER_KEY_ENV, Gateway, gateway_config, serve

from xgate.collect.app import create_app
from xgate.outbox import open_outbox


@pytest.fixture
def make_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gateway]]:
    monkeypatch.setenv(SERVER_KEY_ENV, SERVER_KEY)
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    stack: list[Any] = []

    def make(**server: Any) -> Gateway:
        config = gateway_config(tmp_path / f"gw{len(stack)}", **server)
        outbox = open_outbox(config.storage.url)
        app = create_app(config, outbox)
        cm = serve(app)
        url = cm.__enter__()
        stack.append((cm, outbox))
        return Gateway(url, outbox, app)

    yield make
    for cm, outbox in reversed(stack):
        cm.__exit__(None, None, None)
        outbox.close()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()
