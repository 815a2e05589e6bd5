"""What the ``xgate`` commands share besides printing: the ``--config`` parameter and the loaders that turn a
missing, unreadable or invalid input into one ``error: …`` line (via :func:`xgate.cli.output.fail`).

Every failure here names the file; the messages and exit statuses are the same in every command, so
``xgate serve``, ``xgate status`` and ``xgate import`` report a broken configuration alike, with exit
status 78 (:data:`~xgate.cli.output.EXIT_CONFIG`: a restart cannot cure it):

- ``error: configuration file PATH not found: pass --config PATH or set XGATE_CONFIG``
- ``error: cannot read the configuration file PATH: REASON`` (a directory, no permission…)
- ``error: invalid configuration in PATH`` followed by one indented line per problem

An outbox that cannot be opened exits 75 when it may open later (database unreachable, file locked) and
78 when it cannot without an operator (schema of another version, replaced, absent): see
:func:`~xgate.cli.output.exit_status`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from xgate.cli.output import EXIT_CONFIG, exit_status, fail
from xgate.config import CONFIG_ENV, Config, ConfigError, load_config, resolve_config_path
from xgate.errors import OutboxNotFound, OutboxReplaced, OutboxUnavailable
from xgate.outbox import Outbox, node_id_for, open_outbox

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        show_default=False,
        help=f"the configuration file (default: ${CONFIG_ENV}, else ./xgate.toml)",
    ),
]


AcceptNewOutboxOption = Annotated[
    bool,
    typer.Option(
        "--accept-new-outbox",
        help="start on an outbox that is not the one this node used (truncated, deleted, recreated or "
        "replaced while stopped) and record it",
    ),
]


def accepting_new_outbox(config: Config, accept: bool) -> Config:
    """``config`` with ``[storage] accept_new_outbox`` on when ``accept`` (``--accept-new-outbox``)."""
    if not accept:
        return config
    storage = config.storage.model_copy(update={"accept_new_outbox": True})
    return config.model_copy(update={"storage": storage})


class Auth(StrEnum):
    """X's two ways to sign a request (``[[destinations]] auth``): the choices of ``--auth`` (a value
    outside them is a usage error, as click judges a choice)."""

    oauth1 = "oauth1"
    pixel_token = "pixel_token"


def load_config_or_exit(path: Path | None) -> Config:
    """The configuration at ``path`` (else ``$XGATE_CONFIG``, else ``./xgate.toml``), or exit 78 saying
    which file is missing, unreadable or invalid and, for an invalid one, every problem (one per line)."""
    where = resolve_config_path(path)
    if not where.exists():
        missing = f"configuration file {where} not found: pass --config PATH or set {CONFIG_ENV}"
        fail(missing, code=EXIT_CONFIG)
    try:
        return load_config(where)
    except ConfigError as e:
        fail(f"invalid configuration in {e.source}", [str(p) for p in e.problems], code=EXIT_CONFIG)
    except OSError as e:
        fail(f"cannot read the configuration file {where}: {e.strerror or e}", code=EXIT_CONFIG)


def read_input_or_exit(source: str | Path) -> bytes:
    """The bytes of the file ``source`` (``-`` reads standard input), or exit 1 naming the file and the
    reason (``error: cannot read PATH: No such file or directory``)."""
    if str(source) == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as e:
        fail(f"cannot read {source}: {e.strerror or e}")


def outbox_or_exit(config: Config, *, create: bool = False, role: str = "") -> Outbox:
    """The configuration's outbox, or a one-line error and exit 75 (unreachable now) or 78 (another schema
    version, replaced, absent; :func:`~xgate.cli.output.exit_status`). ``create=False`` (read-only
    commands): a missing outbox is an error naming where it was looked for, never a new empty one."""
    try:
        return open_outbox(
            config.storage.url, config.storage, node_id=node_id_for(config, role), create=create
        )
    except OutboxNotFound as e:
        hint = "is this the configuration the gateway runs with? (--config / XGATE_CONFIG)"
        fail(str(e), [hint], code=exit_status(e))
    except (OutboxUnavailable, OutboxReplaced) as e:
        fail(str(e), code=exit_status(e))
