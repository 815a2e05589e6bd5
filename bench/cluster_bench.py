"""The PostgreSQL figures of ``make bench`` (issue 11: several nodes on one database).

- end-to-end events/s, batched and one event per request, with one ``xgate serve`` node and with two
  (two processes on one database; the load generator's clients alternate between them);
- claim + settle rows/s through the Outbox API (``lease`` then ``mark_delivered``, from several threads);
- seconds from a SIGKILLed node's restart to its first delivery (on SQLite too: ``gateway_bench``).

The server: ``XGATE_BENCH_POSTGRES_URL``, else ``XGATE_TEST_POSTGRES_URL``, else this checkout's cluster of
``.ci/postgres.sh`` (started with ``XGATE_PG_DURABLE=1``, fsync on as in production, and stopped again
if this run started it). Each figure gets a fresh database on that server, dropped afterwards.

    python -m bench.cluster_bench [--quick]     # these figures alone, as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import gateway_bench
from bench.common import ROOT

POSTGRES_SH = ROOT / ".ci" / "postgres.sh"


@contextlib.contextmanager
def postgres_server() -> Iterator[dict[str, Any]]:
    """The server to measure on: ``{"url", "started_here", "version", "fsync", "synchronous_commit"}``."""
    url = os.environ.get("XGATE_BENCH_POSTGRES_URL") or os.environ.get("XGATE_TEST_POSTGRES_URL")
    started = False
    if not url:
        running = subprocess.run([str(POSTGRES_SH), "url"], capture_output=True, text=True)
        if running.returncode == 0:  # this checkout's cluster is up already (a developer's): use it, keep it
            url = running.stdout.strip()
        else:
            out = subprocess.run(
                [str(POSTGRES_SH), "start"],
                env={**os.environ, "XGATE_PG_DURABLE": "1"},
                capture_output=True,
                text=True,
                check=True,
            )
            url = out.stdout.strip().removeprefix("export XGATE_TEST_POSTGRES_URL=")
            started = True
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            facts = {
                name: str(db.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("server_version", "fsync", "synchronous_commit")
            }
        yield {"url": url, "started_here": started, **facts}
    finally:
        if started:
            subprocess.run([str(POSTGRES_SH), "stop"], check=False)


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server (dropped afterwards); yields its URL."""
    import psycopg

    name = f"xgate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim_settle(workdir: Path, url: str, *, rows: int, threads: int, batch: int = 500) -> dict[str, Any]:
    """``rows`` conversions queued (``enqueue``, 1,000 a call), then ``threads`` threads each ``lease``
    ``batch`` rows and ``mark_delivered`` them until the queue is empty: rows/s of the whole drain."""
    from xgate.outbox import open_outbox

    cfg = workdir / "xgate.toml"
    cfg.write_text(gateway_bench._config_text(url, "http://127.0.0.1:9", 9, dispatch=False))
    t0 = time.perf_counter()
    gateway_bench._prefill(cfg, rows, per_call=1000)
    enqueue_s = time.perf_counter() - t0
    box = open_outbox(url, node_id="bench-claim")
    settled = [0] * threads
    errors: list[BaseException] = []

    def drain(n: int) -> None:
        try:
            while leased := box.lease(batch, 60):
                settled[n] += box.mark_delivered([r.id for r in leased], leased[0].lease_token, "bench")
        except BaseException as e:  # reported below: a figure from a failed drain would be wrong
            errors.append(e)

    try:
        workers = [threading.Thread(target=drain, args=(n,)) for n in range(threads)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        drain_s = time.perf_counter() - t0
    finally:
        box.close()
    if errors:
        raise errors[0]
    if sum(settled) != rows:
        raise RuntimeError(f"settled {sum(settled)} of {rows} rows")
    return {
        "rows": rows,
        "threads": threads,
        "rows_per_lease": batch,
        "enqueue_rows_per_s": round(rows / enqueue_s),
        "claim_settle_rows_per_s": round(rows / drain_s),
    }


def run(quick: bool = False) -> dict[str, Any]:
    scale = 0.2 if quick else 1.0
    out: dict[str, Any] = {}
    with postgres_server() as server, tempfile.TemporaryDirectory(prefix="xgate-bench-pg-") as tmp:
        out["server"] = {k: v for k, v in server.items() if k != "url"}
        print("postgresql", out["server"], flush=True)
        batched = {"events": int(50_000 * scale), "per_request": 100, "concurrency": 16}
        single = {"events": int(10_000 * scale), "per_request": 1, "concurrency": 32}
        cases: list[tuple[str, Any]] = [
            (
                "batched_one_node",
                lambda d, url: gateway_bench.end_to_end(d, storage_url=url, nodes=1, **batched),
            ),
            (
                "batched_two_nodes",
                lambda d, url: gateway_bench.end_to_end(d, storage_url=url, nodes=2, **batched),
            ),
            (
                "single_one_node",
                lambda d, url: gateway_bench.end_to_end(d, storage_url=url, nodes=1, **single),
            ),
            (
                "single_two_nodes",
                lambda d, url: gateway_bench.end_to_end(d, storage_url=url, nodes=2, **single),
            ),
            ("claim_settle", lambda d, url: claim_settle(d, url, rows=int(100_000 * scale), threads=4)),
            ("restart", lambda d, url: gateway_bench.restart_to_first_delivery(d, storage_url=url)),
        ]
        for name, fn in cases:
            d = Path(tmp) / name
            d.mkdir()
            with fresh_database(server["url"]) as url:
                out[name] = fn(d, url)
            print(name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a fast check")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
