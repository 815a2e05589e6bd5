"""The one console of the ``xgate`` command line, and its one way to report a failure.

Every command prints through :data:`console` (stdout) and :data:`err` (stderr) and fails through
:func:`fail`: one line ``error: WHAT`` (plus optional detail lines) on stderr and an exit status, 1 unless
the failure is one of the kinds below. A command line that cannot be parsed (an unknown option, a missing
argument, a value of the wrong type) fails through :func:`usage_error` in the same style, with a
``Try 'xgate CMD --help'.`` hint and exit status 2. Text that comes from outside (a file name, X's answer, a
configuration value) is never read as rich markup, so ``[x]`` in a message prints as ``[x]``; messages are
never wrapped at the console's width, so an error stays one line for ``grep`` and for a log collector.

The exit statuses (README, "Commands") tell a failure that a restart may cure from one that needs an
operator, for a process manager (deploy/systemd: ``RestartPreventExitStatus=78``) as for a script:

- 0 done; 1 (:data:`EXIT_ERROR`) an error of any other kind (a port in use, an input file, X's answer);
- 2 (:data:`EXIT_USAGE`) the command line cannot be parsed;
- 3 (:data:`EXIT_REJECTED`) ``track`` / ``import``: the gateway or the import rejected events or rows;
- 75 (:data:`EXIT_TEMPFAIL`, sysexits.h's ``EX_TEMPFAIL``) the outbox cannot be reached or written now
  (database down, file locked): the same command may work later;
- 78 (:data:`EXIT_CONFIG`, sysexits.h's ``EX_CONFIG``) something is in a state no retry changes: the
  configuration (missing, unreadable, invalid), a secret file, or the outbox (a schema of another version:
  ``xgate db upgrade`` or another xgate; replaced while stopped; absent where a read-only command looks).

:func:`exit_status` picks the status for an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)


#: exit status of a failure that is none of the kinds below
EXIT_ERROR = 1
#: exit status of a command line that could not be parsed: click's, and POSIX utilities', convention
EXIT_USAGE = 2
#: exit status of ``xgate track`` / ``xgate import`` when events or rows were rejected (the rest went in)
EXIT_REJECTED = 3
#: sysexits.h's EX_TEMPFAIL: the outbox cannot be reached or written now; the same command may work later
EXIT_TEMPFAIL = 75
#: sysexits.h's EX_CONFIG: "something was found in an unconfigured or misconfigured state" — the
#: configuration, a secret file, or the outbox (another schema version, replaced, absent): an operator acts
EXIT_CONFIG = 78


def exit_status(error: BaseException) -> int:
    """The exit status of a command that stops on ``error``: :data:`EXIT_CONFIG` for what only an operator
    can change, :data:`EXIT_TEMPFAIL` for an outbox that cannot be reached now, else :data:`EXIT_ERROR`."""
    from xgate.errors import (
        ConfigError,
        OutboxNotFound,
        OutboxReplaced,
        OutboxSchemaMismatch,
        OutboxUnavailable,
    )
    from xgate.secret_files import SecretFileError

    operator = ConfigError | SecretFileError | OutboxSchemaMismatch | OutboxReplaced | OutboxNotFound
    # a schema mismatch is a kind of OutboxUnavailable (ingest answers 503), but no retry cures it
    if isinstance(error, operator):
        return EXIT_CONFIG
    if isinstance(error, OutboxUnavailable):
        return EXIT_TEMPFAIL
    return EXIT_ERROR


def fail(message: str, details: Iterable[str] = (), *, code: int = EXIT_ERROR) -> NoReturn:
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
