"""The console's configuration page names where its values come from: secrets by their environment
variable, everything else by the file the gateway loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from xgate.config import load_config, parse_config
from xgate.console.views import configuration

TOML = """
[server]
port = 9090
admin_key_env = "XGATE_TEST_ADMIN_KEY"

[dispatch]
concurrency = 2

[[sources]]
name = "backend"
write_key_env = "XGATE_TEST_BACKEND_KEY"

[[destinations]]
name = "x-main"
pixel_id = "p1"
events = { purchase = "tw-p1-e1" }
"""


def test_the_configuration_names_the_file_it_was_loaded_from(tmp_path: Path) -> None:
    (tmp_path / "xgate.toml").write_text(TOML)
    shown = configuration(load_config(tmp_path / "xgate.toml"), [])
    assert shown["file"] == str((tmp_path / "xgate.toml").resolve())
    assert shown["sources"][0]["write_key"] == "env XGATE_TEST_BACKEND_KEY"


def test_a_configuration_built_in_code_names_no_file() -> None:
    config = parse_config({"destinations": [{"name": "x", "pixel_id": "p1", "events": {"a": "tw-p1-e1"}}]})
    assert configuration(config, [])["file"] is None


def test_each_server_and_dispatch_setting_says_whether_the_file_set_it_or_it_is_xgate_s_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XGATE_TEST_ADMIN_KEY", "adm-secret-value-1")
    (tmp_path / "xgate.toml").write_text(TOML)
    shown = configuration(load_config(tmp_path / "xgate.toml"), [])
    sections = {s["section"]: {v["name"]: v for v in s["settings"]} for s in shown["settings"]}
    assert sections["server"]["port"] == {"name": "port", "value": 9090, "origin": "set"}
    assert sections["server"]["host"] == {"name": "host", "value": "127.0.0.1", "origin": "default"}
    assert sections["dispatch"]["concurrency"]["origin"] == "set"
    assert sections["dispatch"]["give_up_after_hours"] == {
        "name": "give_up_after_hours",
        "value": 72.0,
        "origin": "default",
    }
    # a key is named by its variable, never shown
    assert sections["server"]["admin_key_env"]["value"] == "env XGATE_TEST_ADMIN_KEY"
    assert sections["console"]["viewer_key_env"] == {
        "name": "viewer_key_env",
        "value": None,
        "origin": "default",
    }
    assert "adm-secret-value-1" not in str(shown)
