"""One command-line style across every ``xgate`` command, checked over the whole app, not command by command.

- flags read as flags in ``--help`` (no ``--json <bool>``), every parameter in the ``Annotated`` style;
- a missing, unreadable or invalid configuration, an unreadable input file and a port in use each end in
  the same one-line ``error: …`` on stderr, whatever the command, with exit status 78 for the
  configuration (only an operator can fix it) and 1 for the others;
- a command line that cannot be parsed ends in one ``error: …`` line naming the option or argument, a
  ``Try 'xgate CMD --help'.`` hint and exit status 2, not in typer's boxed panel;
- text from outside (file names, X's answers, event ids) prints verbatim: rich markup never eats ``[x]``.
- ``--help`` shows no markup of the docstrings it comes from (``literals``, `literals`, **strong**).
"""

from __future__ import annotations

import inspect
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import typer.main
from rich.text import Text
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import ParameterInfo
from typer.testing import CliRunner

from xgate import __version__
from xgate.cli import app
from xgate.cli.output import EXIT_CONFIG, fail, note, warn
from xgate.cli.usage import help_text
from xgate.config import load_config
from xgate.mapping import Mapper
from xgate.outbox import open_outbox
from xgate.testing import random_x_credentials

runner = CliRunner()
WIDE = {"COLUMNS": "300"}
CONFIG = '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'


Command = TyperCommand | TyperGroup


