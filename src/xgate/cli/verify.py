"""``xgate verify``: each destination's X side, checked without recording a conversion.

The checks and what each proves are in :mod:`xgate.x.verify`; this module prints them.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from xgate.cli.options import ConfigOption, load_config_or_exit
from xgate.cli.output import console, fail, note
from xgate.x.verify import DestinationReport, verify

_STYLE = {"ok": "green", "failed": "bold red", "not checked": "yellow"}


def _print(report: DestinationReport) -> None:
    head = Text(report.destination, style="bold")
    head.append(f"  pixel {report.pixel_id}, auth {report.auth}", style="dim")
    console.print(head)
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        line = Text("  ")
        line.append(f"{c.verdict:<12}", style=_STYLE[c.verdict])
        line.append(f" {c.name:<{width}}  {c.detail}")
        console.print(line)
        if c.fix and c.verdict == "failed":
            console.print(Text(f"  {'':<12} {'':<{width}}  → {c.fix}", style="dim"))


def verify_command(
    destination: Annotated[
        list[str] | None,
        typer.Option("--destination", "-d", help="only this destination (repeatable; default: all)"),
    ] = None,
    config_path: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="the reports as JSON")] = False,
) -> None:
    """Check each destination's credentials, pixel and event ids with X, recording no conversion.

    Per destination: credentials, signature, ad account, user role, pixel, each event id and a conversion
    request X validates without recording. Exit status 1 when any check fails."""
    config = load_config_or_exit(config_path)
    if not config.destinations:
        fail("the configuration has no destination to verify")
    known = [d.name for d in config.destinations]
    unknown = [n for n in destination or [] if n not in known]
    if unknown:
        fail(
            f"--destination: no destination named {', '.join(unknown)}", [f"destinations: {', '.join(known)}"]
        )
    reports = verify(config, destination or None)
    if as_json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        for report in reports:
            _print(report)
        counts = {v: sum(c.verdict == v for r in reports for c in r.checks) for v in _STYLE}
        summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        console.print(Text(summary, style="bold red" if counts["failed"] else "bold green"))
        if counts["not checked"]:
            note("'not checked' proves nothing either way: docs/x-setup.md says what each check proves")
    if not all(r.passed for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
