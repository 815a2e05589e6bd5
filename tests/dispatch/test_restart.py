"""``xgate serve`` killed with SIGKILL while it holds leases takes them back when it starts again: what
it was sending goes out at once, not ``lease_seconds`` later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from xgate.outbox.base import default_node_id
from xgate.testing import OutboxFactory, RunningSandbox, free_port, wait_http

KEY_ENV, KEY = "XGATE_TEST_RESTART_KEY", "restart-key-2f7a"
LEASE_SECONDS = 60
SLOW_SECONDS = 8  # how long X (the sandbox) takes to answer the first process
ORDERS = [f"ord-{i}" for i in range(5)]


def test_a_gateway_restarted_after_sigkill_resends_its_leased_rows_at_once(
    tmp_path: Path, sandbox: RunningSandbox, outbox_factory: OutboxFactory
) -> None:
    storage_url = outbox_factory.url
    port = free_port()  # the same port after the restart: the node id is the same
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[x]\napi_url = "{sandbox.url}"\ntimeout_seconds = 60\n'
        f'[storage]\nurl = "{storage_url}"\n'
        f"[server]\nport = {port}\n"
        f"[dispatch]\nlease_seconds = {LEASE_SECONDS}\nlinger_ms = 0\n"
        f'[[sources]]\nname = "backend"\nwrite_key_env = "{KEY_ENV}"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'
    )
    env = {**os.environ, **sandbox.env, KEY_ENV: KEY}
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "gateway.log"
    box = outbox_factory(node_id="onlooker")

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "xgate", "serve", "--config", str(config)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(f"{url}/healthz", proc=proc, log=log)
        return proc

    def states() -> dict[str, str]:
        return {r.conversion_id: r.state for r in box.rows(limit=100)}

    sandbox.set_faults(slow_rate=1, slow_ms=SLOW_SECONDS * 1000)  # the batch stays in flight
    first = start()
    try:
        for order in ORDERS:
            event = {"event_name": "purchase", "id": order, "user": {"email": f"{order}@example.com"}}
            answer = httpx.post(f"{url}/v1/events", json=event, headers={"Authorization": f"Bearer {KEY}"})
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 20
        while set(states().values()) != {"leased"}:
            assert time.monotonic() < deadline, f"rows not leased: {states()}"
            time.sleep(0.05)
        in_flight_since = time.monotonic()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert set(states().values()) == {"leased"}  # held by the dead process, for up to a minute more

    sandbox.set_faults()  # X answers at once again
    restarted_at = time.monotonic()
    second = start()
    try:
        while set(states().values()) != {"delivered"}:
            assert time.monotonic() - restarted_at < LEASE_SECONDS / 4, f"not resent at once: {states()}"
            time.sleep(0.05)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert {c["conversion_id"] for c in sandbox.conversions()} >= set(ORDERS)
    # the sandbox still answers the dead process's request in the background: let it finish here, not
    # in the next test
    time.sleep(max(0.0, in_flight_since + SLOW_SECONDS + 0.5 - time.monotonic()))


def test_serve_leases_as_the_node_of_the_port_it_was_given_not_the_configured_one(
    tmp_path: Path, sandbox: RunningSandbox, outbox_factory: OutboxFactory
) -> None:
    # the systemd template runs `xgate serve --port %i` for every instance from one xgate.toml: the node
    # id must follow --port, or the instances share one id and a restarted one takes the leases of a
    # live one (docs/deploy.md, "Nodes")
    configured, given = free_port(), free_port()
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[x]\napi_url = "{sandbox.url}"\n'
        f'[storage]\nurl = "{outbox_factory.url}"\n'
        f"[server]\nport = {configured}\n"
        "[dispatch]\nlinger_ms = 0\n"
        f'[[sources]]\nname = "backend"\nwrite_key_env = "{KEY_ENV}"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'
    )
    log = tmp_path / "gateway.log"
    box = outbox_factory(node_id="onlooker")
    sandbox.set_faults(slow_rate=1, slow_ms=3000)  # the row stays leased while we look
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xgate", "serve", "--config", str(config), "--port", str(given)],
            env={**os.environ, **sandbox.env, KEY_ENV: KEY},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{given}"
        wait_http(f"{url}/healthz", proc=proc, log=log)
        event = {"event_name": "purchase", "id": "ord-port", "user": {"email": "port@example.com"}}
        answer = httpx.post(f"{url}/v1/events", json=event, headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 20
        while (rows := box.rows(limit=1)) and rows[0].state != "leased":
            assert time.monotonic() < deadline, f"not leased: {rows}"
            time.sleep(0.05)
        assert rows[0].leased_by == default_node_id(outbox_factory.url, f"serve:{given}")
        assert rows[0].leased_by != default_node_id(outbox_factory.url, f"serve:{configured}")
        assert rows[0].leased_by in log.read_text()  # the start names the node id
    finally:
        sandbox.set_faults()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()
