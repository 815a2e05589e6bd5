"""``xgate serve`` as a real process: it answers, logs JSON without PII, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gatewaykit import PIXEL, SERVER_KEY, SERVER_KEY_ENV, purchase

from xgate.testing import free_port


def test_serve_collects_logs_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path / "outbox.db"}"\n'
        f'[[sources]]\nname = "backend"\nwrite_key_env = "{SERVER_KEY_ENV}"\n'
        f'[[destinations]]\nname = "x-main"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne" }}\n'
    )
    env = {**os.environ, SERVER_KEY_ENV: SERVER_KEY}
    args = [
        sys.executable,
        "-m",
        "xgate",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--no-dispatch",
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"xgate serve exited with {proc.returncode}: {proc.communicate()[1][-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("xgate serve did not start")
        headers = {"Authorization": f"Bearer {SERVER_KEY}"}
        assert httpx.post(f"{url}/v1/events", json=purchase("srv-1"), headers=headers).status_code == 200
        bad = {"event_name": "purchase", "value": "x", "user": {"email": "Private.Person@Example.com"}}
        assert httpx.post(f"{url}/v1/events", json=bad, headers=headers).status_code == 422
        assert httpx.get(f"{url}/readyz").status_code == 200  # no dispatcher asked for
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert records, "no log lines"
    assert all({"ts", "level", "msg"} <= set(r) for r in records)
    assert any(r["msg"] == "event rejected" for r in records)
    assert "private.person" not in stderr.lower()
    assert SERVER_KEY not in stderr
