"""The shipped CRM example imports as the README shows: French phones read as French numbers, store sales
sent to the store destination only."""

from __future__ import annotations

import hashlib
from pathlib import Path

from xgate.config import load_config
from xgate.offline import Importer, load_column_mapping
from xgate.outbox import open_outbox

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_crm_export_hashes_french_phones_as_french_numbers(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "xgate.toml")
    assert config.identity.default_region == "US"  # the mapping's own region must win for this file
    storage = config.storage.model_copy(update={"url": f"sqlite:///{tmp_path / 'outbox.db'}"})
    # the file's sales are dated November 2026: keep them within X's window whenever this runs
    x = config.x.model_copy(update={"max_conversion_age_days": 36500})
    config = config.model_copy(update={"storage": storage, "x": x})
    mapping = load_column_mapping(EXAMPLES / "crm-mapping.toml")
    outbox = open_outbox(config.storage.url, config.storage)
    try:
        summary = Importer(config, mapping, outbox).run(
            EXAMPLES / "crm-export.csv", state_dir=tmp_path / "state"
        )
        rows = outbox.lease(100, 60)
    finally:
        outbox.close()
    # SO-1004 has no identifier and SO-1005 is a refund, which the mapping does not take
    assert summary.counts == {"queued": 3, "rejected": 2}, summary.counts
    by_order = {row.conversion_id: row for row in rows}
    assert {row.destination for row in rows} == {"x-stores"}  # store sales are not web sales as well
    phones = [
        i["hashed_phone_number"]
        for i in by_order["SO-1001"].body["identifiers"]
        if "hashed_phone_number" in i
    ]
    assert phones == [hashlib.sha256(b"+33612345678").hexdigest()]
    uk = [
        i["hashed_phone_number"]
        for i in by_order["SO-1002"].body["identifiers"]
        if "hashed_phone_number" in i
    ]
    assert uk == [hashlib.sha256(b"+442079460958").hexdigest()]  # a number with its country code stays so
