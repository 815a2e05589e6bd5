"""``xgate db status`` / ``xgate db upgrade`` on the embedded SQLite outbox (PostgreSQL: tests/outbox/
test_postgres.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from xgate.cli import app

DESTINATION = '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'


def _config(tmp_path: Path) -> str:
    path = tmp_path / "xgate.toml"
    path.write_text('[storage]\nurl = "sqlite:///var/outbox.db"\n' + DESTINATION)
    return str(path)


def test_db_status_reports_a_missing_outbox_without_creating_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["db", "status", "-c", _config(tmp_path)])
    assert result.exit_code == 1
    assert "no outbox schema yet" in result.output and "xgate db upgrade" in result.output
    assert not (tmp_path / "var" / "outbox.db").exists()


def test_db_upgrade_creates_the_outbox_then_status_says_it_is_up_to_date(tmp_path: Path) -> None:
    runner = CliRunner()
    config = _config(tmp_path)
    upgraded = runner.invoke(app, ["db", "upgrade", "-c", config])
    assert upgraded.exit_code == 0, upgraded.output
    assert "upgraded from no schema to version" in upgraded.output
    with sqlite3.connect(tmp_path / "var" / "outbox.db") as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    status = runner.invoke(app, ["db", "status", "-c", config])
    assert (
        status.exit_code == 0
        and f"schema version {version}" in status.output
        and "up to date" in status.output
    )


def test_db_status_lists_the_steps_an_older_file_needs(tmp_path: Path) -> None:
    runner = CliRunner()
    config = _config(tmp_path)
    assert runner.invoke(app, ["db", "upgrade", "-c", config]).exit_code == 0
    with sqlite3.connect(tmp_path / "var" / "outbox.db") as db:
        latest = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA user_version = {latest - 1}")  # as a file of the previous xgate says
    status = runner.invoke(app, ["db", "status", "-c", config])
    assert status.exit_code == 1 and f"pending: version {latest}" in status.output
