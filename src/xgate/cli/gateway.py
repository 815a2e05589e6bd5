"""CLI commands of delivery operations: ``xgate dispatch``, ``xgate status``, ``xgate dlq``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from xgate.cli.options import (
    AcceptNewOutboxOption,
    ConfigOption,
    accepting_new_outbox,
    load_config_or_exit,
    outbox_or_exit,
)
from xgate.cli.output import console, exit_status, fail, note, warn
from xgate.cli.usage import bad_usage
from xgate.errors import OutboxUnavailable
from xgate.observe.destinations import destination_states
from xgate.outbox import storage_location
from xgate.runtime import tune_gc

dlq_app = typer.Typer(
    help="Dead letters: conversions X refused or that ran out of attempts.", no_args_is_help=True
)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def dispatch(config_path: ConfigOption = None, accept_new_outbox: AcceptNewOutboxOption = False) -> None:
    """Run the dispatcher alone (no collector): deliver queued conversions until SIGTERM / Ctrl-C.

    Exit status: 0 after SIGTERM; 78 when the configuration or the outbox needs an operator (invalid
    configuration, schema of another version: run xgate db upgrade, outbox replaced while stopped); 75
    when the outbox cannot be reached yet (start again later)."""
    from xgate.dispatch import Dispatcher
    from xgate.gateway import client_factory_for, failure_counter
    from xgate.observe.logs import configure_logging
    from xgate.observe.metered import MeteredOutbox
    from xgate.observe.metrics import Metrics

    config = accepting_new_outbox(load_config_or_exit(config_path), accept_new_outbox)
    configure_logging()
    raw = outbox_or_exit(config, create=True, role="dispatch")
    # X's answers and the failures by reason go to the outbox's shared counts as a serve node's do: the
    # console of every node shows what the dispatch-only processes delivered too
    metrics = Metrics(raw)
    outbox = MeteredOutbox(raw, metrics)
    dispatcher = Dispatcher(config, outbox, client_factory_for(config), observer=failure_counter(metrics))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(dispatcher.stop()))
        await dispatcher.run_forever()

    note(f"dispatching from {storage_location(config.storage.url)} — Ctrl-C to stop")
    tune_gc()
    try:
        asyncio.run(main())
    finally:
        metrics.close()
        outbox.close()


def status(
    config_path: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Queue depth per destination and state, delivery rate, problems and last dead letters.

    Also the oldest undelivered conversion, when the next one is due and each destination's current
    problem."""
    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        now = time.time()
        stats = outbox.stats(now=now)
        health = outbox.health()
        errors = outbox.rows(state="dead", limit=5)
    finally:
        outbox.close()
    states = ("queued", "leased", "delivered", "dead")
    destinations = sorted({d for d, _ in stats.counts} | {d.name for d in config.destinations})
    totals = {s: sum(n for (_, st), n in stats.counts.items() if st == s) for s in states}
    delivery = destination_states(destinations, health)
    if as_json:
        print(
            json.dumps(
                {
                    "destinations": {
                        d: {s: stats.counts.get((d, s), 0) for s in states} for d in destinations
                    },
                    "totals": totals,
                    "delivered_last_minute": stats.delivered_last_minute,
                    "oldest_undelivered_age_seconds": None
                    if stats.oldest_undelivered_at is None
                    else max(0.0, now - stats.oldest_undelivered_at),
                    "next_attempt_in_seconds": None
                    if stats.next_attempt_at is None
                    else max(0.0, stats.next_attempt_at - now),
                    "expired_leases": stats.expired_leases,
                    "delivery": {state.name: state.as_json() for state in delivery},
                    "last_errors": [
                        {
                            "id": r.id,
                            "destination": r.destination,
                            "conversion_id": r.conversion_id,
                            "error": r.last_error,
                        }
                        for r in errors
                    ],
                },
                indent=2,
            )
        )
        return
    table = Table(title="outbox", title_justify="left")
    table.add_column("destination")
    for s in states:
        table.add_column(s, justify="right")
    for d in destinations:
        table.add_row(escape(d), *(f"{stats.counts.get((d, s), 0):,}" for s in states))
    table.add_row("[bold]total[/bold]", *(f"[bold]{totals[s]:,}[/bold]" for s in states))
    console.print(table)
    console.print(f"delivered in the last minute: {stats.delivered_last_minute:,}")
    if stats.oldest_undelivered_at is not None:
        age = _age(max(0.0, now - stats.oldest_undelivered_at))
        console.print(f"oldest undelivered conversion: stored {age} ago")
    if stats.next_attempt_at is not None and stats.next_attempt_at > now:
        console.print(f"next queued conversion due in {_age(stats.next_attempt_at - now)}")
    if stats.expired_leases:
        console.print(
            f"[yellow]{stats.expired_leases} expired lease(s)[/yellow]: a dispatcher stopped mid-batch; "
            "they return to the queue on the next lease"
        )
    for state in delivery:
        if state.problem is not None:
            console.print(f"{state.name} {state.status}: {state.problem}", markup=False, style="red")
    for r in errors:
        console.print(
            f"[red]dead[/red] #{r.id} {escape(f'{r.destination} {r.conversion_id}: {r.last_error}')}"
        )
    if totals["dead"]:
        note("inspect with `xgate dlq list`, fix the cause, then `xgate dlq replay --all`")


