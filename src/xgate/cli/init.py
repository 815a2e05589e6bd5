"""``xgate init``: write a commented ``xgate.toml`` by questions (or by flags with ``--non-interactive``).

It asks for the pixel id, the X event id of each common event name, the auth mode, the sources (a browser
source with a fresh public write key and its site's origin; a server source whose fresh key is printed
once, as the ``export`` line to run, and never written to the file) and the default phone region. Each
answer is checked by the configuration's own validators (:mod:`xgate.config`): asked again when wrong,
or, without a terminal, an error naming the flag. It ends by running ``xgate config check`` on the file.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

from xgate.cli.core import config_check
from xgate.cli.options import Auth
from xgate.cli.output import console, fail, note, warn
from xgate.cli.usage import bad_usage
from xgate.config import (
    DEFAULT_CONFIG_NAME,
    Destination,
    IdentitySettings,
    Source,
    config_problems,
)
from xgate.x.auth import credential_names

#: the event names asked for one by one, in this order (docs/events.md lists X's types for each)
COMMON_EVENTS = ("purchase", "sign_up", "generate_lead", "add_to_cart", "view_item", "page_view")
SERVER_KEY_ENV = "XGATE_WRITE_KEY_BACKEND"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

Check = Callable[[str], str | None]


def _problem(model: type[BaseModel], data: dict[str, Any], location: str | None = None) -> str | None:
    """The configuration's own verdict on ``data`` for ``model``: the first problem (at ``location`` when
    given), or None when valid."""
    try:
        model.model_validate(data)
    except ValidationError as e:
        problems = [p for p in config_problems(e, data) if location is None or p.location == location]
        return problems[0].reason if problems else None
    return None


def check_pixel(value: str) -> str | None:
    return _problem(Destination, {"name": "x", "pixel_id": value, "events": {"e": "e"}}, "pixel_id")


def check_destination_name(value: str) -> str | None:
    return _problem(Destination, {"name": value, "pixel_id": "p", "events": {"e": "e"}}, "name")


def check_ad_account(value: str) -> str | None:
    data = {"name": "x", "pixel_id": "p", "events": {"e": "e"}, "ad_account_id": value}
    return _problem(Destination, data, "ad_account_id")


def check_event(pixel_id: str, name: str) -> Check:
    return lambda value: _problem(Destination, {"name": "x", "pixel_id": pixel_id, "events": {name: value}})


def check_region(value: str) -> str | None:
    return _problem(IdentitySettings, {"default_region": value})


def check_origin(value: str) -> str | None:
    return _problem(Source, {"name": "web", "write_key": "k", "allowed_origins": [value]})


def check_event_name(value: str) -> str | None:
    if not value.strip():
        return "an event name cannot be blank"
    return _problem(Destination, {"name": "x", "pixel_id": "p", "events": {value: "e"}})


@dataclass
class Answers:
    pixel_id: str
    events: dict[str, str]
    auth: str = "pixel_token"
    destination: str = "x"
    ad_account_id: str | None = None
    origin: str | None = None
    server_source: bool = True
    region: str = "US"
    api_url: str = "https://ads-api.x.com"
    browser_key: str = field(default_factory=lambda: f"pub-{secrets.token_hex(8)}")


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else _q(name)


def _line(setting: str, comment: str) -> str:
    return f"{setting:<40}# {comment}" if len(setting) < 40 else f"{setting}  # {comment}"


def render(a: Answers) -> str:
    """The commented configuration file for these answers (never holding a secret)."""
    credentials = ", ".join(
        credential_names("XGATE_X_", "pixel_token" if a.auth == "pixel_token" else "oauth1")
    )
    out = [
        f"# xgate configuration, written by `xgate init` on {datetime.now(UTC):%Y-%m-%d}.",
        "# Every setting is described in examples/xgate.toml; docs/x-setup.md says where X shows each id.",
        f"# Secrets are not in this file: X's credentials come from {credentials}",
        "# (or [x] secrets_file)"
        + (f", the backend's write key from {SERVER_KEY_ENV}." if a.server_source else "."),
        "",
        "[x]",
        _line(f"api_url = {_q(a.api_url)}", "X; the sandbox in development: http://127.0.0.1:8787"),
        'api_version = "12"',
        _line('# secrets_file = "/run/secrets/xgate"', "NAME=value lines instead of environment variables"),
        "",
        "[storage]",
        _line('url = "sqlite:///var/xgate.db"', "the durable queue of conversions"),
        "",
        "[identity]",
        _line(
            f"default_region = {_q(a.region)}", "phone numbers written without +country code are read as this"
        ),
        "",
        "[server]",
        'host = "127.0.0.1"',
        "port = 8080",
    ]
    if a.origin:
        out += [
            "",
            "# The website's tag (xgate tag snippet --source web): its write key is public by nature.",
            "[[sources]]",
            'name = "web"',
            f"write_key = {_q(a.browser_key)}",
            _line(f"allowed_origins = [{_q(a.origin)}]", "the pages that may send events"),
        ]
    if a.server_source:
        out += [
            "",
            "# Backends (HTTP API, xgate.client, xgate track): the key is read from the environment.",
            "[[sources]]",
            'name = "backend"',
            f"write_key_env = {_q(SERVER_KEY_ENV)}",
        ]
    auth_comment = (
        "Events Manager's Conversion API token (XGATE_X_PIXEL_TOKEN)"
        if a.auth == "pixel_token"
        else "OAuth 1.0a: an Ads API app, a user with a role on the account"
    )
    account = (
        f"ad_account_id = {_q(a.ad_account_id)}" if a.ad_account_id else '# ad_account_id = "18ce54d4x5t"'
    )
    out += [
        "",
        "[[destinations]]",
        f"name = {_q(a.destination)}",
        _line(f"pixel_id = {_q(a.pixel_id)}", "the pixel (base tag) id"),
        _line(f"auth = {_q(a.auth)}", auth_comment),
        *(
            [_line(account, "the ad account owning the pixel, for xgate verify")]
            if a.auth == "oauth1"
            else []
        ),
        "",
        "# our event name = the X event's id (tw-PIXEL-EVENT); names not listed are not sent",
        "[destinations.events]",
        *(f"{_key(name)} = {_q(event_id)}" for name, event_id in a.events.items()),
        "",
    ]
    return "\n".join(out)


def _ask(label: str, check: Check, default: str | None = None, *, optional: bool = False) -> str:
    """Prompt until ``check`` accepts the answer; blank returns "" when ``optional``."""
    while True:
        value: str = typer.prompt(
            label,
            default=default if default is not None else ("" if optional else None),
            show_default=bool(default),
        )
        value = value.strip()
        if optional and not value:
            return ""
        problem = check(value)
        if problem is None:
            return value
        warn(problem)


def interactive(destination: str) -> Answers:
    console.print("X's pixel id and event ids are in Events Manager (docs/x-setup.md).", markup=False)
    pixel = _ask("X pixel id (e.g. o8z6j)", check_pixel)
    events: dict[str, str] = {}
    for name in COMMON_EVENTS:
        event_id = _ask(
            f"X event id for {name} (tw-{pixel}-…, blank to skip)", check_event(pixel, name), optional=True
        )
        if event_id:
            events[name] = event_id
    while True:
        name = typer.prompt("Another event name (blank when done)", default="", show_default=False).strip()
        if not name:
            if events:
                break
            warn("at least one event is needed: name an event X should receive")
            continue
        if (problem := check_event_name(name)) is not None:
            warn(problem)
            continue
        events[name] = _ask(f"X event id for {name}", check_event(pixel, name))
    auth = _ask(
        "Auth: pixel_token (Events Manager's Conversion API token) or oauth1 (an Ads API app)",
        lambda v: None if v in ("pixel_token", "oauth1") else "answer pixel_token or oauth1",
        "pixel_token",
    )
    account = (
        _ask("Ad account id, for xgate verify (blank to search)", check_ad_account, optional=True)
        if auth == "oauth1"
        else ""
    )
    while True:
        origin = _ask(
            "Website origin for the browser tag (e.g. https://shop.example.com; blank for none)",
            check_origin,
            optional=True,
        )
        server = typer.confirm("A server source for backends (key in an environment variable)?", default=True)
        if origin or server:
            break
        warn("at least one source is needed: a website origin, a server source, or both")
    region = _ask("Default phone region (ISO 3166, e.g. US, FR)", check_region, "US").upper()
    return Answers(pixel, events, auth, destination, account or None, origin or None, server, region)


def _event_flags(pixel: str, flags: list[str]) -> dict[str, str]:
    events: dict[str, str] = {}
    for flag in flags:
        name, sep, event_id = flag.partition("=")
        if not sep:
            bad_usage("--event", f"expected NAME=ID, e.g. purchase=tw-{pixel}-o87ne, got {flag!r}")
        if problem := check_event_name(name.strip()) or check_event(pixel, name.strip())(event_id.strip()):
            bad_usage(f"--event {name.strip()}", problem)
        events[name.strip()] = event_id.strip()
    if not events:
        bad_usage("--event", f"give at least one, e.g. --event purchase=tw-{pixel}-o87ne")
    return events


def _answers_from_flags(
    pixel_id: str | None,
    event: list[str],
    auth: Auth,
    destination: str,
    ad_account_id: str | None,
    origin: str | None,
    server_source: bool,
    region: str,
) -> Answers:
    """The answers ``--non-interactive`` takes from the flags; a usage error naming the first wrong one."""
    if not pixel_id:
        bad_usage("--pixel-id", "required with --non-interactive")
    if (problem := check_pixel(pixel_id)) is not None:
        bad_usage("--pixel-id", problem)
    if ad_account_id and (problem := check_ad_account(ad_account_id)) is not None:
        bad_usage("--ad-account-id", problem)
    if origin and (problem := check_origin(origin)) is not None:
        bad_usage("--origin", problem)
    if not origin and not server_source:
        bad_usage("--origin / --no-server-source", "at least one source is needed")
    if (problem := check_region(region)) is not None:
        bad_usage("--region", problem)
    events = _event_flags(pixel_id, event)
    return Answers(
        pixel_id, events, auth.value, destination, ad_account_id, origin, server_source, region.upper()
    )


def init_command(
    path: Annotated[Path, typer.Option("--path", "-o", help="the file to write")] = Path(DEFAULT_CONFIG_NAME),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="no questions: everything from the flags below")
    ] = False,
    pixel_id: Annotated[str | None, typer.Option("--pixel-id", help="X pixel id, e.g. o8z6j")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="NAME=X_EVENT_ID, e.g. purchase=tw-o8z6j-o87ne; repeatable"),
    ] = None,
    auth: Annotated[
        Auth, typer.Option("--auth", help="how X's requests are signed (with --non-interactive)")
    ] = Auth.pixel_token,
    ad_account_id: Annotated[
        str | None, typer.Option("--ad-account-id", help="the ad account owning the pixel (oauth1)")
    ] = None,
    origin: Annotated[
        str | None, typer.Option("--origin", help="the website origin of a browser source")
    ] = None,
    server_source: Annotated[
        bool, typer.Option("--server-source/--no-server-source", help="a server source for backends")
    ] = True,
    region: Annotated[str, typer.Option("--region", help="default phone region (ISO 3166)")] = "US",
    destination: Annotated[str, typer.Option("--destination", help="the destination's name")] = "x",
) -> None:
    """Write a commented xgate.toml: pixel, events, auth, sources and phone region; then check it.

    Exit status: 0 written (even when config check warns); 2 a flag is wrong (a usage error); 1 when the
    file exists (without --force) or no answer came."""
    # the flags first (a usage error, exit 2), then the file (an error, exit 1), as click checks its own
    if (problem := check_destination_name(destination)) is not None:
        bad_usage("--destination", problem)
    answers = None
    if non_interactive:
        answers = _answers_from_flags(
            pixel_id, event or [], auth, destination, ad_account_id, origin, server_source, region
        )
    if path.exists() and not force:
        fail(f"{path} exists; pass --force to overwrite it, or --path for another file")
    if answers is None:
        try:
            answers = interactive(destination)
        except typer.Abort:  # end of input (EOFError) or Ctrl-C at a prompt: click would print "Aborted."
            fail(
                "xgate init: no answer (its input ended or was interrupted): answer in a terminal, or pass "
                "--non-interactive and the flags (docs/x-setup.md)"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(answers), encoding="utf-8")
    console.print(f"wrote {path}", markup=False)
    if answers.server_source:
        key = secrets.token_urlsafe(32)
        console.print(
            f"The backend source's write key, shown once (it is not in {path}); set it where xgate runs:",
            markup=False,
        )
        console.print(f"export {SERVER_KEY_ENV}={key}", markup=False, highlight=False, soft_wrap=True)
    names = ", ".join(
        credential_names("XGATE_X_", "pixel_token" if answers.auth == "pixel_token" else "oauth1")
    )
    note(f"next: set {names}, then run xgate verify --config {path}")
    config_check(path)


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)
