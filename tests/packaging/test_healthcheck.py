"""``python -m xgate.healthcheck``, the container image's HEALTHCHECK: /readyz on the configured port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from xgate.healthcheck import readyz_url
from xgate.testing import free_port, serve_app


def test_the_port_comes_from_the_configuration_named_by_xgate_config(tmp_path: Path) -> None:
    config = tmp_path / "xgate.toml"
    config.write_text("[server]\nport = 9123\n")
    assert readyz_url({"XGATE_CONFIG": str(config)}) == "http://127.0.0.1:9123/readyz"
    assert readyz_url({"XGATE_CONFIG": str(tmp_path / "absent.toml")}) == "http://127.0.0.1:8080/readyz"
    override = {"XGATE_CONFIG": str(config), "XGATE_HEALTHCHECK_URL": "http://127.0.0.1:1/readyz"}
    assert readyz_url(override) == "http://127.0.0.1:1/readyz"


def _probe(port: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "xgate.toml"
    config.write_text(f"[server]\nport = {port}\n")
    return subprocess.run(
        [sys.executable, "-m", "xgate.healthcheck"],
        env={"XGATE_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_exit_0_when_ready_1_with_the_reason_when_not_or_unreachable(tmp_path: Path) -> None:
    state = {"ready": True}

    async def readyz(request: object) -> JSONResponse:
        if state["ready"]:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "problems": ["dispatcher not running"]}, 503)

    port = free_port()
    with serve_app(Starlette(routes=[Route("/readyz", readyz)]), port=port):
        ready = _probe(port, tmp_path)
        assert (ready.returncode, ready.stdout.strip()) == (0, "ready")
        state["ready"] = False
        not_ready = _probe(port, tmp_path)
        assert not_ready.returncode == 1 and "503" in not_ready.stdout
        assert "dispatcher not running" in not_ready.stdout
    gone = _probe(port, tmp_path)
    assert gone.returncode == 1 and f"127.0.0.1:{port}" in gone.stdout
