"""Console access: keys, signed session cookies, CSRF tokens, and the slowdown after failed sign-ins."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from xgate.collect.app import create_app
from xgate.config import Config, parse_config
from xgate.console.access import ConsoleAccess, SessionUnverifiable, SignInThrottle
from xgate.outbox import Outbox, open_outbox
from xgate.testing import OutboxFactory, console_sign_in, serve_app

ENV = {"ADMIN": "admin-key-1", "VIEWER": "viewer-key-2"}
ADMIN_KEY_ENV, ADMIN_KEY = "XGATE_TEST_CONSOLE_ADMIN_KEY", "adm-console-9f0d2c"


def gateway_config(tmp: Path) -> Config:
    return parse_config(
        {
            "storage": {"url": f"sqlite:///{tmp / 'outbox.db'}"},
            "server": {"admin_key_env": ADMIN_KEY_ENV},
            "sources": [{"name": "backend", "write_key": "srv-key-1"}],
            "destinations": [{"name": "x-main", "pixel_id": "p1", "events": {"purchase": "tw-p1-e1"}}],
        }
    )


def config(**console: object) -> Config:
    return parse_config(
        {
            "server": {"admin_key_env": "ADMIN"},
            "console": {"viewer_key_env": "VIEWER", **console},
            "destinations": [{"name": "x", "pixel_id": "p1", "events": {"purchase": "tw-p1-e1"}}],
        }
    )


def test_the_admin_and_viewer_keys_give_their_roles_and_nothing_else_signs_in(outbox: Outbox) -> None:
    access = ConsoleAccess(config(), ENV, revocations=outbox)
    assert access.role_for("admin-key-1") == "admin"
    assert access.role_for("viewer-key-2") == "viewer"
    assert access.role_for("admin-key-") is None
    assert access.role_for("") is None
    assert not ConsoleAccess(config(), {}, revocations=outbox).configured


def test_a_session_cookie_cannot_be_forged_and_ends_when_it_expires(outbox: Outbox) -> None:
    access = ConsoleAccess(config(session_hours=1), ENV, revocations=outbox)
    cookie, session = access.open_session("viewer", now=1000.0)
    assert access.session(cookie, now=1001.0) == session
    forged = cookie.replace("viewer.", "admin.", 1)
    assert access.session(forged, now=1001.0) is None
    assert access.session(cookie, now=1000.0 + 3601) is None
    # another key set (a rotated admin key) signs differently: old sessions end
    rotated = ConsoleAccess(
        config(), {"ADMIN": "admin-key-new", "VIEWER": "viewer-key-2"}, revocations=outbox
    )
    assert rotated.session(cookie, now=1001.0) is None


def test_a_session_signed_out_on_one_node_is_refused_by_every_node_and_csrf_tokens_belong_to_one_session(
    outbox_factory: OutboxFactory,
) -> None:
    on_a = ConsoleAccess(config(), ENV, revocations=outbox_factory(node_id="node-a"))
    on_b = ConsoleAccess(config(), ENV, revocations=outbox_factory(node_id="node-b"))
    cookie, session = on_a.open_session("admin")
    other_cookie, other = on_a.open_session("admin")
    assert on_b.session(cookie) == session  # the same keys: any node accepts it
    assert on_a.csrf_ok(session, on_b.csrf_token(session))
    assert not on_a.csrf_ok(session, on_a.csrf_token(other))
    assert not on_a.csrf_ok(session, None)
    on_a.close_session(session)
    assert on_a.session(cookie) is None and on_b.session(cookie) is None
    assert not on_b.is_open(session)
    assert on_b.session(other_cookie) == other  # only that session ended


def test_a_session_is_refused_not_accepted_when_its_sign_out_cannot_be_checked(outbox: Outbox) -> None:
    access = ConsoleAccess(config(), ENV, revocations=outbox)
    cookie, _ = access.open_session("viewer")
    outbox.close()
    with pytest.raises(SessionUnverifiable):
        access.session(cookie)


def test_each_failed_sign_in_doubles_the_wait_up_to_a_cap_and_success_clears_it() -> None:
    throttle = SignInThrottle()
    assert throttle.delay("1.2.3.4", now=0) == 0
    waits = []
    for n in range(8):
        throttle.failed("1.2.3.4", now=float(n))
        waits.append(throttle.delay("1.2.3.4", now=float(n)))
    assert waits[:3] == [0.25, 0.5, 1.0]
    assert max(waits) == 8.0
    assert throttle.delay("5.6.7.8", now=8) == 0
    throttle.succeeded("1.2.3.4")
    assert throttle.delay("1.2.3.4", now=9) == 0


def test_a_sign_in_form_is_good_only_with_its_own_unexpired_pre_session_cookie(outbox: Outbox) -> None:
    access = ConsoleAccess(config(), ENV, revocations=outbox)
    cookie, token = access.sign_in_form(now=1000)
    _, other_token = access.sign_in_form(now=1000)
    assert access.sign_in_form_ok(cookie, token, now=1001)
    assert not access.sign_in_form_ok(cookie, other_token, now=1001)  # another form's token
    assert not access.sign_in_form_ok(None, token, now=1001)  # no cookie: a cross-site POST has none
    assert not access.sign_in_form_ok(cookie, None, now=1001)
    assert not access.sign_in_form_ok(cookie, token, now=1000 + 3601)  # expired
    forged = ConsoleAccess(config(), {"ADMIN": "attacker-key"}, revocations=outbox)
    assert not access.sign_in_form_ok(*forged.sign_in_form(now=1000), now=1001)  # signed elsewhere


def test_over_http_a_sign_in_post_without_its_form_token_is_refused_and_signs_no_one_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    cfg = gateway_config(tmp_path)
    outbox = open_outbox(cfg.storage.url)
    try:
        with serve_app(create_app(cfg, outbox)) as url, httpx.Client(base_url=url) as http:
            # another site's form posts the attacker's (valid) key: no pre-session cookie, no token
            forged = http.post("/console/sign-in", data={"key": ADMIN_KEY})
            assert forged.status_code == 403
            assert "not issued by this console" in forged.text
            assert "xgate_console" not in forged.cookies
            assert http.get("/console").status_code == 303  # still signed out
            # with the cookie of a real form but a token of the attacker's choosing
            http.get("/console/sign-in")
            assert http.post("/console/sign-in", data={"key": ADMIN_KEY, "csrf": "x"}).status_code == 403
            assert console_sign_in(http, ADMIN_KEY).status_code == 303  # a real form signs in
            # scripts are unaffected: the key as Authorization: Bearer, no form, no token
            api = httpx.get(f"{url}/console/api/overview", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert api.status_code == 200
    finally:
        outbox.close()


def test_over_http_a_wrong_key_is_refused_slower_each_time_and_the_key_never_lands_in_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    cfg = gateway_config(tmp_path)
    outbox = open_outbox(cfg.storage.url)
    try:
        with serve_app(create_app(cfg, outbox)) as url, httpx.Client(base_url=url) as http:
            timings = []
            for _ in range(3):
                started = time.monotonic()
                answer = console_sign_in(http, "wrong")
                timings.append(time.monotonic() - started)
                assert answer.status_code == 401
                assert "not a console key" in answer.text
            assert timings[2] >= 0.45  # 0.25 s after the first failure, 0.5 s after the second
            ok = console_sign_in(http, ADMIN_KEY)
            assert ok.status_code == 303 and ok.headers["location"] == "/console"
            assert ADMIN_KEY not in ok.headers["location"]
            assert http.get("/console").status_code == 200
            wrong = httpx.get(f"{url}/console/api/overview", headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401
            api = httpx.get(f"{url}/console/api/overview", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert api.status_code == 200 and api.json()["destinations"][0]["name"] == "x-main"
    finally:
        outbox.close()


def test_the_console_api_is_in_the_openapi_document(tmp_path: Path) -> None:
    cfg = gateway_config(tmp_path)
    outbox = open_outbox(cfg.storage.url)
    try:
        paths = create_app(cfg, outbox).openapi()["paths"]
    finally:
        outbox.close()
    for path in (
        "/console/api/overview",
        "/console/api/events",
        "/console/api/events/{row_id}",
        "/console/api/stream",
        "/console/api/dead",
        "/console/api/dead/replay",
        "/console/api/dead/discard",
    ):
        assert path in paths, path
    assert not any(p in paths for p in ("/console", "/console/sign-in", "/activity"))
