"""The ``xgate`` command line: one typer app; each area registers its commands from its own module.

Every command prints through :mod:`xgate.cli.output` (usage errors too, through :mod:`xgate.cli.usage`, which
also turns the docstrings into help texts), takes ``--config`` and loads its inputs through
:mod:`xgate.cli.options`, and binds its port (``serve``, ``sandbox``) through :mod:`xgate.cli.listen`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from xgate.cli import browser, core, db, gateway, init, offline, serve, track, verify, xapi
from xgate.cli.usage import XgateGroup

app = typer.Typer(
    name="xgate",
    cls=XgateGroup,  # usage errors as one `error: …` line, exit 2
    help="Self-hosted gateway for X's Conversions API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


def _print_version(value: bool) -> None:
    if value:
        from xgate import __version__

        typer.echo(f"xgate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print xgate's version and exit."
        ),
    ] = False,
) -> None:
    """Self-hosted gateway for X's Conversions API: collect, map, hash, queue and deliver conversions."""
    from xgate.cli.output import exit_status, fail
    from xgate.secret_files import SecretFileError, read_secrets_dir_from_env

    # secrets mounted as files (/run/secrets/NAME in the container image) become variables first
    try:
        read_secrets_dir_from_env()
    except SecretFileError as e:
        fail(str(e), code=exit_status(e))


for module in (core, xapi, verify, init, serve, gateway, db, browser, offline, track):
    module.register(app)


def main() -> None:
    app()
