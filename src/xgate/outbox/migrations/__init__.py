"""Versioned schema migrations of the outbox, one ordered list per engine.

PostgreSQL: ``postgresql/NNNN_name.sql``, applied in order by :func:`xgate.outbox.postgres.upgrade`, each
in the one transaction that also records it in ``xgate_schema_version`` (PostgreSQL's DDL is
transactional: a failed step leaves the previous version whole). A released file is never edited: a
change is a new file with the next number.

Who applies them (the policy, as procrastinate's ``schema --apply`` / migrations and River's
``river migrate-up`` do it): a gateway never upgrades an existing schema by itself, because with several
nodes on one database the upgrade is a deliberate step of a deploy (``xgate db upgrade``, then restart the
nodes on the new version). A gateway that finds an older or newer schema stops with the command to run.
The one thing ``serve`` / ``dispatch`` / ``import`` do on their own is create the schema in a database
that has no xgate tables at all — as SQLite creates a missing file — so a first start needs no extra step.

SQLite: ``PRAGMA user_version`` and the upgrade steps in :mod:`xgate.outbox.sqlite`. One file on one host
has no rolling deploy to coordinate, so opening an older file upgrades it (in one write transaction);
``xgate db status`` / ``upgrade`` show and do the same thing explicitly.

:func:`status` and :func:`upgrade` work on either engine, for the ``xgate db`` commands.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from xgate.config import StorageSettings
from xgate.errors import OutboxUnavailable

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step: the schema version it produces (1, 2, …), its name and its SQL."""

    version: int
    name: str
    sql: str


def postgresql() -> tuple[Migration, ...]:
    """The PostgreSQL steps in order; raises RuntimeError when the files are not numbered 1, 2, … N."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath("postgresql").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"outbox migrations are not numbered 1..N: {[m.version for m in found]}")
    return tuple(found)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where an outbox is (no password), the schema version it holds (None: no outbox there), the
    version this xgate needs, and the steps ``xgate db upgrade`` would apply."""

    location: str
    version: int | None
    latest: int
    pending: tuple[str, ...]

    @property
    def state(self) -> Literal["missing", "current", "older", "newer"]:
        if self.version is None:
            return "missing"
        if self.version == self.latest:
            return "current"
        return "older" if self.version < self.latest else "newer"


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def status(url: str, settings: StorageSettings | None = None) -> SchemaStatus:
    """The schema of the outbox at ``url``, read without changing anything. Raises OutboxUnavailable."""
    if _is_postgres(url):
        from xgate.outbox import postgres

        outbox = postgres.PostgresOutbox(url, settings, check_schema=False)
        try:
            found = postgres.schema_version(outbox)
            steps = postgresql()
            return SchemaStatus(
                outbox.location,
                found,
                len(steps),
                tuple(f"{m.version:04d}_{m.name}" for m in steps if m.version > (found or 0)),
            )
        finally:
            outbox.close()
    from xgate.outbox import sqlite as sqlite_outbox

    path = Path(url.removeprefix("sqlite:///")).absolute()
    latest = sqlite_outbox._SCHEMA_VERSION
    version: int | None = None
    if path.is_file():
        try:
            with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'conversions'").fetchone():
                    version = int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as e:
            raise OutboxUnavailable(f"sqlite outbox {path}: {e}") from e
    start = 0 if version is None else version
    return SchemaStatus(
        f"SQLite file {path}", version, latest, tuple(f"version {v}" for v in range(start + 1, latest + 1))
    )


def upgrade(
    url: str, settings: StorageSettings | None = None
) -> tuple[SchemaStatus, tuple[str, ...], SchemaStatus]:
    """Apply every pending step (creating the schema when there is none); returns the status before, the
    steps this call applied and the status after. Another process upgrading at the same time (PostgreSQL:
    both wait on one lock) may apply them first: then this call applied none, though ``before`` had
    them pending. Raises OutboxUnavailable; OutboxSchemaMismatch when the schema is newer than this
    xgate."""
    from xgate.errors import OutboxSchemaMismatch

    before = status(url, settings)
    if before.state == "newer":
        raise OutboxSchemaMismatch(
            f"the outbox schema is version {before.version}, newer than this xgate knows ({before.latest}):"
            " upgrade xgate"
        )
    applied: tuple[str, ...] = ()
    if before.pending:
        if _is_postgres(url):
            from xgate.outbox import postgres

            applied = tuple(f"{m.version:04d}_{m.name}" for m in postgres.upgrade(url, settings))
        else:
            from xgate.outbox.sqlite import SQLiteOutbox

            SQLiteOutbox(url.removeprefix("sqlite:///"), settings, create=True).close()  # upgrades on open
            applied = before.pending
    return before, applied, status(url, settings)