def command_paths() -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command of the app (subcommands of ``config``, ``dlq``, ``tag``… included), with its path."""

    def walk(command: Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Command]]:
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))  # type: ignore[arg-type]
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), ())  # type: ignore[arg-type]


def callbacks(typer_app: typer.Typer) -> Iterator[object]:
    for info in typer_app.registered_commands:
        yield info.callback
    yield typer_app.registered_callback.callback if typer_app.registered_callback else None
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None
        yield from callbacks(group.typer_instance)


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


# -- parameters ---------------------------------------------------------------------------------------
def test_no_option_in_any_help_reads_as_taking_a_value_when_it_is_a_flag() -> None:
    for path in [(), *(path for path, _ in command_paths())]:
        result = runner.invoke(app, [*path, "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "BOOLEAN" not in result.output, (path, result.output)


def test_every_help_text_prints_as_written_each_paragraph_on_one_line() -> None:
    # rich markup once ate `[storage]` from `import --state-dir`, and typer kept the docstrings' source
    # line breaks, so `--help` read "(see the" / "report)" and the command list broke mid-sentence
    for path, command in command_paths():
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "1000"}).output
        lines = [" ".join(line.strip(" │").split()) for line in shown.splitlines()]
        texts = [p.help or "" for p in command.params if isinstance(p, TyperOption)]
        texts += inspect.cleandoc(command.help or "").split("\n\n")
        for text in texts:
            expected = " ".join(Text.from_markup(text).plain.split())  # the text, its markup applied
            assert any(expected in line for line in lines), (path, expected, shown)
    listing = [
        " ".join(line.strip(" │").split())
        for line in runner.invoke(app, ["--help"], env=WIDE).output.splitlines()
    ]
    for path, command in command_paths():
        if len(path) == 1:
            summary = " ".join(
                Text.from_markup(inspect.cleandoc(command.help or "").split("\n\n")[0]).plain.split()
            )
            assert f"{path[0]} {summary}" in listing, (path, listing)


#: what reStructuredText and Markdown mark up inline (``x``, `x`, :role:`x`, **x**), and rich markup's own
#: escapes and tags: none of it is for the reader of --help
MARKUP = re.compile(r"`|\*\*|\\\[|\[/?(bold|b|italic|i|code)\]")


def test_no_help_shows_the_markup_of_the_docstrings_it_comes_from() -> None:
    # `xgate activity --help` printed ``--json`` prints a list of entries as ``GET /v1/activity`` does
    groups = [(), *{path[:i] for path, _ in command_paths() for i in range(1, len(path))}]
    for path in [*groups, *(path for path, _ in command_paths())]:
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "1000"}).output
        leaks = [line.strip(" │") for line in shown.splitlines() if MARKUP.search(line)]
        assert leaks == [], (path, leaks)
    activity = " ".join(runner.invoke(app, ["activity", "--help"], env={"COLUMNS": "1000"}).output.split())
    assert (
        "--json prints a list of entries as GET /v1/activity does: at (Unix seconds), event_name," in activity
    )


def test_help_text_keeps_the_words_and_drops_the_markup_of_literals() -> None:
    written = """Reads ``[x] secrets_file`` and `--json`,
    names :class:`~xgate.errors.OutboxReplaced`, **twice**; keeps \\[server] port.

    Second paragraph."""
    assert Text.from_markup(help_text(written)).plain == (
        "Reads [x] secrets_file and --json, names OutboxReplaced, twice; keeps [server] port."
        "\n\nSecond paragraph."
    )


def test_no_option_help_repeats_the_default_or_variable_that_help_shows_after_it() -> None:
    # `track --help` read "the gateway's URL ($XGATE_GATEWAY_URL, default http://127.0.0.1:8080)
    # [env var: XGATE_GATEWAY_URL] [default: http://127.0.0.1:8080]"
    checked = 0
    for path, command in command_paths():
        for param in command.params:
            if not isinstance(param, TyperOption) or not param.help:
                continue
            shown_after = []
            if param.envvar and param.show_envvar:
                shown_after += [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
            if param.show_default is not False and param.default is not None and not param.is_flag:
                shown_after.append(f"default {param.default}")
            for text in shown_after:
                checked += 1
                repeated = re.search(re.escape(text).replace("default\\ ", r"default:?\s+"), param.help)
                assert repeated is None, (path, param.opts[0], param.help)
    assert checked > 10
    shown = runner.invoke(app, ["track", "--help"], env={"COLUMNS": "1000"}).output
    assert shown.count("http://127.0.0.1:8080") == 1 and shown.count("XGATE_GATEWAY_URL") == 1


def test_every_boolean_option_is_a_flag() -> None:
    flags = []
    for path, command in command_paths():
        for param in command.params:
            if param.type.name == "boolean":
                assert isinstance(param, TyperOption) and param.is_flag, (path, param.opts)
                flags.append(param.opts[0])
    assert {"--json", "--dry-run", "--no-dispatch", "--all", "--consent-required"} <= set(flags)
    result = runner.invoke(app, ["status", "--json", "true"])
    assert result.exit_code == 2 and "unexpected extra argument" in result.output


def test_every_parameter_is_declared_in_the_annotated_style() -> None:
    old_style = [
        f"{cb.__qualname__}({name})"  # type: ignore[attr-defined]
        for cb in callbacks(app)
        if cb is not None
        for name, p in inspect.signature(cb).parameters.items()  # type: ignore[arg-type]
        if isinstance(p.default, ParameterInfo)
    ]
    assert old_style == []


def test_version_is_an_option_of_xgate_itself() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"xgate {__version__}\n"
    assert all(path != ("version",) for path, _ in command_paths())  # one way to ask, not two


# -- one error style ----------------------------------------------------------------------------------
#: what each command taking --config needs besides it, to get as far as loading the configuration
EXTRA_ARGS: dict[tuple[str, ...], list[str]] = {
    ("map",): ["event.json"],
    ("send",): ["event.json"],
    ("verify",): [],
    ("serve",): [],
    ("activity",): [],
    ("dispatch",): [],
    ("status",): [],
    ("import",): ["rows.jsonl"],
    ("config", "check"): [],
    ("dlq", "list"): [],
    ("dlq", "show"): ["1"],
    ("dlq", "replay"): ["--all"],
    ("dlq", "discard"): ["--all"],
    ("db", "status"): [],
    ("db", "upgrade"): [],
    ("tag", "snippet"): ["--collector", "https://xgate.example", "--source", "web"],
}


def test_every_command_taking_a_configuration_is_covered_here() -> None:
    takes_config = {path for path, cmd in command_paths() if any("--config" in p.opts for p in cmd.params)}
    assert takes_config == set(EXTRA_ARGS)


@pytest.mark.parametrize("path", list(EXTRA_ARGS), ids=" ".join)
def test_a_missing_configuration_fails_alike_in_every_command(path: tuple[str, ...], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = runner.invoke(app, [*path, *EXTRA_ARGS[path], "--config", str(missing)])
    assert result.exit_code == EXIT_CONFIG  # 78: only the operator can fix it (README, "Exit statuses")
    assert result.stderr == (
        f"error: configuration file {missing} not found: pass --config PATH or set XGATE_CONFIG\n"
    )


@pytest.mark.parametrize("path", list(EXTRA_ARGS), ids=" ".join)
def test_an_invalid_configuration_fails_alike_in_every_command(path: tuple[str, ...], tmp_path: Path) -> None:
    bad = tmp_path / "xgate.toml"
    bad.write_text(
        '[server]\nport = "eighty"\n[x]\napi_url = "ads-api.x.com"\n'
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    result = runner.invoke(app, [*path, *EXTRA_ARGS[path], "--config", str(bad)])
    assert result.exit_code == EXIT_CONFIG
    first, *problems = result.stderr.splitlines()
    assert first == f"error: invalid configuration in {bad}"
    assert [p.split(":")[0] for p in problems] == ["  x.api_url", "  server.port"]


def test_a_configuration_that_cannot_be_read_is_named_with_the_reason(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--config", str(tmp_path)])
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr == f"error: cannot read the configuration file {tmp_path}: Is a directory\n"


def test_a_configuration_or_mapping_in_another_encoding_than_utf8_fails_in_one_line(tmp_path: Path) -> None:
    """Notepad's "Unicode" is UTF-16: a traceback would name no file; the line names it and the fix."""
    config = tmp_path / "xgate.toml"
    config.write_bytes(CONFIG.encode("utf-16"))
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert (result.exit_code, result.stderr) == (
        EXIT_CONFIG,
        f"error: invalid configuration in {config}\n"
        "  not UTF-8 text (byte 0): save it as UTF-8, which TOML requires\n",
    )
    config.write_text(CONFIG)
    mapping = tmp_path / "mapping.toml"
    mapping.write_bytes('format = "csv"\n# caf\xe9\n'.encode("latin-1"))
    (tmp_path / "rows.csv").write_text("id\n1\n")
    result = runner.invoke(app, ["import", str(tmp_path / "rows.csv"), "-m", str(mapping), "-c", str(config)])
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: invalid column mapping in {mapping}\n"
        "  not UTF-8 text (byte 20): save it as UTF-8, which TOML requires\n",
    )


