"""``xgate serve`` as a real process, delivering to the sandbox: ``--log-level debug`` writes no OAuth
parameter or credential, and ``[server] admin_port`` serves /metrics and the API documents on a loopback
listener of their own while the public one answers 404 (docs/security.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gatewaykit import PIXEL, SERVER_KEY, SERVER_KEY_ENV, purchase

from xgate.testing import RunningSandbox, free_port, wait_http


def test_a_debug_log_holds_no_credential_and_the_admin_paths_have_their_own_listener(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    port, admin_port = free_port(), free_port()
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[x]\napi_url = "{sandbox.url}"\n'
        f'[storage]\nurl = "sqlite:///{tmp_path / "outbox.db"}"\n'
        f"[server]\nadmin_port = {admin_port}\n"
        "[dispatch]\nlinger_ms = 0\n"
        f'[[sources]]\nname = "backend"\nwrite_key_env = "{SERVER_KEY_ENV}"\n'
        f'[[destinations]]\nname = "x-main"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne" }}\n'
    )
    env = {**os.environ, **sandbox.env, SERVER_KEY_ENV: SERVER_KEY}
    args = [sys.executable, "-m", "xgate", "serve", "--config", str(config), "--port", str(port)]
    args += ["--log-level", "debug"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        public, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        wait_http(f"{public}/healthz", timeout=60)
        headers = {"Authorization": f"Bearer {SERVER_KEY}"}
        assert httpx.post(f"{public}/v1/events", json=purchase("dbg-1"), headers=headers).status_code == 200
        deadline = time.monotonic() + 30
        while not any(c.get("conversion_id") == "dbg-1" for c in sandbox.conversions()):
            assert time.monotonic() < deadline, "the conversion was not delivered"
            time.sleep(0.1)
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert httpx.get(f"{public}{path}").status_code == 404, path
            assert httpx.get(f"{admin}{path}").status_code == 200, path
        assert "xgate_conversions_queued_total" in httpx.get(f"{admin}/metrics").text
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(r["level"] == "debug" for r in records), "the debug level was not on"
    assert not [r for r in records if r["logger"].startswith(("oauthlib", "httpcore", "httpx"))]
    for secret in sandbox.env.values():
        assert secret not in stderr
    assert "oauth_consumer_key" not in stderr and "oauth_token" not in stderr
