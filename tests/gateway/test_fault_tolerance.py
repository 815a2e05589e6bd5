"""Nothing accepted is lost, nothing is counted twice — under faults and kill -9.

20,000 events are ingested over HTTP while the sandbox fails about 30% of requests (5xx, 429 bursts,
timeouts, dropped connections) and the gateway is killed with SIGKILL three times and restarted. At the end
the sandbox holds every accepted conversion exactly once (counted by conversion_id, as X deduplicates),
none it was not given, and ``xgate status`` shows nothing queued, leased or dead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.gateway.nodekit import Gateway, faults, node_config, purchase, start_sandbox, status

from xgate.testing import free_port, random_x_credentials, wait_http

EVENTS = 20_000
PER_REQUEST = 100
KILLS = 3
WRITE_KEY = "fault-test-key"

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    creds = random_x_credentials()
    env = {**os.environ, **creds, "XGATE_FAULT_WRITE_KEY": WRITE_KEY}
    sb_port, gw_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sb_port}"
    sandbox = start_sandbox(sb_port, env, tmp_path / "sandbox.log")
    config = tmp_path / "xgate.toml"
    config.write_text(
        node_config(
            sandbox=sandbox_url,
            storage_url=f"sqlite:///{tmp_path / 'outbox.db'}",
            port=gw_port,
            source="fault",
            write_key_env="XGATE_FAULT_WRITE_KEY",
        )
    )
    gateway = Gateway(config, env, tmp_path / "gateway.log")
    try:
        wait_http(f"{sandbox_url}/_sandbox/conversions")
        yield {
            "sandbox": sandbox_url,
            "gateway": f"http://127.0.0.1:{gw_port}",
            "gw": gateway,
            "config": config,
            "env": env,
        }
    finally:
        gateway.stop()
        sandbox.terminate()
        sandbox.wait(timeout=30)


def _ingest(gateway: str, accepted: set[str], done: threading.Event) -> None:
    """Send every batch until the gateway acknowledges it; a batch cut off by a kill is sent again."""
    now_ms = int(time.time() * 1000)
    headers = {"Authorization": f"Bearer {WRITE_KEY}"}
    with httpx.Client(timeout=10) as client:
        for start in range(0, EVENTS, PER_REQUEST):
            batch = {"events": [purchase(i, now_ms, "fault-test") for i in range(start, start + PER_REQUEST)]}
            while True:
                try:
                    r = client.post(f"{gateway}/v1/events", json=batch, headers=headers)
                except httpx.HTTPError:
                    time.sleep(0.2)  # the gateway is down (killed); try again once it is back
                    continue
                if r.status_code >= 500:
                    time.sleep(0.2)
                    continue
                assert r.status_code == 200, r.text
                for result in r.json()["results"]:
                    assert result["status"] in ("accepted", "duplicate"), result
                    accepted.update(c["conversion_id"] for c in result["conversions"])
                break
    done.set()


def test_every_accepted_conversion_arrives_exactly_once_through_faults_and_kill9(
    world: dict[str, Any],
) -> None:
    sandbox, gateway, gw = world["sandbox"], world["gateway"], world["gw"]
    injected = httpx.put(
        f"{sandbox}/_sandbox/faults",
        json=faults(1234),
    )
    assert injected.status_code < 300, injected.text
    gw.start()
    wait_http(f"{gateway}/healthz")

    accepted: set[str] = set()
    done = threading.Event()
    ingest = threading.Thread(target=_ingest, args=(gateway, accepted, done), daemon=True)
    ingest.start()
    for _ in range(KILLS):
        time.sleep(4)
        gw.kill9()
        time.sleep(0.5)
        gw.start()
        wait_http(f"{gateway}/healthz")
    ingest.join(timeout=600)
    assert done.is_set(), "ingest did not finish"
    assert len(accepted) == EVENTS

    totals: dict[str, int] = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # the gateway settles every row while the faults go on
        totals = status(world["config"], world["env"])["totals"]
        if totals["delivered"] + totals["dead"] >= EVENTS:
            break
        time.sleep(1)
    gw.stop()

    delivered = httpx.get(f"{sandbox}/_sandbox/conversions", timeout=60).json()
    ids = [c["conversion_id"] for c in delivered["conversions"]]
    assert set(ids) == accepted, "the sandbox must hold exactly the accepted conversions"
    assert delivered["unique"] == EVENTS
    requests = httpx.get(f"{sandbox}/_sandbox/requests", timeout=30).json()
    assert sum(n for code, n in requests["by_status"].items() if code != "200") > 0, "faults were injected"

    totals = status(world["config"], world["env"])["totals"]
    assert totals["queued"] == 0 and totals["leased"] == 0 and totals["dead"] == 0, totals
    assert totals["delivered"] == EVENTS
