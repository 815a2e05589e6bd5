"""The one console of the ``xgate`` command line, and its one way to report a failure.

Every command prints through :data:`console` (stdout) and :data:`err` (stderr) and fails through
:func:`fail`: one line ``error: WHAT`` (plus optional detail lines) on stderr and exit status 1. A command
line that cannot be parsed (an unknown option, a missing argument, a value of the wrong type) fails through
:func:`usage_error` in the same style, with a ``Try 'xgate CMD --help'.`` hint and exit status 2. Text that
comes from outside (a file name, X's answer, a configuration value) is never read as rich markup, so ``[x]``
in a message prints as ``[x]``; messages are never wrapped at the console's width, so an error stays one line
for ``grep`` and for a log collector.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)


#: exit status of a command line that could not be parsed: click's, and POSIX utilities', convention
EXIT_USAGE = 2


def fail(message: str, details: Iterable[str] = (), *, code: int = 1) -> NoReturn:
    """Print ``error: MESSAGE`` and each detail line (indented) on stderr, then exit with ``code``."""
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    for line in details:
        err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def usage_error(message: str, command: str) -> NoReturn:
    """Print ``error: MESSAGE`` and the hint ``Try 'COMMAND --help'.`` on stderr; exit :data:`EXIT_USAGE`."""
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    note(f"Try '{command} --help'.")
    raise typer.Exit(EXIT_USAGE)


def warn(message: str) -> None:
    """Print ``warning: MESSAGE`` on stderr (the message is plain text, never markup)."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def note(message: str) -> None:
    """A dim hint on stderr (what to run next); plain text, never markup."""
    err.print(escape(message), style="dim", soft_wrap=True)
