"""Where an import stands, saved after each committed chunk so an interrupted import resumes.

A checkpoint is keyed by the import's fingerprint (the file's size and first and last bytes, and the
mapping): the same file imported with the same mapping resumes; anything else starts afresh. It is
written atomically (temporary file, then rename), so a kill at any moment leaves the previous one whole.
Rows enqueued after the last checkpoint and before a crash are enqueued again on resume and come back
as duplicates from the outbox: nothing is sent twice.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

_EDGE = 1 << 20


def fingerprint(path: Path, *parts: bytes) -> str:
    """A digest of the file (size, first and last MiB) and of ``parts`` (the mapping, the destinations)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(_EDGE))
        if size > 2 * _EDGE:
            f.seek(size - _EDGE)
            digest.update(f.read(_EDGE))
    for part in parts:
        digest.update(b"\x1f" + part)
    return digest.hexdigest()[:20]


@dataclass
class Checkpoint:
    file: str
    fingerprint: str
    rows_done: int = 0
    report_bytes: int = 0
    finished: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            data: dict[str, Any] = orjson.loads(path.read_bytes())
            return cls(**data)
        except (FileNotFoundError, orjson.JSONDecodeError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
