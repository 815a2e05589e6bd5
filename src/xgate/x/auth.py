"""Credentials for X and how a request is signed with them.

Two modes (SPEC.md): ``oauth1`` — OAuth 1.0a user context, HMAC-SHA1, signed by oauthlib (the JSON body is
not part of the signature) — and ``pixel_token`` — a Conversion API access token sent as ``X-Pixel-Token``.
Secrets come from the environment (``{prefix}CONSUMER_KEY`` …) or a secret file of ``NAME=value`` lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER
from oauthlib.oauth1 import Client as OAuth1Client

from xgate.errors import CredentialsError as CredentialsError
from xgate.observe.redact import register_secrets

if TYPE_CHECKING:
    from xgate.config import Config

AuthMode = Literal["oauth1", "pixel_token"]
OAUTH1_NAMES = ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")


def read_secret_file(path: str | Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, blank lines and ``export`` allowed; quotes stripped).

    Raises :class:`CredentialsError` naming the file (missing, unreadable) or the line (not NAME=value)."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"secrets file {path} does not exist") from None
    except OSError as e:
        raise CredentialsError(f"cannot read secrets file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"secrets file {path} is not UTF-8 text") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise CredentialsError(f"{path}, line {n}: expected NAME=value")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def credential_names(prefix: str = "XGATE_X_", auth: AuthMode = "oauth1") -> tuple[str, ...]:
    """The variables one destination's credentials are read from, e.g. ``XGATE_X_PIXEL_TOKEN``."""
    return tuple(prefix + n for n in (("PIXEL_TOKEN",) if auth == "pixel_token" else OAUTH1_NAMES))


def credential_values(
    prefix: str = "XGATE_X_",
    auth: AuthMode = "oauth1",
    secrets_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each credential variable's value as found (environment first, then the secrets file), ``""`` when
    absent. Raises :class:`CredentialsError` when the secrets file cannot be read."""
    environ = os.environ if env is None else env
    file_values = read_secret_file(secrets_file) if secrets_file else {}
    return {name: environ.get(name) or file_values.get(name) or "" for name in credential_names(prefix, auth)}


def _malformed(value: str) -> str | None:
    """Why a credential value cannot be right, or None. X's keys, secrets and tokens are printable ASCII
    without spaces (they go into an HTTP header); a space, a quote left in or a line break means a
    copy-and-paste slip."""
    if any(c.isspace() for c in value):
        return "holds whitespace"
    if not value.isascii() or not value.isprintable():
        return "holds characters that are not printable ASCII"
    if value[0] in "'\"<" or value[-1] in "'\">":
        return "is wrapped in quotes or angle brackets (a placeholder?)"
    return None


def _gather(
    prefix: str, auth: AuthMode, secrets_file: str | Path | None, env: Mapping[str, str] | None
) -> tuple[dict[str, str], list[str]]:
    """Each credential variable's value (as :func:`credential_values`, ``""`` when absent) and every
    problem found, each naming the variable or the file and the reason, never a value."""
    environ = os.environ if env is None else env
    problems: list[str] = []
    file_values: dict[str, str] = {}
    if secrets_file:
        try:
            file_values = read_secret_file(secrets_file)
        except CredentialsError as e:
            problems.append(str(e))
    names = credential_names(prefix, auth)
    values = {name: environ.get(name) or file_values.get(name) or "" for name in names}
    missing = [name for name, value in values.items() if not value]
    if missing:
        where = " or the secrets file" if secrets_file else " (or set [x] secrets_file)"
        problems.append(f"missing X credentials: set {', '.join(missing)} in the environment{where}")
    for name, value in values.items():
        why = _malformed(value) if value else None
        if why:
            problems.append(f"{name} {why}")
    return values, problems


def credential_problems(
    prefix: str = "XGATE_X_",
    auth: AuthMode = "oauth1",
    secrets_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Everything that stops these credentials from signing a request, read as :meth:`Credentials.from_env`
    reads them: a secrets file that does not exist, cannot be read or has a line that is not NAME=value;
    unset variables; values that cannot be right (whitespace, quotes, non-ASCII). Empty when they look
    usable (only X can say whether they are valid). Messages name variables and files, never values."""
    return _gather(prefix, auth, secrets_file, env)[1]


@dataclass(frozen=True)
class Credentials:
    auth: AuthMode
    consumer_key: str = field(default="", repr=False)
    consumer_secret: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    access_token_secret: str = field(default="", repr=False)
    pixel_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        # masked wherever a log line or an error text would show one of them (xgate.observe.redact)
        register_secrets(
            (
                self.consumer_key,
                self.consumer_secret,
                self.access_token,
                self.access_token_secret,
                self.pixel_token,
            )
        )

    def __repr__(self) -> str:
        return f"Credentials(auth={self.auth!r}, secrets hidden)"

    __str__ = __repr__

    @classmethod
    def from_env(
        cls,
        prefix: str = "XGATE_X_",
        auth: AuthMode = "oauth1",
        secrets_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Credentials:
        """The credentials of ``{prefix}CONSUMER_KEY`` … (or ``{prefix}PIXEL_TOKEN``) from ``env`` (default:
        the environment), else from ``secrets_file``. Raises :class:`CredentialsError` with every problem
        :func:`credential_problems` finds."""
        values, problems = _gather(prefix, auth, secrets_file, env)
        if problems:
            raise CredentialsError("; ".join(problems))
        if auth == "pixel_token":
            return cls("pixel_token", pixel_token=values[prefix + "PIXEL_TOKEN"])
        return cls("oauth1", *(values[prefix + n] for n in OAUTH1_NAMES))

    def oauth1_client(self, *, nonce: str | None = None, timestamp: str | None = None) -> OAuth1Client:
        """oauthlib's signer for these credentials; a fixed nonce/timestamp only reproduces known examples."""
        return OAuth1Client(
            self.consumer_key,
            client_secret=self.consumer_secret,
            resource_owner_key=self.access_token,
            resource_owner_secret=self.access_token_secret,
            signature_method=SIGNATURE_HMAC_SHA1,
            signature_type=SIGNATURE_TYPE_AUTH_HEADER,
            nonce=nonce,
            timestamp=timestamp,
        )

    def auth_headers(self, method: str, url: str) -> dict[str, str]:
        """Headers that authenticate one request (the JSON body is not signed: RFC 5849 §3.4.1.3)."""
        if self.auth == "pixel_token":
            return {"X-Pixel-Token": self.pixel_token}
        _, headers, _ = self.oauth1_client().sign(url, http_method=method)
        return {"Authorization": headers["Authorization"]}


def destination_credential_problems(
    config: Config, env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Per configured destination (only those with a problem), what :func:`credential_problems` finds in
    its credentials (``credentials_env_prefix``, ``auth``, ``[x] secrets_file``): what ``serve`` and
    ``dispatch`` warn about at start and ``/readyz`` reports."""
    problems = {
        d.name: credential_problems(d.credentials_env_prefix, d.auth, config.x.secrets_file, env)
        for d in config.destinations
    }
    return {name: found for name, found in problems.items() if found}
