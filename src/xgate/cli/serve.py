"""CLI commands of the gateway process: ``xgate serve`` and ``xgate activity``."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import orjson
import typer
from rich import box
from rich.table import Table
from rich.text import Text

from xgate.cli.listen import bind_or_exit, fit_open_files, guarded_protocol, serve_on
from xgate.cli.options import AcceptNewOutboxOption, ConfigOption, accepting_new_outbox, load_config_or_exit
from xgate.cli.output import console
from xgate.observe.activity import ActivityEntry, signals_text
from xgate.runtime import build_flavour, tune_gc

#: the [server] settings a debug line reports at start (docs/security.md, "Limits")
_LIMITS = {
    "header_timeout_seconds",
    "body_timeout_seconds",
    "max_header_bytes",
    "max_connections",
    "keep_alive_seconds",
    "max_body_bytes",
}


class LogLevel(StrEnum):
    """The least severe log records ``xgate serve`` writes."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def serve(
    config_path: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(show_default=False, help="address to listen on (default: \\[server] host)")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, show_default=False, help="port (default: \\[server] port)"),
    ] = None,
    no_dispatch: Annotated[
        bool, typer.Option("--no-dispatch", help="collect only; another process delivers")
    ] = False,
    log_level: Annotated[LogLevel, typer.Option(help="the least severe records logged")] = LogLevel.info,
    accept_new_outbox: AcceptNewOutboxOption = False,
) -> None:
    """Run the gateway: the HTTP API and the dispatcher in one process (SIGTERM stops it gracefully).

    Exit status: 0 after SIGTERM; 78 when the configuration or the outbox needs an operator (invalid
    configuration, schema of another version: run xgate db upgrade, outbox replaced while stopped); 75
    when the outbox cannot be reached yet (start again later); 1 for any other failure (a port in use)."""
    import uvicorn

    from xgate.cli.output import exit_status, fail
    from xgate.errors import OutboxReplaced, OutboxUnavailable
    from xgate.gateway import build_gateway
    from xgate.observe.logs import configure_logging

    config = accepting_new_outbox(load_config_or_exit(config_path), accept_new_outbox)
    # what the process really listens on is what the gateway is built from: the node id leases are taken
    # as (``serve:PORT``) must differ between instances started with --port from one configuration. Only
    # what the command line gave is copied in: the console marks the rest as the file's or the defaults.
    given = {name: value for name, value in (("host", host), ("port", port)) if value}
    if given:
        config = config.model_copy(update={"server": config.server.model_copy(update=given)})
    host, port = config.server.host, config.server.port
    # bound before the gateway starts: a port in use is an error line, not a dispatcher started for nothing
    sockets = [bind_or_exit(host, port, "set [server] port / --port")]
    admin_port = config.server.admin_port
    if admin_port is not None:  # /metrics and the API documents, loopback by default (docs/security.md)
        sockets.append(bind_or_exit(config.server.admin_host, admin_port, "set [server] admin_port"))
    configure_logging(log_level.upper())
    fit_open_files(config.server.max_connections)
    try:
        gateway = build_gateway(config, dispatch=not no_dispatch)
    except (OutboxReplaced, OutboxUnavailable) as e:
        for sock in sockets:
            sock.close()
        # unreachable: 75, systemd tries again; another schema version or replaced: 78, it does not
        fail(str(e), code=exit_status(e))
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it into the handler it found: that handler
    # exits 0, as process managers expect of a graceful stop. A SIGTERM before uvicorn took the signal over
    # ends the start the same way (the gateway is closed below), instead of being lost.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    tune_gc()
    log = logging.getLogger("xgate")
    log.info("hot path: %s", build_flavour())
    log.debug(
        "limits",
        extra={"fields": config.server.model_dump(include=_LIMITS) | {"admin_port": admin_port}},
    )
    log.info("listening on http://%s:%d", host, port)
    log.info("node id %s: the outbox leases it takes name it", gateway.outbox.node_id)
    if admin_port is not None:
        log.info("admin listener on http://%s:%d", config.server.admin_host, admin_port)
    try:
        serve_on(
            sockets,
            uvicorn.Config(
                gateway.app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                server_header=False,
                # the client address is ours to judge ([server] trust_forwarded), not uvicorn's
                proxy_headers=False,
                timeout_graceful_shutdown=30,
                http=guarded_protocol(config.server),
                timeout_keep_alive=config.server.keep_alive_seconds,
            ),
        )
    finally:
        gateway.close()


