"""``xgate import`` through an outbox that stops answering mid-run, on both engines.

The outage begins while the import runs, after its first chunks are stored: on SQLite another connection
holds the write lock (an ``sqlite3`` shell left in a transaction); on PostgreSQL the server is restarted
(``.ci/postgres.sh restart S``: ``pg_ctl -m fast`` cuts every connection, the server stays down S seconds,
then starts again). The import is paused (SIGSTOP) while the outage begins, so it always begins mid-run,
however fast the machine imports.

- A short outage is ridden out: the import warns, waits, goes on, and ends as an import that never waited
  would: every row stored once, the same counts and the same report.
- A long one (past ``--retry-seconds``) ends in exit status 75 and one ``error:`` line naming the cause and
  the last row stored; nothing the checkpoint counts as queued is missing from the outbox, and the report
  holds the rows up to it. Run again once the outbox is back, the import resumes there and ends with every
  row stored once, with the counts and the report of an uninterrupted run.
- A chunk that a failed try stored in part (PostgreSQL's enqueue stores a call's new rows, then records
  its duplicates' senders in a second transaction: locked out of that one, it fails with its new rows
  stored) still counts its rows as queued, not as duplicates, whether the same run or the next one stores
  it at last.

PostgreSQL runs on the cluster ``.ci/postgres.sh`` runs for this checkout (it is restarted): skipped
without it, failing when ``CI=true``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.offline.test_import_gateway import MAPPING, PIXEL, crm_file
from tests.postgreskit import ROOT, require_restartable
from typer.testing import CliRunner

from xgate.cli import app
from xgate.cli.output import EXIT_REJECTED, EXIT_TEMPFAIL
from xgate.testing import OutboxFactory

#: good rows of the file (about a second of import on a quiet machine, in chunks of CHUNK rows)
GOOD = 20_000
CHUNK = 100
#: the outage begins once the checkpoint says this many rows are done
BEGIN_AFTER = 300
#: seconds each try waits for the outbox ([storage] write_timeout_seconds)
WRITE_TIMEOUT = 0.5
#: seconds a lock is held in a short outage
HELD = 2.0
#: seconds the outbox stays down in the short outage: past one try's wait on both engines (PostgreSQL's
#: pool may wait 5 s for a connection before the outbox says it is unavailable)
SHORT = {"sqlite": HELD, "postgresql": 8.0}
#: seconds PostgreSQL stays down in the long outage: longer than the import's tries (--retry-seconds 1)
LONG_POSTGRESQL = 10.0

pytestmark = pytest.mark.timeout(240)


@dataclass
class Import:
    """One file, its mapping and a configuration on the test's outbox; ``start`` runs ``xgate import``."""

    engine: str
    url: str
    config: Path
    mapping: Path
    file: Path
    state: Path
    good: int
    bad: int
    dupes: int
    factory: OutboxFactory

    def start(self, retry_seconds: float) -> subprocess.Popen[str]:
        args = [sys.executable, "-m", "xgate", "import", str(self.file), "-m", str(self.mapping)]
        args += ["-c", str(self.config), "--state-dir", str(self.state), "--json"]
        args += ["--chunk-rows", str(CHUNK), "--retry-seconds", str(retry_seconds)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def checkpoint(self) -> dict[str, Any] | None:
        for path in self.state.glob("*.checkpoint.json"):
            try:
                found: dict[str, Any] = json.loads(path.read_text())
                return found
            except (ValueError, OSError):  # replaced while read
                return None
        return None

    def wait_until_rows_done(self, proc: subprocess.Popen[str], rows: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = self.checkpoint()
            if done and done["rows_done"] >= rows:
                assert proc.poll() is None, "the import ended before the outage could begin"
                return
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.002)
        pytest.fail(f"the import never got past row {rows}")

    def stored(self) -> int:
        """Conversions stored in the outbox (all queued: no dispatcher runs)."""
        box = self.factory(create=False)
        try:
            counts = box.stats().counts
        finally:
            box.close()
        assert set(counts) <= {("x-main", "queued")}, counts
        return counts.get(("x-main", "queued"), 0)

    def expected(self) -> dict[str, int]:
        return {"queued": self.good, "duplicate": self.dupes, "rejected": self.bad, "skipped": 0}


def _import(factory: OutboxFactory, tmp_path: Path, *, url: str | None = None) -> Import:
    """The file, its mapping and a configuration of ``factory``'s outbox (at ``url``: with options)."""
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[storage]\nurl = "{url or factory.url}"\nwrite_timeout_seconds = {WRITE_TIMEOUT}\n'
        f'[[destinations]]\nname = "x-main"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne", lead = "tw-{PIXEL}-o87nf" }}\n'
    )
    mapping = tmp_path / "crm.toml"
    mapping.write_text(MAPPING)
    good, bad, dupes = crm_file(tmp_path / "crm.csv", GOOD, bad_every=50)
    file, state = tmp_path / "crm.csv", tmp_path / "imports"
    return Import(factory.engine, factory.url, config, mapping, file, state, len(good), bad, dupes, factory)


