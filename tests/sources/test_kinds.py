"""The source-kind framework: ``kind`` on ``[[sources]]`` and what every kind shares after converting."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from xgate.cli import app
from xgate.collect.auth import Keyring
from xgate.collect.kinds import Converted, Endpoint, Ignored, Outcome, apply_source, source_events
from xgate.config import (
    GA4Source,
    SegmentSource,
    Source,
    StripeSource,
    XgateSource,
    parse_config,
)
from xgate.errors import ConfigError

DESTINATIONS = [{"name": "x-main", "pixel_id": "o8z6j", "events": {"purchase": "tw-o8z6j-o87ne"}}]
runner = CliRunner()


def problems(*sources: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config({"sources": list(sources), "destinations": DESTINATIONS})
    return [str(p) for p in e.value.problems]


def sources(*entries: dict[str, Any]) -> list[Source]:
    return list(parse_config({"sources": list(entries), "destinations": DESTINATIONS}).sources)


def test_a_source_without_kind_is_an_xgate_source_and_each_kind_reads_as_its_class() -> None:
    got = sources(
        {"name": "web", "write_key": "k1"},
        {"name": "seg", "kind": "segment", "write_key": "k2"},
        {"name": "ga", "kind": "ga4", "measurement_ids": ["G-ABC123"]},
        {"name": "pay", "kind": "stripe", "signing_secret_env": "STRIPE_WHSEC"},
    )
    assert [type(s) for s in got] == [XgateSource, SegmentSource, GA4Source, StripeSource]
    assert [s.kind for s in got] == ["xgate", "segment", "ga4", "stripe"]


def test_an_unknown_kind_is_named_at_its_path_with_the_kinds_there_are() -> None:
    assert problems({"name": "seg", "kind": "segmnt", "write_key": "k"}) == [
        "sources[0](seg).kind: 'segmnt' is not a source kind; "
        "one of xgate, segment, ga4, shopify, woocommerce, stripe"
    ]


def test_a_webhook_source_must_name_its_signing_secret_variable_and_takes_no_write_key() -> None:
    assert problems({"name": "shop", "kind": "shopify", "write_key": "k"}) == [
        "sources[0](shop).signing_secret_env: a shopify source is authenticated by the webhook signature: "
        "name the environment variable holding the app's client secret "
        "(Shopify signs X-Shopify-Hmac-Sha256 with it)",
        "sources[0](shop).write_key: a shopify source takes no write key: webhooks are signed "
        "(signing_secret_env)",
    ]


@pytest.mark.parametrize(
    ("kind", "platform"), [("shopify", "Shopify"), ("woocommerce", "WooCommerce"), ("stripe", "Stripe")]
)
def test_a_webhook_source_takes_no_allowed_origins_as_no_browser_calls_it(kind: str, platform: str) -> None:
    """Only the platform's servers post a webhook, and collect/cors.py answers no preflight for its
    endpoint: an origin there would promise pages an access they never get."""
    source = {
        "name": "shop",
        "kind": kind,
        "signing_secret_env": "WHSEC",
        "allowed_origins": ["https://a.example"],
    }
    assert problems(source) == [
        f"sources[0](shop).allowed_origins: a {kind} source takes no allowed_origins: {platform}'s servers "
        "send its webhooks, never a browser, so no page may call its endpoint (xgate answers no CORS "
        "preflight there); remove the field, and give a page its own browser source"
    ]
    [taken] = sources({**source, "allowed_origins": []})  # an empty list promises nothing
    assert taken.allowed_origins == []


def test_a_ga4_source_needs_an_api_secret_or_measurement_ids() -> None:
    assert problems({"name": "ga", "kind": "ga4"}) == [
        "sources[0](ga): set write_key or write_key_env (the api_secret Measurement Protocol senders "
        "present), or measurement_ids for gtag's hits"
    ]
    assert problems({"name": "ga", "kind": "ga4", "measurement_ids": ["UA-1234-1"]})[0].startswith(
        "sources[0](ga).measurement_ids[0]: String should match pattern"
    )


def test_a_source_mapping_sets_only_xgate_event_fields_and_not_on_an_xgate_source() -> None:
    [problem] = problems({"name": "seg", "kind": "segment", "write_key": "k", "mapping": {"valu": "x"}})
    assert problem.startswith(
        "sources[0](seg).mapping.valu: not an xgate event field a source mapping can set"
    )
    assert problems({"name": "web", "write_key": "k", "mapping": {"value": "x"}}) == [
        "sources[0](web): mapping is for sources of another kind (segment, ga4, …): an xgate event already "
        "names its fields, and a destination's mapping reads any of them"
    ]
    [seg] = sources(
        {"name": "seg", "kind": "segment", "write_key": "k", "mapping": {"value": "a.b", "custom.c": "d"}}
    )
    assert seg.mapping["value"].path == "a.b" and seg.mapping["custom.c"].path == "d"


def test_a_key_opens_only_the_endpoints_of_its_sources_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(
        {
            "sources": [
                {"name": "web", "write_key": "xgate-key-1"},
                {"name": "seg", "kind": "segment", "write_key": "segment-key-1"},
            ],
            "destinations": DESTINATIONS,
        }
    )
    keys = Keyring(config, env={})
    assert keys.source_for("segment-key-1") is None  # /v1/events
    assert keys.source_for("xgate-key-1") is config.sources[0]
    assert keys.source_for("segment-key-1", ("segment",)) is config.sources[1]
    assert keys.source_for("xgate-key-1", ("segment",)) is None


def test_config_check_warns_when_a_webhook_secret_is_not_in_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "xgate.toml"
    path.write_text(
        '[[sources]]\nname = "shop"\nkind = "shopify"\nsigning_secret_env = "XGATE_TEST_SHOPIFY_SECRET"\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    args = ["config", "check", "--config", str(path)]
    unset = runner.invoke(app, args, env={"COLUMNS": "400", "XGATE_TEST_SHOPIFY_SECRET": ""})
    assert unset.exit_code == 0
    assert (
        "sources.shop: XGATE_TEST_SHOPIFY_SECRET is not set; every shopify webhook will be refused "
        "(put the app's client secret (Shopify signs X-Shopify-Hmac-Sha256 with it) in it)"
    ) in unset.output
    set_ = runner.invoke(app, args, env={"COLUMNS": "400", "XGATE_TEST_SHOPIFY_SECRET": "shpss_1"})
    assert "XGATE_TEST_SHOPIFY_SECRET" not in set_.output


def segment_source(**extra: Any) -> Source:
    [source] = sources({"name": "seg", "kind": "segment", "write_key": "k", **extra})
    return source


def test_the_idempotency_key_is_the_id_of_an_event_that_names_none() -> None:
    source = segment_source()
    event, _ = apply_source(source, Converted({"event_name": "view_item"}, {}, "msg-1"))
    assert event["id"] == "msg-1"
    event, _ = apply_source(source, Converted({"event_name": "purchase", "id": "ord-1"}, {}, "msg-2"))
    assert event["id"] == "ord-1"


def test_a_source_mapping_reads_the_payload_and_a_missing_path_keeps_the_kinds_value() -> None:
    source = segment_source(
        mapping={
            "value": {"path": "properties.gross", "transform": ["number"]},
            "user.phone": "properties.contact.phone",
            "type": {"const": "web shop"},
            "currency": "properties.absent",
        }
    )
    payload = {"properties": {"gross": "19,90", "contact": {"phone": "+1 415 555 0100"}}}
    event, errors = apply_source(
        source, Converted({"event_name": "purchase", "value": 10, "currency": "EUR", "user": {}}, payload)
    )
    assert errors == []
    assert event == {
        "event_name": "purchase",
        "value": 19.9,
        "currency": "EUR",
        "type": "web shop",
        "user": {"phone": "+1 415 555 0100"},
    }


def test_a_source_mapping_that_cannot_apply_names_the_source_and_field() -> None:
    source = segment_source(mapping={"value": {"path": "properties.gross", "transform": ["number"]}})
    _, [error] = apply_source(source, Converted({"event_name": "purchase"}, {"properties": {"gross": "n/a"}}))
    assert error.field == "sources.seg.mapping.value"
    assert "cannot apply ['number']" in error.reason


class _TwoPerMessage:
    """A kind whose every message makes two events with the message's key, then one it ignores."""

    name: ClassVar[str] = "segment"
    endpoints: ClassVar[tuple[Endpoint, ...]] = ()
    event_names: ClassVar[Mapping[str, str]] = {"Thing Done": "generate_lead"}

    def convert(self, message: Any, names: Mapping[str, str]) -> list[Outcome]:
        name = names.get(message["event"], message["event"])
        return [
            Converted({"event_name": name}, message, message["id"]),
            Converted({"event_name": name}, message, message["id"]),
            Ignored(message["event"], "nothing to send"),
        ]


def test_source_events_keep_order_number_repeated_keys_and_rename_by_the_sources_table() -> None:
    source = segment_source(event_names={"Other Thing": "sign_up"})
    got = source_events(
        _TwoPerMessage(),  # type: ignore[arg-type]
        source,
        [{"event": "Thing Done", "id": "m1"}, {"event": "Other Thing", "id": "m2"}],
    )
    assert [(e.event or {}).get("id") for e in got] == ["m1", "m1#2", None, "m2", "m2#2", None]
    assert [(e.event or {}).get("event_name") for e in got] == [
        "generate_lead",
        "generate_lead",
        None,
        "sign_up",
        "sign_up",
        None,
    ]
    assert [e.ignored for e in got][2] == "nothing to send"
