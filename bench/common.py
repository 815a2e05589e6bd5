"""Shared pieces of the benchmarks: sample events, machine facts, subprocess services, RSS sampling."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PIXEL = "o8z6j"


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def measured_commit() -> str:
    """The commit measured: its short hash, ``+changes`` when the work tree differs from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return (head or "unknown") + (" +changes" if dirty.stdout.strip() else "")


def load_average() -> float:
    """The machine's 1-minute load average: how much other work shared the cores around a figure."""
    return round(os.getloadavg()[0], 2)


def sample_event(i: int, *, now_ms: int | None = None) -> dict[str, Any]:
    """A typical purchase: email, phone, twclid, ip + user agent, two items. Unique per ``i``."""
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    return {
        "event_name": "purchase",
        "id": f"order-{i}",
        "value": 59.90 + (i % 100),
        "currency": "usd",
        "user": {
            "email": f"  Shopper.{i}@Example.com ",
            "phone": f"+1 (415) {200 + i // 10000 % 800:03d}-{i % 10000:04d}",  # distinct: no cache helps
        },
        "context": {
            "event_timestamp": ts,
            "ip": f"203.0.{(i >> 8) % 256}.{i % 256}",
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
        },
        "partners": {"twitter": {"twclid": f"26{i:016d}abc"}},
        "items": [
            {
                "id": f"sku-{i % 500}",
                "quantity": 2,
                "price": 19.95,
                "product": {
                    "name": "Trail socks",
                    "group_id": "socks",
                    "category_1": "Apparel",
                    "category_2": "Socks",
                },
            },
            {"id": "sku-hat", "quantity": 1, "price": 20.0, "product": {"name": "Sun hat"}},
        ],
    }


def xgate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xgate", *args]


class PeakRSS:
    """Samples a process's resident set size in the background; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.05):
        self._proc = psutil.Process(pid)
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
