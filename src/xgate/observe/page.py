"""The activity page (``GET /activity``): a server-rendered table that refreshes itself; no build step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from xgate.observe.activity import SIGNALS, ActivityEntry

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#0f1419}
h1{font-size:1.3rem;margin:0 0 .3rem}p.note{color:#536471;margin:0 0 1rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #eff3f4}
th{background:#f7f9f9;font-weight:600}td.mono{font-family:ui-monospace,monospace;font-size:12px}
.sig{display:inline-block;padding:0 .35rem;margin-right:.2rem;border-radius:.3rem;
  background:#e8f5fd;color:#1d9bf0}
.sig.off{background:#f7f9f9;color:#cfd9de;text-decoration:line-through}
.state{font-weight:600}.delivered{color:#00ba7c}.dead,.rejected{color:#f4212e}.queued,.leased{color:#536471}
"""


def _signals(entry: ActivityEntry) -> str:
    if entry.state == "rejected":
        return ""
    return "".join(
        f'<span class="sig{"" if s in entry.match_signals else " off"}">{escape(s)}</span>' for s in SIGNALS
    )


def _row(entry: ActivityEntry) -> str:
    when = datetime.fromtimestamp(entry.at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    detail = entry.debug_id or entry.error or ""
    cells = [
        f'<td class="mono">{when}</td>',
        f"<td>{escape(entry.event_name)}</td>",
        f"<td>{escape(entry.destination or entry.source or '')}</td>",
        f'<td class="mono">{escape(entry.conversion_id or "")}</td>',
        f"<td>{_signals(entry)}</td>",
        f'<td class="state {escape(entry.state)}">{escape(entry.state)}</td>',
        f"<td>{entry.attempts or ''}</td>",
        f'<td class="mono">{escape(detail)}</td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render_activity_page(entries: Sequence[ActivityEntry], *, refresh_seconds: int = 5) -> str:
    rows = "\n".join(_row(e) for e in entries) or '<tr><td colspan="8">No events yet.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{int(refresh_seconds)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xgate activity</title><style>{_STYLE}</style></head>
<body><h1>xgate activity</h1>
<p class="note">The latest {len(entries)} events, newest first; refreshes every {int(refresh_seconds)} s.
Identifiers are shown as match signals only.</p>
<table><thead><tr><th>time (UTC)</th><th>event</th><th>destination / source</th><th>conversion id</th>
<th>match signals</th><th>state</th><th>attempts</th><th>X debug id / error</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""
