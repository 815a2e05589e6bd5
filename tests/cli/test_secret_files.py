"""Secrets mounted as files named like variables ($XGATE_SECRETS_DIR, /run/secrets in the image)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from xgate.cli import app
from xgate.cli.output import EXIT_CONFIG
from xgate.secret_files import SecretFileError, read_secret_files
from xgate.x.auth import credential_names

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "xgate.toml"
CREDENTIALS = credential_names("XGATE_X_")


def _config_check() -> Result:
    return CliRunner().invoke(
        app, ["config", "check", "--config", str(EXAMPLE_CONFIG)], env={"COLUMNS": "300"}
    )


def test_each_file_named_like_a_variable_sets_it_less_its_trailing_line_break(tmp_path: Path) -> None:
    (tmp_path / "XGATE_WRITE_KEY_BACKEND").write_text("wk-secret\n")
    (tmp_path / "PGPASSWORD").write_text("pg pass\r\n")
    (tmp_path / "ca.crt").write_text("not a variable name")
    (tmp_path / "..data").mkdir()
    env: dict[str, str] = {}
    assert read_secret_files(tmp_path, env) == ["PGPASSWORD", "XGATE_WRITE_KEY_BACKEND"]
    assert env == {"PGPASSWORD": "pg pass", "XGATE_WRITE_KEY_BACKEND": "wk-secret"}


def test_a_variable_already_set_wins_over_its_file(tmp_path: Path) -> None:
    (tmp_path / "XGATE_WRITE_KEY_BACKEND").write_text("from-file")
    env = {"XGATE_WRITE_KEY_BACKEND": "from-env"}
    assert read_secret_files(tmp_path, env) == []
    assert env["XGATE_WRITE_KEY_BACKEND"] == "from-env"


def test_a_missing_folder_sets_nothing(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    assert read_secret_files(tmp_path / "absent", env) == [] and env == {}


def test_an_unreadable_file_is_named_without_its_content(tmp_path: Path) -> None:
    (tmp_path / "XGATE_X_CONSUMER_KEY").write_bytes(b"\xff\xfe-secret-bytes")
    with pytest.raises(SecretFileError, match="XGATE_X_CONSUMER_KEY is not UTF-8") as caught:
        read_secret_files(tmp_path, {})
    assert "secret-bytes" not in str(caught.value)


def test_the_cli_reads_the_folder_before_any_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the example's backend source reads its key from XGATE_WRITE_KEY_BACKEND and x-main its OAuth credentials
    for name in ("XGATE_WRITE_KEY_BACKEND", *CREDENTIALS):
        monkeypatch.delenv(name, raising=False)
    before = _config_check()
    assert "XGATE_WRITE_KEY_BACKEND is not set" in before.output
    assert "credentials not set" in before.output

    for name in ("XGATE_WRITE_KEY_BACKEND", *CREDENTIALS):
        (tmp_path / name).write_text("s3cret-value\n")
    monkeypatch.setenv("XGATE_SECRETS_DIR", str(tmp_path))
    after = _config_check()
    assert after.exit_code == 0, after.output
    assert "is not set" not in after.output and "credentials not set" not in after.output
    assert "s3cret-value" not in after.output


def test_the_cli_fails_in_one_line_on_an_unreadable_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XGATE_X_ACCESS_TOKEN", raising=False)
    (tmp_path / "XGATE_X_ACCESS_TOKEN").write_bytes(b"\xff")
    monkeypatch.setenv("XGATE_SECRETS_DIR", str(tmp_path))
    result = _config_check()
    assert result.exit_code == EXIT_CONFIG
    assert "error: secret file" in result.output and "XGATE_X_ACCESS_TOKEN" in result.output
