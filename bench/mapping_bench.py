"""(a) Events/s through map + normalize + hash + validate on one core, beside Meta's SDK doing the same.

Both sides get the same distinct events (no cache can help): xgate maps the generic event to X's
conversion (e-mail and phone normalized and SHA-256-hashed, phone parsed to E.164 with phonenumbers,
contents built, X's rules checked); Meta's ``facebook-business`` SDK builds UserData / CustomData / Event
and calls ``normalize()``, which normalizes and hashes e-mail and phone and checks the custom data.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import PIXEL, sample_event
from xgate.config import parse_config
from xgate.identifiers import normalize_phone
from xgate.mapping import Mapper
from xgate.runtime import build_flavour, tune_gc

N = 20_000
ROUNDS = 3


def _config() -> Any:
    return parse_config(
        {"destinations": [{"name": "x", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}}]}
    )


def _xgate(events: list[dict[str, Any]]) -> float:
    normalize_phone.cache_clear()  # every round starts cold: no phone seen before
    mapper = Mapper(_config())
    start = time.perf_counter()
    for e in events:
        result = mapper.map(e)
        if not result.conversions:
            raise RuntimeError(f"benchmark event was not mapped: {result}")
    return time.perf_counter() - start


def _meta(events: list[dict[str, Any]]) -> float:
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.content import Content
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.user_data import UserData

    start = time.perf_counter()
    for e in events:
        ctx, user = e["context"], e["user"]
        user_data = UserData(
            email=user["email"],
            phone=user["phone"],
            client_ip_address=ctx["ip"],
            client_user_agent=ctx["user_agent"],
        )
        contents = [
            Content(
                product_id=it["id"],
                quantity=it["quantity"],
                item_price=it["price"],
                title=it["product"]["name"],
            )
            for it in e["items"]
        ]
        custom = CustomData(
            value=e["value"],
            currency=e["currency"],
            contents=contents,
            num_items=sum(it["quantity"] for it in e["items"]),
            order_id=e["id"],
        )
        event = Event(
            event_name="Purchase",
            event_time=ctx["event_timestamp"] // 1000,
            event_id=e["id"],
            user_data=user_data,
            custom_data=custom,
            action_source=ActionSource.WEBSITE,
        )
        event.normalize()
    return time.perf_counter() - start


def _plain_python_rate() -> int | None:
    """xgate's events/s in the plain-Python venv named by XGATE_PLAIN_PYTHON (make bench sets it), for
    comparison with the compiled build; None when not given."""
    python = os.environ.get("XGATE_PLAIN_PYTHON")
    if not python:
        return None
    out = subprocess.run(
        [python, "-m", "bench.mapping_bench", "--xgate-only"], capture_output=True, text=True, check=True
    )
    return int(json.loads(out.stdout)["xgate_events_per_s"])


def _xgate_only() -> dict[str, Any]:
    events = [sample_event(i) for i in range(N)]
    tune_gc()
    best = min(_xgate(events) for _ in range(ROUNDS))
    return {"build": build_flavour(), "xgate_events_per_s": round(N / best)}


def run() -> dict[str, Any]:
    plain_rate = _plain_python_rate()
    events = [sample_event(i) for i in range(N)]
    tune_gc()  # as xgate's commands run (the input events frozen out of collections), for both sides
    best_x, best_m = float("inf"), float("inf")
    for _ in range(ROUNDS):  # interleaved, best of ROUNDS: both sides see the same machine noise
        gc.collect()
        best_x = min(best_x, _xgate(events))
        gc.collect()
        best_m = min(best_m, _meta(events))
    xgate_rate, meta_rate = N / best_x, N / best_m
    return {
        "events": N,
        "build": build_flavour(),
        "xgate_events_per_s": round(xgate_rate),
        "meta_sdk_events_per_s": round(meta_rate),
        "ratio_xgate_to_meta": round(xgate_rate / meta_rate, 2),
        "us_per_event_xgate": round(best_x / N * 1e6, 1),
        "plain_python_events_per_s": plain_rate,
    }


if __name__ == "__main__":
    print(json.dumps(_xgate_only() if "--xgate-only" in sys.argv else run()))
