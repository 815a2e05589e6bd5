"""Gateway benchmarks over loopback, with ``xgate serve`` and ``xgate sandbox`` as real processes.

(b) end-to-end events/s from HTTP ingest to delivered at the sandbox, batched (100 per request) and single;
(c) ingest ack latency p50/p99 at a fixed request rate (open loop);
(d) peak RSS of the gateway with 1,000,000 conversions queued;
(f) seconds from a SIGKILLed node's restart to its first delivery (:func:`restart_to_first_delivery`).

:func:`stack` runs on any ``[storage] url`` and any number of ``xgate serve`` nodes sharing it
(``bench.cluster_bench`` uses both for the PostgreSQL figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psutil

from bench import loadgen
from bench.common import (
    PIXEL,
    PeakRSS,
    sample_event,
    xgate_cmd,
)
from xgate.testing import free_port, managed_process, random_x_credentials, wait_http

WRITE_KEY_ENV = "XGATE_BENCH_WRITE_KEY"
#: /metrics answers the admin key (or the admin listener): xgate/collect/admin.py
ADMIN_KEY_ENV, ADMIN_KEY = "XGATE_BENCH_ADMIN_KEY", os.urandom(16).hex()


@dataclass
class Stack:
    #: the base URL of each ``xgate serve`` node
    gateways: list[str]
    sandbox: str
    write_key: str
    gateway_pids: list[int]
    storage_url: str
    #: every xgate process of the stack but the sandbox (``serve`` nodes and separate dispatchers)
    xgate_pids: list[int]
    sandbox_pid: int

    @property
    def gateway(self) -> str:
        return self.gateways[0]

    @property
    def gateway_pid(self) -> int:
        return self.gateway_pids[0]


def _config_text(storage_url: str, sandbox_url: str, port: int, *, dispatch: bool) -> str:
    return f"""
[x]
api_url = "{sandbox_url}"

[storage]
url = "{storage_url}"

[server]
host = "127.0.0.1"
port = {port}
max_body_bytes = 5000000
admin_key_env = "{ADMIN_KEY_ENV}"

[dispatch]
enabled = {"true" if dispatch else "false"}
linger_ms = 50

[[sources]]
name = "bench"
write_key_env = "{WRITE_KEY_ENV}"

