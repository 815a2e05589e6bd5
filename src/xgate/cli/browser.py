"""CLI commands of the browser tag: ``xgate tag snippet``."""

from __future__ import annotations

from typing import Annotated

import typer

from xgate.cli.options import ConfigOption, load_config_or_exit
from xgate.cli.output import fail, note
from xgate.cli.usage import bad_usage
from xgate.tag.script import SnippetError, collector_origin, pixel_events, snippet

tag_app = typer.Typer(name="tag", help="The first-party browser tag.", no_args_is_help=True)


@tag_app.command("snippet")
def snippet_command(
    collector: Annotated[
        str, typer.Option(help="the gateway's public origin (no path), e.g. https://xgate.shop.example")
    ],
    source: Annotated[
        str, typer.Option("--source", "-s", help="the browser source (its write key is public)")
    ],
    consent_required: Annotated[
        bool,
        typer.Option("--consent-required", help="hold events in the page until xgate.consent(...) is called"),
    ] = False,
    config_path: ConfigOption = None,
) -> None:
    """Print the two lines to paste into every page of the site, before </head>."""
    try:
        collector_origin(collector)
    except SnippetError as e:  # wrong in itself, whatever the configuration: a usage error
        bad_usage("--collector", str(e))
    config = load_config_or_exit(config_path)
    try:
        text = snippet(config, source, collector, consent_required=consent_required)
    except SnippetError as e:
        fail(f"cannot build the snippet: {e}")
    # plain print: the snippet must be copied verbatim, without rich's wrapping or markup
    typer.echo(text)
    web = next(s for s in config.sources if s.name == source)
    for destination, why in pixel_events(config, web).left_out.items():
        note(f"{destination}: no pixel event on these pages ({why})")


def register(app: typer.Typer) -> None:
    """Add ``xgate tag ...`` to the xgate app."""
    app.add_typer(tag_app)
