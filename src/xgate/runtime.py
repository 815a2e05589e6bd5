"""Process-wide tuning of xgate's long-running commands (serve, dispatch, import, sandbox)."""

from __future__ import annotations

import gc

#: allocations between collections of the young generation (CPython's default: 700)
YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Collect once, then freeze what startup built (modules, configuration, the app) out of every later
    collection, and collect less often. The hot path allocates many short-lived dicts that reference
    counting frees at once; with the default thresholds the collector ran every few events and took about
    a sixth of the gateway's CPU (``make bench``), scanning objects that were never garbage."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 50, 100)
