"""Write keys and browser origins: who may send events, and from which web pages."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from xgate.config import Config, Source

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class _Key:
    value: bytes
    source: Source


def key_from_headers(request: Request) -> str | None:
    """The key presented as ``Authorization: Bearer KEY`` or ``X-Write-Key: KEY``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-write-key") or None


def key_in_url(request: Request) -> str | None:
    """The key presented as ``?write_key=KEY``: only a browser source's public key counts there
    (:meth:`Keyring.sender`), since URLs end up in proxy logs and browser histories."""
    return request.query_params.get("write_key") or None


class Keyring:
    """The write keys of every source (resolved from the environment once) and the optional admin key.

    Lookups compare against every key in constant time, so timing reveals neither a key nor its position.
    """

    def __init__(self, config: Config, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._keys: list[_Key] = []
        for source in config.sources:
            key = source.resolve_write_key(env)
            if key:
                self._keys.append(_Key(key.encode(), source))
        admin_env = config.server.admin_key_env
        admin = env.get(admin_env) if admin_env else None
        self._admin = admin.encode() if admin else None
        self._source_names = tuple(
            s.name for s in config.sources if s.write_key or s.write_key_env or s.requires_write_key()
        )

    @property
    def secrets(self) -> list[str]:
        """Every key, for the log guard."""
        keys = [k.value.decode() for k in self._keys]
        return [*keys, self._admin.decode()] if self._admin else keys

    @property
    def unresolved(self) -> list[str]:
        """Names of sources whose write key is missing (an unset environment variable)."""
        known = {k.source.name for k in self._keys}
        return [n for n in self._source_names if n not in known]

    def source_for(self, key: str | None, kinds: tuple[str, ...] = ("xgate",)) -> Source | None:
        """The source of one of ``kinds`` whose write key is ``key``: a Segment write key does not open
        ``/v1/events``, nor an xgate key Segment's endpoints."""
        if not key:
            return None
        presented = key.encode()
        found: Source | None = None
        for entry in self._keys:
            if hmac.compare_digest(entry.value, presented) and entry.source.kind in kinds:
                found = entry.source
        return found

    def sender(self, request: Request) -> tuple[Source | None, str | None]:
        """The source whose key ``request`` presents, or None and why not: a key in the headers, or a
        browser source's public key as ``?write_key=`` — a server source's or the admin key in a URL is
        refused (docs/security.md, "Keys")."""
        key = key_from_headers(request)
        if key:
            return self.source_for(key), None
        key = key_in_url(request)
        source = self.source_for(key)
        if source is not None and not source.key_is_public:
            return None, (
                f"the key of source {source.name!r} is secret and never travels in a URL (proxy logs, "
                "browser histories keep URLs): send it as Authorization: Bearer KEY, and replace it"
            )
        if source is None and self.is_admin(key):
            return None, "the admin key never travels in a URL: send it as Authorization: Bearer KEY"
        return source, None

    def is_admin(self, key: str | None) -> bool:
        if not key or self._admin is None:
            return False
        return hmac.compare_digest(self._admin, key.encode())


OriginGrant = Literal["listed", "wildcard"]


def origin_grant(origins: frozenset[str] | list[str], origin: str) -> OriginGrant | None:
    """How a page at ``origin`` (``https://shop.example``) may send under these allowed origins:
    ``"listed"`` (named: a credentialed CORS answer, cookies read and set), ``"wildcard"`` (allowed only by
    ``"*"``: an answer without credentials, no cookies read or set), or None (refused). ``null`` (sandboxed
    frames, ``file:`` pages) is never allowed: anyone can send it."""
    if origin == "null":
        return None
    if origin in origins or origin.rstrip("/") in origins:
        return "listed"
    return "wildcard" if WILDCARD in origins else None


def origin_allowed(origins: frozenset[str] | list[str], origin: str) -> bool:
    """Whether a page at ``origin`` may send events under these allowed origins (:func:`origin_grant`)."""
    return origin_grant(origins, origin) is not None
