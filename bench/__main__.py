"""Run every benchmark and write BENCHMARKS.md: ``make bench`` (``--quick`` for a smaller, faster run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import cluster_bench, gateway_bench, import_bench, mapping_bench
from bench.common import ROOT, load_average, machine, measured_commit, now_iso


def _row(what: str, figure: str, target: str, ok: bool | None) -> str:
    verdict = "—" if ok is None else ("met" if ok else "**missed**")
    return f"| {what} | {figure} | {target} | {verdict} |"


def _e2e(r: dict[str, Any]) -> str:
    """End-to-end events/s, with the CPU it cost per event and what two cores alone would carry."""
    cpu = r.get("cpu_us_per_event") or {}
    spent = ", ".join(f"{k} {v:g}" for k, v in cpu.items())
    return (
        f"{r['end_to_end_events_per_s']:,} events/s (ingest alone {r['ingest_events_per_s']:,}/s); "
        f"CPU µs/event: {spent} → {r['cpu_bound_events_per_s_on_2_cores']:,}/s on 2 idle cores"
    )


def _restart(r: dict[str, Any]) -> str:
    return (
        f"{r['restart_to_first_delivery_s']} s (answering /healthz at {r['restart_to_healthz_s']} s, "
        f"all {r['events']} delivered at {r['restart_to_all_delivered_s']} s)"
    )


def _postgres_rows(pg: dict[str, Any]) -> list[str]:
    b1, b2, s1, s2 = (
        pg["batched_one_node"],
        pg["batched_two_nodes"],
        pg["single_one_node"],
        pg["single_two_nodes"],
    )
    cs, rs = pg["claim_settle"], pg["restart"]
    return [
        _row(f"(g) PostgreSQL, end to end, batched, one node ({b1['events']:,} events)", _e2e(b1), "—", None),
        _row(
            f"(g) PostgreSQL, end to end, batched, two `xgate serve` nodes ({b2['events']:,} events)",
            _e2e(b2),
            "≥ 8,000 events/s",
            b2["end_to_end_events_per_s"] >= 8_000,
        ),
        _row(
            f"(g) PostgreSQL, end to end, one event per request, one node ({s1['events']:,} events)",
            _e2e(s1),
            "≥ 2,000 events/s",
            s1["end_to_end_events_per_s"] >= 2_000,
        ),
        _row(
            f"(g) PostgreSQL, end to end, one event per request, two nodes ({s2['events']:,} events)",
            _e2e(s2),
            "≥ 2,000 events/s",
            s2["end_to_end_events_per_s"] >= 2_000,
        ),
        _row(
            f"(g) PostgreSQL, claim + settle (`lease` {cs['rows_per_lease']} + `mark_delivered`, "
            f"{cs['threads']} threads, {cs['rows']:,} rows)",
            f"{cs['claim_settle_rows_per_s']:,} rows/s (queued beforehand at "
            f"{cs['enqueue_rows_per_s']:,} rows/s, 1,000 a call)",
            "—",
            None,
        ),
        _row(
            "(f) PostgreSQL: restart of a SIGKILLed node → its first delivery",
            _restart(rs),
            "< 5 s",
            rs["restart_to_first_delivery_s"] < 5,
        ),
    ]


def render(results: dict[str, Any], quick: bool) -> str:
    m, g = results["mapping"], results["gateway"]
    b, b2, s, lat, rss = g["batched"], g["batched_two_processes"], g["single"], g["latency"], g["queued_rss"]
    rows = [
        _row(
            "(a) map + normalize + hash + validate, one core",
            f"{m['xgate_events_per_s']:,} events/s ({m['us_per_event_xgate']} µs/event)",
            "≥ 50,000 events/s",
            m["xgate_events_per_s"] >= 50_000,
        ),
        _row(
            "(a) the same, plain Python (the editable install, not compiled), same run",
            f"{m['plain_python_events_per_s']:,} events/s" if m.get("plain_python_events_per_s") else "—",
            "—",
            None,
        ),
        _row(
            "(a) same work by Meta's facebook-business SDK, same run",
            f"{m['meta_sdk_events_per_s']:,} events/s — xgate is **{m['ratio_xgate_to_meta']}x** Meta",
            "xgate faster",
            m["ratio_xgate_to_meta"] > 1,
        ),
        _row(
            f"(b) end to end, batched ({b['per_request']} events/request from {b['concurrency']} clients, "
            f"{b['events']:,} events)",
            _e2e(b),
            "≥ 10,000 events/s",
            b["end_to_end_events_per_s"] >= 10_000,
        ),
        _row(
            f"(b) the same, `serve --no-dispatch` + `dispatch` as two processes ({b2['events']:,} events)",
            _e2e(b2),
            "≥ 10,000 events/s",
            b2["end_to_end_events_per_s"] >= 10_000,
        ),
        _row(
            f"(b) end to end, one event per request ({s['events']:,} events)",
            _e2e(s),
            "≥ 2,000 events/s",
            s["end_to_end_events_per_s"] >= 2_000,
        ),
        _row(
            f"(c) ingest ack latency at {lat['rate_per_s']} requests/s ({lat['requests']:,} requests)",
            f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (max {lat['max_ms']} ms)",
            "p99 < 25 ms",
            lat["p99_ms"] < 25,
        ),
        _row(
            f"(d) gateway peak RSS with {rss['queued']:,} conversions queued",
            f"{rss['peak_rss_mb']} MB (serving and dispatching for {rss['observed_s']} s)",
            "< 300 MB",
            rss["peak_rss_mb"] < 300,
        ),
        _row(
            "(f) SQLite: restart of a SIGKILLed node → its first delivery",
            _restart(g["restart"]),
            "< 5 s",
            g["restart"]["restart_to_first_delivery_s"] < 5,
        ),
    ]
    pg = results.get("postgresql")
    if pg:
        rows += _postgres_rows(pg)
    imp = results.get("import")
    if imp:
        rows.append(
            _row(
                f"(e) `xgate import` of a {imp['rows']:,}-row CSV ({imp['file_mb']} MB)",
                f"{imp['rows_per_s']:,} rows/s, peak RSS {imp['peak_rss_mb']} MB; re-import (all duplicates) "
                f"{imp['reimport_rows_per_s']:,} rows/s",
                "report rows/s; RSS < 200 MB",
                imp["peak_rss_mb"] < 200,
            )
        )
    scope = "quick run (reduced counts)" if quick else "full run"
    cond = results.get("conditions")
    conditions = (
        [
            f"Code measured: commit {cond['commit']}. Load average (1 min): "
            f"{cond['load_average_at_start']:g} at the start, {cond['load_average_at_end']:g} at the end",
            "(the end counts the run's own processes too).",
        ]
        if cond
        else []
    )
    server = (pg or {}).get("server", {})
    pg_note = (
        [
            f"PostgreSQL figures (g): PostgreSQL {server.get('server_version', '?')} on this machine"
            f" (`.ci/postgres.sh`), fsync {server.get('fsync', '?')}"
            f", synchronous_commit {server.get('synchronous_commit', '?')}"
            + (" (durable, as in production)" if server.get("fsync") == "on" else " (**not durable**)")
            + ", a fresh database per figure; two nodes are two `xgate serve`",
            "processes on that database, the load generator's clients alternating between them.",
            "CPU µs/event adds up the CPU time each component used during a run (xgate: the nodes; load: the",
            "load generator), which other work on the machine inflates less than wall time (but still does:",
            'docs/performance.md); "on 2 idle cores" is 2 s / that sum: what the stack would carry with both',
            "cores to itself (derived, not measured).",
        ]
        if pg
        else []
    )
    return "\n".join(
        [
            "# Benchmarks",
            "",
            f"Written by `make bench` on {now_iso()} ({scope}). Machine: {machine()}.",
            "The machine is shared and noisy: compare figures measured in the same run (ratios),",
            "not across runs.",
            *conditions,
            f"xgate build measured: {m.get('build', 'plain Python')} — `make bench` installs the wheel that",
            "`make wheel` builds, its per-event hot path compiled with mypyc (docs/performance.md).",
            "Gateway figures run `xgate serve` (SQLite outbox, dispatcher in process) and `xgate sandbox` as",
            "separate processes on loopback; the load generator (`bench/loadgen.py`: keep-alive HTTP/1.1",
            "on uvloop) shares the same two cores.",
            *pg_note,
            "",
            "| benchmark | figure | target | |",
            "|---|---|---|---|",
            *rows,
            "",
            "Raw results:",
            "",
            "```json",
            json.dumps(results, indent=2),
            "```",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a fast check")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument(
        "--from-json", type=Path, help="write --out from the raw results of an earlier run, measuring nothing"
    )
    args = parser.parse_args()
    raw = ROOT / "build" / "bench-results.json"
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        args.out.write_text(render(saved["results"], saved["quick"]))
        print(f"wrote {args.out}")
        return
    results: dict[str, Any] = {
        "conditions": {"commit": measured_commit(), "load_average_at_start": load_average()}
    }
    print("mapping …", flush=True)
    results["mapping"] = mapping_bench.run()
    print(results["mapping"], flush=True)
    print("gateway …", flush=True)
    results["gateway"] = gateway_bench.run(quick=args.quick)
    print("import …", flush=True)
    results["import"] = import_bench.run(100_000 if args.quick else 1_000_000)
    print(results["import"], flush=True)
    print("postgresql …", flush=True)
    results["postgresql"] = cluster_bench.run(quick=args.quick)
    results["conditions"]["load_average_at_end"] = load_average()
    raw.parent.mkdir(exist_ok=True)
    raw.write_text(json.dumps({"results": results, "quick": args.quick}, indent=2))
    args.out.write_text(render(results, args.quick))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
