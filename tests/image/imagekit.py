"""Running the container image in tests: ``docker`` on host networking, loopback only, removed afterwards.

``XGATE_TEST_IMAGE`` names the image (``.ci/image.sh`` builds ``xgate:ci`` and sets it); without it the
image tests are skipped. ``XGATE_TEST_DOCKER`` is the docker client (default ``docker``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IMAGE = os.environ.get("XGATE_TEST_IMAGE", "")
DOCKER = os.environ.get("XGATE_TEST_DOCKER", "docker")
UID = 10001  # the image's xgate user

needs_image = pytest.mark.skipif(not IMAGE, reason="XGATE_TEST_IMAGE is not set (.ci/image.sh sets it)")


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run a docker command; its stdout, stripped. Raises AssertionError with stderr when it fails."""
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} … failed ({done.returncode}): {done.stderr}")
    return done.stdout.strip()


def inspect(container: str) -> dict[str, Any]:
    return dict(json.loads(docker("inspect", container))[0])


@dataclass
class Container:
    name: str

    def logs(self) -> str:
        done = subprocess.run([DOCKER, "logs", self.name], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        return dict(inspect(self.name)["State"])

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                raise AssertionError(f"{self.name} exited ({state['ExitCode']}):\n{self.logs()[-3000:]}")
            if state.get("Health", {}).get("Status") == "healthy":
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not healthy after {timeout:.0f} s: {self.state().get('Health')}")


@contextmanager
def running(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[tuple[Path, str]] = (),
    options: Sequence[str] = (),
) -> Iterator[Container]:
    """``docker run -d`` of the image with ``--network host``; stopped and removed (with its anonymous
    volumes) on exit. ``mounts`` are read-only bind mounts (host path, container path)."""
    name = f"xgate-test-{secrets.token_hex(4)}"
    args = ["run", "-d", "--name", name, "--network", "host", *options]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    for source, target in mounts:
        args += ["--mount", f"type=bind,source={source},target={target},readonly"]
    docker(*args, IMAGE, *command)
    try:
        yield Container(name)
    finally:
        docker("rm", "-f", "-v", name, check=False)


def readable_by_the_image_user(*paths: Path) -> None:
    """Bind-mounted files keep their host owner and mode: let the container's user read them."""
    for path in paths:
        path.chmod(0o755 if path.is_dir() else 0o644)
