"""``xgate config check`` names every mistake of a configuration, each by its TOML path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from xgate.cli import app
from xgate.cli.output import EXIT_CONFIG

runner = CliRunner()

DESTINATION = '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
SOURCE = '[[sources]]\nname = "backend"\nwrite_key = "k"\n'


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "xgate.toml"
    path.write_text(text)
    result = runner.invoke(app, ["config", "check", "--config", str(path)], env={"COLUMNS": "400"})
    return result.exit_code, result.output


def test_every_bad_event_id_of_a_destination_is_named_with_its_path(tmp_path: Path) -> None:
    code, out = check(
        tmp_path,
        SOURCE + '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\ndefault_event = "tw-abc-o87nz"\n'
        'events = { purchase = "tw-zz-o87ne", lead = "tw-o8z6j-BAD", sign_up = "tw-qq-o87ni" }\n',
    )
    assert code == EXIT_CONFIG
    for needle in (
        "destinations[0](x-main).events.purchase: 'tw-zz-o87ne' belongs to pixel 'zz'",
        "destinations[0](x-main).events.lead: 'tw-o8z6j-BAD' is not an X event id",
        "destinations[0](x-main).events.sign_up: 'tw-qq-o87ni' belongs to pixel 'qq'",
        "destinations[0](x-main).default_event: 'tw-abc-o87nz' belongs to pixel 'abc'",
    ):
        assert needle in out


def test_mistakes_of_several_kinds_are_reported_together(tmp_path: Path) -> None:
    code, out = check(
        tmp_path,
        '[storage]\nurl = "mysql://db.internal/xgate"\n'
        '[[sources]]\nname = "web"\nwrite_key = "k"\nallowed_origins = ["shop.example"]\n'
        '[[sources]]\nname = "web"\nwrite_key_env = "K"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "O8Z6J"\nevents = { purchase = "tw-zz-1" }\n',
    )
    assert code == EXIT_CONFIG
    for needle in (
        "storage.url: unknown scheme 'mysql'",
        "sources[0](web).allowed_origins[0]: 'shop.example' has no scheme",
        "sources[1](web).name: 'web' is taken by sources[0]",
        "destinations[0](x-main).pixel_id: 'O8Z6J' is not a base-36 pixel id",
    ):
        assert needle in out


def test_a_configuration_without_destinations_is_refused(tmp_path: Path) -> None:
    code, out = check(tmp_path, SOURCE)
    assert code == EXIT_CONFIG
    assert "destinations: none configured, so nothing would ever be sent to X" in out


def test_a_configuration_without_sources_is_valid_with_a_warning(tmp_path: Path) -> None:
    code, out = check(tmp_path, DESTINATION)
    assert code == 0, out
    assert "sources: none configured, so the gateway takes no events over HTTP" in out


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    code, out = check(tmp_path, "")
    assert code == EXIT_CONFIG
    assert "destinations: none configured" in out


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        (
            "shop.example",
            "'shop.example' has no scheme: write it as browsers send it, e.g. https://shop.example",
        ),
        (
            "https://shop.example/",
            "ends with a slash; browsers send the origin without it: https://shop.example",
        ),
        ("https://shop.example/checkout", "has a path; an origin is only scheme, host and port"),
        (
            "https://Shop.Example",
            "is never sent by a browser (lower case, no default port): write https://shop.example",
        ),
        ("https://shop.example:443", "write https://shop.example"),
    ],
)
def test_an_origin_no_browser_sends_is_refused(tmp_path: Path, origin: str, reason: str) -> None:
    code, out = check(
        tmp_path,
        '[[sources]]\nname = "web"\nwrite_key = "k"\n'
        f'allowed_origins = ["https://ok.example:8443", "{origin}"]\n' + DESTINATION,
    )
    assert code == EXIT_CONFIG
    assert "sources[0](web).allowed_origins[1]: " in out and reason in out
    assert "allowed_origins[0]" not in out


def test_allowed_origins_on_a_webhook_source_is_refused_naming_the_source_and_the_field(
    tmp_path: Path,
) -> None:
    code, out = check(
        tmp_path,
        '[[sources]]\nname = "shop"\nkind = "shopify"\nsigning_secret_env = "SHOPIFY_SECRET"\n'
        'allowed_origins = ["https://shop.example"]\n' + DESTINATION,
    )
    assert code == EXIT_CONFIG
    assert "sources[0](shop).allowed_origins: a shopify source takes no allowed_origins" in out
    assert "remove the field" in out


def test_a_missing_secrets_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secrets"
    code, out = check(tmp_path, f'[x]\nsecrets_file = "{missing}"\n' + SOURCE + DESTINATION)
    assert code == EXIT_CONFIG
    assert f"x.secrets_file: {missing}: no such file" in out


def test_an_existing_secrets_file_is_accepted(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("XGATE_X_PIXEL_TOKEN=t\n")
    code, out = check(tmp_path, f'[x]\nsecrets_file = "{secrets}"\n' + SOURCE + DESTINATION)
    assert code == 0, out


@pytest.mark.parametrize("key", ["host", "admin_host"])
def test_an_empty_listening_address_is_refused_not_read_as_every_interface(tmp_path: Path, key: str) -> None:
    """A socket bound to "" listens on every interface: /metrics and the API docs on the admin one."""
    code, out = check(tmp_path, f'[server]\nadmin_port = 9090\n{key} = " "\n' + SOURCE + DESTINATION)
    assert code == EXIT_CONFIG
    assert f"server.{key}: empty, which would listen on every interface: write 127.0.0.1" in out


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite://", "a SQLite URL has no host: three slashes before a relative path"),
        ("sqlite://var/xgate.db", "a SQLite URL has no host"),
        ("sqlite:///", "names no database file"),
        ("redis://localhost/0", "unknown scheme 'redis'"),
        ("var/xgate.db", "not a URL: use sqlite:///path/to/xgate.db"),
        ("postgresql://db.internal:54x2/xgate", "the port of a PostgreSQL URL must be a number"),
        ("postgresql://db.internal/xgate/extra", "the path of a PostgreSQL URL is one database name"),
        ("postgresql://u:s3cret@db.internal/my db", "a PostgreSQL URL cannot hold spaces"),
    ],
)
def test_a_storage_url_nothing_can_open_is_refused(tmp_path: Path, url: str, reason: str) -> None:
    code, out = check(tmp_path, f'[storage]\nurl = "{url}"\n' + SOURCE + DESTINATION)
    assert code == EXIT_CONFIG
    assert f"storage.url: {reason}" in out
    assert "s3cret" not in out  # a database password never reaches the output


@pytest.mark.parametrize(
    "url", ["sqlite:///var/xgate.db", "sqlite:////srv/xgate/xgate.db", "postgresql://xgate@db:5432/xgate"]
)
def test_storage_urls_of_the_documented_forms_pass(tmp_path: Path, url: str) -> None:
    code, out = check(tmp_path, f'[storage]\nurl = "{url}"\n' + SOURCE + DESTINATION)
    assert code == 0, out


def test_blank_event_names_are_refused_wherever_they_appear(tmp_path: Path) -> None:
    code, out = check(
        tmp_path,
        SOURCE + '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\n'
        'events = { "" = "o87ne", "   " = "o87nf", " lead" = "o87ng", purchase = "o87nh" }\n'
        '[destinations.filter]\nexclude_events = ["test_event", "  "]\n',
    )
    assert code == EXIT_CONFIG
    assert 'destinations[0](x-main).events."": an event name cannot be blank' in out
    assert 'destinations[0](x-main).events."   ": an event name cannot be blank' in out
    assert "destinations[0](x-main).events.\" lead\": 'lead' has spaces around it" in out
    assert "destinations[0](x-main).filter.exclude_events[1]: an event name cannot be blank" in out
    assert "events.purchase" not in out
