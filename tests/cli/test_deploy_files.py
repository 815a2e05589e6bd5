"""The files docs/deploy.md tells a user to copy work together: the configuration is valid, every secret it
names is in the example secrets file, and the proxy's limits are the gateway's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from xgate.cli.output import EXIT_CONFIG, EXIT_TEMPFAIL, EXIT_USAGE
from xgate.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("xgate-serve@.service", "xgate-dispatch.service")


def _service(unit: str, section: str = "Service") -> dict[str, list[str]]:
    """The settings of one section of a unit: each key's values in order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    current = ""
    for line in (DEPLOY / "systemd" / unit).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line
        elif current == f"[{section}]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_deploy_configuration_is_valid_and_the_secrets_file_names_every_secret_it_reads() -> None:
    config = load_config(DEPLOY / "xgate.toml")
    url = urlsplit(config.storage.url)
    assert url.scheme == "postgresql" and url.password is None  # the password is PGPASSWORD
    assert (config.server.host, config.server.trust_forwarded) == ("127.0.0.1", True)
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (DEPLOY / "secrets.env.example").read_text(), re.M))
    read = {s.write_key_env for s in config.sources if s.write_key_env} | {config.server.admin_key_env}
    read |= {"PGPASSWORD"} | {
        f"{d.credentials_env_prefix}{name}"
        for d in config.destinations
        for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
    }
    assert read == listed


def test_the_proxy_refuses_what_the_gateway_would_and_passes_the_client_address() -> None:
    config = load_config(DEPLOY / "xgate.toml")
    proxy = (DEPLOY / "nginx" / "xgate.conf").read_text()
    (limit,) = re.findall(r"client_max_body_size (\d+);", proxy)
    assert int(limit) == config.server.max_body_bytes
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in proxy
    # a slow client is cut off by the proxy no later than by the gateway
    (header,) = re.findall(r"client_header_timeout (\d+)s;", proxy)
    (body,) = re.findall(r"client_body_timeout (\d+)s;", proxy)
    assert int(header) <= config.server.header_timeout_seconds
    assert int(body) <= config.server.body_timeout_seconds


def test_the_proxy_runs_on_debians_nginx_and_does_not_mix_the_nodes_metrics() -> None:
    proxy = (DEPLOY / "nginx" / "xgate.conf").read_text()
    # bookworm's nginx 1.22 stops at `http2 on;` (unknown directive): http2 goes on the listen line
    assert not re.search(r"^\s*http2 on;", proxy, re.M)
    # each node's counters are its own: a scrape through the load-balanced upstream gets a random node's
    (metrics,) = re.findall(r"location = /metrics \{([^}]*)\}", proxy)
    assert "proxy_pass" not in metrics
    assert not re.search(r"location ~ [^{]*metrics", proxy)


def test_when_no_node_answers_the_proxy_says_retry_after_as_a_node_would() -> None:
    # docs/deploy.md promises clients a 503 with Retry-After while storing is impossible; nginx's own
    # answer when every node is down or marked failed is a bare 502
    proxy = (DEPLOY / "nginx" / "xgate.conf").read_text()
    assert re.search(r"error_page 502 504 = @unavailable;", proxy)
    (fallback,) = re.findall(r"location @unavailable \{([^}]*)\}", proxy)
    assert "add_header Retry-After" in fallback and "always" in fallback
    assert re.search(r"return 503 ", fallback)


def test_the_units_run_the_deploy_configuration_with_hardening() -> None:
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text()
        assert "--config /etc/xgate/xgate.toml" in text
        assert "EnvironmentFile=/etc/xgate/secrets.env" in text
        hardening = ("DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=xgate")
        for setting in hardening:
            assert setting in text, f"{unit} lost {setting}"


def test_the_units_do_not_restart_a_gateway_only_an_operator_can_fix() -> None:
    # Restart=always restarted a node with a broken configuration or an outbox of another schema version
    # every 2 s forever; a database that cannot be reached yet (75) is still worth another start
    for unit in UNITS:
        service = _service(unit)
        assert service["Restart"] == ["always"], unit
        (prevented,) = service["RestartPreventExitStatus"]
        assert set(prevented.split()) == {str(EXIT_USAGE), str(EXIT_CONFIG)}, unit
        assert str(EXIT_TEMPFAIL) not in prevented.split()
        # systemd restarts a unit whose ExecStartPre failed whatever its status (RestartPreventExitStatus=
        # reads the main process's): no command before ExecStart may fail the start
        assert all(command.startswith("-") for command in service.get("ExecStartPre", [])), unit
        # and the start limit (5 starts in 10 s by default) must not end the restarts of a database outage
        assert _service(unit, "Unit")["StartLimitIntervalSec"] == ["0"], unit


def test_every_unit_runs_as_one_user_that_owns_the_state_directory() -> None:
    # without User=, each unit's dynamic user is named after it (xgate-serve, xgate-dispatch), and systemd
    # hands the shared StateDirectory, every file in it, to the user of whichever unit starts last
    shared = ("DynamicUser", "User", "Group", "StateDirectory", "StateDirectoryMode")
    services = [_service(unit) for unit in UNITS]
    for key in shared:
        values = {tuple(service.get(key, [])) for service in services}
        assert len(values) == 1 and () not in values, (key, values)
    assert services[0]["User"] == ["xgate"] and services[0]["StateDirectory"] == ["xgate"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: a stand-in at the path of the units' copy
    program = tmp_path / "xgate"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/xgate/bin/xgate", str(program))
        (tmp_path / unit).write_text(text)
    instances = [tmp_path / "xgate-serve@8080.service", tmp_path / "xgate-dispatch.service"]
    checked = subprocess.run(
        ["systemd-analyze", "verify", *map(str, instances)], capture_output=True, text=True, timeout=120
    )
    # verify exits 0 after warnings (an unknown key, a value it cannot parse): none may be printed
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
