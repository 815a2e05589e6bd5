"""``xgate import`` of a 1,000,000-row CRM export: rows/s and the importer's peak RSS.

The file is realistic: order id, e-mail, phone in national and international forms, an amount with a
decimal comma and a currency sign, a local date, and a small share of rows refused (no identifier, outside
X's window). It is imported by ``xgate import --quiet --json`` as a separate process into a fresh SQLite
outbox (no gateway needed: the dispatcher would deliver them later), and imported a second time to time the
idempotent path (every row a duplicate).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import PIXEL, PeakRSS, xgate_cmd

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
formats = ["%d/%m/%Y %H:%M"]

[columns.store]
to = "store"

[constants]
event_name = "purchase"
"""


def write_crm_export(path: Path, rows: int) -> None:
    day = (datetime.now(UTC) - timedelta(days=2)).strftime("%d/%m/%Y")
    with path.open("w", encoding="utf-8") as f:
        f.write("order_id,email,phone,amount,sold_at,store\n")
        for i in range(rows):
            email = f"Client.{i}@Example.fr" if i % 50 else ""
            phone = (
                f"06 {i // 1_000_000 % 100:02d} {i // 10_000 % 100:02d} {i // 100 % 100:02d} {i % 100:02d}"
            )
            if i % 3 == 0:
                phone = "+33 " + phone[1:]
            sold = day if i % 997 else "01/01/2020"  # a few rows outside X's 90-day window
            f.write(
                f'ord-{i},{email},{phone},"€{i % 900 + 10},{i % 100:02d}",{sold} {i % 24:02d}:15,S{i % 40}\n'
            )


def _import(workdir: Path, config: Path, mapping: Path, data: Path) -> tuple[dict[str, Any], float, int]:
    args = xgate_cmd("import", str(data), "-m", str(mapping), "-c", str(config), "--quiet", "--json")
    args += ["--state-dir", str(workdir / "imports")]
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with PeakRSS(proc.pid) as rss:
        out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"xgate import failed ({proc.returncode}): {err.decode()[-2000:]}")
    return json.loads(out), elapsed, rss.peak


def run(rows: int = 1_000_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xgate-import-bench-") as tmp:
        workdir = Path(tmp)
        config, mapping, data = workdir / "xgate.toml", workdir / "crm.toml", workdir / "crm.csv"
        config.write_text(
            f'[storage]\nurl = "sqlite:///{workdir / "outbox.db"}"\n'
            f'[[destinations]]\nname = "x"\npixel_id = "{PIXEL}"\n'
            f'events = {{ purchase = "tw-{PIXEL}-o87ne" }}\n'
        )
        mapping.write_text(MAPPING)
        write_crm_export(data, rows)
        first, first_s, first_rss = _import(workdir, config, mapping, data)
        again, again_s, again_rss = _import(workdir, config, mapping, data)
        return {
            "rows": rows,
            "file_mb": round(data.stat().st_size / 2**20, 1),
            "rows_per_s": round(rows / first_s),
            "seconds": round(first_s, 1),
            "peak_rss_mb": round(max(first_rss, again_rss) / 2**20, 1),
            "outcomes": first["outcomes"],
            "coverage": first["coverage"],
            "reimport_rows_per_s": round(rows / again_s),
            "reimport_outcomes": again["outcomes"],
        }


if __name__ == "__main__":
    print(run())
