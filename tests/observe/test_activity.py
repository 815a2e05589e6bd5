"""The activity log, its page and its CLI table, from a real outbox (each engine) and the real mapper."""

from __future__ import annotations

import json
import time
from dataclasses import fields
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from xgate.cli import app as cli
from xgate.cli.output import EXIT_CONFIG
from xgate.cli.serve import activity_table
from xgate.config import Config, parse_config
from xgate.conversion import FieldError
from xgate.mapping import Mapper
from xgate.observe import ActivityLog, MeteredOutbox, Metrics, RejectionLog
from xgate.observe.activity import ActivityEntry, signals_text
from xgate.outbox.base import Outbox
from xgate.testing import OutboxFactory

PIXEL = "o8z6j"


@pytest.fixture
def config(outbox_factory: OutboxFactory) -> Config:
    return parse_config(
        {
            "storage": {"url": outbox_factory.url},
            "destinations": [
                {"name": "x-a", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}},
                {"name": "x-b", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87nf"}},
            ],
        }
    )


def queue(config: Config, outbox: Outbox, order: str, **user: str) -> None:
    event = {
        "event_name": "purchase",
        "id": order,
        "user": user or {"email": "a@example.com"},
        "partners": {"twitter": {"twclid": "26abc"}},
    }
    outbox.enqueue(Mapper(config).map(event).conversions)


def test_conversions_show_destination_signals_and_state(config: Config, outbox: Outbox) -> None:
    queue(config, outbox, "ord-1")
    entries = ActivityLog(outbox).recent(10)
    assert {(e.destination, e.conversion_id, e.state) for e in entries} == {
        ("x-a", "ord-1", "queued"),
        ("x-b", "ord-1", "queued"),
    }
    assert all(set(e.match_signals) == {"twclid", "email"} for e in entries)


def test_conversions_name_the_source_they_came_from(config: Config, outbox: Outbox) -> None:
    """As ``xgate activity --json`` and ``GET /v1/activity`` document ``source``, and the console shows it."""
    conversions = Mapper(config).map({"event_name": "purchase", "id": "ord-s", "user": {"email": "a@b.co"}})
    for c in conversions.conversions:
        c.source = "backend"
    outbox.enqueue(conversions.conversions)
    assert {e.source for e in ActivityLog(outbox).recent(10)} == {"backend"}


def test_rejections_keep_field_and_reason_newest_first_for_every_reader_of_the_outbox(
    outbox_factory: OutboxFactory,
) -> None:
    log = RejectionLog(outbox_factory(node_id="node-a"), flush_seconds=0.01)
    for i in range(5):
        log.add("web", f"purchase-{i}", [FieldError("user.email", "not an e-mail: bob@example.com")], at=i)
    log.close()  # written
    recent = ActivityLog(outbox_factory(node_id="node-b")).recent(3)
    assert [e.event_name for e in recent] == ["purchase-4", "purchase-3", "purchase-2"]
    assert recent[0].error == "user.email: not an e-mail: [redacted]"
    assert (recent[0].state, recent[0].source) == ("rejected", "web")


def test_delivery_outcomes_are_counted_per_destination(config: Config, outbox: Outbox) -> None:
    metrics = Metrics(outbox)
    metered = MeteredOutbox(outbox, metrics)
    queue(config, metered, "ord-2")
    leased = metered.lease(10, 60)
    a = [r for r in leased if r.destination == "x-a"]
    b = [r for r in leased if r.destination == "x-b"]
    metered.mark_delivered([r.id for r in a], a[0].lease_token, "dbg-42")
    metered.mark_dead([r.id for r in b], b[0].lease_token, "400 invalid event id")
    assert metrics.value("xgate_deliveries_total", destination="x-a", outcome="delivered") == 1
    assert metrics.value("xgate_deliveries_total", destination="x-b", outcome="dead") == 1
    states = {e.destination: (e.state, e.debug_id, e.error) for e in ActivityLog(metered).recent(10)}
    assert states["x-a"] == ("delivered", "dbg-42", None)
    assert states["x-b"][0] == "dead"
    assert "invalid event id" in str(states["x-b"][2])
    text = metrics.render().decode()
    assert 'xgate_outbox_rows{destination="x-a",state="delivered"} 1.0' in text


def test_metrics_count_what_the_outbox_settled_not_the_ids_handed_in(config: Config, outbox: Outbox) -> None:
    metrics = Metrics(outbox)
    metered = MeteredOutbox(outbox, metrics)
    queue(config, metered, "ord-3")
    queue(config, metered, "ord-4")
    now = time.time()
    stale = [r for r in metered.lease(10, 30, now=now) if r.destination == "x-a"]
    # the lease expires and another holder takes the rows: the stale holder settles nothing
    fresh = [r for r in metered.lease(10, 30, now=now + 31) if r.destination == "x-a"]
    assert metered.mark_delivered([r.id for r in stale], stale[0].lease_token, "late", now=now + 32) == 0
    assert metrics.value("xgate_deliveries_total", destination="x-a", outcome="delivered") in (None, 0)
    token = fresh[0].lease_token
    assert metered.mark_delivered([fresh[0].id], token, "dbg", now=now + 32) == 1
    assert metered.mark_delivered([r.id for r in fresh], token, "dbg", now=now + 32) == 1  # one was settled
    assert metrics.value("xgate_deliveries_total", destination="x-a", outcome="delivered") == 2