def test_a_configuration_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows editors start UTF-8 with one; tomllib alone calls it an invalid statement."""
    config = tmp_path / "xgate.toml"
    config.write_bytes(b"\xef\xbb\xbf" + CONFIG.encode())
    assert load_config(config).destinations[0].pixel_id == "o8z6j"
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 0, result.stderr


def test_an_input_file_that_cannot_be_read_is_named_in_every_command(tmp_path: Path) -> None:
    config = tmp_path / "xgate.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/o.db"\n' + CONFIG)
    gone = tmp_path / "gone.json"
    expected = f"error: cannot read {gone}: No such file or directory\n"
    for args in (
        ["map", str(gone), "--config", str(config)],
        ["send", str(gone), "--config", str(config)],
        ["track", "--file", str(gone)],
        ["import", "rows.jsonl", "--mapping", str(gone), "--config", str(config)],
    ):
        result = runner.invoke(app, args)
        assert (result.exit_code, result.stderr) == (1, expected), args


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_serve_on_a_port_in_use_exits_1_with_one_line(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "xgate.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/o.db"\n' + CONFIG)
    result = runner.invoke(app, ["serve", "--config", str(config), "--port", str(busy_port)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: port {busy_port} on 127.0.0.1 is already in use: "
        "stop the other process or set [server] port / --port\n"
    )
    assert not (tmp_path / "o.db").exists()  # refused before the gateway opened its outbox


def test_sandbox_on_a_port_in_use_exits_1_with_one_line(busy_port: int) -> None:
    result = runner.invoke(app, ["sandbox", "--port", str(busy_port)], env=random_x_credentials())
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: port {busy_port} on 127.0.0.1 is already in use: stop the other process or pass --port\n"
    )


# -- usage errors -------------------------------------------------------------------------------------
#: a command line click cannot parse, the error line xgate prints for it, and the command of the hint
USAGE_ERRORS: list[tuple[list[str], str, str]] = [
    (["dlq", "show", "abc"], "row_id: 'abc' is not a valid int", "xgate dlq show"),
    (["track", "--value", "abc"], "--value: 'abc' is not a valid float", "xgate track"),
    (["track", "--bogus"], "--bogus: no such option", "xgate track"),
    (
        ["import", "rows.csv", "--reprot", "r.json"],
        "--reprot: no such option; did you mean --report?",
        "xgate import",
    ),
    (["track", "--id"], "--id: requires an argument", "xgate track"),
    (["map"], "EVENT.json: missing argument", "xgate map"),
    (["status", "--json", "true"], "got unexpected extra argument(s) (true)", "xgate status"),
    (["frob"], "no such command 'frob'", "xgate"),
    (["dlq", "frob"], "no such command 'frob'", "xgate dlq"),
    (["--bogus"], "--bogus: no such option", "xgate"),
]


@pytest.mark.parametrize(
    ("args", "error", "command"), USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS]
)
def test_a_usage_error_is_one_error_line_naming_the_parameter_a_hint_and_exit_2(
    args: list[str], error: str, command: str
) -> None:
    result = runner.invoke(app, args, prog_name="xgate")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {error}", f"Try '{command} --help'."]


#: command lines click parses but the command itself finds wrong (a value no type expresses, options that do
#: not go together, a value needed from one of several places): the same usage error, exit 2
COMMAND_USAGE_ERRORS: list[tuple[list[str], str, str]] = [
    (
        ["track"],
        "EVENT_NAME: missing argument: name the event (purchase, sign_up…), or give its event_name in "
        "--event or --file",
        "xgate track",
    ),
    (["track", "--event", "[1]"], "--event: the event must be a JSON object", "xgate track"),
    (
        ["track", "purchase", "--property", "channel"],
        "--property: 'channel': write PATH=VALUE",
        "xgate track",
    ),
    (
        ["track", "purchase", "--event", '{"user": "ada"}', "--email", "a@example.com"],
        "--email: cannot set user.email: user is not an object in the event",
        "xgate track",
    ),
    (["track", "purchase"], "--write-key: not given and XGATE_WRITE_KEY is not set", "xgate track"),
    (["init", "--auth", "bogus"], "--auth: 'bogus' is not one of 'oauth1', 'pixel_token'", "xgate init"),
    (["init", "--non-interactive"], "--pixel-id: required with --non-interactive", "xgate init"),
    (
        ["init", "--non-interactive", "--pixel-id", "o8z6j", "--event", "purchase"],
        "--event: expected NAME=ID, e.g. purchase=tw-o8z6j-o87ne, got 'purchase'",
        "xgate init",
    ),
    (
        ["dlq", "replay"],
        "IDS: missing argument: give dead letter ids (xgate dlq list shows them), or --all",
        "xgate dlq replay",
    ),
    (["dlq", "discard", "7", "--all"], "--all: give dead letter ids or --all, not both", "xgate dlq discard"),
    (
        ["sandbox", "--error-rate", "1.5", "--drop-rate", "-1"],
        "--error-rate: input should be less than or equal to 1; "
        "--drop-rate: input should be greater than or equal to 0",
        "xgate sandbox",
    ),
    (
        ["tag", "snippet", "--source", "web", "--collector", "https://shop.example/xgate"],
        "--collector: 'https://shop.example/xgate': the gateway's origin only, such as "
        "https://xgate.shop.example (the tag sends events to the origin it is loaded from, so a path or a "
        "query would be lost)",
        "xgate tag snippet",
    ),
]


@pytest.mark.parametrize(
    ("args", "error", "command"),
    COMMAND_USAGE_ERRORS,
    ids=[" ".join(a) for a, _, _ in COMMAND_USAGE_ERRORS],
)
def test_a_usage_error_a_command_finds_itself_ends_as_clicks_own_before_anything_runs(
    args: list[str], error: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no configuration here: a usage error is told before any is read
    no_credentials = {name: "" for name in random_x_credentials()}
    result = runner.invoke(app, args, prog_name="xgate", env={"XGATE_WRITE_KEY": "", **no_credentials})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {error}", f"Try '{command} --help'."]
    assert list(tmp_path.iterdir()) == []  # nothing written (xgate init's file)


def test_a_well_formed_command_line_naming_what_is_not_there_is_an_error_not_a_usage_error(
    tmp_path: Path,
) -> None:
    """What the configuration, the outbox or the disk lacks is exit 1, as an unknown branch is to git."""
    config = tmp_path / "xgate.toml"
    config.write_text(CONFIG)
    event = tmp_path / "e.json"
    event.write_text("[1]")
    for args in (
        ["init", "--path", str(config), "--non-interactive", "--pixel-id", "o8z6j", "--event", "a=o87ne"],
        ["verify", "--config", str(config), "--destination", "nope"],
        ["map", str(event), "--config", str(config), "--source", "nope"],
        ["tag", "snippet", "--config", str(config), "--source", "nope", "--collector", "https://x.example"],
        ["track", "purchase", "--file", str(event), "--write-key", "k"],
    ):
        result = runner.invoke(app, args, prog_name="xgate", env=WIDE)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: ") and "Try '" not in result.stderr, (args, result.stderr)


def test_a_group_without_its_command_still_shows_its_help() -> None:
    for args, usage in (
        ([], "Usage: xgate [OPTIONS] COMMAND"),
        (["dlq"], "Usage: xgate dlq [OPTIONS] COMMAND"),
    ):
        result = runner.invoke(app, args, prog_name="xgate")
        assert result.exit_code == 2 and usage in result.output and "error:" not in result.output


# -- outside text is never markup ---------------------------------------------------------------------
def test_messages_print_brackets_verbatim_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    long = "credentials not set: XGATE_X_CONSUMER_KEY (or set [x] secrets_file) " + "and more " * 12
    warn(long)
    note("[dim]not a tag[/dim]")
    with pytest.raises(typer.Exit) as exited:
        fail(long, ["destinations[0](x).pixel_id: [/red] is not base-36"])
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {long}",
        "[dim]not a tag[/dim]",
        f"error: {long}",
        "  destinations[0](x).pixel_id: [/red] is not base-36",
    ]


def test_send_shows_the_secrets_file_hint_verbatim(tmp_path: Path) -> None:
    config = tmp_path / "xgate.toml"
    config.write_text(CONFIG)
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"event_name": "purchase", "id": "o-1", "user": {"email": "a@example.com"}}))
    no_credentials = {name: "" for name in random_x_credentials()}
    result = runner.invoke(app, ["send", str(event), "--config", str(config)], env=no_credentials)
    assert result.exit_code == 1
    assert first_line(result.stderr).startswith("error: x: ")
    assert "(or set [x] secrets_file)" in result.stderr


@pytest.fixture
def bracketed(tmp_path: Path) -> Path:
    """A configuration in a folder named ``[x] shop`` whose outbox holds a dead letter with markup-like text
    in its conversion id and X's error."""
    folder = tmp_path / "[x] shop"
    folder.mkdir()
    config = folder / "xgate.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/o.db"\n' + CONFIG)
    loaded = load_config(config)
    box = open_outbox(loaded.storage.url)
    event = {"event_name": "purchase", "id": "[b]ord-1[/b]", "user": {"email": "a@example.com"}}
    box.enqueue(Mapper(loaded).map(event).conversions)
    (row,) = box.lease(1, 60)
    box.mark_dead([row.id], row.lease_token, "HTTP 400; [x] bad [/red] value")
    box.close()
    return config


def test_status_dlq_and_activity_print_outside_text_verbatim_and_no_literal_tags(bracketed: Path) -> None:
    for args in (["status"], ["dlq", "list"], ["activity"]):
        result = runner.invoke(app, [*args, "--config", str(bracketed)], env=WIDE)
        assert result.exit_code == 0, (args, result.output)
        assert "[x] bad [/red] value" in result.stdout, args
        assert "[b]ord-1[/b]" in result.stdout, args
        assert "[red]dead" not in result.stdout and "[bold]" not in result.stdout, args


def test_file_names_print_verbatim(bracketed: Path) -> None:
    result = runner.invoke(app, ["config", "check", "--config", str(bracketed)], env=WIDE)
    assert result.exit_code == 0 and f"{bracketed} is valid" in result.stdout
    bracketed.write_text('[server]\nport = "eighty"\n')
    result = runner.invoke(app, ["status", "--config", str(bracketed)], env=WIDE)
    assert first_line(result.stderr) == f"error: invalid configuration in {bracketed}"
