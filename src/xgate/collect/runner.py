"""Running the dispatcher beside the HTTP server, started and stopped with the app's lifespan."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Protocol

import anyio.to_thread

log = logging.getLogger("xgate.collect")


class Background(Protocol):
    """What the collector needs of the dispatcher: ``run_forever()`` until ``stop()``."""

    def run_forever(self) -> Any: ...

    def stop(self) -> Any: ...


class BackgroundRunner:
    """Runs a :class:`Background` worker (async or blocking ``run_forever``) as a task of the loop."""

    def __init__(self, worker: Background, *, stop_timeout: float = 30.0) -> None:
        self.worker = worker
        self._stop_timeout = stop_timeout
        self._task: asyncio.Task[Any] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if inspect.iscoroutinefunction(self.worker.run_forever):
            coro = self.worker.run_forever()
        else:
            coro = anyio.to_thread.run_sync(self.worker.run_forever, abandon_on_cancel=True)
        self._task = asyncio.get_running_loop().create_task(coro, name="xgate-dispatcher")
        self._task.add_done_callback(self._report)

    @staticmethod
    def _report(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatcher stopped with an error", exc_info=task.exception())

    async def stop(self) -> None:
        """Ask the worker to stop, wait for it (it releases its leases), cancel it after the timeout."""
        if self._task is None:
            return
        result = self.worker.stop()
        if inspect.isawaitable(result):
            await result
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._stop_timeout)
        except TimeoutError:
            log.warning("dispatcher did not stop in time; cancelling it")
            self._task.cancel()
        except Exception:  # already reported by _report
            pass
        self._task = None
