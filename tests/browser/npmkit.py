"""JavaScript libraries the browser tests load as their users do, from the npm registry: each pinned in this
repository by exact version and npm's ``integrity`` (the SHA-512 of the tarball, as a lockfile records it),
fetched once into a cache outside the repository, verified on every use, and never committed.

The cache is ``$XGATE_TEST_CACHE`` (else ``$XDG_CACHE_HOME/xgate-tests``, else ``~/.cache/xgate-tests``),
shared by every checkout. The registry is npm's own environment setting (``npm_config_registry``, any
case), else
https://registry.npmjs.org; the integrity makes any registry or mirror give the same bytes or fail.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_REGISTRY = "https://registry.npmjs.org"


class PackageUnavailable(Exception):
    """The tarball is neither cached nor fetchable (offline, registry down): the caller skips, or fails on
    CI."""


class IntegrityMismatch(Exception):
    """The registry served bytes whose SHA-512 is not the pinned one: never skipped, never used."""


def cache_dir() -> Path:
    explicit = os.environ.get("XGATE_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xgate-tests"


def registry() -> str:
    configured = next((v for k, v in os.environ.items() if k.lower() == "npm_config_registry" and v), None)
    return (configured or DEFAULT_REGISTRY).rstrip("/")


@dataclass(frozen=True)
class NpmPackage:
    """One pinned release: ``name`` (``@scope/name``), ``version`` and its ``integrity``
    (``sha512-<base64>``, what ``npm view NAME@VERSION dist.integrity`` prints)."""

    name: str
    version: str
    integrity: str

    @property
    def tarball_url(self) -> str:
        basename = self.name.rsplit("/", 1)[-1]
        return f"{registry()}/{self.name}/-/{basename}-{self.version}.tgz"

    @property
    def cached_path(self) -> Path:
        return cache_dir() / "npm" / f"{self.name.replace('/', '+')}-{self.version}.tgz"

    def _verified(self, data: bytes, where: str) -> bytes:
        algorithm, _, expected = self.integrity.partition("-")
        assert algorithm == "sha512", f"{self.name}: pin a sha512 integrity, not {algorithm}"
        actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if actual != expected:
            raise IntegrityMismatch(
                f"{self.name}@{self.version} from {where}: sha512-{actual}, pinned {self.integrity}"
            )
        return data

    def tarball(self) -> bytes:
        """The verified tarball: from the cache, else fetched from the registry and cached."""
        path = self.cached_path
        if path.exists():
            try:
                return self._verified(path.read_bytes(), str(path))
            except IntegrityMismatch:
                path.unlink()  # a truncated or stale download: fetched again below
        try:
            response = httpx.get(self.tarball_url, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise PackageUnavailable(
                f"{self.name}@{self.version} is not cached in {path.parent} and {self.tarball_url} "
                f"cannot be fetched ({type(e).__name__}: {e})"
            ) from e
        data = self._verified(response.content, self.tarball_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
        return data

    def files(self, under: str) -> dict[str, bytes]:
        """The package's files below ``under`` (``dist/umd``), by their path relative to it."""
        prefix = f"package/{under.strip('/')}/"
        out: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(self.tarball()), mode="r:gz") as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.startswith(prefix):
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    out[member.name.removeprefix(prefix)] = extracted.read()
        return out
