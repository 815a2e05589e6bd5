"""Fixtures: a real gateway over loopback with the real mapper and a real SQLite outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gatewaykit import ADMIN_KEY, ADMIN_KEY_ENV, SERVER_KEY, SERVER_KEY_ENV, Gateway, gateway_config, gateways


@pytest.fixture
def make_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gateway]]:
    monkeypatch.setenv(SERVER_KEY_ENV, SERVER_KEY)
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    made = 0

    with gateways() as start:

        def make(**server: Any) -> Gateway:
            nonlocal made
            made += 1
            return start(gateway_config(tmp_path / f"gw{made - 1}", **server))

        yield make


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()
