"""``xgate import``: stream a file's rows → events → the mapper (as the gateway maps) → the outbox.

Each chunk of rows is enqueued in one transaction, then the report is flushed and the checkpoint saved,
so an import killed at any moment resumes where its last chunk ended. The running gateway's dispatcher
delivers what an import queues. The outbox deduplicates on (pixel_id, event_id, conversion_id): a row
imported twice is reported as a duplicate and sent once.
"""

from __future__ import annotations

import csv
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
from xgate.events import InvalidEvent, get_path
from xgate.identifiers import hash_email, hash_phone
from xgate.mapping import Mapper
from xgate.offline.checkpoint import Checkpoint, fingerprint, held
from xgate.offline.columns import ColumnMapping
from xgate.offline.reader import FileError, Row, RowReader, detect_format
from xgate.offline.rows import RowMapper
from xgate.outbox import Outbox

Outcome = Literal["queued", "duplicate", "valid", "rejected", "skipped"]
SIGNALS = ("email", "phone", "twclid")


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
    ) -> None:
        if mapping.default_region:
            # the file's phones are read in its own region, by every destination's mapping
            identity = config.identity.model_copy(update={"default_region": mapping.default_region})
            config = config.model_copy(update={"identity": identity})
        self.config = config
        self.mapping = mapping
        self.outbox = outbox
        self.chunk_rows = chunk_rows
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
    ) -> ImportSummary:
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
                    for chunk in _chunks(rows, self.chunk_rows):
                        self._import_chunk(chunk, rows_mapper, summary, report, f"import:{path.name}")
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
        source: str,
    ) -> None:
        now = datetime.now(UTC)
        mapped = [self._map_row(row, rows_mapper, now) for row in chunk]
        conversions = [c for m in mapped for c in m.conversions]
        for c in conversions:
            c.source = source
        if conversions and self.outbox is not None:
            outcomes = iter(self.outbox.enqueue(conversions))
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


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(islice(rows, size)):
        yield chunk
