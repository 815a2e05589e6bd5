"""``xgate tag snippet`` prints the snippet from the configuration, or exits 1 naming the problem."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from xgate.cli.browser import register
from xgate.cli.output import EXIT_CONFIG
from xgate.tag.script import TAG_VERSION

CONFIG = """
[[sources]]
name = "web"
write_key = "pub-key-1"
allowed_origins = ["https://shop.example"]

[[destinations]]
name = "x-main"
pixel_id = "o8z6j"
events = { purchase = "tw-o8z6j-o87ne" }
"""


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    register(app)
    return app


def test_snippet_command_prints_two_lines(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text(CONFIG)
    args = ["tag", "snippet", "-c", str(path), "-s", "web", "--collector", "https://xgate.shop.example"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    first, second = result.output.strip().splitlines()
    assert first.startswith("<script>") and '"pixelEvents":{"purchase":"tw-o8z6j-o87ne"}' in first
    assert second == f'<script async src="https://xgate.shop.example/tag.js?v={TAG_VERSION}"></script>'


def test_snippet_command_names_an_unknown_source(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text(CONFIG)
    args = ["tag", "snippet", "-c", str(path), "-s", "shop", "--collector", "https://xgate.shop.example"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 1
    assert "source 'shop': no such source" in result.output


def test_snippet_command_reports_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text('[[sources]]\nname = "web"\n')
    args = ["tag", "snippet", "-c", str(path), "-s", "web", "--collector", "https://x.example"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == EXIT_CONFIG
    assert "set write_key or write_key_env" in result.output


def test_snippet_for_the_example_fires_no_pixel_event_of_the_store_destination(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "xgate.toml"
    args = ["tag", "snippet", "-c", str(example), "-s", "web", "--collector", "https://xgate.shop.example"]
    result = CliRunner().invoke(cli(), args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert '"purchase":"tw-o8z6j-o87ne"' in first  # x-main's online purchase
    assert '"lead"' not in first and "o87nj" not in first and "o87nk" not in first  # x-stores' offline events
    assert (
        "x-stores: no pixel event on these pages (filter channel eq 'store': the tag never sets channel)"
        in (result.stderr)
    )
