"""Where an import stands, saved after each committed chunk so an interrupted import resumes.

A checkpoint is keyed by the import's fingerprint (the file's size and first and last bytes, and the
mapping): the same file imported with the same mapping resumes; anything else starts afresh. It is
written atomically (temporary file, then rename), so a kill at any moment leaves the previous one whole.
Rows enqueued after the last checkpoint and before a crash are enqueued again on resume and come back
as duplicates from the outbox: nothing is sent twice. A chunk whose store failed (the outbox unavailable)
is noted in the checkpoint (``pending_rows``, ``pending_at``), so a failed try that stored part of it
counts, on resume, as queued.

One import of a file runs at a time (:func:`held`): a second one, started while the first runs, would
write the same checkpoint and report.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from xgate.errors import ImportFileError

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
    #: the chunk after ``rows_done`` (``pending_rows`` rows) when its store failed, tried as of
    #: ``pending_at``: a failed try may have stored part of it. The run that resumes stores those rows
    #: again as one chunk as of that time, and counts as queued (not duplicate) what this import stored then
    pending_rows: int = 0
    pending_at: float = 0.0

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


@contextmanager
def held(lock_path: Path, file_name: str) -> Iterator[None]:
    """Hold ``lock_path`` (an ``flock`` the system drops when the holder dies, so a killed import never
    blocks the next) while the import of ``file_name`` runs; :class:`ImportFileError` naming the running
    import's process when another one holds it."""
    with lock_path.open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise ImportFileError(
                f"{file_name}: another import of this file is running (pid {holder}): wait for it to end, "
                "or stop it and run this one again (it resumes where that one stopped)"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
