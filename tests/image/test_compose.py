"""compose.yaml as CI can run it: PostgreSQL, `xgate db upgrade`, two gateway nodes and the sandbox, with the
secrets deploy/compose/make-secrets.sh makes; an event posted to each node reaches the sandbox.

CI has no private container network (dockerd runs without a bridge), so the test runs compose.yaml with
every service moved to the host's network, bound to 127.0.0.1 on free ports (compose cannot take published
ports away in an override file: the variant is written from compose.yaml), and the gateways' xgate.toml
names those addresses instead of the service names. Everything else (images, secrets, volumes,
healthchecks, the order of start) is compose.yaml's. PostgreSQL is ``XGATE_TEST_POSTGRES_IMAGE``
(.ci/image.sh builds one from Debian's postgresql-15 with the official image's interface:
tests/image/postgres/).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from imagekit import IMAGE, docker, inspect, needs_image, readable_by_the_image_user

from xgate.testing import free_port

# compose.yaml's nodes keep their outbox in PostgreSQL: without that engine in this tree there is nothing
# to run (the image is built from the same tree)
pytest.importorskip("xgate.outbox.postgres", reason="this tree has no PostgreSQL outbox yet (issue 11)")

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_IMAGE = os.environ.get("XGATE_TEST_POSTGRES_IMAGE", "")
COMPOSE = shutil.which("docker-compose")

pytestmark = [
    needs_image,
    pytest.mark.skipif(
        not POSTGRES_IMAGE, reason="XGATE_TEST_POSTGRES_IMAGE is not set (.ci/image.sh sets it)"
    ),
    pytest.mark.timeout(600),
]


@dataclass
class Stack:
    project: str
    files: list[Path]
    env: dict[str, str]
    ports: dict[str, int]
    write_key: str

    def compose(self, *args: str, timeout: float = 300) -> str:
        assert COMPOSE, "docker-compose is not installed (apt-get install docker-compose)"
        command = [COMPOSE, "--project-name", self.project, "--project-directory", str(ROOT)]
        for f in self.files:
            command += ["--file", str(f)]
        done = subprocess.run(
            [*command, "--profile", "sandbox", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60")


def host_network_variant(ports: dict[str, int]) -> dict[str, Any]:
    """compose.yaml with every service on the host's network: no published ports, no host names (both
    conflict with host networking), each server bound to 127.0.0.1 on its free port."""
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = spec["services"]
    for service in services.values():
        service.pop("ports", None)
        service.pop("hostname", None)
        service["network_mode"] = "host"
    services["postgres"]["command"] = ["postgres", "-c", "listen_addresses=127.0.0.1"]
    services["postgres"]["environment"]["PGPORT"] = str(ports["postgres"])
    for node in ("node1", "node2"):
        port = ports[node]
        services[node]["command"] = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        services[node]["environment"] = {"XGATE_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/readyz"}
        services[node]["healthcheck"] = {"interval": "1s"}  # the image's own test, more often
    sandbox = services["sandbox"]
    sandbox["command"] = [
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["sandbox"]),
        "--pixel",
        "o8z6j",
    ]
    sandbox["healthcheck"]["test"] = [
        part.replace("127.0.0.1:8787", f"127.0.0.1:{ports['sandbox']}")
        for part in sandbox["healthcheck"]["test"]
    ]
    sandbox["healthcheck"]["interval"] = "1s"
    return dict(spec)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose")
    ports = {name: free_port() for name in ("postgres", "node1", "node2", "sandbox")}
    secrets_dir = root / "secrets"
    subprocess.run([ROOT / "deploy/compose/make-secrets.sh", secrets_dir], check=True, capture_output=True)
    # the example configuration, with 127.0.0.1 and the free ports for the service names
    config = root / "xgate.toml"
    config.write_text(
        (ROOT / "deploy/compose/xgate.toml")
        .read_text()
        .replace("http://sandbox:8787", f"http://127.0.0.1:{ports['sandbox']}")
        .replace("@postgres:5432/", f"@127.0.0.1:{ports['postgres']}/")
    )
    variant = root / "compose.yaml"
    variant.write_text(yaml.safe_dump(host_network_variant(ports), sort_keys=False))
    readable_by_the_image_user(config)
    env = {
        **os.environ,
        "XGATE_IMAGE": IMAGE,
        "XGATE_POSTGRES_IMAGE": POSTGRES_IMAGE,
        "XGATE_COMPOSE_CONFIG": str(config),
        "XGATE_COMPOSE_SECRETS": str(secrets_dir),
    }
    stack = Stack(
        f"xgate-test-{secrets.token_hex(3)}",
        [variant],
        env,
        ports,
        (secrets_dir / "XGATE_WRITE_KEY_BACKEND").read_text().strip(),
    )
    try:
        stack.compose("up", "-d", "--no-build")
        yield stack
    finally:
        try:
            stack.compose("down", "--volumes", "--timeout", "40")
        except AssertionError:
            for service in ("node1", "node2", "sandbox", "migrate", "postgres"):
                docker("rm", "-f", "-v", f"{stack.project}_{service}_1", check=False)


def wait_healthy(stack: Stack, *services: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        state = inspect(stack.container(pending[0]))["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            pending.pop(0)
            continue
        if not state["Running"] or time.monotonic() > deadline:
            raise AssertionError(f"{pending[0]} is not healthy: {state.get('Health')}\n{stack.logs()}")
        time.sleep(0.5)


def conversions(stack: Stack) -> list[dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{stack.ports['sandbox']}/_sandbox/conversions").json()
    return list(answer["conversions"])


def test_postgres_migrate_then_two_nodes_each_deliver_to_the_sandbox(stack: Stack) -> None:
    wait_healthy(stack, "postgres", "sandbox", "node1", "node2")
    migrate = inspect(stack.container("migrate"))["State"]
    assert (migrate["Running"], migrate["ExitCode"]) == (False, 0)

    for n, node in enumerate(("node1", "node2")):
        answer = httpx.post(
            f"http://127.0.0.1:{stack.ports[node]}/v1/events",
            json={
                "event_name": "purchase",
                "id": f"order-compose-{n}",
                "value": 10,
                "currency": "EUR",
                "user": {"email": "buyer@example.com"},
            },
            headers={"Authorization": f"Bearer {stack.write_key}"},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["results"][0]["status"] == "accepted", answer.text

    deadline = time.monotonic() + 60
    while len(got := conversions(stack)) < 2:
        assert time.monotonic() < deadline, f"{len(got)} of 2 conversions arrived\n{stack.logs()}"
        time.sleep(0.3)
    assert len({c["conversion_id"] for c in got}) == 2
