"""The ``xgate`` command line: one typer app; each area registers its commands from its own module.

Every command prints through :mod:`xgate.cli.output` (usage errors too, through :mod:`xgate.cli.usage`),
takes ``--config`` and loads its inputs through :mod:`xgate.cli.options`, and binds its port (``serve``,
``sandbox``) through :mod:`xgate.cli.listen`.
"""

from __future__ import annotations

import inspect
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


def _reflow(typer_app: typer.Typer) -> None:
    """Give every command its docstring as help with each paragraph on one line.

    In rich markup mode typer keeps a help text's single line breaks, so a docstring wrapped at the
    source's width printed ragged (``(see the`` / ``report)``) and broke the command list mid-sentence;
    the terminal's width wraps the joined paragraphs instead."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            paragraphs = inspect.cleandoc(info.callback.__doc__).split("\n\n")
            info.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow(group.typer_instance)


for module in (core, xapi, verify, init, serve, gateway, db, browser, offline, track):
    module.register(app)
_reflow(app)


def main() -> None:
    app()
