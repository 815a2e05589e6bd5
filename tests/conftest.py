"""Shared fixtures: the sandbox standing in for X, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xgate.sandbox import create_sandbox
from xgate.testing import RunningSandbox, random_x_credentials, serve_app
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
