"""Group commit: conversions of concurrent requests go to the outbox together, in one transaction.

Writer threads (as many as the outbox says gain from writing at once, :attr:`Outbox.writers`: one for
SQLite) own the outbox's write path. Each request hands over its conversions and awaits the outcome, so it
still answers only after its conversions are committed — but a thousand requests a second cost tens of
commits, not a thousand.

When the dispatcher runs in the same process, the writer stores new rows already leased to it and hands
them over (:mod:`xgate.dispatch.handoff`), as many as it has room for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from xgate.conversion import MappedConversion
from xgate.errors import OutboxUnavailable
from xgate.outbox.base import EnqueueOutcome, HandoffLease, LeasedRow, Outbox

log = logging.getLogger("xgate.collect")

#: seconds during which a failure of the same reason as the last one logged is counted, not logged again:
#: while the database is known to be unreachable every request fails at once (503), and a line for each
#: would flood the log
_REPEATS_QUIET_SECONDS = 10.0


@dataclass(slots=True)
class _Job:
    conversions: Sequence[MappedConversion]
    future: asyncio.Future[list[EnqueueOutcome]]
    loop: asyncio.AbstractEventLoop


class TakesLeasedRows(Protocol):
    """Where new rows go already leased: :class:`xgate.dispatch.handoff.Handoff`."""

    def terms(self) -> HandoffLease | None: ...

    def offer(self, rows: list[LeasedRow]) -> bool: ...


class GroupWriter:
    """Commits the conversions of many requests at once; ``max_group`` bounds one transaction."""

    def __init__(
        self, outbox: Outbox, *, max_group: int = 5000, handoff: TakesLeasedRows | None = None
    ) -> None:
        self._outbox = outbox
        self._max_group = max_group
        self._handoff = handoff
        self._writers = max(1, outbox.writers)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._warned = ("", 0.0, 0)  # the last failure logged, when (monotonic), failures alike since

    def start(self) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self._writers:
                thread = threading.Thread(target=self._run, name="xgate-outbox-writer", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is pending, then end the writer threads."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(timeout)

    async def enqueue(self, conversions: Sequence[MappedConversion]) -> list[EnqueueOutcome]:
        """The outbox's outcome per conversion, once they are committed. Raises what kept them from
        being stored (:class:`~xgate.errors.OutboxUnavailable` when the outbox cannot be written now)."""
        if not self._threads:
            self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[EnqueueOutcome]] = loop.create_future()
        self._jobs.put(_Job(conversions, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            group = [job]
            size = len(job.conversions)
            stop = False
            while size < self._max_group:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                size += len(more.conversions)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Job]) -> None:
        try:
            outcomes = self._store([c for job in group for c in job.conversions])
        except Exception as e:
            if len(group) == 1:
                fields = {"fields": {"conversions": len(group[0].conversions)}}
                if isinstance(e, OutboxUnavailable):
                    self._warn(e, fields["fields"])
                else:
                    log.exception("outbox enqueue failed", extra=fields)
                _settle(group[0], error=e)
                return
            for job in group:  # isolate the request whose conversions the outbox refuses
                self._commit([job])
            return
        position = 0
        for job in group:
            n = len(job.conversions)
            _settle(job, outcomes[position : position + n])
            position += n

    def _warn(self, error: OutboxUnavailable, fields: dict[str, int]) -> None:
        """A WARNING for ``error``, unless the last one logged had the same reason less than
        :data:`_REPEATS_QUIET_SECONDS` ago: then it is counted, and the next line of that reason says how
        many were not logged (``repeats_not_logged``)."""
        reason, now = str(error), time.monotonic()
        with self._lock:
            last, logged_at, alike = self._warned
            if reason == last and now - logged_at < _REPEATS_QUIET_SECONDS:
                self._warned = (last, logged_at, alike + 1)
                return
            self._warned = (reason, now, 0)
        if alike and reason == last:
            fields = fields | {"repeats_not_logged": alike}
        log.warning("outbox enqueue failed: %s", error, extra={"fields": fields})

    def _store(self, conversions: list[MappedConversion]) -> list[EnqueueOutcome]:
        handoff = self._handoff
        terms = handoff.terms() if handoff is not None else None
        if handoff is None or terms is None:
            return self._outbox.enqueue(conversions)
        outcomes, leased = self._outbox.enqueue_leased(conversions, terms)
        if not handoff.offer(leased):  # the dispatcher stopped meanwhile: back to the queue
            try:
                self._outbox.release([r.id for r in leased], terms.token)
            except Exception:  # they are stored: their lease expires and they are sent all the same
                log.warning("could not release rows leased to a stopped dispatcher", exc_info=True)
        return outcomes


def _settle(
    job: _Job, outcomes: list[EnqueueOutcome] | None = None, *, error: Exception | None = None
) -> None:
    """Answer the request waiting on ``job``: its outcomes, or the error that kept it from being stored."""

    def apply() -> None:
        if job.future.done():
            return
        if error is not None or outcomes is None:
            job.future.set_exception(error or RuntimeError("the outbox could not store the conversions"))
        else:
            job.future.set_result(outcomes)

    with contextlib.suppress(RuntimeError):  # the request's loop has closed: nobody is waiting
        job.loop.call_soon_threadsafe(apply)
