"""CLI commands of the browser tag: ``xgate tag snippet``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from xgate.cli.output import note
from xgate.config import ConfigError, load_config
from xgate.tag.script import SnippetError, pixel_events, snippet

errors = Console(stderr=True)

tag_app = typer.Typer(name="tag", help="The first-party browser tag.", no_args_is_help=True)


@tag_app.command("snippet")
def snippet_command(
    collector: str = typer.Option(
        ..., "--collector", help="the gateway's public URL, e.g. https://xgate.shop.example"
    ),
    source: str = typer.Option(..., "--source", "-s", help="the browser source (its write key is public)"),
    consent_required: bool = typer.Option(
        False, "--consent-required", help="hold events in the page until xgate.consent(...) is called"
    ),
    config_path: Path | None = typer.Option(
        None, "--config", "-c", help="configuration file (default: $XGATE_CONFIG or ./xgate.toml)"
    ),
) -> None:
    """Print the two lines to paste into every page of the site, before </head>."""
    try:
        config = load_config(config_path)
        text = snippet(config, source, collector, consent_required=consent_required)
    except ConfigError as e:
        errors.print(f"[bold red]Invalid configuration[/] in {e.source}:")
        for problem in e.problems:
            errors.print(f"  • {problem}")
        raise typer.Exit(1) from None
    except SnippetError as e:
        errors.print(f"[bold red]Cannot build the snippet:[/] {e}")
        raise typer.Exit(1) from None
    # plain print: the snippet must be copied verbatim, without rich's wrapping or markup
    typer.echo(text)
    web = next(s for s in config.sources if s.name == source)
    for destination, why in pixel_events(config, web).left_out.items():
        note(f"{destination}: no pixel event on these pages ({why})")


def register(app: typer.Typer) -> None:
    """Add ``xgate tag ...`` to the xgate app."""
    app.add_typer(tag_app)
