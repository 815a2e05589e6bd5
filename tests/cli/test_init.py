"""``xgate init``: a configuration that loads and passes check, from flags or from answers."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from xgate.cli import app
from xgate.config import load_config

runner = CliRunner()
FLAGS = [
    "--non-interactive",
    "--pixel-id", "o8z6j",
    "--event", "purchase=tw-o8z6j-o87ne",
    "--event", "sign_up=o87ni",
    "--origin", "https://shop.example.com",
    "--region", "fr",
]  # fmt: skip


def test_non_interactive_writes_a_configuration_that_loads_and_passes_check(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    result = runner.invoke(app, ["init", "--path", str(path), *FLAGS], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    config = load_config(path)
    [web, backend] = config.sources
    [x] = config.destinations
    assert (x.pixel_id, x.auth, x.events) == (
        "o8z6j",
        "pixel_token",
        {"purchase": "tw-o8z6j-o87ne", "sign_up": "o87ni"},
    )
    assert (
        web.allowed_origins == ["https://shop.example.com"]
        and web.write_key
        and web.write_key.startswith("pub-")
    )
    assert backend.write_key_env == "XGATE_WRITE_KEY_BACKEND" and backend.write_key is None
    assert config.identity.default_region == "FR"
    assert f"{path} is valid" in result.stdout  # config check ran on the result


def test_the_server_key_is_printed_once_as_an_export_line_and_never_written(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    result = runner.invoke(app, ["init", "--path", str(path), *FLAGS], env={"COLUMNS": "200"})
    [key] = re.findall(r"^export XGATE_WRITE_KEY_BACKEND=(\S+)$", result.stdout, re.MULTILINE)
    assert len(key) >= 40 and key not in path.read_text()
    again = tmp_path / "again.toml"
    second = runner.invoke(app, ["init", "--path", str(again), *FLAGS], env={"COLUMNS": "200"})
    assert key not in second.stdout  # fresh each time
    assert load_config(path).sources[0].write_key != load_config(again).sources[0].write_key


def test_an_existing_file_is_not_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text("# mine\n")
    result = runner.invoke(app, ["init", "--path", str(path), *FLAGS])
    assert result.exit_code == 1 and "--force" in result.stderr
    assert path.read_text() == "# mine\n"
    result = runner.invoke(app, ["init", "--path", str(path), "--force", *FLAGS])
    assert result.exit_code == 0 and load_config(path).destinations[0].pixel_id == "o8z6j"


def flags(
    pixel: str = "o8z6j",
    events: tuple[str, ...] = ("purchase=o87ne",),
    region: str = "fr",
    auth: str = "pixel_token",
    origin: str = "https://shop.example.com",
) -> list[str]:
    out = ["--non-interactive", "--pixel-id", pixel, "--region", region, "--auth", auth, "--origin", origin]
    return out + [arg for e in events for arg in ("--event", e)]


def test_non_interactive_names_the_flag_of_a_bad_value_as_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    cases = [
        (flags(pixel="O8Z-6J"), "--pixel-id"),
        (flags(events=("purchase=tw-other-o87ne",)), "--event purchase"),
        (flags(events=("purchase",)), "--event"),
        (flags(events=()), "--event"),
        (flags(region="XX"), "--region"),
        (flags(auth="basic"), "--auth"),
        ([*flags(origin=""), "--no-server-source"], "--origin / --no-server-source: at least one source"),
    ]
    for args, named in cases:
        result = runner.invoke(app, ["init", "--path", str(path), *args])
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {named}"), (args, result.output)
        assert result.stderr.splitlines()[-1] == "Try 'xgate init --help'."
        assert not path.exists()


def test_interactive_asks_again_until_each_answer_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    answers = [
        "Not A Pixel",  # refused: not base-36
        "o8z6j",
        "tw-other-o87ne",  # refused: another pixel's event
        "tw-o8z6j-o87ne",  # purchase
        "",  # sign_up skipped
        "",  # generate_lead
        "",  # add_to_cart
        "",  # view_item
        "tw-o8z6j-o87nh",  # page_view
        "refund",  # another event name
        "o87nz",
        "",  # done
        "oauth1",
        "18ce54d4x5t",  # ad account
        "https://shop.example.com",
        "n",  # no server source
        "ZZ",  # refused region
        "gb",
    ]
    result = runner.invoke(app, ["init", "--path", str(path)], input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("is not a base-36 pixel id") == 1
    assert "belongs to pixel 'other'" in result.output and "region" in result.output
    config = load_config(path)
    [x] = config.destinations
    assert x.events == {"purchase": "tw-o8z6j-o87ne", "page_view": "tw-o8z6j-o87nh", "refund": "o87nz"}
    assert (x.auth, x.ad_account_id, config.identity.default_region) == ("oauth1", "18ce54d4x5t", "GB")
    assert [s.name for s in config.sources] == ["web"] and "export" not in result.stdout


def test_interactive_without_answers_fails_with_one_error_line_naming_the_way_out(tmp_path: Path) -> None:
    # `xgate init < /dev/null` (a Dockerfile, CI): the prompt meets the end of its input
    path = tmp_path / "xgate.toml"
    result = runner.invoke(app, ["init", "--path", str(path)], input="o8z6j\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: xgate init: no answer (its input ended or was interrupted): answer in a terminal, or pass "
        "--non-interactive and the flags (docs/x-setup.md)"
    ]
    assert "Aborted" not in result.output and not path.exists()
