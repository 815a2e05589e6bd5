"""The console in real headless Chromium against ``xgate serve``'s app (collector, dispatcher, SQLite
outbox) delivering to the sandbox: sign-in, the live stream, an event's page, failures and recovery, dead
letters replayed, viewers, CSRF and sign-out. Each page's screenshot lands in ``var/screenshots/``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from browserkit import needs_chromium, wait_for

from xgate.config import parse_config
from xgate.gateway import GatewayProcess, build_gateway
from xgate.testing import RunningSandbox, serve_app

PIXEL = "o8z6j"
SERVER_KEY = "srv-console-key-41c9"
ADMIN_ENV, ADMIN_KEY = "XGATE_TEST_CONSOLE_ADMIN", "adm-console-key-7d03e1"
VIEWER_ENV, VIEWER_KEY = "XGATE_TEST_CONSOLE_VIEWER", "view-console-key-52aa"
EMAIL, PHONE = "Console.Shopper@Example.com", "+1 415 555 0142"
#: where the screenshots go (README.md, "The console")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

pytestmark = needs_chromium


class Console:
    def __init__(self, url: str, gateway: GatewayProcess, sandbox: RunningSandbox) -> None:
        self.url = url
        self.gateway = gateway
        self.sandbox = sandbox
        self.pages_seen: list[str] = []

    def send(
        self, order: str, *, key: str = SERVER_KEY, headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        event = {
            "event_name": "purchase",
            "id": order,
            "value": 42.5,
            "currency": "usd",
            "user": {"email": EMAIL, "phone": PHONE},
            **extra,
        }
        answer = httpx.post(
            f"{self.url}/v1/events", json=event, headers={"Authorization": f"Bearer {key}", **(headers or {})}
        )
        assert answer.status_code == 200, answer.text
        return answer

    def row_of(self, conversion_id: str, destination: str = "x-main") -> Any:
        return next(
            r for r in self.gateway.outbox.rows(conversion_id=conversion_id) if r.destination == destination
        )

    def sign_in(self, page: Any, key: str = ADMIN_KEY) -> None:
        page.goto(f"{self.url}/console")
        assert page.url.endswith("/console/sign-in")
        page.fill("#key", key)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}/console")

    def shot(self, page: Any, name: str) -> None:
        """Save the page's screenshot and keep its HTML for the raw-identifier check."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        self.pages_seen.append(page.content())

    def assert_no_raw_identifiers(self) -> None:
        for html in self.pages_seen:
            lowered = html.lower()
            assert EMAIL.lower() not in lowered
            assert "console.shopper" not in lowered
            assert "555 0142" not in html and "4155550142" not in html


@pytest.fixture
def make_console(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Console]]:
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    monkeypatch.setenv(VIEWER_ENV, VIEWER_KEY)
    stack: list[Any] = []

    def make(
        *,
        sources: list[dict[str, Any]] | None = None,
        destinations: list[dict[str, Any]] | None = None,
        **dispatch: Any,
    ) -> Console:
        config = parse_config(
            {
                "x": {"api_url": sandbox.url, "timeout_seconds": 2},
                "storage": {"url": f"sqlite:///{tmp_path / f'outbox{len(stack)}.db'}"},
                "server": {"admin_key_env": ADMIN_ENV},
                "console": {"viewer_key_env": VIEWER_ENV},
                "dispatch": {
                    "linger_ms": 20,
                    "poll_interval_ms": 20,
                    "backoff_base_seconds": 0.1,
                    "backoff_max_seconds": 0.3,
                    **dispatch,
                },
                "sources": [{"name": "backend", "write_key": SERVER_KEY}, *(sources or [])],
                "destinations": [
                    {"name": "x-main", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}},
                    *(destinations or []),
                ],
            }
        )
        gateway = build_gateway(config)
        server = serve_app(gateway.app)
        url = server.__enter__()
        stack.append((server, gateway))
        return Console(url, gateway, sandbox)

    yield make
    for server, gateway in reversed(stack):
        server.__exit__(None, None, None)
        gateway.close()