[[destinations]]
name = "x-bench"
pixel_id = "{PIXEL}"
events = {{ purchase = "tw-{PIXEL}-o87ne" }}
"""


@contextmanager
def stack(
    workdir: Path,
    *,
    dispatch: bool = True,
    prefill: int = 0,
    separate_dispatcher: bool = False,
    storage_url: str | None = None,
    nodes: int = 1,
) -> Iterator[Stack]:
    """The sandbox and ``nodes`` ``xgate serve`` processes on one outbox (``storage_url``, default a
    SQLite file in ``workdir``), each on a port of its own; with ``separate_dispatcher``, ``serve
    --no-dispatch`` beside ``xgate dispatch`` (the two-process deployment: each on its own core)."""
    creds = random_x_credentials()
    write_key = os.urandom(16).hex()
    env = {**creds, WRITE_KEY_ENV: write_key, ADMIN_KEY_ENV: ADMIN_KEY}
    sb_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sb_port}"
    storage_url = storage_url or f"sqlite:///{workdir / 'bench.db'}"
    configs = []
    for n in range(nodes):
        cfg = workdir / f"xgate-{n}.toml"
        cfg.write_text(_config_text(storage_url, sandbox_url, free_port(), dispatch=dispatch))
        configs.append(cfg)
    if prefill:
        _prefill(configs[0], prefill)
    with managed_process(
        xgate_cmd("sandbox", "--host", "127.0.0.1", "--port", str(sb_port)), env, workdir / "sandbox.log"
    ) as sandbox:
        wait_http(f"{sandbox_url}/_sandbox/requests")
        with contextlib.ExitStack() as processes:
            gateways, pids, xgate_pids = [], [], []
            for n, cfg in enumerate(configs):
                serve = xgate_cmd(
                    "serve", "--config", str(cfg), *(["--no-dispatch"] if separate_dispatcher else [])
                )
                gw = processes.enter_context(managed_process(serve, env, workdir / f"gateway-{n}.log"))
                if separate_dispatcher:
                    dispatcher = xgate_cmd("dispatch", "--config", str(cfg))
                    d = processes.enter_context(
                        managed_process(dispatcher, env, workdir / f"dispatch-{n}.log")
                    )
                    xgate_pids.append(d.pid)
                gateways.append(f"http://127.0.0.1:{_port_of(cfg)}")
                pids.append(gw.pid)
                xgate_pids.append(gw.pid)
            for gateway in gateways:
                wait_http(f"{gateway}/healthz", timeout=120)
            yield Stack(gateways, sandbox_url, write_key, pids, storage_url, xgate_pids, sandbox.pid)


def _port_of(cfg: Path) -> int:
    from xgate.config import load_config

    return load_config(cfg).server.port


def _prefill(cfg: Path, count: int, *, per_call: int = 10_000) -> None:
    """Queue ``count`` conversions straight into the outbox (what a long X outage would leave behind),
    ``per_call`` to an ``enqueue``."""
    from xgate.config import load_config
    from xgate.conversion import MappedConversion
    from xgate.mapping import Mapper
    from xgate.outbox import open_outbox

    config = load_config(cfg)
    template = Mapper(config).map(sample_event(0)).conversions[0]
    outbox = open_outbox(config.storage.url, config.storage)
    try:
        for start in range(0, count, per_call):
            ids = [f"backlog-{i}" for i in range(start, min(count, start + per_call))]
            outbox.enqueue(
                [
                    MappedConversion(
                        template.destination,
                        template.pixel_id,
                        template.event_id,
                        c,
                        {**template.body, "conversion_id": c},
                        template.match_signals,
                        template.event_name,
                    )
                    for c in ids
                ]
            )
    finally:
        outbox.close()


def sandbox_accepted(sandbox: str) -> int:
    body = httpx.get(f"{sandbox}/_sandbox/conversions", params={"limit": 0}, timeout=30).json()
    return int(body["total"])


def end_to_end(
    workdir: Path,
    *,
    events: int,
    per_request: int,
    concurrency: int,
    separate_dispatcher: bool = False,
    storage_url: str | None = None,
    nodes: int = 1,
) -> dict[str, Any]:
    base = int(time.time() * 1000)
    items = [sample_event(i, now_ms=base) for i in range(events)]
    if per_request == 1:
        bodies = [orjson.dumps(e) for e in items]
    else:
        bodies = [orjson.dumps({"events": items[i : i + per_request]}) for i in range(0, events, per_request)]
    setup = stack(workdir, separate_dispatcher=separate_dispatcher, storage_url=storage_url, nodes=nodes)
    with setup as s, CpuTime(s, storage_url) as cpu:
        start = time.perf_counter()
        headers = {"Authorization": f"Bearer {s.write_key}", "Content-Type": "application/json"}
        stored = loadgen.post_all([f"{g}/v1/events" for g in s.gateways], headers, bodies, concurrency)
        ingested = time.perf_counter() - start
        if stored != events:
            raise RuntimeError(f"the gateways answered {stored} of {events} events as stored")
        deadline = time.monotonic() + 300
        while (got := sandbox_accepted(s.sandbox)) < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {got} of {events} conversions reached the sandbox")
            time.sleep(0.05)
        total = time.perf_counter() - start
    per_event = {k: round(v * 1e6 / events, 1) for k, v in cpu.seconds.items()}
    all_us = sum(per_event.values())
    return {
        "events": events,
        "per_request": per_request,
        "concurrency": concurrency,
        "separate_dispatcher": separate_dispatcher,
        "nodes": nodes,
        "ingest_events_per_s": round(events / ingested),
        "end_to_end_events_per_s": round(events / total),
        # CPU time the run took, per event, by component (the load of other work on the machine does not
        # enter it), and what two cores given to this stack alone would then carry
        "cpu_us_per_event": per_event,
        "cpu_bound_events_per_s_on_2_cores": round(2e6 / all_us) if all_us else None,
    }


class CpuTime:
    """CPU seconds (user + system) used while the block runs, per component: ``xgate`` (the nodes),
    ``sandbox``, ``load`` (this process: the load generator), and ``postgres`` (the server's processes,
    found by the port of ``storage_url``; backends that exit meanwhile count through their parent)."""

    def __init__(self, s: Stack, storage_url: str | None) -> None:
        self._procs: dict[str, list[psutil.Process]] = {
            "xgate": [psutil.Process(p) for p in s.xgate_pids],
            "sandbox": [psutil.Process(s.sandbox_pid)],
            "load": [psutil.Process()],
        }
        self._server = _postgres_server(storage_url) if storage_url else None
        self.seconds: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        used = {name: sum(_cpu(p) for p in procs) for name, procs in self._procs.items()}
        if self._server is not None:
            t = self._server.cpu_times()
            used["postgres"] = (
                t.user
                + t.system
                + t.children_user
                + t.children_system
                + sum(_cpu(c) for c in self._server.children())
            )
        return used

    def __enter__(self) -> CpuTime:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.seconds = {k: end[k] - self._start[k] for k in end}


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def _postgres_server(storage_url: str) -> psutil.Process | None:
    """The postmaster listening on the port of ``storage_url`` on this machine, if there is one."""
    from urllib.parse import urlsplit

    port = f"port={urlsplit(storage_url).port or 5432}"
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres" and any(port in arg for arg in p.info["cmdline"] or ()):
            return p
    return None


async def _fixed_rate(url: str, key: str, rate: int, seconds: float) -> list[float]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    total = int(rate * seconds)
    base = int(time.time() * 1000)
    bodies = [orjson.dumps(sample_event(50_000_000 + i, now_ms=base)) for i in range(total)]
    latencies: list[float] = []
    errors: list[str] = []

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(body: bytes) -> None:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors.append(str(resp.status))
            latencies.append(time.perf_counter() - t0)

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i, body in enumerate(bodies):  # open loop: requests leave on schedule, whatever the answers do
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[:5]}")
    return latencies


def latency(workdir: Path, *, rate: int, seconds: float) -> dict[str, Any]:
    with stack(workdir) as s:
        asyncio.run(_fixed_rate(f"{s.gateway}/v1/events", s.write_key, 50, 1.0))  # warm up
        lat = sorted(asyncio.run(_fixed_rate(f"{s.gateway}/v1/events", s.write_key, rate, seconds)))
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)  # noqa: E731
    return {
        "rate_per_s": rate,
        "requests": len(lat),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": round(lat[-1] * 1000, 2),
    }


def queued_rss(workdir: Path, *, queued: int, seconds: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    with stack(workdir, dispatch=True, prefill=queued) as s:
        prefill_s = time.perf_counter() - t0
        with PeakRSS(s.gateway_pid) as rss:
            end = time.monotonic() + seconds
            headers = {"Authorization": f"Bearer {s.write_key}"}
            while time.monotonic() < end:  # the gateway keeps serving and dispatching meanwhile
                httpx.get(
                    f"{s.gateway}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
                )
                httpx.post(
                    f"{s.gateway}/v1/events",
                    content=orjson.dumps(sample_event(99_000_000)),
                    headers=headers,
                    timeout=30,
                )
                time.sleep(0.5)
        delivered = sandbox_accepted(s.sandbox)
    return {
        "queued": queued,
        "prefill_s": round(prefill_s, 1),
        "observed_s": seconds,
        "delivered_meanwhile": delivered,
        "peak_rss_mb": round(rss.peak / 2**20, 1),
    }


def run(quick: bool = False) -> dict[str, Any]:
    scale = 0.2 if quick else 1.0
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xgate-bench-") as tmp:
        root = Path(tmp)
        for name, fn in (
            ("batched", lambda d: end_to_end(d, events=int(50_000 * scale), per_request=100, concurrency=16)),
            (
                "batched_two_processes",
                lambda d: end_to_end(
                    d, events=int(50_000 * scale), per_request=100, concurrency=16, separate_dispatcher=True
                ),
            ),
            ("single", lambda d: end_to_end(d, events=int(10_000 * scale), per_request=1, concurrency=32)),
            ("latency", lambda d: latency(d, rate=500, seconds=10 * scale)),
            ("queued_rss", lambda d: queued_rss(d, queued=int(1_000_000 * scale), seconds=15)),
            ("restart", lambda d: restart_to_first_delivery(d)),
        ):
            d = root / name
            d.mkdir()
            out[name] = fn(d)
            print(name, out[name], flush=True)
    return out


#: how long X (the sandbox) holds the first node's request in the restart benchmark: its rows stay leased
#: while it is killed; no delivery can come from that request before this has passed
_HELD_SECONDS = 45


def restart_to_first_delivery(
    workdir: Path, *, storage_url: str | None = None, events: int = 100
) -> dict[str, Any]:
    """(f) A node holding leases is SIGKILLed and started again (same configuration, so the same node id):
    seconds from the restart (the process spawned) to its ``/healthz`` answering, to the first conversion
    accepted at the sandbox, and to all ``events`` accepted. The first node's request is held by the
    sandbox for ``_HELD_SECONDS``, so every delivery seen before that is the restarted node's: it took
    its leases back at start (``Outbox.reclaim``) instead of waiting ``lease_seconds`` (60 s) for them to
    expire."""
    from xgate.outbox import open_outbox

    env = {
        **random_x_credentials(),
        WRITE_KEY_ENV: (write_key := os.urandom(16).hex()),
        ADMIN_KEY_ENV: ADMIN_KEY,
    }
    sb_port, gw_port = free_port(), free_port()
    sandbox_url, gateway = f"http://127.0.0.1:{sb_port}", f"http://127.0.0.1:{gw_port}"
    storage_url = storage_url or f"sqlite:///{workdir / 'bench.db'}"
    cfg = workdir / "xgate.toml"
    cfg.write_text(_config_text(storage_url, sandbox_url, gw_port, dispatch=True))
    serve = xgate_cmd("serve", "--config", str(cfg))
    base = int(time.time() * 1000)
    body = orjson.dumps({"events": [sample_event(i, now_ms=base) for i in range(events)]})
    headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
    sandbox_cmd = xgate_cmd("sandbox", "--host", "127.0.0.1", "--port", str(sb_port))
    with managed_process(sandbox_cmd, env, workdir / "sandbox.log") as sandbox:
        wait_http(f"{sandbox_url}/_sandbox/requests")
        faults = f"{sandbox_url}/_sandbox/faults"
        httpx.put(faults, json={"slow_rate": 1, "slow_ms": _HELD_SECONDS * 1000}).raise_for_status()
        with managed_process(serve, env, workdir / "gateway-killed.log") as first:
            wait_http(f"{gateway}/healthz", timeout=120)
            httpx.post(f"{gateway}/v1/events", content=body, headers=headers, timeout=30).raise_for_status()
            onlooker = open_outbox(storage_url, node_id="bench-onlooker")
            try:
                deadline = time.monotonic() + 60
                while (
                    sum(n for (_, state), n in onlooker.stats().counts.items() if state == "leased") < events
                ):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the first node never held its rows' leases")
                    time.sleep(0.02)
            finally:
                onlooker.close()
            held_until = time.monotonic() + _HELD_SECONDS - 2  # its request left before this moment
            first.send_signal(signal.SIGKILL)
            first.wait()
        httpx.put(faults, json={}).raise_for_status()
        start = time.perf_counter()
        ready = first_delivery = None
        with managed_process(serve, env, workdir / "gateway-restarted.log") as second:
            while first_delivery is None or sandbox_accepted(sandbox_url) < events:
                if time.monotonic() > held_until or second.poll() is not None:
                    raise RuntimeError(f"the restarted node delivered nothing in time; see {workdir}")
                if ready is None:
                    with contextlib.suppress(httpx.HTTPError):
                        if httpx.get(f"{gateway}/healthz", timeout=0.5).status_code == 200:
                            ready = time.perf_counter() - start
                if first_delivery is None and sandbox_accepted(sandbox_url) > 0:
                    first_delivery = time.perf_counter() - start
                time.sleep(0.02)
            all_delivered = time.perf_counter() - start
        sandbox.kill()  # the killed node's request is still held there: no graceful wait for it
    return {
        "engine": storage_url.partition(":")[0],
        "events": events,
        "restart_to_healthz_s": round(ready, 2) if ready is not None else None,
        "restart_to_first_delivery_s": round(first_delivery, 2),
        "restart_to_all_delivered_s": round(all_delivered, 2),
    }
