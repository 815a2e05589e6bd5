"""An import refuses the rows X would refuse or whose cells read two ways, names them in its report, and
goes on with the rest of the file; a dry run shows how money and date cells were read."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xgate.config import parse_config
from xgate.offline.checkpoint import held
from xgate.offline.columns import parse_column_mapping
from xgate.offline.importer import Importer
from xgate.offline.reader import FileError
from xgate.outbox import SQLiteOutbox

PIXEL = "o8z6j"
CONFIG = parse_config(
    {"destinations": [{"name": "x-main", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}}]}
)
MAPPING = parse_column_mapping(
    {
        "constants": {"event_name": "purchase"},
        "columns": {
            "order": {"to": "id"},
            "email": {"to": "user.email"},
            "amount": {"to": "value", "type": "money", "decimal": ","},
            "sold_at": {"to": "context.event_timestamp", "type": "datetime", "formats": ["%Y-%m-%d %H:%M"]},
        },
    }
)
SOLD = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")


def write_csv(path: Path, amounts: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["order", "email", "amount", "sold_at"])
        for n, amount in enumerate(amounts):
            out.writerow([f"ord-{n}", f"shopper{n}@example.com", amount, SOLD])


def report_rows(path: str | None) -> list[dict[str, str]]:
    assert path
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_money_cells_read_two_ways_are_refused_per_row_and_the_rest_queued(tmp_path: Path) -> None:
    amounts = ["12,50", "12.50", "$1,234.50", "+44 20 7946 0958", "1.234,50 €"]
    write_csv(tmp_path / "crm.csv", amounts)
    outbox = SQLiteOutbox(tmp_path / "o.db")
    try:
        summary = Importer(CONFIG, MAPPING, outbox).run(tmp_path / "crm.csv", state_dir=tmp_path / "state")
        values = {r.conversion_id: r.body["value"] for r in outbox.rows()}
    finally:
        outbox.close()
    assert values == {"ord-0": 12.5, "ord-4": 1234.5}  # never 1250.0, 1.2345 or 442079460958
    assert summary.counts["rejected"] == 3
    report = report_rows(summary.report)
    assert [(r["row"], r["field"]) for r in report] == [("2", "amount"), ("3", "amount"), ("4", "amount")]
    assert "decimal separator" in report[0]["reason"] and "phone number" in report[2]["reason"]


def test_a_row_refused_alike_by_every_destination_gets_each_reason_once(tmp_path: Path) -> None:
    """With two destinations, an unusable e-mail was two identical lines that named no destination."""
    events = {"purchase": f"tw-{PIXEL}-o87ne"}
    two = parse_config(
        {
            "destinations": [
                {"name": "x-main", "pixel_id": PIXEL, "events": events},
                {"name": "x-copy", "pixel_id": PIXEL, "events": events},
            ]
        }
    )
    (tmp_path / "crm.csv").write_text(f"order,email,amount,sold_at\nord-1,not an address,12,{SOLD}\n")
    summary = Importer(two, MAPPING, None).run(tmp_path / "crm.csv", state_dir=tmp_path / "state")
    assert [(r["row"], r["field"]) for r in report_rows(summary.report)] == [
        ("1", "identifiers"),
        ("1", "user.email"),
    ]


def test_a_second_import_of_a_file_while_the_first_runs_is_refused_naming_it(tmp_path: Path) -> None:
    """Two at once wrote one checkpoint and one report: one ended in 'checkpoint.json.tmp: No such file'."""
    write_csv(tmp_path / "crm.csv", ["12,50"])
    state = tmp_path / "state"
    first = Importer(CONFIG, MAPPING, None).run(tmp_path / "crm.csv", state_dir=state)
    assert first.report
    lock = Path(first.report.removesuffix(".report.csv") + ".lock")
    outbox = SQLiteOutbox(tmp_path / "o.db")
    try:
        with (
            held(lock, "crm.csv"),
            pytest.raises(FileError, match=r"crm\.csv: another import of this file is running \(pid \d+\)"),
        ):
            Importer(CONFIG, MAPPING, outbox).run(tmp_path / "crm.csv", state_dir=state)
        assert outbox.rows() == []
        assert (
            Importer(CONFIG, MAPPING, outbox).run(tmp_path / "crm.csv", state_dir=state).counts["queued"] == 1
        )
    finally:
        outbox.close()


def test_a_value_of_1e20_refuses_its_row_and_the_import_goes_on(tmp_path: Path) -> None:
    stamp = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    events = [
        {"event_name": "purchase", "id": f"j-{n}", "value": 10, "user": {"email": f"j{n}@example.com"}}
        for n in range(6)
    ]
    events[2]["value"] = 1e20
    events[4]["value"] = 2**70
    text = "\n".join(json.dumps({**e, "context": {"event_timestamp": stamp}}) for e in events) + "\n"
    (tmp_path / "events.jsonl").write_text(text)
    outbox = SQLiteOutbox(tmp_path / "o.db")
    try:
        importer = Importer(CONFIG, parse_column_mapping({}), outbox, chunk_rows=3)
        summary = importer.run(tmp_path / "events.jsonl", state_dir=tmp_path / "state")
        queued = sorted(r.conversion_id for r in outbox.rows())
    finally:
        outbox.close()
    assert queued == ["j-0", "j-1", "j-3", "j-5"]
    assert summary.counts["rejected"] == 2 and summary.rows == 6
    assert [(r["row"], r["field"]) for r in report_rows(summary.report)] == [("3", "value"), ("5", "value")]


def test_a_dry_run_shows_a_sample_of_parsed_money_and_dates(tmp_path: Path) -> None:
    write_csv(tmp_path / "crm.csv", ["12,50", "1.234,50 €", "12,50", "oops"])
    summary = Importer(CONFIG, MAPPING, None).run(tmp_path / "crm.csv", state_dir=tmp_path / "state")
    assert summary.samples["amount"] == [("12,50", "12.50"), ("1.234,50 €", "1,234.50 EUR")]
    assert summary.samples["sold_at"] == [(SOLD, SOLD.replace(" ", "T") + ":00Z")]
    assert "email" not in summary.samples  # personal columns are never shown
    assert summary.as_json()["samples"]["amount"][0] == ["12,50", "12.50"]
