"""The composition root of one gateway process: the outbox, the metrics, the X clients, the dispatcher and
the collector app, built here and wired together (no stage builds another: the collector takes the
dispatcher's handoff and credential view as arguments, as rudder-server's app wires its stages)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI

from xgate.collect.app import create_app
from xgate.config import Config, Destination
from xgate.observe.metered import MeteredOutbox
from xgate.observe.metrics import Metrics
from xgate.outbox.base import Outbox

if TYPE_CHECKING:
    from xgate.dispatch import Attempt
    from xgate.x import AsyncXClient


@dataclass
class GatewayProcess:
    app: FastAPI
    outbox: Outbox
    metrics: Metrics
    dispatching: bool

    def close(self) -> None:
        self.outbox.close()


def client_factory_for(config: Config) -> Callable[[Destination], AsyncXClient]:
    """Builds each destination's X client from its credentials (environment or ``[x] secrets_file``)."""

    def client_factory(destination: Destination) -> AsyncXClient:
        from xgate.x import AsyncXClient, Credentials

        credentials = Credentials.from_env(
            prefix=destination.credentials_env_prefix,
            auth=destination.auth,
            secrets_file=config.x.secrets_file,
        )
        return AsyncXClient(config.x, credentials)

    return client_factory


def failure_counter(metrics: Metrics) -> Callable[[Attempt], None]:
    """The dispatcher's observer that counts each attempt that did not deliver, by its reason."""

    def observe(attempt: Attempt) -> None:
        if attempt.failure is not None:
            metrics.record_failure(attempt.destination, attempt.failure)

    return observe


def build_gateway(config: Config, *, dispatch: bool = True) -> GatewayProcess:
    """The app of ``xgate serve``; the dispatcher runs in it when ``dispatch`` and ``[dispatch] enabled``."""
    from xgate.outbox import node_id_for, open_outbox

    raw = open_outbox(
        config.storage.url, config.storage, node_id=node_id_for(config, f"serve:{config.server.port}")
    )
    metrics = Metrics(raw)
    outbox = MeteredOutbox(raw, metrics)
    dispatcher = None
    if dispatch and config.dispatch.enabled:
        from xgate.dispatch import Dispatcher

        dispatcher = Dispatcher(config, outbox, client_factory_for(config), observer=failure_counter(metrics))
    app = create_app(
        config,
        outbox,
        dispatcher=dispatcher,
        handoff=dispatcher.handoff if dispatcher is not None else None,
        metrics=metrics,
        credential_problems=(lambda: dispatcher.credential_problems) if dispatcher is not None else None,
    )
    return GatewayProcess(app, outbox, metrics, dispatcher is not None)
