"""CLI commands of the map stage: ``xgate map`` (dry run) and ``xgate config check``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.syntax import Syntax

from xgate.cli.options import ConfigOption, load_config_or_exit, read_input_or_exit
from xgate.cli.output import console, fail, note, warn
from xgate.config import Config, resolve_config_path
from xgate.config_check import findings
from xgate.conversion import MappedConversion
from xgate.events import InvalidEvent
from xgate.mapping import Mapper

config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)


def read_events_or_exit(source: str) -> list[Any]:
    """The events in the JSON file ``source`` (``-``: standard input): one event, a list, or
    ``{"events": [...]}``; exit 1 when the file cannot be read or is not JSON."""
    try:
        data = orjson.loads(read_input_or_exit(source))
    except orjson.JSONDecodeError as e:
        fail(f"{source} is not valid JSON: {e}")
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return list(data["events"])
    return data if isinstance(data, list) else [data]


def map_events_or_exit(config: Config, events: list[Any]) -> list[MappedConversion]:
    """Map every event; print every reason and exit 1 when any event is invalid for any destination."""
    mapper = Mapper(config)
    conversions: list[MappedConversion] = []
    problems: list[str] = []
    for i, event in enumerate(events):
        where = f"event {i}" if len(events) > 1 else "event"
        try:
            result = mapper.map(event)
        except InvalidEvent as e:
            problems.extend(f"{where}: {error}" for error in e.errors)
            continue
        for rejection in result.rejections:
            problems.extend(f"{where} → {rejection.destination}: {error}" for error in rejection.errors)
        for c in result.conversions:
            for w in c.warnings:
                warn(f"{where} → {c.destination}: {w}")
        for destination, why in result.skipped.items():
            note(f"{where} → {destination}: skipped ({why})")
        conversions.extend(result.conversions)
    if problems:
        fail("invalid event" if len(events) == 1 else "invalid events", problems)
    return conversions


def source_events_or_exit(config: Config, source_name: str, payload_file: str) -> list[Any]:
    """The xgate events a source of another kind makes of the payload in ``payload_file`` (its signature
    or write key is not checked: a dry run); notes what its kind ignores; exit 1 naming the source when
    it is not configured, the payload cannot be read, or the source's mapping cannot apply."""
    from xgate.collect.kinds import Refusal, kind_for, source_events

    source = next((s for s in config.sources if s.name == source_name), None)
    if source is None:
        names = ", ".join(s.name for s in config.sources) or "none"
        fail(f"--source {source_name}: no such source in the configuration (sources: {names})")
    if source.kind == "xgate":
        return read_events_or_exit(payload_file)
    kind = kind_for(source.kind)
    if kind is None:
        fail(f"--source {source_name}: kind {source.kind!r} is not built into this version of xgate")
    messages = kind.read_file(read_input_or_exit(payload_file))
    if isinstance(messages, Refusal):
        fail(f"{payload_file}: not a {source.kind} payload: {messages.message}")
    events: list[Any] = []
    problems: list[str] = []
    converted = source_events(kind, source, messages)
    for i, c in enumerate(converted):
        where = f"event {i}" if len(converted) > 1 else "event"
        if c.ignored is not None:
            note(f"{where} ({c.name or 'unnamed'}): ignored ({c.ignored})")
        problems.extend(f"{where}: {e}" for e in c.errors)
        if c.event is not None and not c.errors:
            events.append(c.event)
    if problems:
        fail("the source's mapping cannot apply", problems)
    return events


def map_command(
    event_file: Annotated[
        str,
        typer.Argument(
            metavar="EVENT.json", help="one event or a list (or a payload of --source's kind); - for stdin"
        ),
    ],
    config_path: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="a JSON list of {destination, pixel_id, body}")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="NAME",
            help="read the file as this source's kind sends it (a Segment message, a GA4 body, a webhook)",
        ),
    ] = None,
) -> None:
    """Dry run: print, per destination, the pixel id and the exact body that would be sent to X."""
    config = load_config_or_exit(config_path)
    events = source_events_or_exit(config, source, event_file) if source else read_events_or_exit(event_file)
    if not events:
        console.print("the payload makes no event")
        return
    conversions = map_events_or_exit(config, events)
    by_destination: dict[str, list[MappedConversion]] = {}
    for c in conversions:
        by_destination.setdefault(c.destination, []).append(c)
    pixels = {d.name: d.pixel_id for d in config.destinations}
    out = [
        {"destination": name, "pixel_id": pixels[name], "body": {"conversions": [c.body for c in convs]}}
        for name, convs in by_destination.items()
    ]
    if as_json:
        print(json.dumps(out, indent=2))
        return
    if not out:
        console.print("no destination takes this event")
    for item in out:
        name, pixel = str(item["destination"]), str(item["pixel_id"])
        url = f"{config.x.api_url}/{config.x.api_version}/measurement/conversions/{pixel}"
        console.print(f"[bold]{escape(name)}[/bold]  pixel [cyan]{escape(pixel)}[/cyan]  POST {escape(url)}")
        console.print(Syntax(json.dumps(item["body"], indent=2), "json", theme="ansi_dark", word_wrap=True))


@config_app.command("check")
def config_check(config_path: ConfigOption = None) -> None:
    """Explain every mistake in the configuration, and warn about what will not work at run time."""
    config = load_config_or_exit(config_path)
    warnings = findings(config)
    path = resolve_config_path(config_path)
    for w in warnings:
        warn(w)
    console.print(
        f"[green]{escape(str(path))} is valid[/green]: {len(config.sources)} source(s), "
        f"{len(config.destinations)} destination(s)" + (f", {len(warnings)} warning(s)" if warnings else "")
    )


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
    app.add_typer(config_app, name="config")
