"""The console's configuration page names where its values come from: secrets by their environment
variable, everything else by the file the gateway loaded."""

from __future__ import annotations

from pathlib import Path

from xgate.config import load_config, parse_config
from xgate.console.views import configuration

TOML = """
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
