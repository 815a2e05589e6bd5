"""``make run``: the gateway with embedded defaults, end to end against the sandbox standing in for X.

Starts the sandbox and ``xgate serve`` on loopback with credentials generated at random for this run (handed
over in environment variables), sends a few demo events, shows them delivered, prints a curl line to send your
own, and keeps running until Ctrl-C. ``--once`` (or ``XGATE_DEMO_ONCE=1``) exits after showing delivery.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from xgate.cli.serve import activity_table
from xgate.observe.activity import ActivityEntry
from xgate.testing import managed_process, wait_http

PIXEL = "o8z6j"
WRITE_KEY_ENV = "XGATE_DEMO_WRITE_KEY"
ADMIN_KEY_ENV = "XGATE_DEMO_ADMIN_KEY"
CREDENTIAL_NAMES = ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
SETTLED = {"delivered", "dead"}

console = Console()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(var: Path, sandbox_url: str, port: int) -> str:
    return f"""# written by `make run` (python -m xgate.demo); credentials come from that run's environment
[x]
api_url = "{sandbox_url}"

[storage]
url = "sqlite:///{(var / "xgate.demo.db").resolve()}"

[server]
host = "127.0.0.1"
port = {port}
admin_key_env = "{ADMIN_KEY_ENV}"

[dispatch]
linger_ms = 50

[[sources]]
name = "demo"
write_key_env = "{WRITE_KEY_ENV}"

[[destinations]]
name = "x-demo"
pixel_id = "{PIXEL}"
credentials_env_prefix = "XGATE_X_"
events = {{ purchase = "tw-{PIXEL}-o87ne", sign_up = "tw-{PIXEL}-o87nf", page_view = "tw-{PIXEL}-o87ng" }}
"""


def demo_events(run: str) -> list[dict[str, Any]]:
    """A purchase with e-mail, phone and twclid; a sign-up; a page view; and one invalid event."""
    now = int(time.time() * 1000)
    return [
        {
            "event_name": "purchase",
            "id": f"demo-order-{run}",
            "value": 59.9,
            "currency": "usd",
            "user": {"email": " Demo.Shopper@Example.com ", "phone": "+1 (415) 555-0134"},
            "partners": {"twitter": {"twclid": f"26demo{run}"}},
            "context": {"event_timestamp": now, "page_url": "https://shop.example/checkout/done"},
            "items": [
                {"id": "sku-socks", "quantity": 2, "price": 19.95, "product": {"name": "Trail socks"}},
                {"id": "sku-hat", "quantity": 1, "price": 20.0},
            ],
        },
        {"event_name": "sign_up", "id": f"demo-signup-{run}", "user": {"email": "new.member@example.com"}},
        {
            "event_name": "page_view",
            "id": f"demo-view-{run}",
            "context": {"page_url": f"https://shop.example/?twclid=26view{run}"},
        },
        {
            "event_name": "purchase",
            "id": f"demo-bad-{run}",
            "value": "a lot",
            "user": {"email": "x@example.com"},
        },
    ]


def _entries(gateway: str, admin_key: str) -> list[ActivityEntry]:
    r = httpx.get(
        f"{gateway}/v1/activity", params={"limit": 50}, headers={"Authorization": f"Bearer {admin_key}"}
    )
    r.raise_for_status()
    out = []
    for e in r.json()["entries"]:
        out.append(ActivityEntry(**{**e, "match_signals": tuple(e["match_signals"])}))
    return out


def _show_answer(answer: dict[str, Any], events: list[dict[str, Any]]) -> None:
    for result in answer["results"]:
        name = events[result["index"]]["event_name"]
        if result["status"] == "rejected":
            reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in result["errors"])
            console.print(f"  [red]✗[/] {escape(name):<10} rejected — {escape(reasons)}")
        else:
            ids = ", ".join(c["conversion_id"] for c in result.get("conversions", []))
            console.print(f"  [green]✓[/] {name:<10} {result['status']} {ids}")


def run(var: Path, *, once: bool) -> int:
    var.mkdir(parents=True, exist_ok=True)
    run_id = secrets.token_hex(4)
    write_key, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        **{f"XGATE_X_{name}": secrets.token_urlsafe(24) for name in CREDENTIAL_NAMES},
        WRITE_KEY_ENV: write_key,
        ADMIN_KEY_ENV: admin_key,
    }
    sb_port, gw_port = _free_port(), _free_port()
    sandbox, gateway = f"http://127.0.0.1:{sb_port}", f"http://127.0.0.1:{gw_port}"
    config = var / "xgate.demo.toml"
    config.write_text(demo_config(var, sandbox, gw_port), encoding="utf-8")
    headers_file = var / "demo-headers.txt"
    headers_file.touch(mode=0o600)
    headers_file.write_text(f"Authorization: Bearer {write_key}\n", encoding="utf-8")
    xgate = [sys.executable, "-m", "xgate"]

    with ExitStack() as stack:
        console.rule("[bold]xgate demo")
        sb_log, gw_log = var / "sandbox.log", var / "gateway.log"
        sb = stack.enter_context(
            managed_process([*xgate, "sandbox", "--host", "127.0.0.1", "--port", str(sb_port)], env, sb_log)
        )
        wait_http(f"{sandbox}/_sandbox/requests", 60, proc=sb, log=sb_log)
        console.print(f"sandbox (standing in for X) on {sandbox}   log: {sb_log}")
        gw = stack.enter_context(managed_process([*xgate, "serve", "--config", str(config)], env, gw_log))
        wait_http(f"{gateway}/readyz", 60, proc=gw, log=gw_log)
        console.print(f"gateway on {gateway}   config: {config}   log: {gw_log}")

        events = demo_events(run_id)
        console.print(f"\nSending {len(events)} demo events to POST /v1/events:")
        answer = httpx.post(
            f"{gateway}/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {write_key}"},
            timeout=30,
        ).json()
        _show_answer(answer, events)
        expected = {c["conversion_id"] for r in answer["results"] for c in r.get("conversions", [])}

        deadline = time.monotonic() + 60
        while True:
            mine = [
                e
                for e in _entries(gateway, admin_key)
                if e.conversion_id in expected or run_id in (e.conversion_id or "") or e.state == "rejected"
            ]
            settled = {e.conversion_id for e in mine if e.state in SETTLED}
            if expected <= settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        console.print()
        console.print(activity_table(mine, title="Delivered at the sandbox"))
        if not expected <= settled:
            console.print(f"[red]Not every conversion was delivered within 60 s; see {gw_log}[/]")
            return 1

        console.print(
            f"\nActivity: {gateway}/activity?write_key=KEY (the key is in {headers_file}), "
            f"or: xgate activity --config {config}"
        )
        console.print("Send your own event:\n")
        console.print(
            f'  curl -H @{headers_file} --data \'{{"event_name": "purchase", "id": "my-order-1", '
            f'"value": 10, "currency": "USD", "user": {{"email": "you@example.com"}}}}\' '
            f"{gateway}/v1/events",
            soft_wrap=True,
            highlight=False,
        )
        if once:
            return 0
        console.print("\nRunning until Ctrl-C.")
        try:
            while gw.poll() is None and sb.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("\nStopping.")
            return 0
        console.print(f"[red]A process stopped; see {gw_log} and {sb_log}[/]")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    once = "--once" in args or os.environ.get("XGATE_DEMO_ONCE") == "1"
    try:
        return run(Path("var"), once=once)
    except RuntimeError as e:
        console.print(f"[red]{e}[/]")
        return 1


if __name__ == "__main__":
    sys.exit(main())
