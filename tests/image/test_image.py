"""The container image as an operator runs it: the gateway with a mounted xgate.toml and secrets under
/run/secrets, the sandbox from the same image as X; both on host networking, bound to 127.0.0.1."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekit import IMAGE, UID, Container, docker, inspect, needs_image, readable_by_the_image_user, running

from xgate.testing import free_port, random_x_credentials, wait_http

pytestmark = [needs_image, pytest.mark.timeout(600)]

PIXEL = "o8z6j"
WRITE_KEY_ENV = "XGATE_WRITE_KEY_BACKEND"


def gateway_config(port: int, x_url: str) -> str:
    # no [storage]: the default SQLite file, relative to /etc/xgate, is on the image's volume
    return f"""
[x]
api_url = "{x_url}"
timeout_seconds = 5

[server]
host = "127.0.0.1"
port = {port}

[dispatch]
linger_ms = 50
backoff_base_seconds = 0.2

[[sources]]
name = "backend"
write_key_env = "{WRITE_KEY_ENV}"

[[destinations]]
name = "x-main"
pixel_id = "{PIXEL}"
events = {{ purchase = "tw-{PIXEL}-o87ne" }}
"""


def purchase(order: str) -> dict[str, Any]:
    return {
        "event_name": "purchase",
        "id": order,
        "value": 12.5,
        "currency": "EUR",
        "user": {"email": "buyer@example.com"},
        "context": {"ip": "203.0.113.7"},
    }


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url

    def conversions(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/_sandbox/conversions", params={"limit": 100_000}).json()
        return list(answer["conversions"])

    def set_faults(self, **faults: Any) -> None:
        httpx.put(f"{self.url}/_sandbox/faults", json=faults).raise_for_status()

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(got := self.conversions()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} conversions reached the sandbox")
            time.sleep(0.2)
        return got


@pytest.fixture(scope="module")
def credentials() -> dict[str, str]:
    return random_x_credentials()


@pytest.fixture(scope="module")
def sandbox(credentials: dict[str, str]) -> Iterator[Sandbox]:
    port = free_port()
    command = ["sandbox", "--host", "127.0.0.1", "--port", str(port), "--pixel", PIXEL]
    with running(command, env=credentials) as container:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/_sandbox/conversions", 60)
        except RuntimeError:
            raise AssertionError(container.logs()) from None
        yield Sandbox(url)


@dataclass
class Mounted:
    """The gateway's xgate.toml and a secrets folder (X credentials, the write key), as files to mount."""

    config: Path
    secrets_dir: Path
    port: int
    write_key: str


@pytest.fixture(scope="module")
def mounted(
    tmp_path_factory: pytest.TempPathFactory, credentials: dict[str, str], sandbox: Sandbox
) -> Mounted:
    root = tmp_path_factory.mktemp("gateway")
    port = free_port()
    config = root / "xgate.toml"
    config.write_text(gateway_config(port, sandbox.url))
    secrets_dir = root / "secrets"
    secrets_dir.mkdir()
    write_key = secrets.token_urlsafe(16)
    for name, value in {**credentials, WRITE_KEY_ENV: write_key}.items():
        (secrets_dir / name).write_text(value + "\n")
    readable_by_the_image_user(root, config, secrets_dir, *secrets_dir.iterdir())
    return Mounted(config, secrets_dir, port, write_key)


@pytest.fixture(scope="module")
def gateway(mounted: Mounted) -> Iterator[Container]:
    mounts = [(mounted.config, "/etc/xgate/xgate.toml"), (mounted.secrets_dir, "/run/secrets")]
    # the image's own HEALTHCHECK command, probed more often than its 15 s so the test does not wait
    with running(["serve"], mounts=mounts, options=["--health-interval", "1s"]) as container:
        container.wait_healthy()
        yield container


def post(port: int, write_key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {write_key}"},
        timeout=30,
    )
    assert answer.status_code < 300, answer.text
    return dict(answer.json())


def test_the_gateway_runs_as_a_non_root_user_and_its_healthcheck_passes(gateway: Container) -> None:
    details = inspect(gateway.name)
    assert details["Config"]["User"] == "xgate"
    assert "xgate.healthcheck" in " ".join(details["Config"]["Healthcheck"]["Test"])
    assert details["State"]["Health"]["Status"] == "healthy"
    # the main process itself, as the kernel sees it
    status = Path(f"/proc/{details['State']['Pid']}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {str(UID)}


def test_an_event_posted_to_the_container_is_delivered_to_the_sandbox(
    gateway: Container, mounted: Mounted, sandbox: Sandbox
) -> None:
    port, write_key = mounted.port, mounted.write_key
    before = len(sandbox.conversions())
    answer = post(port, write_key, [purchase("order-image-1")])
    assert answer["results"][0]["status"] == "accepted", answer
    delivered = sandbox.wait_for(before + 1)
    [conversion] = delivered[before:]
    assert conversion["pixel_id"] == PIXEL and conversion["conversion_id"]


def test_sigterm_stops_it_cleanly_and_nothing_accepted_is_lost(
    gateway: Container, mounted: Mounted, sandbox: Sandbox
) -> None:
    config, port, write_key = mounted.config, mounted.port, mounted.write_key
    before = len(sandbox.conversions())
    # slow answers from X, so batches are in flight when SIGTERM comes
    sandbox.set_faults(slow_rate=1.0, slow_ms=1500)
    accepted = 0
    for n in range(10):
        answer = post(port, write_key, [purchase(f"order-stop-{n}-{i}") for i in range(20)])
        accepted += sum(r["status"] == "accepted" for r in answer["results"])
    assert accepted == 200
    docker("stop", "-t", "40", gateway.name, timeout=90)
    state = gateway.state()
    # exit status 0: it stopped by itself within the grace period, not SIGKILLed (137)
    assert (state["Running"], state["ExitCode"], state["OOMKilled"]) == (False, 0, False), gateway.logs()
    # nothing was left mid-flight: every batch in flight was settled before the exit, the rest still queued
    at_stop = status_of(gateway, config)
    delivered_at_stop = len(sandbox.conversions()) - before
    assert at_stop["leased"] == at_stop["dead"] == 0, at_stop
    assert at_stop["delivered"] == before + delivered_at_stop
    assert at_stop["queued"] == accepted - delivered_at_stop
    sandbox.set_faults(slow_rate=0.0)

    # started again, the gateway sends what was still queued: each conversion once
    docker("start", gateway.name)
    delivered = sandbox.wait_for(before + accepted)[before:]
    ids = [c["conversion_id"] for c in delivered]
    assert len(ids) == len(set(ids)) == accepted
    deadline = time.monotonic() + 30
    while (status := status_of(gateway, config))["delivered"] < before + accepted:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status == {"queued": 0, "leased": 0, "delivered": before + accepted, "dead": 0}


def status_of(gateway: Container, config: Path) -> dict[str, int]:
    """``xgate status --json`` totals, from the same image on the gateway's volume."""
    config_mount = f"type=bind,source={config},target=/etc/xgate/xgate.toml,readonly"
    args = ["run", "--rm", "--volumes-from", gateway.name, "--mount", config_mount, IMAGE, "status", "--json"]
    return dict(json.loads(docker(*args))["totals"])
