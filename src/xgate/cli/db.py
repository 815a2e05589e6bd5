"""``xgate db status`` and ``xgate db upgrade``: the outbox schema's version (policy: outbox.migrations)."""

from __future__ import annotations

import typer

from xgate.cli.options import ConfigOption, load_config_or_exit
from xgate.cli.output import console, exit_status, fail, note
from xgate.errors import OutboxUnavailable
from xgate.outbox import migrations

db_app = typer.Typer(
    help="The outbox's schema: which version it holds, and upgrading it (once per deploy).",
    no_args_is_help=True,
)


@db_app.command("status")
def status(config_path: ConfigOption = None) -> None:
    """Show the outbox's schema version, the version this xgate needs and the pending migrations.

    Exits 0 when the schema is current, 1 otherwise (so a deploy script can check it); 75 when the database
    cannot be reached."""
    config = load_config_or_exit(config_path)
    try:
        found = migrations.status(config.storage.url, config.storage)
    except OutboxUnavailable as e:
        fail(str(e), code=exit_status(e))
    console.print(found.location, markup=False, highlight=False)
    if found.state == "missing":
        console.print(f"  no outbox schema yet; this xgate needs version {found.latest}", highlight=False)
        note("run: xgate db upgrade (or start xgate serve, which creates it in an empty database)")
        raise typer.Exit(1)
    console.print(f"  schema version {found.version}; this xgate needs {found.latest}", highlight=False)
    if found.state == "current":
        console.print("  up to date", style="green")
        return
    if found.state == "newer":
        fail(f"the outbox schema is newer than this xgate knows ({found.latest}): upgrade xgate")
    for step in found.pending:
        console.print(f"  pending: {step}", markup=False, highlight=False)
    note("run: xgate db upgrade")
    raise typer.Exit(1)


@db_app.command("upgrade")
def upgrade(config_path: ConfigOption = None) -> None:
    """Create the outbox's schema, or bring it to the version this xgate needs (each step once, in order).

    Safe to run again, and from several machines at once (the steps run under a lock). Upgrade the
    schema first, then restart every node on the new xgate: nodes of the old version stop at their next
    start with a message naming the versions (exit status 78). Exits 75 when the database cannot be reached,
    78 when its schema is newer than this xgate knows."""
    config = load_config_or_exit(config_path)
    try:
        _, applied, after = migrations.upgrade(config.storage.url, config.storage)
    except OutboxUnavailable as e:
        fail(str(e), code=exit_status(e))
    console.print(after.location, markup=False, highlight=False)
    if not applied:  # nothing pending, or another process applied it while this one waited
        console.print(f"  schema version {after.version}: already up to date", highlight=False)
        return
    for step in applied:
        console.print(f"  applied: {step}", markup=False, highlight=False)
    # the steps are consecutive: what this run started from, whatever another process did before it
    start = (after.version or 0) - len(applied)
    was = "no schema" if start == 0 else f"version {start}"
    console.print(f"  upgraded from {was} to version {after.version}", style="green", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
