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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

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
