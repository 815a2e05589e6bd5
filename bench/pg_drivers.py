"""psycopg 3 + psycopg_pool against asyncpg, called synchronously from threads as the outbox is.

    python -m bench.pg_drivers postgresql://postgres@127.0.0.1:PORT/xgate_test          # the drivers
    python -m bench.pg_drivers postgresql://postgres@127.0.0.1:PORT/xgate_test outbox   # PostgresOutbox

asyncpg is not one of xgate's dependencies: ``uv pip install asyncpg`` into the venv to compare.

Measures the three shapes of outbox traffic on a scratch table pair (rows + dedup keys), each driver with
a pool of 4 connections, 4 calling threads:
- enqueue, groups of 100 rows: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for the keys, then the rows,
  one transaction per call (the collector's group commit);
- enqueue, one row per call (single events arriving one by one);
- lease 200 rows ``FOR UPDATE SKIP LOCKED`` and settle them by id (rows/s leased and settled).
asyncpg is async only: its pool runs on an event loop in a thread of its own, and each call hops there
with ``run_coroutine_threadsafe`` — what the synchronous Outbox protocol would have to do.
The figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SCHEMA = """
DROP TABLE IF EXISTS bench_rows, bench_keys;
CREATE TABLE bench_keys (k text PRIMARY KEY, row_id bigint NOT NULL);
CREATE TABLE bench_rows (id bigserial PRIMARY KEY, k text NOT NULL, state text NOT NULL,
  token text, due double precision NOT NULL, body bytea NOT NULL);
