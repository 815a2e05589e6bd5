"""``xgate track``: send one event to a running gateway, from a shell or a script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.markup import escape

from xgate.cli.options import read_input_or_exit
from xgate.cli.output import EXIT_REJECTED, console, fail
from xgate.cli.usage import bad_usage
from xgate.client.common import DEFAULT_URL, URL_ENV, WRITE_KEY_ENV


def _event_from(json_text: str | None, file: Path | None) -> dict[str, Any]:
    """The event of ``--event`` (its text wrong: a usage error, exit 2) or ``--file`` (an input file that
    is not an event: an error, exit 1, as every command's unreadable input)."""
    if json_text is None and file is None:
        return {}

    def refuse(reason: str) -> NoReturn:
        if file is not None:
            fail(reason)
        bad_usage("--event", reason)

    raw = read_input_or_exit(file) if file is not None else json_text
    try:
        data = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as e:
        refuse(f"the event is not valid JSON: {e}")
    if not isinstance(data, dict):
        refuse("the event must be a JSON object")
    return data


def _set(event: dict[str, Any], path: str, value: Any, option: str) -> None:
    node = event
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            bad_usage(option, f"cannot set {path}: {part} is not an object in the event")
    node[last] = value


def track(
    event_name: Annotated[
        str | None, typer.Argument(help="purchase, sign_up, lead… (or in the JSON)")
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="the event's id (becomes the conversion_id)")
    ] = None,
    value: Annotated[float | None, typer.Option(help="the conversion's value")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code, e.g. EUR")] = None,
    email: Annotated[str | None, typer.Option(help="hashed by the gateway before it is stored")] = None,
    phone: Annotated[str | None, typer.Option(help="hashed by the gateway before it is stored")] = None,
    twclid: Annotated[str | None, typer.Option(help="the X click id")] = None,
    timestamp: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default: now)")] = None,
    prop: Annotated[
        list[str] | None, typer.Option("--property", "-p", help="PATH=VALUE, e.g. user.id=42 (repeatable)")
    ] = None,
    event_json: Annotated[str | None, typer.Option("--event", help="the whole event as JSON")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="the event as a JSON file (- for stdin)")
    ] = None,
    gateway: Annotated[
        str, typer.Option(envvar=URL_ENV, help="the gateway's URL")
    ] = DEFAULT_URL,  # --help shows the variable and the default after the text
    write_key: Annotated[
        str | None,
        typer.Option(envvar=WRITE_KEY_ENV, show_default=False, help="a server source's write key"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the gateway's answer as JSON")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 10.0,
    retries: Annotated[int, typer.Option(min=0, help="retries on network errors, 429 and 5xx")] = 3,
) -> None:
    """Send one event to the gateway now and print what became of it.

    Exit status: 0 accepted, duplicate or skipped; 3 rejected (the reasons are printed); 1 when the
    gateway could not be reached or refused the request (bad write key…); 2 a usage error (no event name,
    no write key…).
    """
    from xgate.client import GatewayClient

    event = _event_from(event_json, file)
    for path, given, option in (
        ("event_name", event_name, "EVENT_NAME"),
        ("id", event_id, "--id"),
        ("value", value, "--value"),
        ("currency", currency, "--currency"),
        ("user.email", email, "--email"),
        ("user.phone", phone, "--phone"),
        ("partners.twitter.twclid", twclid, "--twclid"),
        ("context.event_timestamp", timestamp, "--timestamp"),
    ):
        if given is not None:
            _set(event, path, given, option)
    for item in prop or []:
        path, sep, text = item.partition("=")
        if not sep or not path:
            bad_usage("--property", f"{item!r}: write PATH=VALUE")
        try:
            parsed: Any = json.loads(text)  # numbers, true/false, JSON; anything else is text
        except ValueError:
            parsed = text
        _set(event, path, parsed, "--property")
    # what the client would refuse, as usage errors naming the options (the client names its arguments)
    name = event.get("event_name")
    if name is None or name == "":
        bad_usage(
            "EVENT_NAME",
            "missing argument: name the event (purchase, sign_up…), "
            "or give its event_name in --event or --file",
        )
    if not isinstance(name, str) or not name.strip():
        bad_usage("EVENT_NAME", f"must be non-empty text, not {json.dumps(name)}")
    if not write_key:
        bad_usage("--write-key", f"not given and {WRITE_KEY_ENV} is not set")
    if not gateway.startswith(("http://", "https://")):
        bad_usage("--gateway", f"must be the gateway's http(s) URL, such as {DEFAULT_URL}, not {gateway!r}")
    try:
        client = GatewayClient(gateway, write_key, timeout=timeout, max_retries=retries, backoff_max=5.0)
    except ValueError as e:
        fail(str(e))
    try:
        [result] = client.send(event)
    except ValueError as e:
        fail(str(e))
    finally:
        client.close()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": result.status,
                    "event_name": result.event_name,
                    "id": result.event_id,
                    "conversion_ids": list(result.conversion_ids),
                    "errors": [{"field": e.field, "reason": e.reason} for e in result.errors],
                    "reason": result.reason,
                }
            )
        )
    elif result.status == "failed":
        fail(f"{result.event_name or 'the event'} was not sent: {result.reason}")
    else:
        style = {"accepted": "green", "duplicate": "yellow", "skipped": "dim"}.get(result.status, "red")
        console.print(f"[{style}]{escape(result.status)}[/]: {escape(result.event_name)}", end="")
        ids = ", ".join(result.conversion_ids)
        console.print(f" → conversion {ids}" if ids else "", markup=False)
        for problem in result.errors:
            console.print(f"  {problem.field}: {problem.reason}", markup=False)
        if result.reason:
            console.print(f"  {result.reason}", markup=False)
    if result.status == "rejected":
        raise typer.Exit(EXIT_REJECTED)
    if result.status == "failed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("track")(track)
