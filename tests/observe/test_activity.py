"""The activity log, its page and its CLI table, from a real outbox (each engine) and the real mapper."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xgate.cli import app as cli
from xgate.config import Config, parse_config
from xgate.conversion import FieldError
from xgate.mapping import Mapper
from xgate.observe import ActivityLog, MeteredOutbox, Metrics, RejectionRing
from xgate.observe.activity import ActivityEntry
from xgate.observe.page import render_activity_page
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


def test_rejections_keep_field_and_reason_newest_first_and_bounded() -> None:
    ring = RejectionRing(size=3)
    for i in range(5):
        ring.add("web", f"purchase-{i}", [FieldError("user.email", "not an e-mail: bob@example.com")], at=i)
    recent = ring.recent(10)
    assert [e.event_name for e in recent] == ["purchase-4", "purchase-3", "purchase-2"]
    assert recent[0].error == "user.email: not an e-mail: [redacted]"
    assert recent[0].state == "rejected"


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


def test_the_page_escapes_what_events_carry() -> None:
    entry = ActivityEntry(at=0, event_name="<script>alert(1)</script>", state="rejected", error="x: <b>")
    page = render_activity_page([entry])
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;" in page


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


def test_the_activity_command_explains_a_bad_config(tmp_path: Path) -> None:
    toml = tmp_path / "xgate.toml"
    toml.write_text('[server]\nport = "eighty"\n')
    result = CliRunner().invoke(cli, ["activity", "--config", str(toml)])
    assert result.exit_code == 1
    assert "server.port" in result.output
