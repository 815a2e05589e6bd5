"""CLI commands of the gateway process: ``xgate serve`` and ``xgate activity``."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from xgate.cli.listen import bind_or_exit, serve_on
from xgate.cli.options import ConfigOption, load_config_or_exit
from xgate.cli.output import console
from xgate.observe.activity import SIGNALS, ActivityEntry
from xgate.runtime import build_flavour, tune_gc


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
) -> None:
    """Run the gateway: the HTTP API and the dispatcher in one process (SIGTERM stops it gracefully)."""
    import uvicorn

    from xgate.collect.process import build_gateway
    from xgate.observe.logs import configure_logging

    config = load_config_or_exit(config_path)
    host = host or config.server.host
    port = port or config.server.port
    # bound before the gateway starts: a port in use is an error line, not a dispatcher started for nothing
    sock = bind_or_exit(host, port, "set [server] port / --port")
    configure_logging(log_level.upper())
    gateway = build_gateway(config, dispatch=not no_dispatch)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it into the handler it found: make that a
    # no-op so a graceful stop exits 0 (as process managers expect)
    signal.signal(signal.SIGTERM, lambda *_: None)
    tune_gc()
    log = logging.getLogger("xgate")
    log.info("hot path: %s", build_flavour())
    log.info("listening on http://%s:%d", host, port)
    try:
        serve_on(
            sock,
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
            ),
        )
    finally:
        gateway.close()


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


_STATE_STYLE = {"delivered": "green", "dead": "red", "rejected": "red", "queued": "yellow", "leased": "cyan"}


def activity_table(entries: list[ActivityEntry], title: str = "Recent activity") -> Table:
    """A rich table of activity entries: conversion id, match signals, state, X's debug id or error."""
    table = Table(title=title, title_justify="left")
    for column in ("time (UTC)", "event", "destination", "conversion id", "match signals", "state", "tries"):
        table.add_column(column, no_wrap=column != "match signals")
    table.add_column("X debug id / error", overflow="fold")
    for e in entries:
        signals = " ".join(s if s in e.match_signals else f"[dim strike]{s}[/]" for s in SIGNALS)
        style = _STATE_STYLE.get(e.state, "")
        table.add_row(
            _when(e.at),
            escape(e.event_name),
            escape(e.destination or e.source or ""),
            escape(e.conversion_id or ""),
            "" if e.state == "rejected" else signals,
            f"[{style}]{e.state}[/]" if style else escape(e.state),
            str(e.attempts or ""),
            escape(e.debug_id or e.error or ""),
        )
    return table


def activity(
    config_path: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="how many entries")] = 50,
) -> None:
    """Show recent conversions from the outbox: destination, match signals, delivery state, X's answer.

    Rejected events are kept in the running gateway's memory only: see GET /activity there.
    """
    from xgate.cli.options import outbox_or_exit
    from xgate.observe.activity import ActivityLog

    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        entries = ActivityLog(outbox).recent(limit)
    finally:
        outbox.close()
    if not entries:
        console.print("No conversions in the outbox yet.")
        return
    console.print(activity_table(entries))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the xgate app."""
    app.command("serve")(serve)
    app.command("activity")(activity)
