"""Process-wide tuning of xgate's long-running commands (serve, dispatch, import, sandbox)."""

from __future__ import annotations

import gc
import importlib

#: net allocations (allocated minus freed) between collections of the young generation (CPython's
#: default: 700). The gateway's young objects are mostly the requests in flight: at 10,000 it still ran a
#: collection every few hundred events, each scanning those requests, 4% of its CPU (``perf``, batched
#: ``make bench``); at 50,000 it runs a few per 30,000 events.
YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect once, then freeze what startup built (modules, configuration, the app) out of every later
    collection, and collect less often. The hot path allocates many short-lived dicts that reference
    counting frees at once; with the default thresholds the collector ran every few events and took about
    a sixth of the gateway's CPU (``make bench``), scanning objects that were never garbage."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)


#: the per-event hot path that the wheel compiles with mypyc (pyproject.toml's mypyc hook lists the same
#: files; a test keeps the two in step)
HOT_MODULES = (
    "xgate.conversion",
    "xgate.event_reader",
    "xgate.identifiers",
    "xgate.validation",
    "xgate.mapping.filters",
    "xgate.mapping.mapper",
    "xgate.mapping.overrides",
    "xgate.mapping.privacy",
    "xgate.collect.enrich",
    "xgate.collect.ingest",
    "xgate.tag.twclid",
)


def compiled_modules() -> list[str]:
    """The hot-path modules this process runs as compiled extensions (empty for plain Python)."""
    compiled = []
    for name in HOT_MODULES:
        origin = getattr(importlib.import_module(name), "__file__", None) or ""
        if origin.endswith((".so", ".pyd")):
            compiled.append(name)
    return compiled


def build_flavour() -> str:
    """``compiled (mypyc)``, ``plain Python`` or ``partly compiled``: what ``serve`` logs at start."""
    n = len(compiled_modules())
    if n == len(HOT_MODULES):
        return "compiled (mypyc)"
    return "plain Python" if n == 0 else "partly compiled"
