"""``make run``: the gateway with embedded defaults, end to end against the sandbox standing in for X.

Starts the sandbox and ``xgate serve`` on loopback with credentials generated at random for this run (handed
over in environment variables), sends a few demo events, shows them delivered, prints the lines that make the
README's tour work from a second terminal (``export XGATE_CONFIG=…``, the write key as ``WRITE_KEY`` for
``curl`` and ``XGATE_WRITE_KEY`` for ``xgate track``, ``XGATE_GATEWAY_URL``, the ``curl`` line), and
keeps running until Ctrl-C or SIGTERM. ``--once`` (or ``XGATE_DEMO_ONCE=1``) exits after showing delivery.

The gateway listens on 127.0.0.1:8080 as the README's ``curl`` line says, or on a free port when 8080 is
taken (the printed lines name it). Everything the run writes is under ``./var``, which one demo holds at a
time: a second ``make run`` while one runs refuses, naming the running one and its settings file, and
changes nothing. The lock is an ``flock`` the system drops when the last process holding it ends: the
demo, and its sandbox and gateway, which inherit it. So a killed demo never blocks the next one, and no
second gateway starts on the outbox while one a killed demo left still runs (the refusal names its pid).
SIGTERM and SIGHUP stop the demo as Ctrl-C does: its sandbox and gateway are stopped too. SIGKILL (or a
crash) cannot be caught: on Linux the sandbox and the gateway then get SIGTERM from the system
(``PR_SET_PDEATHSIG``) and stop gracefully on their own.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx
import orjson
from rich.console import Console
from rich.markup import escape

from xgate.cli.output import err
from xgate.cli.serve import activity_table
from xgate.client.common import URL_ENV as CLIENT_URL_ENV
from xgate.client.common import WRITE_KEY_ENV as CLIENT_WRITE_KEY_ENV
from xgate.observe.activity import ActivityEntry
from xgate.testing import free_port, managed_process, wait_http

PIXEL = "o8z6j"
WRITE_KEY_ENV = "XGATE_DEMO_WRITE_KEY"
ADMIN_KEY_ENV = "XGATE_DEMO_ADMIN_KEY"
CREDENTIAL_NAMES = ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
SETTLED = {"delivered", "dead"}
#: the gateway's port when free: the one of the README's curl line and of examples/xgate.toml
PREFERRED_PORT = 8080
#: the event file the README's curl line posts (relative to the repository, where ``make run`` runs)
EXAMPLE_EVENT = Path("examples/purchase.json")
#: what that line posts when the demo does not run from the repository
MY_EVENT = {
    "event_name": "purchase",
    "id": "my-order-1",
    "value": 10,
    "currency": "USD",
    "user": {"email": "you@example.com"},
}

console = Console()


class DemoRunning(RuntimeError):
    """Another demo, or the sandbox or gateway of a killed one, holds the run directory."""


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived: stop as Ctrl-C does."""


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    # once: a second signal must not interrupt the clean-up that stops the children
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


class RunDir:
    """The demo's hold on its run directory: ``var/demo.lock``, locked, naming the demo's pid on its first
    line and each child's (``gateway PID``) on the next ones. A child started with :attr:`fd` among its
    ``pass_fds`` holds the lock too, for as long as it lives."""

    def __init__(self, lock: IO[str]) -> None:
        self._lock = lock

    @property
    def fd(self) -> int:
        return self._lock.fileno()

    def record(self, role: str, pid: int) -> None:
        """Name a child holding the lock, for a refused second demo to name it."""
        self._lock.write(f"{role} {pid}\n")
        self._lock.flush()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process, alive
        pass
    return True


def _refusal(var: Path, holders: str) -> DemoRunning:
    """Why the lock is held: a running demo (use it or stop it), or, when the demo is gone, the children
    of a killed one that still run on its outbox (wait for them or stop them)."""
    lines = holders.splitlines()
    demo = lines[0].strip() if lines else "?"
    children = [line.split() for line in lines[1:] if len(line.split()) == 2]
    killed = demo.isdigit() and not _alive(int(demo))
    if not killed:
        return DemoRunning(
            f"a demo is already running from this folder (pid {demo}) and owns {var}/: use it "
            f"(`source {var / 'demo.env'}` in another terminal sets its XGATE_CONFIG, write key and "
            f"gateway URL), "
            f"or stop it (Ctrl-C in its terminal, or kill {demo}) and run again"
        )
    running = [(role, pid) for role, pid in children if pid.isdigit() and _alive(int(pid))]
    named = " and ".join(f"{role} (pid {pid})" for role, pid in running) or "sandbox or gateway"
    one = len(running) == 1
    pids = " ".join(pid for _, pid in running)
    return DemoRunning(
        f"a demo that ran from this folder was killed (pid {demo}), but its {named} still "
        f"{'runs' if one else 'run'} and {'holds' if one else 'hold'} {var}/: run again once "
        f"{'it has' if one else 'they have'} stopped, or stop {'it' if one else 'them'} now"
        + (f": kill {pids}" if pids else "")
    )


