"""Storage faults the operator must see: a held write lock (on either engine) and a full disk answer 503
(ingest, with Retry-After and a warning naming the holder) and not ready (``/readyz``) within a bounded
time; an outbox truncated or replaced while stopped refuses to start without an explicit flag."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gatewaykit import (
    BROWSER_KEY,
    SERVER_KEY,
    SERVER_KEY_ENV,
    SHOP,
    Gateway,
    gateway_config,
    gateways,
    purchase,
)
from typer.testing import CliRunner

from xgate.cli import app as cli
from xgate.cli.output import EXIT_CONFIG
from xgate.config import Config
from xgate.errors import OutboxReplaced, OutboxUnavailable
from xgate.outbox import SQLiteOutbox
from xgate.testing import OutboxFactory, free_port

WRITE_TIMEOUT = 0.5


def with_storage(config: Config, **storage: Any) -> Config:
    return config.model_copy(update={"storage": config.storage.model_copy(update=storage)})


@pytest.fixture
def start_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gateway]]:
    monkeypatch.setenv(SERVER_KEY_ENV, SERVER_KEY)
    with gateways() as start_config:

        def start(folder: Path, **storage: Any) -> Gateway:
            return start_config(
                with_storage(gateway_config(folder), write_timeout_seconds=WRITE_TIMEOUT, **storage)
            )

        yield start


@contextmanager
def lock_held_by_another_process(db: Path) -> Iterator[int]:
    """A process holding ``<db>.lock`` as a suspended ``xgate import`` would."""
    code = (
        "import fcntl, sys, time\n"
        f"f = open({str(db) + '.lock'!r}, 'ab')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


@contextmanager
def write_lock_held(url: str) -> Iterator[int]:
    """Another process holding what the outbox's writes wait for; yields its pid. SQLite: ``<db>.lock``
    (:func:`lock_held_by_another_process`); PostgreSQL: an operator's forgotten shell, a session holding
    ``LOCK TABLE xgate_conversions IN ACCESS EXCLUSIVE MODE`` (its backend's pid)."""
    if url.startswith("sqlite:///"):
        with lock_held_by_another_process(Path(url.removeprefix("sqlite:///"))) as pid:
            yield pid
        return
    import psycopg

    with psycopg.connect(url, application_name="psql") as session:
        session.execute("LOCK TABLE xgate_conversions IN ACCESS EXCLUSIVE MODE")
        yield session.info.backend_pid
        session.rollback()


def test_a_held_write_lock_answers_503_with_retry_after_in_bounded_time_and_logs_the_holder(
    tmp_path: Path,
    start_gateway: Callable[..., Gateway],
    outbox_factory: OutboxFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = start_gateway(tmp_path / "gw", url=outbox_factory.url)
    with write_lock_held(outbox_factory.url) as pid:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="xgate"):
            r = gateway.send(purchase())
        waited = time.monotonic() - started
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) > 0
        assert waited < WRITE_TIMEOUT + 2
        assert any(f"held by pid {pid}" in record.getMessage() for record in caplog.records)

        ready = gateway.http.get("/readyz")
        assert ready.status_code == 503
        assert f"pid {pid}" in ready.json()["problems"][0]
    assert gateway.send(purchase()).status_code == 200  # the holder gone, ingest goes on
    assert gateway.http.get("/readyz").status_code == 200
    assert gateway.outbox.stats().counts == {("x-main", "queued"): 1}  # nothing of the 503 stored


def test_a_page_reads_the_503_and_how_long_it_asks_to_wait(
    tmp_path: Path, start_gateway: Callable[..., Gateway]
) -> None:
    """A browser library that cannot read the 503 takes it for a network failure; one that can may also
    read Retry-After, which is not a CORS-safelisted header unless the answer exposes it."""
    gateway = start_gateway(tmp_path / "gw")
    with lock_held_by_another_process(tmp_path / "gw" / "outbox.db"):
        r = gateway.send(purchase(), key=BROWSER_KEY, headers={"Origin": SHOP})
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert r.headers["access-control-allow-origin"] == SHOP
    assert r.headers["access-control-expose-headers"] == "Retry-After"


def test_the_outbox_call_itself_is_bounded_and_names_the_holder(tmp_path: Path) -> None:
    from xgate.config import StorageSettings

    box = SQLiteOutbox(tmp_path / "o.db", StorageSettings(write_timeout_seconds=WRITE_TIMEOUT))
    try:
        with lock_held_by_another_process(tmp_path / "o.db") as pid:
            started = time.monotonic()
            with pytest.raises(OutboxUnavailable, match=f"held by pid {pid}"):
                box.purge()
            assert time.monotonic() - started < WRITE_TIMEOUT + 1
    finally:
        box.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root can mount one); skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            pass


def test_a_full_disk_makes_readiness_fail_and_ingest_answer_503(
    small_disk: Path, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(small_disk / "gw", min_free_mb=1)
    assert gateway.http.get("/readyz").status_code == 200
    fill(small_disk)
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 503
    assert "the disk is full" in ready.json()["problems"][0]
    big = [purchase(f"ord-{i}", type="x" * 900) for i in range(50)]
    r = gateway.send({"events": big})
    assert r.status_code == 503 and "Retry-After" in r.headers
    (small_disk / "filler").unlink()
    assert gateway.http.get("/readyz").status_code == 200


def test_readiness_needs_the_configured_free_space(
    tmp_path: Path, start_gateway: Callable[..., Gateway]
) -> None:
    # the same check without a mount: more free space asked for than any disk has
    gateway = start_gateway(tmp_path / "gw", min_free_mb=2**40)
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 503
    assert "min_free_mb" in ready.json()["problems"][0]


# -- the outbox's identity -----------------------------------------------------------------------------
def test_an_outbox_truncated_while_stopped_is_refused_until_accepted(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    SQLiteOutbox(db).close()
    SQLiteOutbox(db).close()  # the same file opens again
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            Path(f"{db}{suffix}").write_bytes(b"")
    with pytest.raises(OutboxReplaced, match="--accept-new-outbox"):
        SQLiteOutbox(db)
    from xgate.config import StorageSettings

    SQLiteOutbox(db, StorageSettings(accept_new_outbox=True)).close()
    SQLiteOutbox(db).close()  # the new one is recorded: later starts need no flag


def test_an_outbox_deleted_or_replaced_while_stopped_is_refused(tmp_path: Path) -> None:
    db, other = tmp_path / "o.db", tmp_path / "other" / "o.db"
    SQLiteOutbox(db).close()
    SQLiteOutbox(other).close()
    os.replace(other, db)
    with pytest.raises(OutboxReplaced, match="not the outbox this node used"):
        SQLiteOutbox(db)
    db.unlink()
    with pytest.raises(OutboxReplaced):
        SQLiteOutbox(db)


def test_serve_refuses_a_replaced_outbox_loudly_naming_the_flag(tmp_path: Path) -> None:
    config_file = tmp_path / "xgate.toml"
    config_file.write_text(
        f'[storage]\nurl = "sqlite:///o.db"\n[server]\nport = {free_port()}\n'
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    SQLiteOutbox(tmp_path / "o.db").close()
    (tmp_path / "o.db").write_bytes(b"")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config_file), "--no-dispatch"])
    assert result.exit_code == EXIT_CONFIG  # an operator decides: systemd does not restart it
    assert "not the outbox this node used" in result.output
    assert "--accept-new-outbox" in result.output
