"""Fixtures of the client tests: a real gateway in process (see clientkit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clientkit import PIXEL, WRITE_KEY, WRITE_KEY_ENV, LiveGateway

from xgate.collect.app import create_app
from xgate.config import parse_config
from xgate.outbox import open_outbox
from xgate.testing import serve_app


@pytest.fixture
def live_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveGateway]:
    monkeypatch.setenv(WRITE_KEY_ENV, WRITE_KEY)
    data = {
        "storage": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
        "server": {"max_batch_events": 50},
        "dispatch": {"enabled": False},
        "sources": [{"name": "backend", "write_key_env": WRITE_KEY_ENV}],
        "destinations": [
            {"name": "x-main", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}},
        ],
    }
    config = parse_config(data)
    outbox = open_outbox(config.storage.url)
    with serve_app(create_app(config, outbox)) as url:
        yield LiveGateway(url, outbox)
    outbox.close()
