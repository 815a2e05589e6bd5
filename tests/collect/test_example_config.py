"""The shipped examples/xgate.toml takes the README's own examples: the backend purchase of docs/backend.md,
sent with the documented client, is queued for x-main (not skipped by a filter meant for web pages)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from gatewaykit import serve

from xgate.client import GatewayClient
from xgate.collect.app import create_app
from xgate.config import load_config
from xgate.outbox import open_outbox

ROOT = Path(__file__).resolve().parents[2]
BACKEND_KEY = "wk-backend-example-1f9c"


def documented_backend_event() -> dict[str, Any]:
    """The event docs/backend.md passes to ``client.track(...)``, with its placeholders filled."""
    text = (ROOT / "docs" / "backend.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block, "docs/backend.md lost its first Python example"
    call = next(
        node
        for node in ast.walk(ast.parse(block.group(1)))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "client.track"
    )
    placeholders = {
        "request_ip": "203.0.113.7",
        "request_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "twclid_from_cookie": "26lcmdh1r7tx6y0ru2rgbaa2k",
    }
    event: dict[str, Any] = eval(compile(ast.Expression(call.args[0]), "backend.md", "eval"), placeholders)
    return event


def test_the_documented_backend_purchase_is_accepted_for_x_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(ROOT / "examples" / "xgate.toml")
    backend = next(s for s in config.sources if s.name == "backend")
    assert backend.write_key_env
    monkeypatch.setenv(backend.write_key_env, BACKEND_KEY)
    storage = config.storage.model_copy(update={"url": f"sqlite:///{tmp_path / 'outbox.db'}"})
    dispatch = config.dispatch.model_copy(update={"enabled": False})
    config = config.model_copy(update={"storage": storage, "dispatch": dispatch})
    outbox = open_outbox(config.storage.url, config.storage)
    event = documented_backend_event()
    assert event["event_name"] == "purchase" and "page_url" not in event.get("context", {})
    try:
        with serve(create_app(config, outbox)) as url, GatewayClient(url, BACKEND_KEY) as client:
            [result] = client.send(event)
        queued = outbox.rows(destination="x-main")
    finally:
        outbox.close()
    assert result.status == "accepted", result
    assert [row.conversion_id for row in queued] == [event["id"]]