@contextmanager
def hold_run_dir(var: Path) -> Iterator[RunDir]:
    """Hold ``var/demo.lock`` for the run; :class:`DemoRunning` (naming the holder) when another demo, or a
    child of a killed one (:class:`RunDir`), does.

    Nothing in ``var`` is written before the lock is held, so a refused second demo changes nothing."""
    var.mkdir(parents=True, exist_ok=True)
    lock: IO[str] = (var / "demo.lock").open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise _refusal(var, lock.read()) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield RunDir(lock)
    finally:
        lock.close()


def _gateway_port() -> int:
    """:data:`PREFERRED_PORT` when nothing listens there, else a free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", PREFERRED_PORT))
        except OSError:
            return free_port()
    return PREFERRED_PORT


def _start_child(
    stack: ExitStack, held: RunDir, role: str, command: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start the demo's ``role`` (sandbox, gateway): stopped with the demo however it ends (its clean-up,
    or on Linux the system's SIGTERM when the demo is killed), and holding the run directory's lock while
    it lives, so that no second demo starts beside it."""
    proc = stack.enter_context(managed_process(command, env, log, end_with_parent=True, pass_fds=(held.fd,)))
    held.record(role, proc.pid)
    return proc


def _start_gateway(
    stack: ExitStack, held: RunDir, command: list[str], env: dict[str, str], var: Path, sandbox: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``xgate serve`` with the demo's settings; its process, port and admin port once it is ready.

    Ready means its admin listener answers: that port is picked free for this run, so no other server
    answers there (a gateway that another demo or a test starts on 8080 between :func:`_gateway_port`'s
    look and this one's bind does answer ``/readyz`` on 8080). A gateway that exits on start (its port
    taken meanwhile) is started once more on free ports; a second failure raises RuntimeError naming the
    log."""
    config, log = var / "xgate.demo.toml", var / "gateway.log"
    port = _gateway_port()
    for attempt in (1, 2):
        admin_port = free_port()
        config.write_text(demo_config(var, sandbox, port, admin_port), encoding="utf-8")
        gw = _start_child(stack, held, "gateway", command, env, log)
        try:
            wait_http(f"http://127.0.0.1:{admin_port}/readyz", 60, proc=gw, log=log)
        except RuntimeError:
            if attempt == 2 or gw.poll() is None:
                raise
            port = free_port()
            continue
        return gw, port, admin_port
    raise AssertionError("unreachable")


def demo_config(var: Path, sandbox_url: str, port: int, admin_port: int) -> str:
    return f"""# written by `make run` (python -m xgate.demo); credentials come from that run's environment
[x]
api_url = "{sandbox_url}"

[storage]
url = "sqlite:///{(var / "xgate.demo.db").resolve()}"
state_dir = "."   # this folder: `xgate import` keeps its reports in var/imports/, not var/var/imports/

[server]
host = "127.0.0.1"
port = {port}
admin_key_env = "{ADMIN_KEY_ENV}"
admin_port = {admin_port}

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


def _tour_lines(config: Path, gateway: str, write_key: str) -> tuple[list[str], list[str]]:
    """The shell lines for a second terminal: the exports (also written to ``var/demo.env``) and the
    commands of the README's tour, each at most 80 columns wide (but for a long path)."""
    exports = [
        f"export XGATE_CONFIG={shlex.quote(str(config.resolve()))}",
        f"export WRITE_KEY={shlex.quote(write_key)}",
        # what `xgate track` and GatewayClient read: the key by reference (printed once), the address as
        # served (8080 or the free port the gateway moved to)
        f'export {CLIENT_WRITE_KEY_ENV}="$WRITE_KEY"',
        f"export {CLIENT_URL_ENV}={shlex.quote(gateway)}",
    ]
    bin_dir = Path(sys.executable).parent
    if shutil.which("xgate") != str(bin_dir / "xgate") and (bin_dir / "xgate").exists():
        exports.append(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
    event = EXAMPLE_EVENT
    if not event.exists():  # not run from the repository: an event of its own
        event = config.parent / "my-event.json"
        event.write_text(orjson.dumps(MY_EVENT, option=orjson.OPT_INDENT_2).decode() + "\n", encoding="utf-8")
    commands = [
        "xgate status",
        "xgate activity",
        'curl -H "Authorization: Bearer $WRITE_KEY" \\',
        '     -H "Content-Type: application/json" \\',
        f"     -d @{shlex.quote(str(event))} {gateway}/v1/events",
    ]
    return exports, commands


def run(var: Path, *, once: bool) -> int:
    """The demo in ``var``; 0 once delivery is shown (``once``) or when stopped, 1 when a process failed."""
    with hold_run_dir(var) as held:
        return _run(var, held, once=once)


def _run(var: Path, held: RunDir, *, once: bool) -> int:
    run_id = secrets.token_hex(3)
    write_key, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        **{f"XGATE_X_{name}": secrets.token_urlsafe(24) for name in CREDENTIAL_NAMES},
        WRITE_KEY_ENV: write_key,
        ADMIN_KEY_ENV: admin_key,
    }
    sb_port = free_port()
    sandbox = f"http://127.0.0.1:{sb_port}"
    config = var / "xgate.demo.toml"
    xgate = [sys.executable, "-m", "xgate"]

    with ExitStack() as stack:
        console.rule("[bold]xgate demo")
        sb_log, gw_log = var / "sandbox.log", var / "gateway.log"
        sb = _start_child(
            stack,
            held,
            "sandbox",
            [*xgate, "sandbox", "--host", "127.0.0.1", "--port", str(sb_port)],
            env,
            sb_log,
        )
        wait_http(f"{sandbox}/_sandbox/requests", 60, proc=sb, log=sb_log)
        console.print(f"sandbox (standing in for X): {sandbox}   log: {sb_log}", highlight=False)
        gw, gw_port, admin_port = _start_gateway(
            stack, held, [*xgate, "serve", "--config", str(config)], env, var, sandbox
        )
        gateway = f"http://127.0.0.1:{gw_port}"
        console.print(f"gateway: {gateway}   log: {gw_log}", highlight=False)
        if gw_port != PREFERRED_PORT:
            console.print(f"(port {PREFERRED_PORT} is taken: the gateway is on {gw_port})", style="yellow")

        events = demo_events(run_id)
        console.print(f"\nSending {len(events)} demo events to POST /v1/events:")
        response = httpx.post(
            f"{gateway}/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {write_key}"},
            timeout=30,
        )
        answer = response.json()
        if "results" not in answer:  # not the per-event answer: a 4xx / 5xx naming what went wrong
            raise RuntimeError(
                f"the gateway answered HTTP {response.status_code} to the demo events: "
                f"{answer.get('message', response.text)}; see {gw_log}"
            )
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

        exports, commands = _tour_lines(config, gateway, write_key)
        env_file = var / "demo.env"
        env_file.touch(mode=0o600)
        env_file.write_text("\n".join(exports) + "\n", encoding="utf-8")
        console.print(f"\nIn another terminal, from this folder (the exports are in {env_file} too):\n")
        for line in [*exports, "", *commands]:
            console.print(f"  {line}" if line else "", soft_wrap=True, highlight=False, markup=False)
        console.print("\nThe console and the API docs, in a browser:\n")
        for url in (f"{gateway}/console", f"http://127.0.0.1:{admin_port}/docs"):
            console.print(f"  {url}", soft_wrap=True, highlight=False, markup=False)
        # the admin key is made for this run only (gone when it stops): it signs in to the console
        console.print(f"\n  console sign-in key (this run only): {admin_key}", highlight=False, markup=False)
        if once:
            return 0
        console.print("\nRunning until Ctrl-C.")
        while gw.poll() is None and sb.poll() is None:
            time.sleep(0.5)
        console.print(f"[red]A process stopped; see {gw_log} and {sb_log}[/]")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    once = "--once" in args or os.environ.get("XGATE_DEMO_ONCE") == "1"
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    try:
        return run(Path("var"), once=once)
    except (KeyboardInterrupt, Stopped):
        console.print("\nStopped: the sandbox and the gateway are stopped too.")
        return 0
    except RuntimeError as e:
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
