"""The console's configuration page names where its values come from: secrets by their environment
variable, everything else by the file the gateway loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
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


SOURCES_AND_DESTINATIONS = """
[[sources]]
name = "web"
write_key = "pub-config-key-3e1f"
allowed_origins = ["https://shop.example"]

[[sources]]
name = "segment"
kind = "segment"
write_key_env = "XGATE_TEST_SEGMENT_KEY"
mapping = { value = "properties.total_with_tax" }

[[destinations]]
name = "x-main"
pixel_id = "p1"
events = { purchase = "tw-p1-e1" }
filter = { when = [{ path = "value", op = "gt", value = 0 }] }

[[destinations]]
name = "x-brand"
pixel_id = "p2"
default_event = "tw-p2-b1"
consent = { denied = "restricted" }
"""


def _origins(entry: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {s["name"]: (s["value"], s["origin"]) for s in entry["settings"]}


def test_each_source_and_destination_setting_says_whether_the_file_set_it_or_it_is_xgate_s_default(
    tmp_path: Path,
) -> None:
    (tmp_path / "xgate.toml").write_text(SOURCES_AND_DESTINATIONS)
    shown = configuration(load_config(tmp_path / "xgate.toml"), [])
    web, segment = (_origins(s) for s in shown["sources"])
    assert web["allowed_origins"] == (["https://shop.example"], "set")
    assert web["kind"] == ("xgate", "default")  # the file leaves kind out
    assert web["request_context"] == (None, "default")
    assert "name" not in web  # the card's heading
    assert segment["kind"] == ("segment", "set")
    assert segment["write_key_env"] == ("env XGATE_TEST_SEGMENT_KEY", "set")
    assert segment["write_key"] == (None, "default")
    # a table of settings shows what the file wrote (the shorthand read as a path)
    assert segment["mapping"] == ({"value": {"path": "properties.total_with_tax"}}, "set")

    main, brand = (_origins(d) for d in shown["destinations"])
    assert main["pixel_id"] == ("p1", "set")
    assert main["auth"] == ("oauth1", "default")
    assert main["credentials_env_prefix"] == ("XGATE_X_", "default")
    # a table the file sets marks its own settings; one the file leaves out is all defaults
    assert main["filter.when"] == ([{"path": "value", "op": "gt", "value": 0}], "set")
    assert main["filter.exclude_events"] == ([], "default")
    assert main["consent.denied"] == ("drop", "default")
    assert brand["consent.denied"] == ("restricted", "set")
    assert brand["consent.granted"] == ("send", "default")
    assert brand["default_event"] == ("tw-p2-b1", "set")
    assert brand["events"] == ({}, "default")


def test_a_write_key_in_the_file_is_marked_as_set_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "xgate.toml").write_text(SOURCES_AND_DESTINATIONS)
    shown = configuration(load_config(tmp_path / "xgate.toml"), [])
    assert _origins(shown["sources"][0])["write_key"] == ("a key, not shown", "set")
    assert "pub-config-key-3e1f" not in orjson.dumps(shown).decode()  # the API's answer: JSON throughout


STORAGE_AND_IDENTITY = """
[storage]
url = "postgresql://xgate:pa55-w0rd-xyz@db.internal:5432/xgate?sslmode=require&sslpassword=k3y-pa55"
retention_days = 14

[identity]
default_region = "fr"

[[destinations]]
name = "x-main"
pixel_id = "p1"
events = { purchase = "tw-p1-e1" }
"""


def test_storage_and_identity_are_shown_as_every_section_with_the_storage_password_masked(
    tmp_path: Path,
) -> None:
    (tmp_path / "xgate.toml").write_text(STORAGE_AND_IDENTITY)
    shown = configuration(load_config(tmp_path / "xgate.toml"), [])
    sections = {s["section"]: _origins(s) for s in shown["settings"]}
    storage, identity = sections["storage"], sections["identity"]
    assert storage["url"] == (
        "postgresql://xgate:***@db.internal:5432/xgate?sslmode=require&sslpassword=***",
        "set",
    )
    assert storage["retention_days"] == (14, "set")
    assert storage["dedup_window_days"] == (30, "default")
    assert identity["default_region"] == ("FR", "set")
    answer = orjson.dumps(shown).decode()  # the API's answer
    assert "pa55-w0rd-xyz" not in answer and "k3y-pa55" not in answer


def test_the_configuration_page_renders_storage_without_its_password(tmp_path: Path) -> None:
    from xgate.console.routes import _templates

    (tmp_path / "xgate.toml").write_text(STORAGE_AND_IDENTITY)
    data = configuration(load_config(tmp_path / "xgate.toml"), [])
    html = _templates.get_template("config.html").render(data=data, who=None, csrf="", prefix="/console")
    assert 'data-section="storage"' in html and 'data-section="identity"' in html
    assert "postgresql://xgate:***@db.internal:5432/xgate" in html
    assert "pa55-w0rd-xyz" not in html and "k3y-pa55" not in html


def test_storage_paths_made_absolute_from_the_files_folder_keep_their_origin(tmp_path: Path) -> None:
    """The file's folder makes a relative SQLite path absolute: the setting the file left out is still
    xgate's default, and the one it wrote is still its own."""
    (tmp_path / "xgate.toml").write_text('[storage]\nurl = "sqlite:///data/xgate.db"\n' + TOML)
    storage = {
        s["section"]: _origins(s) for s in configuration(load_config(tmp_path / "xgate.toml"), [])["settings"]
    }["storage"]
    assert storage["url"] == (f"sqlite:///{tmp_path.resolve() / 'data' / 'xgate.db'}", "set")
    assert storage["state_dir"] == (str(tmp_path.resolve() / "var"), "default")
