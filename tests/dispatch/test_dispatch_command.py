"""``xgate dispatch`` as its own process: it delivers the queue, counts X's answers where every node's
console reads them, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from xgate.config import load_config
from xgate.mapping import Mapper
from xgate.outbox import SQLiteOutbox
from xgate.testing import RunningSandbox

CONFIG = """
[x]
api_url = "{url}"

[storage]
url = "sqlite:///{db}"

[dispatch]
linger_ms = 0

[[destinations]]
name = "x-main"
pixel_id = "o8z6j"
events = {{ purchase = "tw-o8z6j-o87ne" }}
"""


def settled(box: SQLiteOutbox) -> int:
    return sum(n for (_, state), n in box.stats().counts.items() if state in ("delivered", "dead"))


def test_dispatch_delivers_counts_the_answers_and_exits_cleanly_on_sigterm(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    db = tmp_path / "o.db"
    config = tmp_path / "xgate.toml"
    config.write_text(CONFIG.format(url=sandbox.url, db=db))
    box = SQLiteOutbox(db)
    mapper = Mapper(load_config(config))
    box.enqueue(
        [
            mapper.map(
                {"event_name": "purchase", "id": f"ord-{i}", "user": {"email": f"u{i}@example.com"}}
            ).conversions[0]
            for i in range(40)
        ]
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "xgate", "dispatch", "--config", str(config)],
        env={**os.environ, **sandbox.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and settled(box) < 40:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()
    assert box.stats().counts == {("x-main", "delivered"): 40}
    assert len(sandbox.conversions()) == 40
    # what a dispatch-only process delivered shows in the console's answers, as a serve node's does
    assert box.counts(0.0) == {("delivery", "x-main", "delivered"): 40}