@pytest.fixture
def crm(outbox_factory: OutboxFactory, tmp_path: Path) -> Import:
    if outbox_factory.engine == "postgresql":
        require_restartable(outbox_factory.url)
    return _import(outbox_factory, tmp_path)


class Outage:
    """The outbox of ``crm`` made unwritable while ``proc`` imports, for ``seconds`` at least (SQLite: until
    :meth:`end`; PostgreSQL: the server is down that long). ``proc`` is paused while the outage begins, so
    that it begins between two of its chunks (SQLite) or cuts it anywhere (PostgreSQL)."""

    def __init__(self, crm: Import, proc: subprocess.Popen[str], seconds: float) -> None:
        self.crm = crm
        self.seconds = seconds
        self.began = time.monotonic()
        self._shell: sqlite3.Connection | None = None
        self._restart: subprocess.Popen[bytes] | None = None
        if crm.engine == "sqlite":
            self._hold_the_write_lock(proc)
        else:
            self._restart_the_server(proc)

    def _hold_the_write_lock(self, proc: subprocess.Popen[str]) -> None:
        """``BEGIN IMMEDIATE`` on a connection of its own while the import is paused outside its write."""
        shell = sqlite3.connect(self.crm.url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
        deadline = time.monotonic() + 30
        while True:
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                shell.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:  # paused inside its own write: let it finish that one
                assert time.monotonic() < deadline, "never found the import outside a write"
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.001)
        self._shell = shell

    def _restart_the_server(self, proc: subprocess.Popen[str]) -> None:
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            self._restart = subprocess.Popen([ROOT / ".ci/postgres.sh", "restart", str(self.seconds)])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the server down: every connection was cut
                try:
                    psycopg.connect(self.crm.url, connect_timeout=1).close()
                except psycopg.OperationalError:
                    return
                time.sleep(0.05)
            pytest.fail("PostgreSQL did not stop")
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    def end(self) -> None:
        """The outbox writable again: after ``seconds`` from the start on SQLite, when PostgreSQL is up."""
        if self._shell is not None:
            time.sleep(max(0.0, self.began + self.seconds - time.monotonic()))
            self._shell.close()
        if self._restart is not None:
            assert self._restart.wait(timeout=120) == 0, "PostgreSQL did not start again"


def _report_rows(path: str) -> list[int]:
    return [int(line.split(",")[0]) for line in Path(path).read_text().splitlines()[1:]]


def test_a_short_outage_mid_import_is_ridden_out_and_every_row_stored_once(crm: Import) -> None:
    proc = crm.start(retry_seconds=60)
    crm.wait_until_rows_done(proc, BEGIN_AFTER)
    outage = Outage(crm, proc, SHORT[crm.engine])
    outage.end()
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == EXIT_REJECTED, err  # every row in; the file has rows X would refuse
    assert "warning: the outbox cannot be written: " in err and "the outbox answers again after" in err
    assert "error:" not in err and "Traceback" not in err
    summary = json.loads(out)
    assert summary["outcomes"] == crm.expected() and summary["resumed_from_row"] == 0
    assert crm.stored() == crm.good
    rows = _report_rows(summary["report"])
    assert len(rows) == len(set(rows)) == crm.bad