_STATE_STYLE = {"delivered": "green", "dead": "red", "rejected": "red", "queued": "yellow", "leased": "cyan"}


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _signals_cell(entry: ActivityEntry) -> Text:
    """The match signals as text (an absent one reads ``-phone``), absent ones dimmed as well."""
    if entry.state == "rejected":
        return Text()
    cell = Text()
    for word in signals_text(entry.match_signals).split():
        cell.append(word, style="dim" if word.startswith("-") else "")
        cell.append(" ")
    cell.rstrip()
    return cell


def _state_cell(entry: ActivityEntry) -> Text:
    """``delivered, 1 try`` and, on the next line, X's debug id or the error."""
    cell = Text(entry.state, style=_STATE_STYLE.get(entry.state, ""))
    if entry.attempts:
        cell.append(f", {entry.attempts} {'try' if entry.attempts == 1 else 'tries'}")
    detail = entry.debug_id or entry.error
    if detail:
        cell.append(f"\n{detail}")
    return cell


def activity_table(entries: list[ActivityEntry], title: str = "Recent activity") -> Table:
    """A rich table of activity entries, two lines a row so that it reads at 80 columns: time (UTC), event
    and destination (``from SOURCE`` for a rejection), conversion id, match signals as text
    (``twclid email -phone -ip_ua``), state with attempts and X's debug id or the error. Cells wrap or
    fold; nothing is cut off. The columns are named after the fields of ``xgate activity --json``."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("time (UTC)", width=10, no_wrap=True)
    table.add_column("event\ndestination", overflow="fold")
    table.add_column("conversion id", overflow="fold")
    # 14 wide: the four signals always take two lines ("-twclid -email" / "-phone -ip_ua")
    table.add_column("match signals", width=14)
    table.add_column("state, tries\nX debug id / error", overflow="fold", ratio=1)
    for e in entries:
        where = e.destination or (f"from {e.source}" if e.source else "")
        table.add_row(
            datetime.fromtimestamp(e.at, tz=UTC).strftime("%Y-%m-%d\n%H:%M:%S"),
            Text(f"{e.event_name}\n{where}"),
            Text(e.conversion_id or ""),
            _signals_cell(e),
            _state_cell(e),
        )
    return table


def activity(
    config_path: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="how many entries")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of entries, for scripts")] = False,
) -> None:
    """Show recent conversions from the outbox: destination, match signals, delivery state, X's answer.

    --json prints a list of entries as GET /v1/activity does: at (Unix seconds), event_name, destination,
    conversion_id, match_signals (the present ones), state, attempts, debug_id, error, source; rejected
    events (field and reason) as every node keeps them in the outbox (the newest 200 of each source).
    Events rejected only for want of an identifier X can match are not listed: the table is followed by
    their number over the last 24 hours.
    """
    from xgate.cli.options import outbox_or_exit
    from xgate.observe.activity import ActivityLog

    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        log = ActivityLog(outbox)
        entries = log.recent(limit)
        unmatched = log.unmatched()
    finally:
        outbox.close()
    if as_json:
        sys.stdout.write(orjson.dumps([e.as_json() for e in entries], option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return
    if not entries:
        console.print("No conversions in the outbox yet.")
    else:
        console.print(activity_table(entries))
    if unmatched["events"]:
        per_source = ", ".join(f"{name} {n}" for name, n in unmatched["sources"].items())
        console.print(
            f"Not listed: {unmatched['events']} events in the last 24 hours rejected only for want of an"
            f" identifier X can match (no twclid, e-mail or phone): {per_source}.",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the xgate app."""
    app.command("serve")(serve)
    app.command("activity")(activity)