def test_the_activity_command_prints_a_table(config: Config, outbox: Outbox, tmp_path: Path) -> None:
    queue(config, outbox, "ord-cli")
    toml = tmp_path / "xgate.toml"
    toml.write_text(
        f'[storage]\nurl = "{config.storage.url}"\n[[destinations]]\nname = "x-a"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne" }}\n'
    )
    result = CliRunner().invoke(
        cli, ["activity", "--config", str(toml), "--limit", "5"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "ord-cli" in result.output
    assert "queued" in result.output


def _activity_toml(config: Config, tmp_path: Path) -> Path:
    toml = tmp_path / "xgate.toml"
    toml.write_text(
        f'[storage]\nurl = "{config.storage.url}"\n[[destinations]]\nname = "x-a"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne" }}\n'
    )
    return toml


def test_match_signals_read_as_text_an_absent_one_marked_with_a_minus() -> None:
    assert signals_text(("email", "twclid")) == "twclid email -phone -ip_ua"
    assert signals_text(()) == "-twclid -email -phone -ip_ua"


def test_the_activity_table_fits_80_columns_and_says_everything_in_plain_text() -> None:
    entries = [
        ActivityEntry(
            at=0,
            event_name="purchase",
            state="delivered",
            destination="x-main",
            conversion_id="ord-1",
            match_signals=("twclid", "email"),
            attempts=1,
            debug_id="9f3a6c1d2e4b5a60",
        ),
        ActivityEntry(
            at=0,
            event_name="sign_up",
            state="dead",
            destination="x-main",
            conversion_id="ord-2",
            match_signals=("phone",),
            attempts=5,
            error="HTTP 401; UNAUTHORIZED: the credentials were refused by X",
        ),
        ActivityEntry(
            at=0, event_name="purchase", state="rejected", source="web", error="value: not a number"
        ),
    ]
    out = StringIO()
    Console(file=out, width=80, color_system=None).print(activity_table(entries))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    words = out.getvalue().split()
    # every signal is a word of its own, an absent one with its minus (no colour or strike-through needed)
    for present, absent in ((["twclid", "email"], ["-phone", "-ip_ua"]), (["phone"], ["-twclid", "-email"])):
        assert all(w in words for w in present + absent)
    for text in ("ord-1", "ord-2", "9f3a6c1d2e4b5a60", "delivered,", "dead,", "5 tries", "from web"):
        assert text in out.getvalue(), text
    # the error is all there, wrapped, not cut
    assert "UNAUTHORIZED: the credentials were refused by X" in " ".join(words)
    assert "value: not a number" in " ".join(words)


def test_the_activity_command_at_80_columns(config: Config, outbox: Outbox, tmp_path: Path) -> None:
    queue(config, outbox, "ord-80")
    result = CliRunner().invoke(
        cli, ["activity", "--config", str(_activity_toml(config, tmp_path))], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "ord-80" in result.stdout
    assert [w for w in result.stdout.split() if w.lstrip("-") in {"twclid", "email", "phone", "ip_ua"}][
        :4
    ] == ["twclid", "email", "-phone", "-ip_ua"]


def test_activity_json_is_a_list_of_entries_named_as_the_http_api_names_them(
    config: Config, outbox: Outbox, tmp_path: Path
) -> None:
    queue(config, outbox, "ord-json")
    result = CliRunner().invoke(
        cli, ["activity", "--config", str(_activity_toml(config, tmp_path)), "--json"]
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert isinstance(entries, list) and len(entries) == 2  # one per destination
    assert {e["destination"] for e in entries} == {"x-a", "x-b"}
    entry = entries[0]
    assert set(entry) == {f.name for f in fields(ActivityEntry)}
    assert entry["conversion_id"] == "ord-json" and entry["state"] == "queued"
    assert entry["match_signals"] == ["twclid", "email"] and entry["event_name"] == "purchase"
    assert isinstance(entry["at"], float) and entry["attempts"] == 0


def test_activity_json_of_an_empty_outbox_is_an_empty_list(
    config: Config, outbox: Outbox, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli, ["activity", "--config", str(_activity_toml(config, tmp_path)), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_the_activity_command_explains_a_bad_config(tmp_path: Path) -> None:
    toml = tmp_path / "xgate.toml"
    toml.write_text('[server]\nport = "eighty"\n')
    result = CliRunner().invoke(cli, ["activity", "--config", str(toml)])
    assert result.exit_code == EXIT_CONFIG
    assert "server.port" in result.output
