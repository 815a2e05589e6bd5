"""What the whole-gateway fault tests share: ``xgate serve`` nodes as processes to kill -9 and restart, their
configuration, the sandbox's process and fault mix, the events they ingest and ``xgate status``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

PIXEL = "o8z6j"


class Gateway:
    """``xgate serve`` as a real process that the test can kill -9 and start again."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "xgate", "serve", "--config", str(self.config)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def node_config(*, sandbox: str, storage_url: str, port: int, source: str, write_key_env: str) -> str:
    """A node's xgate.toml: X is the sandbox at ``sandbox``, short leases and backoff, one source and one
    destination for purchases."""
    return f"""
[x]
api_url = "{sandbox}"
timeout_seconds = 1.0

[storage]
url = "{storage_url}"

[server]
port = {port}

[dispatch]
lease_seconds = 3
linger_ms = 20
backoff_base_seconds = 0.05
backoff_max_seconds = 1.0

[[sources]]
name = "{source}"
write_key_env = "{write_key_env}"

[[destinations]]
name = "x-main"
pixel_id = "{PIXEL}"
events = {{ purchase = "tw-{PIXEL}-o87ne" }}
"""


def start_sandbox(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``xgate sandbox`` on loopback ``port``, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "xgate", "sandbox", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def faults(seed: int) -> dict[str, Any]:
    """The sandbox's fault mix: about 30% of X requests fail (5xx, 429 bursts, timeouts, dropped
    connections), drawn from ``seed``."""
    return {
        "seed": seed,
        "error_rate": 0.12,
        "rate_limit_rate": 0.06,
        "rate_limit_burst": 3,
        "rate_limit_reset_seconds": 1,
        "timeout_rate": 0.06,
        "drop_rate": 0.06,
    }


def purchase(i: int, now_ms: int, user_agent: str) -> dict[str, Any]:
    """Event ``i`` of a run: purchase ``ord-{i}`` of a buyer of its own."""
    return {
        "event_name": "purchase",
        "id": f"ord-{i}",
        "value": 10 + i % 90,
        "currency": "EUR",
        "user": {"email": f"buyer{i}@example.com"},
        "context": {"event_timestamp": now_ms, "ip": "203.0.113.9", "user_agent": user_agent},
    }


def status(config: Path, env: dict[str, str]) -> dict[str, Any]:
    """``xgate status --json`` of the outbox ``config`` names."""
    shown = subprocess.run(
        [sys.executable, "-m", "xgate", "status", "--json", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(shown.stdout)
    return result
