"""``xgate import``: offline conversions from CSV / JSONL files (CRM exports, shops, call centres)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from xgate.cli.options import ConfigOption, load_config_or_exit, read_input_or_exit
from xgate.cli.output import EXIT_REJECTED, EXIT_TEMPFAIL, console, err, exit_status, fail, note, warn
from xgate.config import ConfigError
from xgate.runtime import tune_gc


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        rows = task.fields.get("rows", 0)
        elapsed = task.elapsed or 0
        return Text(f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 else "— rows/s", style="cyan")


class _Rows(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.fields.get('rows', 0):,} rows")


def _summary_table(summary_json: dict[str, object]) -> Table:
    table = Table(title="Import summary", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("figure", justify="right")
    outcomes = summary_json["outcomes"]
    assert isinstance(outcomes, dict)
    rows = summary_json["rows"]
    assert isinstance(rows, int)
    table.add_row("rows read", f"{rows:,}")
    styles = {"queued": "green", "valid": "green", "duplicate": "yellow", "rejected": "red", "skipped": "dim"}
    for outcome, n in outcomes.items():
        table.add_row(f"  {outcome}", f"[{styles.get(outcome, '')}]{n:,}[/]")
    coverage = summary_json["coverage"]
    assert isinstance(coverage, dict)
    for signal, share in coverage.items():
        table.add_row(f"rows with {signal}", f"{share:.1%}")
    if summary_json.get("rows_per_second"):
        table.add_row("speed", f"{summary_json['rows_per_second']:,} rows/s")
    return table


def _samples_table(samples: dict[str, list[tuple[str, str]]]) -> Table:
    table = Table(title="How the mapping reads money and date columns (a sample)", title_justify="left")
    table.add_column("column")
    table.add_column("cell")
    table.add_column("read as", justify="right")
    for column, pairs in samples.items():
        for cell, read in pairs or [("(no cell read)", "")]:
            table.add_row(Text(column), Text(cell), Text(read))
    return table


def import_file(
    file: Annotated[Path, typer.Argument(help="CSV or JSON Lines file, optionally gzipped")],
    mapping_path: Annotated[
        Path | None,
        typer.Option("--mapping", "-m", help="column mapping (TOML); JSONL of events needs none"),
    ] = None,
    config_path: ConfigOption = None,
    report: Annotated[
        Path | None, typer.Option(help="report file: row, outcome, field, reason (default: beside the state)")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="map and validate only, and show how money and date cells are read; queue nothing",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar, no table")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="ignore the checkpoint of an interrupted import")
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="where checkpoints and reports go (default: imports/ in \\[storage] state_dir)"),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, max=50_000, help="rows per transaction")] = 2000,
    retry_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            max=86_400,
            help="how long to keep trying an outbox that cannot be written mid-run (a database restarting, "
            "a write lock held) before stopping with exit status 75; run again, the import resumes",
        ),
    ] = 120.0,
) -> None:
    """Import offline conversions: every row mapped and validated like a live event, then queued.

    Exit status: 0 when every row was queued, a duplicate or skipped; 3 when rows were rejected (see the
    report); 1 when the import could not run; 78 when the configuration is invalid; 75 when the outbox
    cannot be reached, or stayed unavailable mid-run for --retry-seconds (run it again later: it resumes
    after the last row stored).
    """
    from xgate.cli.options import outbox_or_exit
    from xgate.errors import ImportStopped
    from xgate.offline.columns import ColumnMapping, load_column_mapping
    from xgate.offline.importer import Importer, OutboxWait
    from xgate.offline.reader import FileError

    config = load_config_or_exit(config_path)
    mapping_text = read_input_or_exit(mapping_path) if mapping_path else b""
    try:
        mapping = load_column_mapping(mapping_path) if mapping_path else ColumnMapping()
    except ConfigError as e:
        fail(f"invalid column mapping in {e.source}", [str(problem) for problem in e.problems])
    outbox = None if dry_run else outbox_or_exit(config, create=True, role="import")
    importer = Importer(
        config, mapping, outbox, chunk_rows=chunk_rows, mapping_text=mapping_text, retry_seconds=retry_seconds
    )
    show_progress = not quiet and not as_json and console.is_terminal
    tune_gc()
    importing = f"importing {escape(file.name)}"  # the bar reads its description as markup
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            _Rows(),
            _RowsPerSecond(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            disable=not show_progress,
            transient=True,
        ) as bar:
            size = file.stat().st_size if file.exists() else None
            task = bar.add_task(importing, total=size, rows=0)

            def waiting(wait: OutboxWait) -> None:
                """One warning when an outage starts, one note when it ends; the bar says it waits."""
                if wait.error is None:
                    bar.update(task, description=importing)
                    note(f"the outbox answers again after {wait.waited:.1f} s; the import goes on")
                    return
                if wait.failures == 1:
                    warn(f"the outbox cannot be written: {wait.error}; trying again for {retry_seconds:g} s")
                bar.update(task, description=f"waiting for the outbox ({wait.left:.0f} s left)")

            summary = importer.run(
                file,
                state_dir=state_dir or config.storage.state_dir / "imports",
                report_path=report,
                restart=restart,
                progress=lambda rows, position: bar.update(task, completed=position, rows=rows),
                waiting=waiting,
            )
    except ImportStopped as e:  # the bar is gone: one line, then what to run
        code = exit_status(e.error)
        when = "once the outbox answers again" if code == EXIT_TEMPFAIL else "once that is fixed"
        after = f"after row {e.rows_done:,}" if e.rows_done else "from the first row"
        fail(str(e), [f"{when}, run the same command: it resumes {after}"], code=code)
    except FileError as e:
        fail(f"cannot import: {e}")
    except OSError as e:
        fail(f"cannot import: {e.filename or file}: {e.strerror or e}")
    finally:
        if outbox is not None:
            outbox.close()
    result = summary.as_json()
    if as_json:
        typer.echo(json.dumps(result))
    elif not quiet:
        if summary.resumed_from:
            console.print(f"resumed after row {summary.resumed_from:,} (an earlier run was interrupted)")
        console.print(_summary_table(result))
        if dry_run and summary.samples:
            console.print(_samples_table(summary.samples))
        console.print(f"report: {escape(str(summary.report))}", style="dim")
        if dry_run:
            note("dry run: nothing was queued")
    if summary.counts["rejected"]:
        raise typer.Exit(EXIT_REJECTED)


def register(app: typer.Typer) -> None:
    app.command("import")(import_file)
