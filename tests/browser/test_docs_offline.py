"""The API docs render in Chromium on a machine whose only network is loopback (a server without internet)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from browserkit import needs_chromium

from xgate.collect.app import create_app
from xgate.config import parse_config
from xgate.outbox import open_outbox
from xgate.testing import free_port, serve_app

pytestmark = needs_chromium
LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("docs")
    port = free_port()
    config = parse_config(
        {
            "storage": {"url": f"sqlite:///{tmp / 'outbox.db'}"},
            # the docs are served on the admin listener (here the only one), as an operator opens them
            "server": {"admin_port": port},
            "sources": [{"name": "backend", "write_key": "srv-docs-key-1"}],
            "destinations": [
                {"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
            ],
        }
    )
    outbox = open_outbox(config.storage.url)
    try:
        with serve_app(create_app(config, outbox), port=port) as url:
            yield url
    finally:
        outbox.close()


@pytest.fixture
def offline_page(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page whose requests to any host but loopback fail, as without internet; yields it and the list of
    the URLs it tried to reach elsewhere."""
    elsewhere: list[str] = []
    context = browser.new_context()

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in {"http", "https"} and urlsplit(url).hostname not in LOOPBACK:
            elsewhere.append(url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    context.route("**/*", only_loopback)
    yield context.new_page(), elsewhere
    context.close()


def _screenshot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=False)


def test_swagger_ui_renders_the_api_without_internet(
    gateway: str, offline_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    page, elsewhere = offline_page
    page.goto(f"{gateway}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "xgate" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector("#operations-default-post_events_v1_events_post", timeout=20_000)
    _screenshot(page, tmp_path, "docs")
    assert elsewhere == []


def test_redoc_renders_the_api_without_internet(
    gateway: str, offline_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    page, elsewhere = offline_page
    page.goto(f"{gateway}/redoc")
    page.wait_for_selector("h1:has-text('xgate')", timeout=20_000)
    page.wait_for_selector("text=Send one event or a batch", timeout=20_000)
    _screenshot(page, tmp_path, "redoc")
    assert elsewhere == []
