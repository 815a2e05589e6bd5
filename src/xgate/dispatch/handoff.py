"""The hand-off: rows the collector has just stored, leased in that same commit to this process's dispatcher.

Without it every conversion costs the outbox a second write transaction: stored as queued, then leased
by the dispatcher's next round. With it, the collector's outbox writer stores new rows already leased
(``Outbox.enqueue_leased``) and offers them here; the dispatcher takes them from memory and only polls the
outbox for the rest (retries, a backlog, rows of other processes, leases that expired).

Nothing is less durable for it: the rows are committed before the collector answers, and a handed-over
row that is never settled (a crash, a kill -9) returns to the queue when its lease expires, like any
lease. The hand-off is bounded (``capacity`` rows): when delivery falls behind, new rows are stored
queued and wait in the outbox, not here on a lease clock. A row is only taken while at least half its
lease remains; an older one is left to expire and be leased again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import deque

from xgate.outbox.base import HandoffLease, LeasedRow


class Handoff:
    """Thread-safe: the outbox writer thread calls :meth:`terms` and :meth:`offer`; the dispatcher, on its
    event loop, calls :meth:`open`, :meth:`take`, :meth:`wait` and :meth:`close`."""

    def __init__(self, capacity: int, lease_seconds: float) -> None:
        self.token = f"handoff-{uuid.uuid4().hex}"
        self.capacity = capacity
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        #: (time after which the rows are too old to send, rows) in the order they were stored
        self._parcels: deque[tuple[float, list[LeasedRow]]] = deque()
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._want = 1
        self.expired = 0  # rows left to their lease because they waited too long here

    # -- the dispatcher's side ---------------------------------------------------------------------
    def open(self) -> None:
        """Start taking rows, woken on the running loop."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()

    def close(self) -> list[LeasedRow]:
        """Take no more rows; returns those still waiting (the dispatcher releases them)."""
        with self._lock:
            self._loop = None
            rows = [row for _, parcel in self._parcels for row in parcel]
            self._parcels.clear()
            self._pending = 0
        return rows

    @property
    def taking(self) -> bool:
        """Between :meth:`open` and :meth:`close`."""
        return self._loop is not None

    @property
    def pending(self) -> int:
        return self._pending

    def take(self, limit: int) -> list[LeasedRow]:
        """Up to ``limit`` rows, oldest first."""
        now = time.time()
        taken: list[LeasedRow] = []
        with self._lock:
            while self._parcels and len(taken) < limit:
                fresh_until, parcel = self._parcels[0]
                if fresh_until < now:
                    self._parcels.popleft()
                    self._pending -= len(parcel)
                    self.expired += len(parcel)
                    continue
                room = limit - len(taken)
                if len(parcel) <= room:
                    self._parcels.popleft()
                    taken += parcel
                else:
                    taken += parcel[:room]
                    self._parcels[0] = (fresh_until, parcel[room:])
            self._pending -= len(taken)
        return taken

    async def wait(self, seconds: float, *, rows: int = 1) -> None:
        """Return after ``seconds``, or as soon as ``rows`` rows are waiting, or on :meth:`wake`."""
        ready = self._ready
        if ready is None:
            await asyncio.sleep(seconds)
            return
        with self._lock:
            self._want = rows
            if self._pending >= rows:
                return
            ready.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), seconds)

    def wake(self) -> None:
        """End a :meth:`wait` now (the dispatcher is stopping). Call on the loop."""
        if self._ready is not None:
            self._ready.set()

    # -- the outbox writer's side ------------------------------------------------------------------
    def terms(self) -> HandoffLease | None:
        """How many new rows may be leased over now, or None (no dispatcher taking, or no room)."""
        with self._lock:
            room = self.capacity - self._pending if self._loop is not None else 0
        return HandoffLease(self.token, self.lease_seconds, room) if room > 0 else None

    def offer(self, rows: list[LeasedRow]) -> bool:
        """Hand over rows leased with :meth:`terms`; False when the dispatcher has stopped taking (the
        caller releases them)."""
        if not rows:
            return True
        with self._lock:
            loop = self._loop
            if loop is None:
                return False
            self._parcels.append((time.time() + self.lease_seconds / 2, rows))
            self._pending += len(rows)
            enough = self._pending >= self._want
        if enough:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the rows' lease expires
                loop.call_soon_threadsafe(self._notify)
        return True

    def _notify(self) -> None:
        """On the loop: wake the dispatcher if what it waits for is here (it may wait for more by now)."""
        if self._ready is not None and self._pending >= self._want:
            self._ready.set()


__all__ = ["Handoff"]
