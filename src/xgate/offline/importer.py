"""``xgate import``: stream a file's rows → events → the mapper (as the gateway maps) → the outbox.

Each chunk of rows is enqueued in one transaction, then the report is flushed and the checkpoint saved,
so an import killed at any moment resumes where its last chunk ended. The running gateway's dispatcher
delivers what an import queues. The outbox deduplicates on (pixel_id, event_id, conversion_id): a row
imported twice is reported as a duplicate and sent once.

An outbox that cannot be written mid-run (:class:`~xgate.errors.OutboxUnavailable`: the database
restarting, SQLite's write lock held past ``[storage] write_timeout_seconds``, a full disk) does not end a
long import at once: the chunk's enqueue is tried again, with the same conversions, after an exponential
backoff with full jitter (the dispatcher's :func:`~xgate.dispatch.backoff.backoff_delay`, capped at
``_RETRY_CAP`` seconds so a recovered outbox is written again soon), for up to ``retry_seconds`` from the
chunk's first failed try. If the outbox is still down then, :class:`~xgate.errors.ImportStopped` ends the
run where its last stored chunk ended: the report and the checkpoint's counts hold exactly the chunks
stored, and the same import run again resumes after them. An outbox of another schema version is not
retried (no wait cures it).

A retry stores no row twice (the outbox deduplicates), but it must not count as a duplicate a row that the
failed try stored: a failed enqueue should store nothing, yet PostgreSQL's stores a call's new rows before
it records the duplicates' senders in a second transaction, and a connection lost on commit leaves the
commit unknown. So every try of a chunk stores it as of one time (``enqueue(now=...)``, the rows'
``created_at``), kept in the checkpoint once a try failed (``pending_rows``, ``pending_at``); after a
failed try, the next one (in this run, or in the run that resumes) counts as queued a duplicate whose row
this import stored at that time.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from xgate.config import Config
from xgate.conversion import FieldError, MappedConversion
from xgate.errors import ImportStopped, OutboxSchemaMismatch, OutboxUnavailable
from xgate.events import InvalidEvent, get_path
from xgate.identifiers import hash_email, hash_phone
from xgate.mapping import Mapper
from xgate.offline.checkpoint import Checkpoint, fingerprint, held
from xgate.offline.columns import ColumnMapping
from xgate.offline.reader import FileError, Row, RowReader, detect_format
from xgate.offline.rows import RowMapper
from xgate.outbox import Outbox
from xgate.outbox.base import EnqueueOutcome

Outcome = Literal["queued", "duplicate", "valid", "rejected", "skipped"]
SIGNALS = ("email", "phone", "twclid")

#: how long a chunk's enqueue is retried while the outbox cannot be written (``xgate import --retry-seconds``)
RETRY_SECONDS = 120.0
#: the backoff between tries: full jitter, from 0.5 s and doubling, capped at 5 s
_RETRY_BASE, _RETRY_CAP = 0.5, 5.0


@dataclass
class ImportSummary:
    file: str
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    #: rows with a usable e-mail / phone / twclid
    coverage: Counter[str] = field(default_factory=Counter)
    resumed_from: int = 0
    dry_run: bool = False
    report: str | None = None
    seconds: float = 0.0
    #: a dry run: per money and date column, a few cells and how they were read
    samples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def outcome_names(self) -> tuple[Outcome, ...]:
        """A dry run validates (valid); a real import queues (queued or duplicate)."""
        if self.dry_run:
            return ("valid", "rejected", "skipped")
        return ("queued", "duplicate", "rejected", "skipped")

    def share(self, signal: str) -> float:
        return self.coverage[signal] / self.rows if self.rows else 0.0

    def as_json(self) -> dict[str, Any]:
        samples = {k: [list(p) for p in v] for k, v in self.samples.items()}
        return {
            "file": self.file,
            "rows": self.rows,
            "outcomes": {o: self.counts[o] for o in self.outcome_names()},
            "coverage": {s: round(self.share(s), 4) for s in SIGNALS},
            "resumed_from_row": self.resumed_from,
            "dry_run": self.dry_run,
            "report": self.report,
            "seconds": round(self.seconds, 2),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else None,
            **({"samples": samples} if self.dry_run else {}),
        }


class Report:
    """The report file: a CSV line per refused row and reason (never a personal value)."""

    HEADER = ("row", "outcome", "field", "reason")

    def __init__(self, path: Path, resume_at: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = resume_at is None or not path.exists()
        self.path = path
        self._file: IO[str] = path.open("w" if fresh else "r+", encoding="utf-8", newline="")
        if not fresh:
            self._file.truncate(resume_at)  # lines written after the checkpoint come again
            self._file.seek(resume_at or 0)
        self._csv = csv.writer(self._file)
        if fresh:
            self._csv.writerow(self.HEADER)

    def add(self, row: int, outcome: str, errors: list[FieldError]) -> None:
        # once per reason: every destination refuses a row without an identifier alike
        for where, reason in dict.fromkeys((e.field, e.reason) for e in errors):
            self._csv.writerow((row, outcome, where, reason))

    def flush(self) -> int:
        self._file.flush()
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class _Mapped:
    row: int
    outcome: Outcome
    errors: list[FieldError]
    conversions: list[MappedConversion]
    signals: frozenset[str]


Progress = Callable[[int, int], None]  # (rows done, bytes read)


@dataclass(frozen=True, slots=True)
class OutboxWait:
    """What an import tells while its outbox cannot be written: after each failed try that will be
    retried (``error`` set), and once a try succeeded after failures (``error`` None)."""

    #: why the last try failed; None: the outbox took the chunk, the import goes on
    error: OutboxUnavailable | None
    #: tries of this chunk that failed so far
    failures: int
    #: seconds since the chunk's first failed try began
    waited: float
    #: seconds until the next try (0 once it succeeded)
    retry_in: float = 0.0
    #: seconds left before the import stops (``retry_seconds`` - ``waited``)
    left: float = 0.0


Waiting = Callable[[OutboxWait], None]


class Importer:
    """Imports one file by one column mapping into the outbox of ``config`` (``outbox`` None: dry run)."""

    def __init__(
        self,
        config: Config,
        mapping: ColumnMapping,
        outbox: Outbox | None,
        *,
        chunk_rows: int = 2000,
        mapping_text: bytes = b"",
        retry_seconds: float = RETRY_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        if mapping.default_region:
            # the file's phones are read in its own region, by every destination's mapping
            identity = config.identity.model_copy(update={"default_region": mapping.default_region})
            config = config.model_copy(update={"identity": identity})
        self.config = config
        self.mapping = mapping
        self.outbox = outbox
        self.chunk_rows = chunk_rows
        self.retry_seconds = retry_seconds
        self._rng = rng or random.Random()
        self._mapper = Mapper(config)
        self._region = config.identity.default_region
        self._mapping_key = mapping_text or mapping.model_dump_json().encode()

    def fingerprint(self, path: Path) -> str:
        destinations = orjson.dumps([d.model_dump(mode="json") for d in self.config.destinations])
        return fingerprint(path, self._mapping_key, destinations)

    def run(
        self,
        path: Path,
        *,
        state_dir: Path,
        report_path: Path | None = None,
        restart: bool = False,
        progress: Progress | None = None,
        waiting: Waiting | None = None,
    ) -> ImportSummary:
        """Import ``path`` (resuming from its checkpoint in ``state_dir`` unless ``restart``); returns the
        summary. ``progress`` is told after each chunk, ``waiting`` while the outbox cannot be written.

        Raises :class:`~xgate.offline.reader.FileError` (the file cannot be read as a whole),
        :class:`~xgate.errors.ImportStopped` (the outbox stayed unavailable: rows up to its
        ``rows_done`` are stored and checkpointed), ``OSError`` (the state directory)."""
        dry_run = self.outbox is None
        file_format = self.mapping.format or detect_format(path)
        reader = RowReader(
            path, file_format, delimiter=self.mapping.delimiter, encoding=self.mapping.encoding
        )
        with reader:
            if reader.header is not None and not self.mapping.columns:
                raise FileError(f"{path.name}: a CSV file needs a column mapping (--mapping)")
            rows_mapper = RowMapper(self.mapping, reader.header, sample=dry_run)
            if reader.header is not None:
                missing = rows_mapper.missing_columns(reader.header)
                if missing:
                    hint = ""
                    if len(reader.header) == 1:
                        found = [d for d in ";\t|," if d in reader.header[0] and d != self.mapping.delimiter]
                        hint = (
                            f" (the header reads as one column: is the delimiter {found[0]!r}?)"
                            if found
                            else ""
                        )
                    raise FileError(
                        f"{path.name}: the mapping names columns the file lacks: {', '.join(missing)}{hint}"
                    )
            fp = self.fingerprint(path)
            state_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{path.name}-{fp}"
            checkpoint_path = state_dir / f"{stem}.checkpoint.json"
            report_path = report_path or state_dir / f"{stem}.report.csv"
            with held(state_dir / f"{stem}.lock", path.name):
                checkpoint = None if (restart or dry_run) else Checkpoint.load(checkpoint_path)
                if checkpoint is not None and (checkpoint.finished or checkpoint.fingerprint != fp):
                    checkpoint = (
                        None  # a finished import runs again (all duplicates); another file starts afresh
                    )
                if checkpoint is None:
                    checkpoint = Checkpoint(file=str(path), fingerprint=fp)
                    resume_at: int | None = None
                else:
                    resume_at = checkpoint.report_bytes
                summary = ImportSummary(
                    file=str(path),
                    rows=checkpoint.rows_done,
                    counts=Counter(checkpoint.counts),
                    coverage=Counter(checkpoint.coverage),
                    resumed_from=checkpoint.rows_done,
                    dry_run=dry_run,
                    report=str(report_path),
                    samples=rows_mapper.samples,
                )
                report = Report(report_path, resume_at)
                started = time.perf_counter()
                try:
                    rows = iter(reader)
                    skipped = self._skip(rows, checkpoint.rows_done)
                    if skipped < checkpoint.rows_done:
                        raise FileError(f"{path.name}: has fewer rows than its checkpoint says were done")
                    for chunk in _chunks(rows, self.chunk_rows, first=checkpoint.pending_rows):
                        # a run that stopped while storing this chunk may have stored part of it
                        resumed = checkpoint.pending_rows > 0
                        at = checkpoint.pending_at if resumed else time.time()
                        store = _Store(path.name, waiting, at, maybe_stored=resumed)
                        if not dry_run:
                            store.failed = functools.partial(
                                _note_pending, checkpoint, checkpoint_path, len(chunk), store.at
                            )
                        self._import_chunk(chunk, rows_mapper, summary, report, store)
                        checkpoint.pending_rows, checkpoint.pending_at = 0, 0.0
                        checkpoint.rows_done = summary.rows
                        checkpoint.report_bytes = report.flush()
                        checkpoint.counts = dict(summary.counts)
                        checkpoint.coverage = dict(summary.coverage)
                        if not dry_run:
                            checkpoint.save(checkpoint_path)
                        if progress:
                            progress(summary.rows, reader.position)
                    checkpoint.finished = True
                    if not dry_run:
                        checkpoint.save(checkpoint_path)
                finally:
                    report.flush()
                    report.close()
                    summary.seconds = time.perf_counter() - started
        return summary

    @staticmethod
    def _skip(rows: Iterator[Row], count: int) -> int:
        return sum(1 for _ in islice(rows, count))

    def _import_chunk(
        self,
        chunk: list[Row],
        rows_mapper: RowMapper,
        summary: ImportSummary,
        report: Report,
        store: _Store,
    ) -> None:
        now = datetime.now(UTC)
        mapped = [self._map_row(row, rows_mapper, now) for row in chunk]
        conversions = [c for m in mapped for c in m.conversions]
        for c in conversions:
            c.source = store.source
        if conversions and self.outbox is not None:
            # the summary and the report change only once the chunk is stored
            outcomes = iter(self._enqueue(conversions, store, summary.rows))
            for m in mapped:
                if m.conversions:
                    statuses = [next(outcomes).status for _ in m.conversions]
                    m.outcome = "queued" if "queued" in statuses else "duplicate"
        for m in mapped:
            summary.rows += 1
            summary.counts[m.outcome] += 1
            summary.coverage.update(m.signals)
            if m.errors:
                report.add(m.row, m.outcome if m.outcome in ("rejected", "skipped") else "warning", m.errors)

    def _enqueue(
        self, conversions: list[MappedConversion], store: _Store, rows_done: int
    ) -> list[EnqueueOutcome]:
        """``outbox.enqueue(conversions)`` as of ``store.at``, tried again while the outbox cannot be
        written, for up to :attr:`retry_seconds` (the module docstring); then :class:`ImportStopped` at
        ``rows_done``. Once a try failed, :meth:`_own_rows` counts what it may have stored."""
        assert self.outbox is not None
        first_failure: float | None = None
        failures = 0
        while True:
            tried = time.monotonic()
            try:
                outcomes = self.outbox.enqueue(conversions, now=store.at)
                if store.maybe_stored:
                    outcomes = self._own_rows(outcomes, store)
            except OutboxSchemaMismatch as e:  # an operator acts: no wait cures it
                raise ImportStopped(store.file_name, rows_done, e, 0.0) from e
            except OutboxUnavailable as e:
                first_failure = tried if first_failure is None else first_failure
                failures += 1
                if not store.maybe_stored:
                    store.maybe_stored = True
                    if store.failed:
                        store.failed()
                waited = time.monotonic() - first_failure
                left = self.retry_seconds - waited
                if left <= 0:
                    raise ImportStopped(store.file_name, rows_done, e, waited) from e
                # imported here: the dispatcher's package loads httpx, which an import that never waits
                # does not need
                from xgate.dispatch.backoff import backoff_delay

                pause = min(backoff_delay(failures - 1, _RETRY_BASE, _RETRY_CAP, self._rng), left)
                if store.waiting:
                    store.waiting(OutboxWait(e, failures, waited, pause, left))
                time.sleep(pause)
                continue
            if first_failure is not None and store.waiting:
                store.waiting(OutboxWait(None, failures, time.monotonic() - first_failure))
            return outcomes

    def _own_rows(self, outcomes: list[EnqueueOutcome], store: _Store) -> list[EnqueueOutcome]:
        """The outcomes of a chunk that a failed try may have stored in part (PostgreSQL stores a call's
        new rows, then records its duplicates' senders in a second transaction): such a try's rows come
        back as duplicates. A duplicate whose row this import stored as of ``store.at`` (the time every try
        of this chunk passes) is the first conversion with that row, so it is queued, as a first try would
        have said; copies after it stay duplicates. One :meth:`~xgate.outbox.Outbox.row` per row."""
        assert self.outbox is not None
        claimed = {o.row_id for o in outcomes if o.status == "queued"}
        looked_up: set[int] = set()
        counted = []
        for outcome in outcomes:
            if outcome.status == "duplicate" and not (
                outcome.row_id in claimed or outcome.row_id in looked_up
            ):
                looked_up.add(outcome.row_id)
                row = self.outbox.row(outcome.row_id)
                if row is not None and row.created_at == store.at and row.source == store.source:
                    claimed.add(outcome.row_id)
                    outcome = outcome._replace(status="queued")
            counted.append(outcome)
        return counted

    def _map_row(self, row: Row, rows_mapper: RowMapper, now: datetime) -> _Mapped:
        if row.data is None:
            return _Mapped(
                row.number, "rejected", [FieldError("row", row.problem or "unreadable")], [], frozenset()
            )
        event, errors = rows_mapper.event(row.data)
        if errors:
            return _Mapped(row.number, "rejected", errors, [], self._signals(event))
        try:
            result = self._mapper.map(event, received_at=now, now=now)
        except InvalidEvent as e:
            return _Mapped(row.number, "rejected", list(e.errors), [], self._signals(event))
        if result.conversions:
            warnings = [
                FieldError(w.split(":", 1)[0], w.split(":", 1)[-1].strip())
                for w in dict.fromkeys(w for c in result.conversions for w in c.warnings)
            ]
            signals = frozenset(s for c in result.conversions for s in c.match_signals if s in SIGNALS)
            return _Mapped(row.number, "valid", warnings, result.conversions, signals)
        signals = self._signals(event)
        if result.rejections:
            errors = [e for r in result.rejections for e in r.errors]
            return _Mapped(row.number, "rejected", errors, [], signals)
        reasons = [FieldError("destination", f"{name}: {why}") for name, why in result.skipped.items()]
        return _Mapped(row.number, "skipped", reasons, [], signals)

    def _signals(self, event: dict[str, Any]) -> frozenset[str]:
        """Usable identifiers of an event that became no conversion (for the coverage figures)."""
        found = set()
        email, phone = get_path(event, "user.email"), get_path(event, "user.phone")
        if isinstance(email, str) and hash_email(email):
            found.add("email")
        if isinstance(phone, str) and hash_phone(phone, self._region):
            found.add("phone")
        twclid = get_path(event, "partners.twitter.twclid")
        if isinstance(twclid, str) and twclid.strip():
            found.add("twclid")
        return frozenset(found)


def _chunks(rows: Iterator[Row], size: int, *, first: int = 0) -> Iterator[list[Row]]:
    """Lists of ``size`` rows; the first of ``first`` rows when ``first`` is given."""
    if first and (chunk := list(islice(rows, first))):
        yield chunk
    while chunk := list(islice(rows, size)):
        yield chunk


@dataclass(slots=True)
class _Store:
    """How one chunk is stored: as of ``at`` (its rows' ``created_at``, the same for every try), by
    ``import:<file name>``. ``maybe_stored``: a try failed (this run's, or a stopped run's), so the chunk
    may be stored in part; a try of this run failing first runs ``failed`` (the checkpoint notes it)."""

    file_name: str
    waiting: Waiting | None
    at: float
    maybe_stored: bool = False
    failed: Callable[[], None] | None = None

    @property
    def source(self) -> str:
        return f"import:{self.file_name}"


def _note_pending(checkpoint: Checkpoint, path: Path, rows: int, at: float) -> None:
    """The checkpoint, saved with the chunk whose store failed (its ``rows`` after ``rows_done``, stored
    as of ``at``): a run that resumes it counts what a failed try stored as queued. A checkpoint that
    cannot be saved now (a full disk) is left as it was: nothing is stored twice, but such rows then count
    as duplicates."""
    checkpoint.pending_rows, checkpoint.pending_at = rows, at
    with contextlib.suppress(OSError):
        checkpoint.save(path)
