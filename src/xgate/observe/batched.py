"""A writer that buffers on the caller's thread (the event loop, a dispatcher worker) and writes the buffer
to the outbox from a thread of its own, at most every ``flush_seconds``, so that nothing per event or per
request costs a transaction."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


class BatchedWriter(ABC):
    """Subclasses buffer under ``self._wake`` (a condition on a plain lock), then call :meth:`_started`
    with it held; they define :meth:`_pending_work` (called with it held) and :meth:`flush` (one write of
    what is buffered; it must not raise). The thread starts with the first buffered item, sleeps while
    nothing is buffered, and :meth:`close` writes what is left."""

    def __init__(self, *, flush_seconds: float, name: str) -> None:
        self._flush_seconds = flush_seconds
        self._name = name
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    @abstractmethod
    def _pending_work(self) -> bool:
        """Whether something waits to be written (``self._wake`` held)."""

    @abstractmethod
    def flush(self) -> None:
        """Write what is buffered now (blocking; never raises)."""

    def _started(self) -> None:
        """After buffering, with ``self._wake`` held: start the writer thread, or wake it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending_work() or self._closed)
                if self._closed:
                    return
            time.sleep(self._flush_seconds)  # gather what comes meanwhile into the same write
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is buffered (blocking)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.flush()
