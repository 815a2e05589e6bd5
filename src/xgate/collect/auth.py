"""Write keys and browser origins: who may send events, and from which web pages."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request

from xgate.config import Config, Source

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class _Key:
    value: bytes
    source: Source


def key_from_request(request: Request) -> str | None:
    """The key presented as ``Authorization: Bearer KEY``, ``X-Write-Key: KEY`` or ``?write_key=KEY``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-write-key") or request.query_params.get("write_key") or None


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
        self.origins = frozenset(o for s in config.sources for o in s.allowed_origins)
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

    def is_admin(self, key: str | None) -> bool:
        if not key or self._admin is None:
            return False
        return hmac.compare_digest(self._admin, key.encode())


def origin_allowed(origins: frozenset[str] | list[str], origin: str) -> bool:
    """Whether a page at ``origin`` (``https://shop.example``) may send events under these allowed origins."""
    return WILDCARD in origins or origin.rstrip("/") in origins or origin in origins