def test_sign_in_then_an_event_appears_live_on_the_overview_and_on_its_page_hashed(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.send("warmup-1")
    console.sign_in(page)
    page.goto(f"{console.url}/console/events")
    page.wait_for_selector("#live-status:text('live')")
    console.send("live-1")
    row = console.row_of("live-1")
    page.wait_for_selector(f"#live-rows tr[data-id='{row.id}']")
    wait_for("live-1 delivered", lambda: console.row_of("live-1").state == "delivered")
    page.wait_for_selector(f"#live-rows tr[data-id='{row.id}'] .state-delivered")
    console.shot(page, "events")

    page.goto(f"{console.url}/console")
    card = page.locator(".dest[data-destination='x-main']")
    assert card.locator(".c-delivered dd").inner_text() == "2"
    assert card.locator(".status-ok").count() == 1
    page.wait_for_selector("#hour-chart canvas")  # the chart library drew it
    console.shot(page, "overview")

    page.goto(f"{console.url}/console/events")
    page.click(f"#live-rows tr[data-id='{row.id}'] a")
    page.wait_for_url(f"{console.url}/console/events/{row.id}")
    debug_id = console.row_of("live-1").debug_id
    assert debug_id and page.inner_text("#debug-id") == debug_id
    body = page.inner_text("#body-json")
    assert re.search(r'"hashed_email": "[0-9a-f]{64}"', body)
    assert re.search(r'"hashed_phone_number": "[0-9a-f]{64}"', body)
    assert '"conversion_id": "live-1"' in body
    console.shot(page, "event")
    console.assert_no_raw_identifiers()


def test_a_failing_x_shows_its_errors_and_a_growing_queue_then_recovers(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.sign_in(page)
    console.sandbox.set_faults(error_rate=1.0)
    for n in range(3):
        console.send(f"fail-{n}")
    wait_for("an error recorded", lambda: console.row_of("fail-0").last_error)
    page.goto(f"{console.url}/console")
    assert int(page.inner_text("#waiting")) == 3
    card = page.locator(".dest[data-destination='x-main']")
    assert card.locator(".status-failing").count() == 1
    assert "server_error" in card.inner_text() or "500" in card.inner_text() or "503" in card.inner_text()
    console.shot(page, "overview-failing")

    console.sandbox.set_faults(error_rate=0.0)
    wait_for(
        "all delivered",
        lambda: all(console.row_of(f"fail-{n}").state == "delivered" for n in range(3)),
        timeout=20,
    )
    page.reload()
    assert page.inner_text("#waiting") == "0"
    assert card.locator(".status-ok").count() == 1


def test_a_dead_letter_replayed_from_the_console_is_delivered(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(give_up_after_hours=0.0005)  # 1.8 s of failures makes a dead letter
    console.sandbox.set_faults(error_rate=1.0)
    console.send("dead-1")
    wait_for("a dead letter", lambda: console.row_of("dead-1").state == "dead", timeout=20)
    console.sandbox.set_faults(error_rate=0.0)
    row = console.row_of("dead-1")

    console.sign_in(page)
    page.goto(f"{console.url}/console/dead?error=")
    assert page.locator("tbody tr").count() == 1
    console.shot(page, "dead-letters")
    page.check(f"input[name=id][value='{row.id}']")
    page.click("button[value=replay]")
    assert page.inner_text("#result") == "Replayed 1 conversion."
    page.wait_for_selector("#replayed .state-delivered", timeout=20_000)  # shown as it happens
    console.shot(page, "replayed")
    assert console.row_of("dead-1").state == "delivered"
    assert [c["conversion_id"] for c in console.sandbox.conversions()].count("dead-1") == 1
    console.assert_no_raw_identifiers()


def _dead_row(console: Console, order: str) -> Any:
    console.sandbox.set_faults(error_rate=1.0)
    console.send(order)
    wait_for("a dead letter", lambda: console.row_of(order).state == "dead", timeout=20)
    console.sandbox.set_faults(error_rate=0.0)
    return console.row_of(order)


def test_a_viewer_reads_but_cannot_replay(make_console: Callable[..., Console], page: Any) -> None:
    console = make_console(give_up_after_hours=0.0005)
    row = _dead_row(console, "viewer-1")
    console.sign_in(page, VIEWER_KEY)
    assert page.inner_text(".role") == "viewer"
    page.goto(f"{console.url}/console/dead")
    assert page.locator("button[value=replay]").count() == 0
    assert page.locator(f"input[name=id][value='{row.id}']").is_disabled()
    csrf = page.get_attribute("body", "data-csrf")
    answer = page.request.post(
        f"{console.url}/console/api/dead/replay", data={"ids": [row.id]}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status == 403
    assert answer.json()["error"] == "forbidden"
    assert console.row_of("viewer-1").state == "dead"


def test_a_state_changing_request_without_the_csrf_token_is_refused(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(give_up_after_hours=0.0005)
    row = _dead_row(console, "csrf-1")
    console.sign_in(page)
    page.goto(f"{console.url}/console/dead")
    answer = page.request.post(f"{console.url}/console/api/dead/replay", data={"ids": [row.id]})
    assert answer.status == 403
    assert answer.json()["error"] == "csrf"
    form = page.request.post(
        f"{console.url}/console/dead", form={"action": "replay", "id": str(row.id), "csrf": "forged"}
    )
    assert form.status == 403
    assert console.row_of("csrf-1").state == "dead"
    csrf = page.get_attribute("body", "data-csrf")
    answer = page.request.post(
        f"{console.url}/console/api/dead/replay", data={"ids": [row.id]}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status == 200 and answer.json()["replayed"] == 1


def test_after_sign_out_the_pages_and_the_api_are_closed(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.sign_in(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "xgate_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    page.click(".signout button")
    page.wait_for_url(f"{console.url}/console/sign-in")
    console.shot(page, "sign-in")
    for path in ("/console", "/console/events", "/console/dead"):
        page.goto(f"{console.url}{path}")
        assert page.url.endswith("/console/sign-in")
    # the old cookie, kept by an attacker, no longer opens anything
    stolen = httpx.get(f"{console.url}/console/api/overview", cookies={"xgate_console": cookie["value"]})
    assert stolen.status_code == 401


SHOP = "https://shop.example"
BROWSER_KEY = "pub-console-key-0c1d"
WEB = {"name": "web", "write_key": BROWSER_KEY, "allowed_origins": [SHOP]}
SECOND = {"name": "x-brand", "pixel_id": "p2brand", "events": {"purchase": "tw-p2brand-b1"}}


def test_an_events_page_shows_every_attempt_with_x_status_and_why_x_counts_it_once(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(sources=[WEB], destinations=[SECOND])
    console.sandbox.set_faults(error_rate=1.0)
    console.send("dup-1", key=BROWSER_KEY, headers={"Origin": SHOP})  # the browser tag (and the pixel)
    # the thank-you page reloaded: the tag sends the same conversion again, a duplicate, not stored
    again = console.send("dup-1", key=BROWSER_KEY, headers={"Origin": SHOP})
    assert {c["status"] for c in again.json()["results"][0]["conversions"]} == {"duplicate"}
    wait_for("a failed attempt", lambda: console.gateway.outbox.history(console.row_of("dup-1").id))
    console.sandbox.set_faults(error_rate=0.0)
    wait_for("delivered", lambda: console.row_of("dup-1").state == "delivered", timeout=20)
    row = console.row_of("dup-1")

    console.sign_in(page)
    page.goto(f"{console.url}/console/events/{row.id}")
    assert page.inner_text("#source").startswith("web (browser)")
    outcomes = page.locator("#attempts tbody tr")
    assert outcomes.first.locator(".badge").inner_text() == "retry"
    assert re.fullmatch(r"5\d\d", outcomes.first.locator("td").nth(2).inner_text())
    last = outcomes.last
    assert last.locator(".badge").inner_text() == "delivered"
    assert last.locator("td").nth(2).inner_text() == "200"
    assert last.locator("code").inner_text() == row.debug_id
    notes = page.inner_text("#dedup-notes")
    assert "fired X's pixel with this conversion_id" in notes and "answered duplicate and never sent" in notes
    other = page.locator("#same-conversion li")
    assert other.count() == 1 and "x-brand" in other.inner_text() and "separately" in other.inner_text()
    # the reload's copy was not stored, but the page names who sent it and how often
    copy = page.locator("#also-sent-by li")
    assert copy.count() == 1 and copy.inner_text().startswith("by web (browser, public key)")
    assert copy.locator(".copies").inner_text() == "1" and "sent it again" in copy.inner_text()
    console.shot(page, "event-attempts")

    console.send("from-backend-1")
    page.goto(f"{console.url}/console/events?source=web")
    assert page.locator("#live-rows tr").count() == 2  # dup-1 to both pixels, not the backend's
    page.goto(f"{console.url}/console/api/events?source=backend")
    assert "from-backend-1" in page.content() and "dup-1" not in page.content()
    console.assert_no_raw_identifiers()


def test_the_overview_shows_x_request_budget_and_charts_over_hour_day_and_week(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.send("cap-1")
    wait_for("delivered", lambda: console.row_of("cap-1").state == "delivered")
    console.sign_in(page)
    card = page.locator(".dest[data-destination='x-main'] .capacity")
    assert re.search(r"\d+ of \d+ requests used", card.inner_text())  # from X's rate-limit headers
    assert int(card.locator(".used").inner_text()) >= 1
    assert re.search(r"resets [0-9: -]+ UTC\. Nothing is waiting for X\.$", card.inner_text())
    for window in ("hour", "day", "week"):
        page.wait_for_selector(f"#{window}-chart canvas")
    data = page.request.get(f"{console.url}/console/api/overview").json()
    assert sum(data["charts"]["week"]["delivered"]) == 1
    assert data["destinations"][0]["capacity"]["remaining"] is not None
    console.shot(page, "overview-capacity")


def test_match_quality_warns_when_a_signal_s_share_drops_against_the_previous_day(
    make_console: Callable[..., Console], page: Any
) -> None:
    from xgate.conversion import MappedConversion

    console = make_console()
    day = 86400.0
    now = time.time()

    def stored(n: int, at: float, signals: set[str]) -> None:
        console.gateway.outbox.enqueue(
            [
                MappedConversion(
                    "x-main",
                    PIXEL,
                    f"tw-{PIXEL}-o87ne",
                    f"q{at}-{i}",
                    {"conversion_id": "x"},
                    frozenset(signals),
                    "purchase",
                )
                for i in range(n)
            ],
            now=at,
        )

    stored(20, now - day, {"email", "ip_ua"})  # yesterday: every conversion had an e-mail
    stored(20, now, {"ip_ua"})  # today: none (a form stopped sending it)
    console.sign_in(page)
    page.goto(f"{console.url}/console/quality?period=day")
    card = page.locator(".quality[data-destination='x-main']")
    assert card.locator("[data-signal='email'] .share").inner_text() == "0%"
    assert card.locator("[data-signal='ip_ua'] .share").inner_text() == "100%"
    warnings = card.locator(".warning")
    assert warnings.count() == 1 and warnings.inner_text().startswith(
        "email: 0% of conversions this day, 100%"
    )
    page.wait_for_selector(".qchart canvas")
    console.shot(page, "match-quality")


def test_an_event_is_dry_run_for_every_destination_and_an_admin_sends_it_to_x(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(destinations=[SECOND])
    console.sign_in(page)
    page.goto(f"{console.url}/console/test")
    pasted = {
        "event_name": "purchase",
        "id": "try-1",
        "value": 5,
        "currency": "usd",
        "user": {"email": EMAIL, "phone": PHONE},
    }
    page.fill("#event", json.dumps(pasted))
    page.click("button[value=dry_run]")
    page.wait_for_selector("#result article[data-destination='x-brand']")
    body = page.inner_text("#result article[data-destination='x-main'] .body")
    assert re.search(r'"hashed_email": "[0-9a-f]{64}"', body) and '"conversion_id": "try-1"' in body
    assert "/measurement/conversions/p2brand" in page.inner_text(
        "#result article[data-destination='x-brand']"
    )
    assert console.gateway.outbox.rows(conversion_id="try-1") == [] and console.sandbox.conversions() == []
    console.shot(page, "test-dry-run")
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.focus("button[value=send]")
    page.keyboard.press("Enter")  # the keyboard is enough, and it asks first
    page.wait_for_timeout(500)
    assert asked and asked[0].startswith("Send this event to X for real")
    assert page.locator("#sent").count() == 0 and console.sandbox.conversions() == []  # "no": nothing sent
    page.once("dialog", lambda d: answer(d, True))
    page.click("button[value=send]")
    page.wait_for_selector("#sent p[data-destination='x-main'] .status")
    assert page.inner_text("#sent p[data-destination='x-main'] .status") == "200"
    assert page.inner_text("#sent p[data-destination='x-main'] .debug-id")
    # X's own answer per destination: the sandbox knows no pixel p2brand
    assert "HTTP 404" in page.inner_text("#sent p[data-destination='x-brand']")
    assert [c["conversion_id"] for c in console.sandbox.conversions()].count("try-1") == 1
    console.shot(page, "test-sent")
    console.assert_no_raw_identifiers()

    # without the CSRF token, and as a viewer, nothing is sent
    refused = page.request.post(
        f"{console.url}/console/test", form={"event": json.dumps(pasted), "action": "send"}
    )
    assert refused.status == 403
    viewer = page.context.browser.new_context().new_page()
    console.sign_in(viewer, VIEWER_KEY)
    viewer.goto(f"{console.url}/console/test")
    assert viewer.locator("button[value=send]").count() == 0
    csrf = viewer.get_attribute("body", "data-csrf")
    as_viewer = viewer.request.post(
        f"{console.url}/console/api/test",
        data={"event": pasted, "send": True},
        headers={"X-CSRF-Token": csrf},
    )
    assert as_viewer.status == 403
    assert [c["conversion_id"] for c in console.sandbox.conversions()].count("try-1") == 1


def test_the_configuration_page_names_where_secrets_come_from_and_never_shows_one(
    make_console: Callable[..., Console], page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XGATE_TEST_UNSET_KEY", raising=False)
    console = make_console(sources=[WEB, {"name": "crm", "write_key_env": "XGATE_TEST_UNSET_KEY"}])
    console.sign_in(page)
    page.goto(f"{console.url}/console/config")
    assert "sources.crm: XGATE_TEST_UNSET_KEY is not set" in page.inner_text("#findings")
    assert "XGATE_X_CONSUMER_KEY" in page.inner_text("[data-destination='x-main'] .credentials")

    def setting(where: str, name: str) -> tuple[str, str]:
        row = page.locator(f"{where} tr[data-setting='{name}']")
        return row.locator(".value").inner_text(), row.locator(".badge").inner_text()

    # a source's and a destination's settings, each marked as set (here in code) or xgate's default
    assert setting("[data-source='crm']", "write_key_env") == ("env XGATE_TEST_UNSET_KEY", "set")
    assert setting("[data-source='web']", "write_key") == ("a key, not shown", "set")
    assert setting("[data-source='web']", "allowed_origins") == (f'["{SHOP}"]', "set")
    assert setting("[data-source='web']", "request_context") == ("—", "default")
    assert setting("[data-destination='x-main']", "pixel_id") == (PIXEL, "set")
    assert setting("[data-destination='x-main']", "auth") == ("oauth1", "default")
    assert setting("[data-destination='x-main']", "consent.denied") == ("drop", "default")
    # the dispatch and server settings, each marked as set (here in code, not a file) or xgate's default
    concurrency = page.locator("[data-section='dispatch'] tr[data-setting='concurrency']")
    assert concurrency.locator(".value").inner_text() == "4"
    assert concurrency.locator(".badge").inner_text() == "default"
    linger = page.locator("[data-section='dispatch'] tr[data-setting='linger_ms']")
    assert (linger.locator(".value").inner_text(), linger.locator(".badge").inner_text()) == ("20", "set")
    admin_key = page.locator("[data-section='server'] tr[data-setting='admin_key_env'] .value")
    assert admin_key.inner_text() == f"env {ADMIN_ENV}"
    # [storage] and [identity] as every other section: the outbox's URL (a password would be ***)
    url, origin = setting("[data-section='storage']", "url")
    assert url.startswith("sqlite:///") and url.endswith("outbox0.db") and origin == "set"
    assert setting("[data-section='storage']", "retention_days") == ("7", "default")
    assert setting("[data-section='identity']", "default_region") == ("US", "default")
    html = page.content()
    for secret in (SERVER_KEY, BROWSER_KEY, ADMIN_KEY, VIEWER_KEY, *console.sandbox.env.values()):
        assert secret not in html
    console.shot(page, "configuration")


PAGES = ("", "/events", "/dead", "/quality", "/test", "/config")


def test_no_page_load_asks_for_anything_the_gateway_answers_with_an_error(
    make_console: Callable[..., Console], page: Any
) -> None:
    """Every page links the gateway's own icon (a browser asked for /favicon.ico and got 404 on each load)."""
    console = make_console()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    console.sign_in(page)
    for path in PAGES:
        page.goto(f"{console.url}/console{path}")
        page.wait_for_load_state("load")
        icon = page.get_attribute("link[rel=icon]", "href")
        assert icon == "/favicon.svg", path
    assert failed == []
    for icon, kind in (("/favicon.svg", "image/svg+xml"), ("/favicon.ico", "image/x-icon")):
        answer = page.request.get(f"{console.url}{icon}")
        assert answer.status == 200 and answer.headers["content-type"] == kind


def test_every_page_fits_a_phone_s_width_without_scrolling_sideways(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(destinations=[SECOND])
    console.send("phone-1")
    console.sign_in(page)
    page.set_viewport_size({"width": 375, "height": 812})
    for path in (*PAGES, f"/events/{console.row_of('phone-1').id}"):
        page.goto(f"{console.url}/console{path}")
        # wide content (tables, JSON bodies) scrolls inside its own box; the page itself never does
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"/console{path} is {widths[0]} px wide on a {widths[1]} px screen"


def test_on_a_phone_the_menu_takes_two_short_lines_and_every_link_is_reached_with_the_keyboard(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.sign_in(page)
    page.set_viewport_size({"width": 375, "height": 812})
    for path in PAGES:
        page.goto(f"{console.url}/console{path}")
        header = page.locator("header.top").bounding_box()
        assert header["height"] <= 100, f"/console{path}: the header is {header['height']} px of 812"
    page.goto(f"{console.url}/console")
    page.focus(".brand")
    for _ in range(6):  # Overview … Configuration, in order, each scrolled into view when it has focus
        page.keyboard.press("Tab")
        box = page.evaluate("document.activeElement.getBoundingClientRect().toJSON()")
        assert box["left"] >= 0 and box["right"] <= 375, box
    assert page.evaluate("document.activeElement.textContent") == "Configuration"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.url}/console/config")


def test_no_page_breaks_its_own_content_security_policy(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.send("csp-1")
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    console.sign_in(page)
    for path in PAGES:
        page.goto(f"{console.url}/console{path}")
        page.wait_for_load_state("load")
    assert refused == []


def test_a_refused_action_or_filter_is_explained_on_a_page_not_in_raw_json(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(give_up_after_hours=0.0005)
    _dead_row(console, "explain-1")
    console.sign_in(page)
    page.goto(f"{console.url}/console/dead")
    page.click("button[value=replay]")  # nothing selected
    assert page.inner_text("h1") == "That could not be done"  # the page's heading, as on every page
    assert page.inner_text("#problem-message") == "id: select at least one dead letter"
    assert page.locator("nav a").count() == 6  # still in the console, the menu at hand
    page.click("#problem-back")
    page.wait_for_url(f"{console.url}/console/dead")

    answer = page.goto(f"{console.url}/console/events?state=sent")
    assert answer.status == 422
    assert "state: Input should be 'queued'" in page.inner_text("#problem-message")
    page.goto(f"{console.url}/console/no-such-page")
    assert page.inner_text("#problem-title") == "Not found"

    # a test send whose CSRF token went stale: htmx shows why in place of X's answer
    page.goto(f"{console.url}/console/test")
    page.evaluate("document.body.setAttribute('hx-headers', JSON.stringify({'X-CSRF-Token': 'stale'}))")
    page.once("dialog", lambda d: d.accept())  # "send to X for real?" yes
    page.click("button[value=send]")
    page.wait_for_selector("#outcome #problem")
    assert "missing or wrong CSRF token" in page.inner_text("#outcome #problem-message")
    # scripts keep the JSON answer
    api = page.request.get(f"{console.url}/console/api/events?state=sent")
    assert api.status == 422 and api.json()["error"] == "invalid_request"


def test_pausing_the_live_stream_says_so_at_once_and_holds_new_events_until_resumed(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.sign_in(page)
    page.goto(f"{console.url}/console/events")
    page.wait_for_selector("#live-status:text('live')")
    page.focus("#live-pause")
    page.keyboard.press("Enter")  # the keyboard is enough
    assert page.inner_text("#live-status") == "paused"
    assert page.get_attribute("#live-pause", "aria-pressed") == "true"
    console.send("held-1")
    page.wait_for_selector("#live-status:text('paused, 1 waiting')")
    assert page.locator("#live-rows tr").count() == 0
    page.keyboard.press("Enter")
    assert page.inner_text("#live-status") == "live"
    assert page.locator(f"#live-rows tr[data-id='{console.row_of('held-1').id}']").count() == 1


def test_replay_all_names_how_many_it_replays_when_the_page_shows_only_the_newest(
    make_console: Callable[..., Console], page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xgate.console import routes

    monkeypatch.setattr(routes, "DEAD_PAGE_ROWS", 2)
    console = make_console(give_up_after_hours=0.0005)
    console.sandbox.set_faults(error_rate=1.0)
    for order in ("many-1", "many-2", "many-3"):
        console.send(order)
    for order in ("many-1", "many-2", "many-3"):
        wait_for("a dead letter", lambda o=order: console.row_of(o).state == "dead", timeout=20)
    console.sandbox.set_faults(error_rate=0.0)
    console.sign_in(page)
    page.goto(f"{console.url}/console/dead")
    assert page.locator("tbody tr").count() == 2
    assert page.inner_text("button[value=replay_all]") == "Replay all matching (more than 2)"
    assert "The newest 2 are shown" in page.inner_text("#dead-more")
    page.click("button[value=replay_all]")
    assert page.inner_text("#result") == "Replayed 3 conversions."
    assert page.inner_text("#followed") == "Following the first 2 of them."
    page.wait_for_selector("#replayed tr >> nth=1")
    assert page.locator("#replayed tr").count() == 2


def test_discarding_dead_letters_asks_first_and_keeps_them_when_the_admin_says_no(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console(give_up_after_hours=0.0005)
    row = _dead_row(console, "discard-1")
    console.sign_in(page)
    page.goto(f"{console.url}/console/dead")
    page.check(f"input[name=id][value='{row.id}']")
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("button[value=discard]")
    assert asked == ["Discard 1 dead letter? They are deleted and never sent to X; this cannot be undone."]
    assert page.url.endswith("/console/dead") and console.row_of("discard-1").state == "dead"
    page.once("dialog", lambda d: answer(d, True))
    page.click("button[value=discard]")
    assert page.inner_text("#result") == "Discarded 1 conversion."
    assert console.gateway.outbox.rows(conversion_id="discard-1") == []


def test_wrong_keys_are_refused_with_a_clear_message_that_names_the_slowdown(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    page.goto(f"{console.url}/console/sign-in")

    def wrong_key() -> None:
        page.fill("#key", "not-a-key")
        with page.expect_navigation():
            page.keyboard.press("Enter")

    for _ in range(2):
        wrong_key()
        assert page.inner_text("#sign-in-error") == "That key is not a console key."
    wrong_key()
    assert page.inner_text("#sign-in-error") == (
        "That key is not a console key. After several wrong keys from this address, the next try is "
        "answered after 1.0 s."
    )
    assert "not-a-key" not in page.content()


def test_a_page_whose_session_ended_elsewhere_goes_to_sign_in_instead_of_nesting_it(
    make_console: Callable[..., Console], page: Any
) -> None:
    console = make_console()
    console.sign_in(page)
    page.goto(f"{console.url}/console/test")
    csrf = page.get_attribute("body", "data-csrf")
    # signed out from another tab: this page stays open with its session gone
    signed_out = page.request.post(f"{console.url}/console/sign-out", form={"csrf": csrf}, max_redirects=0)
    assert signed_out.status == 303
    page.click("button[value=dry_run]")  # htmx asks for the result
    page.wait_for_url(f"{console.url}/console/sign-in")
    assert page.locator("#key").count() == 1 and page.locator("#outcome").count() == 0


def test_a_live_row_takes_its_new_state_in_place_and_filter_edits_wait_for_the_filter_button(
    make_console: Callable[..., Console], page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("xgate.console.routes.STREAM_ROWS", 1)  # the dead letter is not among the newest
    console = make_console(give_up_after_hours=0.0005)
    row = _dead_row(console, "dead-live")
    console.send("newer-1")
    wait_for("delivered", lambda: console.row_of("newer-1").state == "delivered", timeout=20)
    console.sign_in(page)
    page.goto(f"{console.url}/console/events?state=dead")
    page.wait_for_selector("#live-status:text('live')")
    assert page.inner_text(f"#live-rows tr[data-id='{row.id}'] .badge") == "dead"

    replayed = httpx.post(
        f"{console.url}/console/api/dead/replay",
        json={"ids": [row.id]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert replayed.json()["replayed"] == 1
    # the row shown becomes delivered where it is, though "delivered" is outside the page's filter
    page.wait_for_selector(f"#live-rows tr[data-id='{row.id}'] .state-delivered", timeout=20_000)
    assert page.locator("#live-rows tr").count() == 1

    page.select_option("select[name=state]", "delivered")
    assert page.is_visible("#filters-changed")  # an edit not yet applied says so
    console.send("newer-2")
    wait_for("delivered", lambda: console.row_of("newer-2").state == "delivered", timeout=20)
    page.wait_for_timeout(2500)  # two polls of the stream
    assert page.locator("#live-rows tr").count() == 1  # new rows follow the applied filter (dead)
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"state=delivered"))
    assert not page.is_visible("#filters-changed")
    assert page.locator("#live-rows tr").count() == 3


def test_a_row_that_arrived_live_keeps_updating_after_the_stream_is_renewed(
    make_console: Callable[..., Console], page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xgate.console import routes

    monkeypatch.setattr(routes, "STREAM_LIFE_SECONDS", 2.0)  # a stream lives 2 s, not 5 minutes
    monkeypatch.setattr(routes, "STREAM_ROWS", 1)  # a row is followed while it is the newest, or watched
    console = make_console()
    streams: list[list[str]] = []  # the ids each stream the page opened was told to watch

    def opened(request: Any) -> None:
        if "/console/api/stream" in request.url:
            streams.append(parse_qs(urlsplit(request.url).query).get("watch", [""])[0].split(","))

    page.on("request", opened)
    console.sign_in(page)
    page.goto(f"{console.url}/console/events")  # nothing stored yet: the page's first stream watches nothing
    page.wait_for_selector("#live-status:text('live')")
    assert streams == [[""]]
    console.sandbox.set_faults(error_rate=1.0)  # X fails: the conversion waits, retried
    console.send("arrived-live")
    row = console.row_of("arrived-live")
    page.wait_for_selector(f"#live-rows tr[data-id='{row.id}']")
    console.send("newer")  # the newest now: "arrived-live" is followed only if the page's stream watches it
    newer = console.row_of("newer")
    page.wait_for_selector(f"#live-rows tr[data-id='{newer.id}']")
    rejected = httpx.post(
        f"{console.url}/v1/events",
        # a value that is wrong (events refused only for want of an identifier are counted, not listed)
        json={
            "event_name": "purchase",
            "id": "wrong-currency",
            "value": 1,
            "currency": "dollars",
            "user": {"email": "ada@example.com"},
        },
        headers={"Authorization": f"Bearer {SERVER_KEY}"},
    )
    assert rejected.status_code == 422
    page.wait_for_selector("#live-rows .state-rejected")

    # the stream's life ends: the page opens the next one itself, watching the rows it shows by then
    opened_before = len(streams)
    wait_for("a renewed stream", lambda: len(streams) > opened_before, page=page)
    assert streams[-1] == [str(newer.id), str(row.id)]
    assert page.inner_text("#live-status") == "live"
    console.sandbox.set_faults(error_rate=0.0)
    wait_for("delivered", lambda: console.row_of("arrived-live").state == "delivered", timeout=20)
    page.wait_for_selector(f"#live-rows tr[data-id='{row.id}'] .state-delivered", timeout=20_000)
    # the renewed stream sent the latest rejection again: it is still shown once
    assert page.locator("#live-rows .state-rejected").count() == 1
    assert page.locator(f"#live-rows tr[data-id='{row.id}']").count() == 1
    console.shot(page, "events-renewed")
