"""Helpers for tests, benchmarks and the demo: free ports, throwaway credentials, an ASGI app in a thread."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from xgate.config import StorageSettings, XSettings
from xgate.outbox import Outbox, open_outbox
from xgate.x import Credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout: float = 30.0, *, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Wait until ``url`` answers below 500 (a server coming up); RuntimeError after ``timeout`` seconds,
    or at once when ``proc`` (the server's process) has exited."""
    where = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}{where}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s{where}")


#: Linux's prctl(2) option: the signal a process gets when the thread that started it ends
PR_SET_PDEATHSIG = 1


def ends_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies, however it dies (SIGKILL
    included), as its graceful stop: Linux's ``PR_SET_PDEATHSIG`` through ``prctl``. None elsewhere (no
    such call; a caller holding a lock the child inherits still keeps a second run out while it lives).

    The signal comes when the *thread* that started the child ends: start children from a thread that
    lives as long as they should (the main thread). A parent that died between the fork and the prctl
    call is caught by comparing the parent's pid, and the child ends at once."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, called after it
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)

    return preexec


@contextmanager
def managed_process(
    args: list[str],
    env: Mapping[str, str],
    log: Path,
    *,
    end_with_parent: bool = False,
    pass_fds: tuple[int, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` with its output appended to ``log``; terminated (killed after 30 s) on exit.

    ``end_with_parent``: the child also gets SIGTERM when this process dies without that clean-up (a
    SIGKILL), on Linux (:func:`ends_with_parent`); call from the main thread. ``pass_fds``: descriptors
    the child inherits (a lock it then holds as long as it lives)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=ends_with_parent() if end_with_parent else None,
            pass_fds=pass_fds,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def console_sign_in(http: httpx.Client, key: str) -> httpx.Response:
    """Sign ``http`` in to the console as a browser does: open the sign-in page (its pre-session cookie
    and form token), then post ``key`` with that token. The POST's answer (303 when the key is right)."""
    import re

    page = http.get("/console/sign-in")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, f"no sign-in form token on the page ({page.status_code})"
    return http.post("/console/sign-in", data={"key": key, "csrf": found.group(1)})


def random_x_credentials(prefix: str = "XGATE_X_") -> dict[str, str]:
    """Random OAuth 1.0a credentials for one run of the sandbox and the gateway (never real secrets)."""
    return {
        f"{prefix}CONSUMER_KEY": secrets.token_urlsafe(16),
        f"{prefix}CONSUMER_SECRET": secrets.token_urlsafe(32),
        f"{prefix}ACCESS_TOKEN": secrets.token_urlsafe(24),
        f"{prefix}ACCESS_TOKEN_SECRET": secrets.token_urlsafe(32),
    }


@contextmanager
def serve_app(
    app: Any, *, host: str = "127.0.0.1", port: int | None = None, timeout: float = 30
) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a background thread; yields its base URL and stops it afterwards."""
    port = port or free_port()
    # log_config=None, as ``xgate serve`` does: uvicorn's own logging config would hang StreamHandlers on
    # the process-wide "uvicorn" loggers, bound to whatever sys.stderr / sys.stdout are at this moment (a
    # test runner's capture file, a CliRunner's buffer); they outlive that stream, and uvicorn's next record
    # after it closes is "Logging error: I/O operation on closed file". Its records go to the root logger.
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="auto", log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"ASGI app did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@dataclass
class RunningSandbox:
    """A sandbox served on loopback, with helpers to inspect it and inject faults."""

    url: str
    env: dict[str, str]
    credentials: Credentials
    sandbox: Any

    @property
    def settings(self) -> XSettings:
        return XSettings(api_url=self.url, timeout_seconds=2)

    def conversions(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_sandbox/conversions").json()["conversions"])

    def set_faults(self, **faults: Any) -> None:
        httpx.put(f"{self.url}/_sandbox/faults", json=faults).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset").raise_for_status()


class OutboxFactory:
    """Opens the test's own outbox store (fresh and empty for each test), on one engine.

    ``factory()`` opens it (each call: another connection set on the same store, as another process or
    node would; ``node_id`` names the node); ``factory.url`` is its ``[storage] url`` for configurations
    and child processes; ``factory.state_dir`` the ``[storage] state_dir`` its outboxes get unless their
    settings name one (where PostgreSQL's nodes record the outbox id). Every outbox opened is closed at
    teardown."""

    def __init__(self, engine: str, url: str, state_dir: Path | None = None) -> None:
        self.engine = engine
        self.url = url
        self.state_dir = state_dir
        self._opened: list[Outbox] = []

    def __call__(
        self, settings: StorageSettings | None = None, *, node_id: str | None = None, create: bool = True
    ) -> Outbox:
        settings = settings or StorageSettings()
        if self.state_dir is not None and "state_dir" not in settings.model_fields_set:
            settings = settings.model_copy(update={"state_dir": self.state_dir})
        box = open_outbox(self.url, settings, node_id=node_id, create=create)
        self._opened.append(box)
        return box

    @property
    def identity_record(self) -> Path:
        """Where this store's nodes record the outbox id they used: SQLite ``<db>.id`` beside the file,
        PostgreSQL a file of :attr:`state_dir` named after the database."""
        if self.engine == "sqlite":
            return Path(self.url.removeprefix("sqlite:///") + ".id")
        from xgate.outbox.postgres import identity_record

        return identity_record(self.state_dir or StorageSettings().state_dir, self.url)

    def recreate(self) -> None:
        """Close every outbox opened, then make the store anew and empty, as an operator's mistake while the
        nodes were stopped would: SQLite's file (and its WAL) deleted; PostgreSQL's database dropped and
        created again."""
        self.close_all()
        if self.engine == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
            return
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(self.url)["dbname"]
        with psycopg.connect(self.url, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')

    def close_all(self) -> None:
        for box in self._opened:
            box.close()
        self._opened.clear()

    @contextmanager
    def held_by_another_session(self) -> Iterator[str]:
        """Another session holding what every write of this store waits for, until the block ends, as an
        operator's forgotten shell would: on SQLite its write lock (``BEGIN IMMEDIATE`` on a connection
        that skips ``<db>.lock``: an ``sqlite3`` shell); on PostgreSQL ``LOCK TABLE xgate_conversions IN
        ACCESS EXCLUSIVE MODE``. The store must exist (open it first). Yields what the outbox's
        OutboxUnavailable says of the holder (SQLite cannot tell who; PostgreSQL names its pid)."""
        if self.engine == "sqlite":
            import sqlite3

            shell = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                shell.execute("BEGIN IMMEDIATE")
                yield "SQLite's write lock is held by a process that does not use"
            finally:
                shell.close()
            return
        import psycopg

        with psycopg.connect(self.url, application_name="psql") as session:
            session.execute("LOCK TABLE xgate_conversions IN ACCESS EXCLUSIVE MODE")
            yield f"held by pid {session.info.backend_pid} (psql"
            session.rollback()