@dlq_app.command("list")
def dlq_list(
    config_path: ConfigOption = None,
    destination: Annotated[str | None, typer.Option(help="only this destination")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
) -> None:
    """List dead letters with X's error."""
    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        rows = outbox.rows(state="dead", destination=destination, limit=limit)
    finally:
        outbox.close()
    if not rows:
        console.print("no dead letters")
        return
    table = Table()
    for col in ("id", "destination", "event", "conversion_id", "attempts", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r.id),
            *(escape(text) for text in (r.destination, r.event_name, r.conversion_id)),
            str(r.attempts),
            escape(r.last_error or ""),
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    row_id: Annotated[int, typer.Argument(help="dead letter id")], config_path: ConfigOption = None
) -> None:
    """Show one dead letter: X's error and the exact conversion sent (identifiers are hashed)."""
    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        row = outbox.row(row_id)
    finally:
        outbox.close()
    if row is None:
        fail(f"no conversion with id {row_id}")
    console.print_json(
        data={
            "id": row.id,
            "state": row.state,
            "destination": row.destination,
            "pixel_id": row.pixel_id,
            "event_id": row.event_id,
            "event_name": row.event_name,
            "conversion_id": row.conversion_id,
            "attempts": row.attempts,
            "error": row.last_error,
            "debug_id": row.debug_id,
            "match_signals": list(row.match_signals),
            "body": row.body,
        }
    )


def _ids_or_all(ids: list[int] | None, all_: bool) -> None:
    """A usage error unless the command line names dead letters (ids) or ``--all``, one of the two."""
    if ids and all_:
        bad_usage("--all", "give dead letter ids or --all, not both")
    if not ids and not all_:
        bad_usage("IDS", "missing argument: give dead letter ids (xgate dlq list shows them), or --all")


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="dead letter ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Queue dead letters again (after fixing the cause), with attempts reset."""
    _ids_or_all(ids, all_)
    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        n = outbox.replay(None if all_ else ids)
    finally:
        outbox.close()
    console.print(f"replayed {n} dead letter(s); the dispatcher sends them next")
    if ids and n < len(set(ids)):
        warn(f"{len(set(ids)) - n} id(s) were not dead letters and were left alone")


@dlq_app.command("discard")
def dlq_discard(
    ids: Annotated[list[int] | None, typer.Argument(help="dead letter ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="discard every dead letter")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Delete dead letters for good.

    Their conversion ids stay known until the dedup window ends, so the same conversion ingested again is a
    duplicate, not sent."""
    _ids_or_all(ids, all_)
    config = load_config_or_exit(config_path)
    outbox = outbox_or_exit(config)
    try:
        n = outbox.discard(None if all_ else ids)
    except OutboxUnavailable as e:
        fail(str(e), code=exit_status(e))
    finally:
        outbox.close()
    console.print(f"discarded {n} dead letter(s)")
    if ids and n < len(set(ids)):
        warn(f"{len(set(ids)) - n} id(s) were not dead letters and were left alone")


def register(app: typer.Typer) -> None:
    app.command()(dispatch)
    app.command()(status)
    app.add_typer(dlq_app, name="dlq")
