"""``xgate serve`` and ``xgate dispatch`` stop with an exit status that says who acts (README, "Exit
statuses"): 78 when only an operator can (the configuration, an outbox schema of another version), 75 when
the database cannot be reached now and a later start may work. An outbox recreated while the nodes were
stopped is one an operator must accept (``--accept-new-outbox``): 78. systemd's units do not restart on 78
(``RestartPreventExitStatus=``, tests/cli/test_deploy_files.py); every orchestrator sees which it was.

The schema tests run on both engines (PostgreSQL: ``XGATE_TEST_POSTGRES_URL``; failing without it when
``CI=true``); the older-schema case on PostgreSQL is in tests/outbox/test_postgres.py (SQLite upgrades an
older file itself).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from xgate.cli import app
from xgate.cli.output import EXIT_CONFIG, EXIT_TEMPFAIL
from xgate.testing import OutboxFactory, free_port

DESTINATION = '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'

#: the two long-running commands, each on a port of its own (serve binds one before it opens the outbox)
COMMANDS = {"serve": lambda: ["serve", "--port", str(free_port())], "dispatch": lambda: ["dispatch"]}


def _config(tmp_path: Path, storage_url: str, extra: str = "") -> Path:
    path = tmp_path / "xgate.toml"
    path.write_text(f'[storage]\nurl = "{storage_url}"\n{extra}{DESTINATION}')
    return path


def _run(command: str, config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*COMMANDS[command](), "--config", str(config)])
    return result.exit_code, " ".join(result.output.split())


def _unreachable_postgresql() -> str:
    """A PostgreSQL URL where nothing listens: connections are refused at once."""
    return f"postgresql://xgate@127.0.0.1:{free_port()}/xgate"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_invalid_or_missing_configuration_exits_78(command: str, tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", extra="[server]\nprot = 8080\n")
    code, output = _run(command, config)
    assert code == EXIT_CONFIG, output
    assert "error: invalid configuration in" in output and "server.prot: unknown setting" in output
    assert not (tmp_path / "outbox.db").exists()  # it stopped before it opened anything
    code, output = _run(command, tmp_path / "absent.toml")
    assert code == EXIT_CONFIG and "absent.toml not found" in output


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_that_cannot_be_reached_exits_75_so_a_later_start_may_work(
    command: str, tmp_path: Path
) -> None:
    code, output = _run(command, _config(tmp_path, _unreachable_postgresql()))
    assert code == EXIT_TEMPFAIL, output
    assert "error: PostgreSQL at 127.0.0.1:" in output and "connecting failed" in output


def _store_a_newer_schema(outbox_factory: OutboxFactory) -> None:
    """The outbox as an xgate of a later release leaves it: a schema version this one does not know."""
    outbox_factory().close()
    if outbox_factory.engine == "sqlite":
        with sqlite3.connect(outbox_factory.url.removeprefix("sqlite:///")) as db:
            db.execute("PRAGMA user_version = 99")
    else:
        with psycopg.connect(outbox_factory.url, autocommit=True) as db:
            db.execute("INSERT INTO xgate_schema_version (version, name) VALUES (99, 'from_the_future')")


@pytest.mark.parametrize("command", COMMANDS)
def test_an_outbox_schema_newer_than_this_xgate_exits_78_on_both_engines(
    command: str, outbox_factory: OutboxFactory, tmp_path: Path
) -> None:
    _store_a_newer_schema(outbox_factory)
    code, output = _run(command, _config(tmp_path, outbox_factory.url))
    assert code == EXIT_CONFIG, output
    assert "error:" in output and "99" in output and "newer than this xgate" in output


def test_the_processes_exit_with_those_statuses_as_systemd_sees_them(tmp_path: Path) -> None:
    # the console script ends in sys.exit(status): what a process manager reads, not only CliRunner's code
    invalid = _config(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", extra="[server]\nprot = 8080\n")
    unreachable = tmp_path / "down.toml"
    unreachable.write_text(f'[storage]\nurl = "{_unreachable_postgresql()}"\n{DESTINATION}')
    for config, status in ((invalid, EXIT_CONFIG), (unreachable, EXIT_TEMPFAIL)):
        ran = subprocess.run(
            [sys.executable, "-m", "xgate", "serve", "--port", str(free_port()), "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == status, ran.stderr
        assert ran.stderr.startswith("error: ")


def _used_then_recreated(outbox_factory: OutboxFactory, tmp_path: Path) -> Path:
    """A configuration whose nodes used the factory's outbox (recorded in its state_dir), which was then
    deleted or dropped and created anew, empty, while they were stopped."""
    config = _config(tmp_path, outbox_factory.url, extra=f'state_dir = "{outbox_factory.state_dir}"\n')
    outbox_factory().close()
    outbox_factory.recreate()
    return config


@pytest.mark.parametrize("command", COMMANDS)
def test_an_outbox_recreated_while_stopped_exits_78_naming_the_fix_on_both_engines(
    command: str, outbox_factory: OutboxFactory, tmp_path: Path
) -> None:
    code, output = _run(command, _used_then_recreated(outbox_factory, tmp_path))
    assert code == EXIT_CONFIG, output  # systemd does not restart it: an operator decides
    assert "error:" in output and "is not the outbox this node used" in output
    assert "--accept-new-outbox" in output


def test_dispatch_with_accept_new_outbox_records_the_new_outbox_and_later_starts_pass(
    outbox_factory: OutboxFactory, tmp_path: Path
) -> None:
    config = _used_then_recreated(outbox_factory, tmp_path)
    record = outbox_factory.identity_record
    used = record.read_text()
    process = subprocess.Popen(
        [sys.executable, "-m", "xgate", "dispatch", "--accept-new-outbox", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while record.read_text() == used:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the new outbox was never recorded"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    # it was running on the new outbox; a SIGTERM before its loop took the signal over ends it as SIGTERM does
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "error" not in stderr
    outbox_factory().close()  # a start without the flag passes
