"""CLI commands of the gateway process: ``xgate serve`` and ``xgate activity``."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from xgate.config import Config, ConfigError, load_config
from xgate.observe.activity import SIGNALS, ActivityEntry
from xgate.runtime import build_flavour, tune_gc

console = Console()
errors = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="configuration file (default: $XGATE_CONFIG or ./xgate.toml)"
)


def _config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        errors.print(f"[bold red]Invalid configuration[/] in {e.source}:")
        for problem in e.problems:
            errors.print(f"  • {problem}")
        raise typer.Exit(1) from None


def serve(
    config_path: Path | None = ConfigOption,
    host: str | None = typer.Option(None, help="address to listen on (default: \\[server] host)"),
    port: int | None = typer.Option(None, min=1, max=65535, help="port (default: \\[server] port)"),
    no_dispatch: bool = typer.Option(False, "--no-dispatch", help="collect only; another process delivers"),
    log_level: str = typer.Option("info", help="debug, info, warning or error"),
) -> None:
    """Run the gateway: the HTTP API and the dispatcher in one process (SIGTERM stops it gracefully)."""
    import uvicorn

    from xgate.collect.process import build_gateway
    from xgate.observe.logs import configure_logging

    config = _config(config_path)
    configure_logging(log_level.upper())
    gateway = build_gateway(config, dispatch=not no_dispatch)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it into the handler it found: make that a
    # no-op so a graceful stop exits 0 (as process managers expect)
    signal.signal(signal.SIGTERM, lambda *_: None)
    tune_gc()
    logging.getLogger("xgate").info("hot path: %s", build_flavour())
    try:
        uvicorn.run(
            gateway.app,
            host=host or config.server.host,
            port=port or config.server.port,
            log_config=None,
            access_log=False,
            server_header=False,
            # the client address is ours to judge ([server] trust_forwarded), not uvicorn's
            proxy_headers=False,
            timeout_graceful_shutdown=30,
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
            e.event_name,
            e.destination or e.source or "",
            e.conversion_id or "",
            "" if e.state == "rejected" else signals,
            f"[{style}]{e.state}[/]" if style else e.state,
            str(e.attempts or ""),
            e.debug_id or e.error or "",
        )
    return table


def activity(
    config_path: Path | None = ConfigOption,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="how many entries"),
) -> None:
    """Show recent conversions from the outbox: destination, match signals, delivery state, X's answer.

    Rejected events are kept in the running gateway's memory only: see GET /activity there.
    """
    from xgate.cli.gateway import outbox_or_exit
    from xgate.observe.activity import ActivityLog

    config = _config(config_path)
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