CREATE INDEX bench_due ON bench_rows (due) WHERE state = 'queued';
"""
KEYS = (
    "INSERT INTO bench_keys (k, row_id) SELECT k, nextval('bench_rows_id_seq') FROM unnest({0}::text[]) AS k"
    " ON CONFLICT DO NOTHING RETURNING k, row_id"
)
ROWS = (
    "INSERT INTO bench_rows (id, k, state, due, body)"
    " SELECT i, k, 'queued', 0, b FROM unnest({0}::bigint[], {1}::text[], {2}::bytea[]) AS u(i, k, b)"
)
LEASE = (
    "UPDATE bench_rows SET state = 'leased', token = {0} WHERE id IN (SELECT id FROM bench_rows"
    " WHERE state = 'queued' AND due <= 1 ORDER BY due LIMIT 200 FOR UPDATE SKIP LOCKED) RETURNING id, body"
)
SETTLE = "UPDATE bench_rows SET state = 'delivered' WHERE id = ANY({0}::bigint[]) AND token = {1}"
BODY = b'{"conversion_time":"2026-11-30T10:00:00.000Z","event_id":"tw-o8z6j-abc","identifiers":[]}' * 3
THREADS = 4


def rate(name: str, calls: int, rows_per_call: int, fn: Callable[[], int]) -> float:
    with ThreadPoolExecutor(THREADS) as pool:
        t0 = time.perf_counter()
        done = sum(pool.map(lambda _: fn(), range(calls)))
        elapsed = time.perf_counter() - t0
    per_s = done / elapsed
    print(f"  {name:<34} {per_s:>10,.0f} rows/s  ({calls / elapsed:,.0f} calls/s)")
    return per_s


def psycopg_run(url: str) -> None:
    import psycopg
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(url, min_size=THREADS, max_size=THREADS, open=True)
    with pool.connection() as c:
        c.execute(SCHEMA)

    def enqueue(n: int) -> int:
        keys = [uuid.uuid4().hex for _ in range(n)]
        with pool.connection() as c, c.transaction():
            got = c.execute(KEYS.format("%b"), (keys,)).fetchall()
            c.execute(ROWS.format("%b", "%b", "%b"), ([r[1] for r in got], [r[0] for r in got], [BODY] * n))
        return len(got)

    def lease_settle() -> int:
        token = uuid.uuid4().hex
        with pool.connection() as c:
            rows = c.execute(LEASE.format("%b"), (token,), binary=True).fetchall()
            c.commit()
            c.execute(SETTLE.format("%b", "%b"), ([r[0] for r in rows], token))
            c.commit()
        return len(rows)

    print(f"psycopg {psycopg.__version__} + psycopg_pool (binary: {psycopg.pq.__impl__})")
    rate("enqueue, 100 rows a call", 400, 100, lambda: enqueue(100))
    rate("enqueue, 1 row a call", 4000, 1, lambda: enqueue(1))
    rate("lease 200 + settle", 200, 200, lease_settle)
    pool.close()


def asyncpg_run(url: str) -> None:
    import asyncpg

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def call(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def open_pool() -> Any:
        return await asyncpg.create_pool(url, min_size=THREADS, max_size=THREADS)

    pool = call(open_pool())

    async def schema() -> None:
        async with pool.acquire() as c:
            await c.execute(SCHEMA)

    async def enqueue(n: int) -> int:
        keys = [uuid.uuid4().hex for _ in range(n)]
        async with pool.acquire() as c, c.transaction():
            got = await c.fetch(KEYS.format("$1"), keys)
            await c.execute(
                ROWS.format("$1", "$2", "$3"), [r[1] for r in got], [r[0] for r in got], [BODY] * n
            )
        return len(got)

    async def lease_settle() -> int:
        token = uuid.uuid4().hex
        async with pool.acquire() as c:
            rows = await c.fetch(LEASE.format("$1"), token)
            await c.execute(SETTLE.format("$1", "$2"), [r[0] for r in rows], token)
        return len(rows)

    call(schema())
    print(f"asyncpg {asyncpg.__version__} (an event loop thread, run_coroutine_threadsafe per call)")
    rate("enqueue, 100 rows a call", 400, 100, lambda: call(enqueue(100)))
    rate("enqueue, 1 row a call", 4000, 1, lambda: call(enqueue(1)))
    rate("lease 200 + settle", 200, 200, lambda: call(lease_settle()))
    call(pool.close())
    loop.call_soon_threadsafe(loop.stop)


def outbox_run(url: str) -> None:
    """The same shapes through xgate's PostgresOutbox (keys, rows, counts, NOTIFY; lease and settle)."""
    from xgate.conversion import MappedConversion
    from xgate.outbox.postgres import PostgresOutbox

    with psycopg_connect(url) as c:
        c.execute("DROP SCHEMA IF EXISTS bench_outbox CASCADE; CREATE SCHEMA bench_outbox")
    sep = "&" if "?" in url else "?"
    box = PostgresOutbox(f"{url}{sep}options=-csearch_path%3Dbench_outbox", node_id="bench")
    body = {"conversion_time": "2026-11-30T10:00:00.000Z", "event_id": "tw-o8z6j-abc", "identifiers": []}

    def enqueue(n: int) -> int:
        keys = [uuid.uuid4().hex for _ in range(n)]
        box.enqueue(
            [MappedConversion("x", "o8z6j", "e", k, body, frozenset({"email"}), "purchase") for k in keys]
        )
        return n

    def lease_settle() -> int:
        rows = box.lease(200, 60)
        if rows:
            box.mark_delivered([r.id for r in rows], rows[0].lease_token, None)
        return len(rows)

    print("xgate PostgresOutbox (psycopg 3)")
    rate("enqueue, 100 rows a call", 400, 100, lambda: enqueue(100))
    rate("enqueue, 1 row a call", 4000, 1, lambda: enqueue(1))
    rate("lease 200 + mark_delivered", 200, 200, lease_settle)
    box.close()


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


if __name__ == "__main__":
    target = sys.argv[1]
    if sys.argv[2:] == ["outbox"]:
        outbox_run(target)
    else:
        for run in (psycopg_run, asyncpg_run, psycopg_run, asyncpg_run):
            run(target)
