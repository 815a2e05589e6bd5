"""CLI commands of the map stage: ``xgate map`` (dry run) and ``xgate config check``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.syntax import Syntax

from xgate.config import Config, ConfigError, load_config, resolve_config_path
from xgate.conversion import MappedConversion
from xgate.events import InvalidEvent
from xgate.mapping import Mapper

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="xgate.toml (default: $XGATE_CONFIG, else ./xgate.toml)")
]
console = Console()
err = Console(stderr=True)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
DPA_EVENTS = ("page_view", "view_item", "add_to_cart", "purchase")


def load_or_exit(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        err.print(f"[red]invalid configuration[/red] {e.source}:")
        for problem in e.problems:
            err.print(f"  {problem}", markup=False)
        raise typer.Exit(1) from None


def read_events_or_exit(source: str) -> list[Any]:
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        data = orjson.loads(raw)
    except OSError as e:
        err.print(f"[red]cannot read {source}: {e.strerror}[/red]")
        raise typer.Exit(1) from None
    except orjson.JSONDecodeError as e:
        err.print(f"[red]{source} is not valid JSON: {e}[/red]")
        raise typer.Exit(1) from None
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
                err.print(f"[yellow]{where} → {c.destination}: {w}[/yellow]")
        for destination, why in result.skipped.items():
            err.print(f"[dim]{where} → {destination}: skipped ({why})[/dim]")
        conversions.extend(result.conversions)
    if problems:
        err.print("[red]invalid:[/red]")
        for p in problems:
            err.print(f"  {p}", markup=False)
        raise typer.Exit(1)
    return conversions


def map_command(
    event_file: Annotated[str, typer.Argument(metavar="EVENT.json", help="one event or a list; - for stdin")],
    config_path: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="a JSON list of {destination, pixel_id, body}")
    ] = False,
) -> None:
    """Dry run: print, per destination, the pixel id and the exact body that would be sent to X."""
    config = load_or_exit(config_path)
    conversions = map_events_or_exit(config, read_events_or_exit(event_file))
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
        url = f"{config.x.api_url}/{config.x.api_version}/measurement/conversions/{item['pixel_id']}"
        console.print(
            f"[bold]{item['destination']}[/bold]  pixel [cyan]{item['pixel_id']}[/cyan]  POST {url}"
        )
        console.print(Syntax(json.dumps(item["body"], indent=2), "json", theme="ansi_dark", word_wrap=True))


@config_app.command("check")
def config_check(config_path: ConfigOption = None) -> None:
    """Explain every mistake in the configuration, and warn about what will not work at run time."""
    import os

    config = load_or_exit(config_path)
    warnings: list[str] = []
    if not config.sources:
        # a warning, not an error: `xgate import` queues conversions without any source
        warnings.append(
            "sources: none configured, so the gateway takes no events over HTTP (only `xgate import`)"
        )
    for s in config.sources:
        if s.write_key_env and not os.environ.get(s.write_key_env) and not s.write_key:
            warnings.append(
                f"sources.{s.name}: {s.write_key_env} is not set; this source cannot authenticate"
            )
    for d in config.destinations:
        names = (
            ("PIXEL_TOKEN",)
            if d.auth == "pixel_token"
            else ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
        )
        missing = [
            d.credentials_env_prefix + n for n in names if not os.environ.get(d.credentials_env_prefix + n)
        ]
        if missing and not config.x.secrets_file:
            warnings.append(f"destinations.{d.name}: credentials not set: {', '.join(missing)}")
        if d.dpa:
            lacking = [e for e in DPA_EVENTS if d.event_id_for(e) is None]
            if lacking:
                warnings.append(
                    f"destinations.{d.name}: declares dpa but has no X event for {', '.join(lacking)} "
                    "(Dynamic Product Ads need page_view, view_item, add_to_cart, purchase)"
                )
    path = resolve_config_path(config_path)
    for w in warnings:
        console.print(f"[yellow]warning[/yellow] {w}", markup=True)
    console.print(
        f"[green]{path} is valid[/green]: {len(config.sources)} source(s), "
        f"{len(config.destinations)} destination(s)" + (f", {len(warnings)} warning(s)" if warnings else "")
    )


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
    app.add_typer(config_app, name="config")
