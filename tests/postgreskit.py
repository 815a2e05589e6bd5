"""The PostgreSQL server of ``.ci/postgres.sh`` for this checkout, as tests that stop and start it use it
(the ``restartable_postgres`` fixture of ``tests/conftest.py``, and tests of their own on its databases)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

#: the checkout's root, where ``.ci/postgres.sh`` is
ROOT = Path(__file__).resolve().parents[1]


def require_restartable(url: str) -> None:
    """Fail (CI) or skip unless ``url`` is on the cluster ``.ci/postgres.sh`` runs for this checkout."""
    ours = subprocess.run([ROOT / ".ci/postgres.sh", "url"], capture_output=True, text=True, check=False)
    if ours.returncode == 0 and urlsplit(ours.stdout.strip()).netloc == urlsplit(url).netloc:
        return
    why = "this test restarts PostgreSQL: it needs the cluster of .ci/postgres.sh start"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


class RestartablePostgres:
    """The PostgreSQL server of ``.ci/postgres.sh`` for this checkout, which a test may stop and start, and
    ``url``, the test's database on it (check it first with :func:`require_restartable`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._restarts: list[subprocess.Popen[bytes]] = []

    def restart(self, seconds_down: float) -> subprocess.Popen[bytes]:
        """``.ci/postgres.sh restart``: a fast stop (every connection cut; the server answers "shutting
        down", then the port refuses), ``seconds_down`` seconds down, a start on the same port. In the
        background: the server takes connections again once the returned process has ended."""
        process = subprocess.Popen(
            [ROOT / ".ci/postgres.sh", "restart", f"{seconds_down:g}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._restarts.append(process)
        return process

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server's postmaster stopped (SIGSTOP) until the block ends: new connections wait unanswered
        (until libpq's ``connect_timeout``), open ones keep working, as with a server that hangs at
        accepting."""
        import psycopg

        with psycopg.connect(self.url) as db:  # a backend's parent is the postmaster
            stat = Path(f"/proc/{db.info.backend_pid}/stat").read_text()
        postmaster = int(stat.rsplit(")", 1)[1].split()[1])
        os.kill(postmaster, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(postmaster, signal.SIGCONT)

    def wait(self) -> None:
        """Wait for every restart begun to end (the server is up again)."""
        for process in self._restarts:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err.decode()
