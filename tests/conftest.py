"""Shared fixtures: the sandbox standing in for X, over real HTTP on loopback; the outbox on each engine."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from tests.postgreskit import RestartablePostgres, require_restartable

from xgate.outbox import Outbox
from xgate.sandbox import create_sandbox
from xgate.testing import OutboxFactory, RunningSandbox, random_x_credentials, serve_app
from xgate.x import Credentials


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[RunningSandbox]:
    env = random_x_credentials()
    credentials = Credentials.from_env(env=env)
    app, sandbox = create_sandbox(credentials, pixels=["o8z6j", "p2"])
    with serve_app(app) as url:
        yield RunningSandbox(url, env, credentials, sandbox)


@pytest.fixture
def sandbox(_sandbox_server: RunningSandbox) -> Iterator[RunningSandbox]:
    """The sandbox (random OAuth credentials, pixels o8z6j and p2), reset for each test."""
    _sandbox_server.reset()
    yield _sandbox_server
    _sandbox_server.reset()


def _postgres_url(base: str, database: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """A new, empty database on the server of ``XGATE_TEST_POSTGRES_URL`` (dropped afterwards)."""
    server = os.environ.get("XGATE_TEST_POSTGRES_URL")
    if not server:
        if os.environ.get("CI") == "true":
            pytest.fail("XGATE_TEST_POSTGRES_URL is not set: CI runs every outbox test on PostgreSQL too")
        pytest.skip("PostgreSQL: set XGATE_TEST_POSTGRES_URL to run the tests on it")
    import psycopg

    name = f"xgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty database on ``XGATE_TEST_POSTGRES_URL``'s server, for tests of PostgreSQL
    only (skipped when unset, failing when ``CI=true``); dropped afterwards, connections or not."""
    with _postgres_database() as url:
        yield url


@pytest.fixture
def restartable_postgres(postgres_url: str) -> Iterator[RestartablePostgres]:
    """:class:`~tests.postgreskit.RestartablePostgres` on a fresh database (:func:`postgres_url`): skipped
    unless it is on the cluster ``.ci/postgres.sh`` runs for this checkout (as ``.ci/run`` does), failing
    then when ``CI=true``. Every restart has ended (the server is up) when the test ends."""
    require_restartable(postgres_url)
    server = RestartablePostgres(postgres_url)
    try:
        yield server
    finally:
        server.wait()


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboxFactory]:
    """An :class:`OutboxFactory` per engine: SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh
    database on ``XGATE_TEST_POSTGRES_URL``; skipped when unset, failing when ``CI=true``)."""
    if request.param == "sqlite":
        factory = OutboxFactory("sqlite", f"sqlite:///{tmp_path / 'outbox.db'}", tmp_path / "state")
        try:
            yield factory
        finally:
            factory.close_all()
        return
    with _postgres_database() as url:
        factory = OutboxFactory("postgresql", url, tmp_path / "state")
        try:
            yield factory
        finally:
            factory.close_all()


@pytest.fixture
def outbox(outbox_factory: OutboxFactory) -> Outbox:
    """A fresh, empty outbox on each engine."""
    return outbox_factory()
