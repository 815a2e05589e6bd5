"""The ``xgate`` command line: one typer app; each area registers its commands from its own module."""

from __future__ import annotations

import typer

from xgate.cli import browser, core, gateway, init, offline, serve, track, verify, xapi

app = typer.Typer(
    name="xgate",
    help="Self-hosted gateway for X's Conversions API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


@app.callback()
def _root() -> None:
    """Self-hosted gateway for X's Conversions API: collect, map, hash, queue and deliver conversions."""


@app.command()
def version() -> None:
    """Print xgate's version."""
    from xgate import __version__

    typer.echo(__version__)


for module in (core, xapi, verify, init, serve, gateway, browser, offline, track):
    module.register(app)


def main() -> None:
    app()
