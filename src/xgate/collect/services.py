"""What the collector's routes share: one :class:`Services` per app, kept in ``app.state.services``.

Routes reach it through the :func:`services` dependency (``Annotated[Services, Depends(services)]``), and
access rules are dependencies too (:func:`require_reader`), as starlette and FastAPI declare them, so no
handler repeats a key check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from xgate.collect.auth import Keyring, key_from_headers
from xgate.collect.ingest import EventMapper, Ingest
from xgate.collect.problems import Problem
from xgate.collect.runner import BackgroundRunner
from xgate.collect.writer import GroupWriter, TakesLeasedRows
from xgate.config import Config
from xgate.observe.activity import ActivityLog, RejectionLog
from xgate.observe.metrics import Metrics
from xgate.observe.redact import register_secrets
from xgate.outbox.base import Outbox


@dataclass
class Services:
    """The configuration, storage, keys and workers of one gateway app.

    ``runner`` runs the dispatcher (absent when this process does not deliver); ``credential_problems``
    gives, per destination, why this process cannot sign its requests (the dispatcher's view).
    """

    config: Config
    outbox: Outbox
    metrics: Metrics
    keys: Keyring
    activity: ActivityLog
    ingest: Ingest
    writer: GroupWriter
    #: rejected events, kept in the outbox for every node's console
    rejections: RejectionLog
    runner: BackgroundRunner | None = None
    credential_problems: Callable[[], Mapping[str, list[str]]] | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        outbox: Outbox,
        mapper: EventMapper,
        metrics: Metrics,
        *,
        handoff: TakesLeasedRows | None = None,
        runner: BackgroundRunner | None = None,
        credential_problems: Callable[[], Mapping[str, list[str]]] | None = None,
    ) -> Services:
        keys = Keyring(config)
        register_secrets(keys.secrets)
        rejections = RejectionLog(outbox)
        return cls(
            config=config,
            outbox=outbox,
            metrics=metrics,
            keys=keys,
            activity=ActivityLog(outbox, rejections, metrics.shared),
            ingest=Ingest(mapper, metrics, rejections),
            writer=GroupWriter(outbox, handoff=handoff),
            runner=runner,
            credential_problems=credential_problems,
            rejections=rejections,
        )


def services(request: Request) -> Services:
    """Dependency: the :class:`Services` of the app serving ``request``."""
    found = getattr(request.app.state, "services", None)
    if not isinstance(found, Services):
        raise RuntimeError("the collector's routes need app.state.services (built by create_app)")
    return found


def require_reader(request: Request) -> None:
    """Dependency: reading the activity log needs the admin key or a server source's write key.

    Raises :class:`Problem` 401 without a known key, 403 for a browser source's (public) key.
    """
    gateway = services(request)
    key = key_from_headers(request)  # never from the URL: these keys are secret
    if gateway.keys.is_admin(key):
        return
    source = gateway.keys.source_for(key)
    if source is None:
        raise Problem(
            401,
            "unauthorized",
            "send the admin key or a server write key as Authorization: Bearer KEY or X-Write-Key: KEY "
            "(never in the URL)",
        )
    if source.key_is_public:
        raise Problem(
            403,
            "forbidden",
            f"source {source.name!r} is a browser source whose key is "
            "public; use the admin key or a server source's write key",
        )
