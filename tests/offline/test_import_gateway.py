"""``xgate import`` into a running gateway (``xgate serve`` delivering to the sandbox): the sandbox ends with
exactly the good rows, once — after a second import of the same file, and after an import killed halfway
and run again."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xgate.outbox import SQLiteOutbox
from xgate.testing import RunningSandbox, free_port, managed_process, wait_http

PIXEL = "o8z6j"
MAPPING = """
timezone = "Europe/Paris"

[columns.order_id]
to = "id"

[columns.email]
to = "user.email"

[columns.phone]
to = "user.phone"

[columns.amount]
to = "value"
type = "money"
decimal = ","

[columns.sold_at]
to = "context.event_timestamp"
type = "datetime"
formats = ["%d/%m/%Y %H:%M", "%Y-%m-%d"]

[columns.kind]
to = "event_name"
values = { Sale = "purchase", Lead = "lead" }
"""
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).strftime("%d/%m/%Y")


@dataclass
class Gateway:
    config: Path
    state: Path
    env: dict[str, str]
    workdir: Path

    def run_import(self, file: Path, *extra: str, mapping: Path | None = None) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "xgate", "import", str(file), "-c", str(self.config), "--json"]
        args += ["--state-dir", str(self.state), *(["-m", str(mapping)] if mapping else []), *extra]
        return subprocess.Popen(args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def import_file(self, file: Path, *extra: str, mapping: Path | None = None) -> tuple[int, dict[str, Any]]:
        proc = self.run_import(file, *extra, mapping=mapping)
        out, errors = proc.communicate(timeout=120)
        assert proc.returncode in (0, 3), errors.decode()
        return proc.returncode, json.loads(out)

    def outbox_settled(self) -> bool:
        out = subprocess.run(
            [sys.executable, "-m", "xgate", "status", "-c", str(self.config), "--json"],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        counts = json.loads(out)["totals"]
        return counts.get("queued", 0) == 0 and counts.get("leased", 0) == 0


@pytest.fixture
def gateway(tmp_path: Path, sandbox: RunningSandbox) -> Iterator[Gateway]:
    port = free_port()
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[x]\napi_url = "{sandbox.url}"\n'
        f'[storage]\nurl = "sqlite:///{tmp_path / "outbox.db"}"\n'
        f"[server]\nport = {port}\n"
        "[dispatch]\nlinger_ms = 20\n"
        f'[[destinations]]\nname = "x-main"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne", lead = "tw-{PIXEL}-o87nf" }}\n'
    )
    env = {**os.environ, **sandbox.env}
    log = tmp_path / "gateway.log"
    with managed_process([sys.executable, "-m", "xgate", "serve", "-c", str(config)], env, log) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc, log=log)
        yield Gateway(config, tmp_path / "imports", env, tmp_path)


def _sent(sandbox: RunningSandbox) -> Counter[str]:
    return Counter(c["conversion_id"] for c in sandbox.conversions())


def _wait_for(sandbox: RunningSandbox, gateway: Gateway, expected: set[str]) -> Counter[str]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        sent = _sent(sandbox)
        if set(sent) >= expected and gateway.outbox_settled():
            return _sent(sandbox)
        time.sleep(0.3)
    pytest.fail(f"{len(expected - set(_sent(sandbox)))} good rows never reached the sandbox")


def crm_file(path: Path, good: int, *, bad_every: int = 10) -> tuple[set[str], int, int]:
    """good rows (distinct orders), a bad row after every ``bad_every`` good ones, and duplicates of some
    good rows; returns (good order ids, bad rows, duplicate rows)."""
    lines = ["order_id,email,phone,amount,sold_at,kind"]
    ids: set[str] = set()
    bad = dupes = 0
    faults = [
        '{i},,,"5,00",{d} 10:00,Sale',  # no identifier
        "{i},b{i}@example.com,,oops,{d} 10:00,Sale",  # not an amount
        '{i},c{i}@example.com,,"5,00",01/01/2020 10:00,Sale',  # outside X's window
        '{i},d{i}@example.com,,"5,00",{d} 10:00,Refund',  # unknown kind
    ]
    for n in range(good):
        order = f"ord-{n}"
        ids.add(order)
        phone = f"+33 6 12 {n // 100 % 100:02d} {n % 100:02d} 00"
        row = f'{order},shopper.{n}@example.com,{phone},"€1.{n % 1000:03d},50",{YESTERDAY} 10:30,Sale'
        lines.append(row)
        if n % 7 == 3:
            lines.append(row)
            dupes += 1
        if n % bad_every == bad_every - 1:
            lines.append(faults[bad % len(faults)].format(i=f"bad-{n}", d=YESTERDAY))
            bad += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids, bad, dupes


def test_a_csv_import_delivers_exactly_the_good_rows_once_even_imported_twice(
    gateway: Gateway, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    mapping = tmp_path / "crm.toml"
    mapping.write_text(MAPPING)
    good, bad, dupes = crm_file(tmp_path / "crm.csv", 300)
    code, summary = gateway.import_file(tmp_path / "crm.csv", mapping=mapping)
    assert code == 3  # rows were rejected
    assert summary["outcomes"] == {"queued": 300, "duplicate": dupes, "rejected": bad, "skipped": 0}
    assert summary["coverage"]["email"] == pytest.approx(
        (300 + dupes + bad - bad // 4) / (300 + dupes + bad), abs=0.02
    )
    report = Path(summary["report"]).read_text().splitlines()
    assert report[0] == "row,outcome,field,reason"
    reasons = "\n".join(report)
    for needle in ("identifiers", "amount", "older than X's 90-day window", "kind"):
        assert needle in reasons
    assert "example.com" not in reasons  # never a personal value in the report
    sent = _wait_for(sandbox, gateway, good)
    assert set(sent) == good and set(sent.values()) == {1}

    _, again = gateway.import_file(tmp_path / "crm.csv", mapping=mapping)
    assert again["outcomes"]["queued"] == 0
    assert again["outcomes"]["duplicate"] == 300 + dupes
    assert _wait_for(sandbox, gateway, good) == sent


def test_jsonl_events_import_without_a_mapping_gzipped(
    gateway: Gateway, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    now_ms = int(time.time() * 1000) - 3_600_000
    events = [
        {
            "event_name": "purchase",
            "id": f"j-{i}",
            "value": 10,
            "currency": "EUR",
            "user": {"email": f"j{i}@example.com"},
            "context": {"event_timestamp": now_ms},
        }
        for i in range(50)
    ]
    bad = [{"event_name": "purchase", "id": "j-bad", "context": {"event_timestamp": now_ms}}, {"value": 3}]
    text = "\n".join(json.dumps(e) for e in [*events, *bad, events[0]]) + "\nnot json\n"
    (tmp_path / "events.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    code, summary = gateway.import_file(tmp_path / "events.jsonl.gz")
    assert code == 3
    assert summary["outcomes"] == {"queued": 50, "duplicate": 1, "rejected": 3, "skipped": 0}
    sent = _wait_for(sandbox, gateway, {f"j-{i}" for i in range(50)})
    assert len(sent) == 50 and set(sent.values()) == {1}
    outbox = SQLiteOutbox(tmp_path / "outbox.db", create=False)
    try:  # each row names the file it came from, and its delivery is in its history
        rows = outbox.rows(limit=100)
        assert {r.source for r in rows} == {"import:events.jsonl.gz"}
        assert [(a.outcome, a.status) for a in outbox.history(rows[0].id)] == [("delivered", 200)]
    finally:
        outbox.close()


def test_dry_run_reports_without_queueing(gateway: Gateway, sandbox: RunningSandbox, tmp_path: Path) -> None:
    mapping = tmp_path / "crm.toml"
    mapping.write_text(MAPPING)
    _, bad, dupes = crm_file(tmp_path / "crm.csv", 40)
    code, summary = gateway.import_file(tmp_path / "crm.csv", "--dry-run", mapping=mapping)
    assert code == 3
    assert summary["dry_run"] is True
    assert summary["outcomes"]["valid"] == 40 + dupes and summary["outcomes"]["rejected"] == bad
    time.sleep(0.5)
    assert gateway.outbox_settled() and sandbox.conversions() == []


def test_an_import_killed_halfway_and_run_again_ends_the_same(
    gateway: Gateway, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    mapping = tmp_path / "crm.toml"
    mapping.write_text(MAPPING)
    good, bad, _ = crm_file(tmp_path / "big.csv", 6000, bad_every=50)
    proc = gateway.run_import(tmp_path / "big.csv", "--chunk-rows", "100", mapping=mapping)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        checkpoints = list(gateway.state.glob("*.checkpoint.json"))
        if checkpoints:
            try:
                done = json.loads(checkpoints[0].read_text())["rows_done"]
            except (ValueError, OSError):
                done = 0
            if done >= 1000:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the import ended before it could be killed halfway"
    state = json.loads(next(gateway.state.glob("*.checkpoint.json")).read_text())
    assert 1000 <= state["rows_done"] < len(good) and not state["finished"]

    _, summary = gateway.import_file(tmp_path / "big.csv", mapping=mapping)
    assert summary["resumed_from_row"] == state["rows_done"]
    outcomes = summary["outcomes"]
    assert outcomes["rejected"] == bad
    assert outcomes["queued"] + outcomes["duplicate"] == summary["rows"] - bad
    report_rows = [line.split(",")[0] for line in Path(summary["report"]).read_text().splitlines()[1:]]
    assert len(report_rows) == len(set(report_rows)) == bad  # each refused row reported once
    sent = _wait_for(sandbox, gateway, good)
    assert set(sent) == good and set(sent.values()) == {1}
