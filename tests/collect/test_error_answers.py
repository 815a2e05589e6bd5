"""Every error answer of the gateway has one shape, ``{"error", "message"}``, on the public listener, the
admin listener and the console's API, those FastAPI and starlette make themselves too (no route for the
path, a method the route does not take, a static file that is not there, a failure of the gateway's own):
never FastAPI's ``{"detail": …}``. A person on a console page gets an HTML page instead. The gateway's
icon answers on every listener, so that no page load ends in a 404."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gatewaykit import ADMIN_KEY, ADMIN_KEY_ENV, SERVER_KEY_ENV, Gateway, serve

from xgate.collect.app import create_app
from xgate.config import parse_config
from xgate.outbox import open_outbox
from xgate.testing import free_port, wait_http

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def assert_problem(r: httpx.Response, status: int, error: str, *said: str) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    assert r.headers["content-type"] == "application/json", r.text
    body = r.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == error, body
    for words in said:
        assert words in body["message"], body
    return dict(body)


@pytest.fixture(scope="module")
def listeners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``xgate serve`` as a process, with its console and an admin listener: (public URL, admin URL)."""
    tmp = tmp_path_factory.mktemp("errors")
    port, admin_port = free_port(), free_port()
    config = tmp / "xgate.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{tmp / "outbox.db"}"\n'
        f'[server]\nadmin_port = {admin_port}\nadmin_key_env = "{ADMIN_KEY_ENV}"\n'
        "[dispatch]\nenabled = false\n"
        f'[[sources]]\nname = "backend"\nwrite_key_env = "{SERVER_KEY_ENV}"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'
    )
    env = {**os.environ, ADMIN_KEY_ENV: ADMIN_KEY, SERVER_KEY_ENV: "srv-errors-key-1"}
    args = [sys.executable, "-m", "xgate", "serve", "--config", str(config), "--port", str(port)]
    log = tmp / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        public, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        wait_http(f"{admin}/readyz", 60, proc=proc, log=log)
        yield public, admin
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_a_path_nothing_serves_answers_404_in_the_problem_shape(
    listeners: tuple[str, str], listener: str
) -> None:
    base = dict(zip(("public", "admin"), listeners, strict=True))[listener]
    for path in ("/no-such-path", "/v1/nope", "/console/api/nope", "/console/static/nope.css"):
        r = httpx.get(f"{base}{path}")
        assert_problem(r, 404, "not_found", f"nothing at {path}", "GET / lists what this listener serves")


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_a_method_the_path_does_not_take_answers_405_naming_those_it_takes(
    listeners: tuple[str, str], listener: str
) -> None:
    base = dict(zip(("public", "admin"), listeners, strict=True))[listener]
    for method, path, allowed in (
        ("GET", "/v1/events", "POST"),
        ("DELETE", "/v1/events", "POST"),
        ("PUT", "/healthz", "GET"),
        ("POST", "/v1/activity", "GET"),
        ("DELETE", "/console/api/events", "GET"),
        ("POST", "/console/static/console.css", "GET, HEAD"),  # the static files' own 405
    ):
        r = httpx.request(method, f"{base}{path}")
        said = f"{method} {path}: method not allowed; it takes {allowed}"
        assert_problem(r, 405, "method_not_allowed", said)
        assert r.headers["allow"] == allowed


def test_the_admin_paths_on_the_public_listener_answer_in_the_same_shape(listeners: tuple[str, str]) -> None:
    public, admin = listeners
    assert_problem(httpx.get(f"{public}/metrics"), 404, "not_found", "not served on this listener")
    assert httpx.get(f"{admin}/metrics").status_code == 200


def test_a_console_page_that_is_not_there_is_a_page_for_a_browser_and_a_problem_for_a_script(
    listeners: tuple[str, str],
) -> None:
    public, _ = listeners
    page = httpx.get(f"{public}/console/no-such-page", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no console page at /console/no-such-page." in page.text
    assert '<link rel="icon" href="/favicon.svg"' in page.text
    wrong = httpx.post(f"{public}/console/config", headers=HTML)
    assert wrong.status_code == 405 and wrong.headers["content-type"].startswith("text/html")
    assert wrong.headers["allow"] == "GET"  # a 405 says what it takes, as a page too
    assert "POST /console/config: method not allowed; it takes GET" in wrong.text
    # the console's API keeps the JSON answer, whoever asks
    assert_problem(httpx.get(f"{public}/console/api/nope", headers=HTML), 404, "not_found")


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_the_gateways_icon_answers_on_every_listener(listeners: tuple[str, str], listener: str) -> None:
    base = dict(zip(("public", "admin"), listeners, strict=True))[listener]
    ico = httpx.get(f"{base}/favicon.ico")
    assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\0\0\1\0"  # an ICO file, not the SVG under another name
    svg = httpx.get(f"{base}/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg") and "http" not in svg.text.replace('"http://www.w3.org/2000/svg"', "")
    assert '<link rel="icon" href="/favicon.svg"' in httpx.get(f"{base}/", headers=HTML).text


@pytest.fixture
def bare_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gateway]]:
    """The gateway's app in this process, without its console (which installs handlers of its own)."""
    monkeypatch.setenv(SERVER_KEY_ENV, "srv-errors-key-1")
    opened: list[Any] = []

    def make(extend: Callable[[Any], None] = lambda app: None) -> Gateway:
        config = parse_config(
            {
                "storage": {"url": f"sqlite:///{tmp_path / f'outbox{len(opened)}.db'}"},
                "console": {"enabled": False},
                "dispatch": {"enabled": False},
                "sources": [{"name": "backend", "write_key_env": SERVER_KEY_ENV}],
                "destinations": [
                    {"name": "x", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}
                ],
            }
        )
        outbox = open_outbox(config.storage.url)
        app = create_app(config, outbox)
        extend(app)
        server = serve(app)
        opened.append((server, outbox))
        return Gateway(server.__enter__(), outbox, app)

    yield make
    for server, outbox in reversed(opened):
        server.__exit__(None, None, None)
        outbox.close()


def test_without_the_console_the_errors_keep_the_problem_shape(bare_gateway: Callable[..., Gateway]) -> None:
    gateway = bare_gateway()
    assert_problem(gateway.http.get("/console"), 404, "not_found", "nothing at /console")
    assert_problem(gateway.http.delete("/v1/events"), 405, "method_not_allowed", "it takes POST")


def test_a_failure_of_the_gateways_own_answers_500_in_the_problem_shape_without_its_text(
    bare_gateway: Callable[..., Gateway],
) -> None:
    def broken(app: Any) -> None:
        @app.get("/broken")
        async def fails() -> None:
            raise RuntimeError("shopper@example.com made this fail")

    gateway = bare_gateway(broken)
    r = gateway.http.get("/broken")
    body = assert_problem(r, 500, "internal_error", "its log says why")
    assert "shopper" not in body["message"]
