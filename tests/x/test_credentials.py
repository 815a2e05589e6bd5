"""What is wrong with a destination's X credentials, said per destination without showing a secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xgate.config import parse_config
from xgate.x import Credentials, CredentialsError, credential_problems, destination_credential_problems

FULL = {
    "XGATE_X_CONSUMER_KEY": "ck-4f9a",
    "XGATE_X_CONSUMER_SECRET": "cs-secret-81b2",
    "XGATE_X_ACCESS_TOKEN": "123-at-77c1",
    "XGATE_X_ACCESS_TOKEN_SECRET": "ats-secret-0d3e",
}


def test_complete_credentials_have_no_problem() -> None:
    assert credential_problems(env=FULL) == []
    assert credential_problems(auth="pixel_token", env={"XGATE_X_PIXEL_TOKEN": "tok-1"}) == []


def test_unset_variables_are_named() -> None:
    env = {k: v for k, v in FULL.items() if k != "XGATE_X_ACCESS_TOKEN_SECRET"}
    (problem,) = credential_problems(env=env)
    assert "XGATE_X_ACCESS_TOKEN_SECRET" in problem and "XGATE_X_CONSUMER_KEY" not in problem


def test_a_secrets_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "x.secrets"
    problems = credential_problems(secrets_file=missing, env={})
    assert f"secrets file {missing} does not exist" in problems
    with pytest.raises(CredentialsError, match="does not exist"):
        Credentials.from_env(secrets_file=missing, env=FULL)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_secrets_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.secrets"
    path.write_text("".join(f"{k}={v}\n" for k, v in FULL.items()))
    path.chmod(0)
    assert credential_problems(secrets_file=path, env={})[0] == (
        f"cannot read secrets file {path}: Permission denied"
    )


def test_a_line_of_the_secrets_file_that_is_not_name_value_is_located(tmp_path: Path) -> None:
    path = tmp_path / "x.secrets"
    path.write_text("# X\nXGATE_X_CONSUMER_KEY=ck\nthis line lost its equals sign\n")
    assert f"{path}, line 3: expected NAME=value" in credential_problems(secrets_file=path, env=FULL)


def test_malformed_values_are_named_without_showing_them() -> None:
    env = FULL | {
        "XGATE_X_CONSUMER_SECRET": "cs-secret 81b2",
        "XGATE_X_ACCESS_TOKEN": "<your access token>",
        "XGATE_X_ACCESS_TOKEN_SECRET": "ats-sécret",
    }
    problems = credential_problems(env=env)
    assert problems == [
        "XGATE_X_CONSUMER_SECRET holds whitespace",
        "XGATE_X_ACCESS_TOKEN holds whitespace",
        "XGATE_X_ACCESS_TOKEN_SECRET holds characters that are not printable ASCII",
    ]
    with pytest.raises(CredentialsError) as raised:
        Credentials.from_env(env=env | {"XGATE_X_ACCESS_TOKEN": "'123-at-77c1'x"})
    assert "XGATE_X_ACCESS_TOKEN is wrapped in quotes" in str(raised.value)
    for value in env.values():
        assert value not in str(raised.value)


def test_each_destination_gets_its_own_verdict() -> None:
    config = parse_config(
        {
            "destinations": [
                {"name": "shop", "pixel_id": "o8z6j", "events": {"purchase": "o87ne"}},
                {
                    "name": "app",
                    "pixel_id": "p2",
                    "events": {"purchase": "o87ne"},
                    "auth": "pixel_token",
                    "credentials_env_prefix": "APP_X_",
                },
            ]
        }
    )
    assert destination_credential_problems(config, env=FULL) == {
        "app": ["missing X credentials: set APP_X_PIXEL_TOKEN in the environment (or set [x] secrets_file)"]
    }
    assert destination_credential_problems(config, env=FULL | {"APP_X_PIXEL_TOKEN": "t"}) == {}
