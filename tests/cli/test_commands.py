"""The command line: map (dry run), config check, send, status and dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xgate.cli import app
from xgate.cli.output import EXIT_CONFIG
from xgate.config import ConfigError, load_config, parse_config
from xgate.mapping import Mapper
from xgate.outbox import LeasedRow, Outbox, open_outbox
from xgate.testing import OutboxFactory, RunningSandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "xgate.toml"
PURCHASE = ROOT / "examples" / "purchase.json"
runner = CliRunner()


def test_map_prints_the_exact_body_per_destination_as_json() -> None:
    result = runner.invoke(app, ["map", str(PURCHASE), "--config", str(EXAMPLE_CONFIG), "--json"])
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    assert (item["destination"], item["pixel_id"]) == ("x-main", "o8z6j")
    [conversion] = item["body"]["conversions"]
    assert conversion["event_id"] == "tw-o8z6j-o87ne" and conversion["price_currency"] == "EUR"
    assert "ada.lovelace" not in result.stdout.lower()


def test_map_pretty_output_names_pixel_and_endpoint() -> None:
    result = runner.invoke(app, ["map", str(PURCHASE), "--config", str(EXAMPLE_CONFIG)])
    assert result.exit_code == 0, result.output
    assert "https://ads-api.x.com/12/measurement/conversions/o8z6j" in result.stdout


def test_map_an_invalid_event_exits_1_naming_the_fields(tmp_path: Path) -> None:
    event = tmp_path / "bad.json"
    event.write_text(
        json.dumps(
            {"event_name": "purchase", "value": "lots", "context": {"page_url": "https://shop.example.com/"}}
        )
    )
    result = runner.invoke(app, ["map", str(event), "--config", str(EXAMPLE_CONFIG)])
    assert result.exit_code == 1
    assert "value" in result.output


def test_map_calls_a_value_of_1e20_invalid_and_warns_of_a_dropped_item_price(tmp_path: Path) -> None:
    purchase = json.loads(PURCHASE.read_text())
    events = tmp_path / "events.json"
    events.write_text(
        json.dumps(
            [
                {**purchase, "value": 1e20},
                {**purchase, "items": [{"id": "sku-1", "price": "price on request"}]},
            ]
        )
    )
    result = runner.invoke(app, ["map", str(events), "--config", str(EXAMPLE_CONFIG)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    problems = result.output.split("error: invalid events", 1)[1]
    assert "event 0 → x-main: value: must be a number from 0 to 1,000,000,000,000" in problems
    assert "event 1" not in problems  # its unusable item price is a warning: the conversion is kept
    assert "event 1 → x-main: items.0.price" in result.output


def test_map_refuses_text_that_is_not_json(tmp_path: Path) -> None:
    event = tmp_path / "bad.json"
    event.write_text("{nope")
    result = runner.invoke(app, ["map", str(event), "--config", str(EXAMPLE_CONFIG)], env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "not valid JSON" in result.output


def test_config_check_accepts_the_example() -> None:
    result = runner.invoke(app, ["config", "check", "--config", str(EXAMPLE_CONFIG)])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output


def test_config_check_explains_every_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "xgate.toml"
    bad.write_text(
        '[x]\napi_url = "ads-api.x.com"\n[server]\nprot = 8080\n'
        '[[destinations]]\nname = "x"\npixel_id = "O8Z6J"\nevents = { purchase = "tw-zz-1" }\n'
    )
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == EXIT_CONFIG
    for needle in ("x.api_url", "server.prot", "unknown setting", "destinations[0](x).pixel_id", "base-36"):
        assert needle in result.output


def test_config_check_warns_on_dpa_gaps_and_missing_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET"):
        monkeypatch.delenv(f"XGATE_X_{name}", raising=False)
    cfg = tmp_path / "xgate.toml"
    cfg.write_text(
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\ndpa = true\nevents = { purchase = "o87ne" }\n'
    )
    result = runner.invoke(app, ["config", "check", "--config", str(cfg)], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "page_view, view_item, add_to_cart" in result.output
    assert "XGATE_X_CONSUMER_KEY" in result.output


def test_send_delivers_to_the_sandbox(tmp_path: Path, sandbox: RunningSandbox) -> None:
    cfg = tmp_path / "xgate.toml"
    cfg.write_text(
        f'[x]\napi_url = "{sandbox.url}"\n'
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "tw-o8z6j-o87ne" }\n'
    )
    event = tmp_path / "e.json"
    event.write_text(
        json.dumps({"event_name": "purchase", "id": "cli-1", "user": {"email": "a@example.com"}})
    )
    result = runner.invoke(app, ["send", str(event), "--config", str(cfg), "--json"], env=sandbox.env)
    assert result.exit_code == 0, result.output
    [answer] = json.loads(result.stdout)
    assert answer["outcome"] == "delivered" and answer["debug_id"]
    assert [c["conversion_id"] for c in sandbox.conversions()] == ["cli-1"]


def dead_letters(
    tmp_path: Path, outbox_factory: OutboxFactory, ids: list[str], error: str
) -> tuple[Path, Outbox, list[LeasedRow]]:
    """xgate.toml over ``outbox_factory``'s outbox, and in it a purchase per id (a@example.com's), dead
    with ``error``."""
    cfg = tmp_path / "xgate.toml"
    cfg.write_text(
        f'[storage]\nurl = "{outbox_factory.url}"\n'
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    mapper = Mapper(load_config(cfg))
    box = outbox_factory()
    events = [{"event_name": "purchase", "id": i, "user": {"email": "a@example.com"}} for i in ids]
    box.enqueue([c for e in events for c in mapper.map(e).conversions])
    rows = box.lease(len(ids), 60)
    box.mark_dead([r.id for r in rows], rows[0].lease_token, error)
    return cfg, box, rows


def test_status_and_dead_letters(tmp_path: Path, outbox_factory: OutboxFactory) -> None:
    cfg, box, (row,) = dead_letters(
        tmp_path, outbox_factory, ["d-1"], "HTTP 403; FORBIDDEN: no access to the ad account"
    )
    box.close()

    status = runner.invoke(app, ["status", "--config", str(cfg), "--json"])
    assert json.loads(status.stdout)["totals"]["dead"] == 1
    listing = runner.invoke(app, ["dlq", "list", "--config", str(cfg)], env={"COLUMNS": "300"})
    assert "FORBIDDEN" in listing.output and "d-1" in listing.output
    shown = runner.invoke(app, ["dlq", "show", str(row.id), "--config", str(cfg)])
    assert "hashed_email" in shown.output and "a@example.com" not in shown.output
    replay = runner.invoke(app, ["dlq", "replay", "--all", "--config", str(cfg)])
    assert "replayed 1" in replay.output
    assert (
        json.loads(runner.invoke(app, ["status", "--config", str(cfg), "--json"]).stdout)["totals"]["queued"]
        == 1
    )


def test_dlq_discard_deletes_dead_letters_for_good(tmp_path: Path, outbox_factory: OutboxFactory) -> None:
    cfg, box, rows = dead_letters(tmp_path, outbox_factory, [f"d-{i}" for i in range(3)], "HTTP 400")

    neither = runner.invoke(app, ["dlq", "discard", "--config", str(cfg)])
    assert neither.exit_code == 2 and "error: IDS: missing argument: give dead letter ids" in neither.output
    one = runner.invoke(app, ["dlq", "discard", str(rows[0].id), "999", "--config", str(cfg)])
    assert one.exit_code == 0, one.output
    assert "discarded 1 dead letter(s)" in one.output and "1 id(s) were not dead letters" in one.output
    assert box.row(rows[0].id) is None
    rest = runner.invoke(app, ["dlq", "discard", "--all", "--config", str(cfg)])
    assert "discarded 2 dead letter(s)" in rest.output
    assert box.stats().counts.get(("x", "dead"), 0) == 0


@pytest.mark.parametrize(
    "command", [["status"], ["activity"], ["dlq", "list"], ["dlq", "show", "1"], ["dlq", "replay", "--all"]]
)
def test_read_only_commands_run_elsewhere_find_the_outbox_beside_the_config_or_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    cfg = site / "xgate.toml"
    cfg.write_text(
        '[storage]\nurl = "sqlite:///var/xgate.db"\n'
        '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    missing = runner.invoke(app, [*command, "--config", str(cfg)], env={"COLUMNS": "300"})
    assert missing.exit_code == EXIT_CONFIG
    assert f"error: no outbox at {site / 'var' / 'xgate.db'} (sqlite)" in missing.output
    assert not (elsewhere / "var").exists() and not (site / "var").exists()  # nothing created anywhere
    created = open_outbox(load_config(cfg).storage.url)  # as `xgate serve` run from the site's folder does
    created.close()
    found = runner.invoke(app, [*command, "--config", str(cfg)], env={"COLUMNS": "300"})
    assert "no outbox" not in found.output
    assert not (elsewhere / "var").exists()


ONE_DESTINATION = '[[destinations]]\nname = "x"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
ONE_DESTINATION_DATA = {"destinations": [{"name": "x", "pixel_id": "o8z6j", "events": {"purchase": "o87ne"}}]}


def test_relative_storage_paths_are_read_from_the_config_files_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "xgate.toml"
    cfg.parent.mkdir()
    cfg.write_text('[storage]\nurl = "sqlite:///../data/xgate.db"\nstate_dir = "state"\n' + ONE_DESTINATION)
    storage = load_config(cfg).storage
    assert storage.url == f"sqlite:///{tmp_path / 'data' / 'xgate.db'}"
    assert storage.state_dir == tmp_path / "conf" / "state"
    cfg.write_text(f'[storage]\nurl = "sqlite:////abs/x.db"\nstate_dir = "{tmp_path}/s"\n' + ONE_DESTINATION)
    assert (load_config(cfg).storage.url, load_config(cfg).storage.state_dir) == (
        "sqlite:////abs/x.db",
        tmp_path / "s",
    )
    cfg.write_text(ONE_DESTINATION)  # the defaults too
    assert load_config(cfg).storage.url == f"sqlite:///{tmp_path / 'conf' / 'var' / 'xgate.db'}"


def test_embedded_defaults_keep_paths_relative_to_the_working_directory() -> None:
    assert parse_config(ONE_DESTINATION_DATA).storage.url == "sqlite:///var/xgate.db"


def test_a_node_id_must_be_a_plain_name() -> None:
    assert (
        parse_config({"server": {"node_id": "gw-1.eu"}, **ONE_DESTINATION_DATA}).server.node_id == "gw-1.eu"
    )
    with pytest.raises(ConfigError, match=r"server\.node_id"):
        parse_config({"server": {"node_id": "two words"}, **ONE_DESTINATION_DATA})
