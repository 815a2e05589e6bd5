"""No raw e-mail or phone by a side door: error texts never quote one, the fields X receives in clear never
carry one, and ``config check`` refuses overrides that would put one there (docs/security.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mappingkit import NOW, config, purchase

from xgate.config import ConfigError, load_config
from xgate.conversion import FieldError
from xgate.events import InvalidEvent
from xgate.mapping import Mapper
from xgate.observe.redact import excerpt
from xgate.offline import Importer, load_column_mapping
from xgate.outbox import open_outbox

EMAIL = "jane.doe@example.test"
PHONE = "+44 20 7946 0958"


def mapped(event: dict[str, Any], **destination: Any) -> Any:
    return Mapper(config(**destination)).map(event, now=NOW, received_at=NOW)


def all_text(result: Any) -> str:
    return repr(result) + "".join(repr(c.body) + repr(c.warnings) for c in result.conversions)


# -- error texts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [EMAIL, EMAIL.upper(), PHONE])
def test_a_refused_currency_never_quotes_an_email_or_phone(value: str) -> None:
    result = mapped(purchase(value=10, currency=value))
    [rejection] = result.rejections
    assert [e.field for e in rejection.errors] == ["price_currency"]
    text = str(rejection.errors[0])
    assert "jane" not in text.lower() and "7946" not in text
    assert "ISO 4217" in text


def test_a_huge_bad_value_is_quoted_as_a_short_excerpt_and_its_length() -> None:
    result = mapped(purchase(value=10, currency="X" * 990_000))
    [error] = result.rejections[0].errors
    assert len(error.reason) < 120
    assert "990000 characters" in error.reason


def test_a_bad_timestamp_is_not_echoed() -> None:
    with pytest.raises(InvalidEvent) as raised:
        Mapper(config()).map(purchase(context={"event_timestamp": f"on {EMAIL}"}), now=NOW)
    [error] = raised.value.errors
    assert error.field == "context.event_timestamp"
    assert "jane" not in str(error).lower()


def test_every_field_error_is_scrubbed_and_bounded_whoever_formed_it() -> None:
    error = FieldError(f"user.{EMAIL}", f"could not read {PHONE} or {EMAIL}" + "!" * 5000)
    assert "jane" not in str(error).lower() and "7946" not in str(error)
    assert len(error.reason) <= 300 and len(error.field) <= 200


@pytest.mark.parametrize(
    ("value", "shown"),
    [("EUR", "'EUR'"), (EMAIL, "[redacted]"), (PHONE, "[redacted]"), ("x" * 50, "(50 characters)")],
)
def test_an_excerpt_shows_a_short_value_and_never_an_email_or_phone(value: str, shown: str) -> None:
    assert shown in excerpt(value)
    assert "@" not in excerpt(value)


# -- clear-text fields sent to X ---------------------------------------------------------------------
@pytest.mark.parametrize("event_id", [EMAIL, f"order-for-{EMAIL}", PHONE])
def test_an_event_id_holding_an_email_or_phone_is_refused_and_not_quoted(event_id: str) -> None:
    result = mapped(purchase(id=event_id))
    assert not result.conversions
    [error] = result.rejections[0].errors
    assert error.field == "conversion_id"
    assert "jane" not in all_text(result).lower() and "7946" not in all_text(result)


def test_plain_order_numbers_and_product_codes_are_not_taken_for_phones() -> None:
    result = mapped(purchase(id="4155550134", items=[{"id": "4006381333931", "quantity": 1}]))
    [conversion] = result.conversions
    assert conversion.conversion_id == "4155550134"
    assert conversion.body["contents"] == [{"content_id": "4006381333931", "num_items": 1}]


def test_free_text_fields_holding_an_email_or_phone_are_dropped_with_a_warning() -> None:
    event = purchase(
        type=f"gift for {EMAIL}",
        search_term=f"call me {PHONE}",
        items=[{"id": "sku-1", "product": {"name": f"engraved {EMAIL}", "id": "sku-1"}}],
        partners={"twitter": {"twclid": EMAIL}},
    )
    [conversion] = mapped(event).conversions
    assert "description" not in conversion.body and "search_string" not in conversion.body
    assert conversion.body["contents"] == [{"content_id": "sku-1"}]
    assert "twclid" not in conversion.match_signals
    assert sorted(w.split(":")[0] for w in conversion.warnings) == [
        "contents[0].content_name",
        "description",
        "partners.twitter.twclid",
        "search_string",
    ]
    assert "jane" not in all_text(mapped(event)).lower()
    assert event["items"][0]["product"]["name"] == f"engraved {EMAIL}"  # the event itself is untouched


def test_an_override_putting_an_email_into_description_is_caught_at_mapping_time_too() -> None:
    # a path config check cannot see through (custom.*) still never reaches X raw
    result = mapped(purchase(custom={"note": EMAIL}), mapping={"description": {"path": "custom.note"}})
    [conversion] = result.conversions
    assert "description" not in conversion.body


# -- config check ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("description", "user.email"),
        ("conversion_id", "user.email"),
        ("twclid", "user.phone"),
        ("search_string", "user"),
        ("description", "context.ip"),
    ],
)
def test_config_check_refuses_an_override_of_personal_data_into_a_clear_text_field(
    field: str, path: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        config(mapping={field: {"path": path}})
    assert f"mapping.{field}.path" in str(raised.value)
    assert "personal data" in str(raised.value)


def test_config_check_accepts_personal_paths_into_their_identifiers_or_hashed() -> None:
    config(
        mapping={
            "email": {"path": "user.email"},
            "ip_address": {"path": "context.ip"},
            "description": {"path": "user.email", "transform": ["lower", "hash"]},
        }
    )


# -- import ------------------------------------------------------------------------------------------
def test_the_import_report_never_quotes_an_email_from_a_shifted_column(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    cfg = load_config(examples / "xgate.toml")
    cfg = cfg.model_copy(
        update={
            "storage": cfg.storage.model_copy(update={"url": f"sqlite:///{tmp_path / 'o.db'}"}),
            "x": cfg.x.model_copy(update={"max_conversion_age_days": 36500}),
        }
    )
    csv = tmp_path / "shifted.csv"
    csv.write_text(
        "order_ref;kind;email;phone;total;sold_at;click_id;consent\n"
        f"SO-1;Sale;;;{EMAIL};22/11/2026 10:30;;advertising\n"  # the e-mail slipped into total
        f"SO-2;Sale;;;12,50;{PHONE};;advertising\n"  # the phone slipped into sold_at
        f"{EMAIL};Sale;{EMAIL};;12,50;22/11/2026 10:30;;advertising\n",  # an e-mail as the order id
        encoding="utf-8",
    )
    outbox = open_outbox(cfg.storage.url, cfg.storage)
    try:
        summary = Importer(cfg, load_column_mapping(examples / "crm-mapping.toml"), outbox).run(
            csv, state_dir=tmp_path / "state"
        )
    finally:
        outbox.close()
    assert summary.counts.get("queued", 0) == 0, summary.counts
    assert summary.report is not None
    report = Path(summary.report).read_text()
    assert "total" in report and "sold_at" in report and "conversion_id" in report
    assert "jane" not in report.lower() and "7946" not in report