def test_a_long_outage_mid_import_exits_75_at_its_last_stored_row_and_a_rerun_completes(crm: Import) -> None:
    proc = crm.start(retry_seconds=1)
    crm.wait_until_rows_done(proc, BEGIN_AFTER)
    outage = Outage(crm, proc, 0 if crm.engine == "sqlite" else LONG_POSTGRESQL)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        outage.end()

    assert proc.returncode == EXIT_TEMPFAIL, err
    assert out == "" and "Traceback" not in err
    checkpoint = crm.checkpoint()
    assert checkpoint is not None and not checkpoint["finished"]
    done = checkpoint["rows_done"]
    assert BEGIN_AFTER <= done < crm.good and done % CHUNK == 0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    cause = "SQLite's write lock is held" if crm.engine == "sqlite" else "PostgreSQL at 127.0.0.1:"
    assert f"error: the import of crm.csv stopped after row {done:,} " in errors[0]
    assert "the outbox could not be written for " in errors[0] and cause in errors[0]
    assert f"once the outbox answers again, run the same command: it resumes after row {done:,}" in err
    # nothing counted as queued that is not stored; the chunk the import was storing is noted as such
    # (on PostgreSQL a failed try may have stored part of it: the next run counts that part as queued)
    assert checkpoint["pending_rows"] == CHUNK
    queued = checkpoint["counts"]["queued"]
    if crm.engine == "sqlite":
        assert crm.stored() == queued
    else:
        assert queued <= crm.stored() <= queued + CHUNK
    # the report holds the rows up to the checkpoint
    report = next(crm.state.glob("*.report.csv"))
    assert report.stat().st_size == checkpoint["report_bytes"]
    rows = _report_rows(str(report))
    assert len(set(rows)) == checkpoint["counts"].get("rejected", 0) and max(rows) <= done

    again = crm.start(retry_seconds=60)
    out, err = again.communicate(timeout=120)
    assert again.returncode == EXIT_REJECTED, err
    summary = json.loads(out)
    assert summary["resumed_from_row"] == done
    assert summary["outcomes"] == crm.expected()
    assert crm.stored() == crm.good
    rows = _report_rows(summary["report"])
    assert len(rows) == len(set(rows)) == crm.bad


def test_an_outbox_locked_before_the_first_chunk_stops_at_once_with_retry_seconds_0(tmp_path: Path) -> None:
    factory = OutboxFactory("sqlite", f"sqlite:///{tmp_path / 'outbox.db'}")
    factory().close()
    crm = _import(factory, tmp_path)
    args = [
        "import",
        str(crm.file),
        "-m",
        str(crm.mapping),
        "-c",
        str(crm.config),
        "--state-dir",
        str(crm.state),
    ]
    shell = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        result = CliRunner().invoke(app, [*args, "--retry-seconds", "0"])
        assert time.monotonic() - started < WRITE_TIMEOUT + 5
    finally:
        shell.close()
    assert result.exit_code == EXIT_TEMPFAIL, result.output
    output = " ".join(result.output.split())
    assert "error: the import of crm.csv stopped before it stored its first row: the outbox could" in output
    assert "it resumes from the first row" in output and "warning:" not in output
    assert crm.stored() == 0


@pytest.mark.parametrize("outage", ["short", "long"])
def test_a_chunk_postgresql_stored_in_part_before_failing_counts_as_queued_not_duplicate(
    outage: str, postgres_url: str, tmp_path: Path
) -> None:
    # every chunk has copies of rows in it (crm_file): each call takes the duplicates' second transaction
    factory = OutboxFactory("postgresql", postgres_url)
    try:
        # lock_timeout: an outbox that does not bound lock waits itself would wait for ever
        crm = _import(factory, tmp_path, url=f"{postgres_url}?options=-c%20lock_timeout%3D500")
        proc = crm.start(retry_seconds=60 if outage == "short" else 1)
        crm.wait_until_rows_done(proc, BEGIN_AFTER)
        with psycopg.connect(postgres_url) as holder:
            holder.execute("LOCK TABLE xgate_duplicate_senders IN ACCESS EXCLUSIVE MODE")
            if outage == "short":
                time.sleep(HELD)
            else:
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == EXIT_TEMPFAIL, err
                checkpoint = crm.checkpoint()
                assert checkpoint is not None and checkpoint["pending_rows"] == CHUNK
                # the failed try stored the chunk's new rows past the checkpoint
                assert crm.stored() > checkpoint["counts"]["queued"]
            holder.rollback()
        if outage == "long":
            proc = crm.start(retry_seconds=60)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == EXIT_REJECTED, err
        assert "warning: the outbox cannot be written: " in err or outage == "long"
        summary = json.loads(out)
        assert summary["outcomes"] == crm.expected()
        assert crm.stored() == crm.good
    finally:
        factory.close_all()
