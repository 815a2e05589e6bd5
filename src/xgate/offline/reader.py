"""Streaming the rows of an import file: CSV or JSON Lines, plain or gzip, one row at a time.

Memory stays constant whatever the file's size. Row numbers count data rows from 1 (a CSV header is not a
row); the byte position of the file on disk drives the progress bar and its ETA.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from xgate.errors import ImportFileError

#: the name importers have always used
FileError = ImportFileError

FileFormat = Literal["csv", "jsonl"]

csv.field_size_limit(10 * 2**20)  # a cell of up to 10 MiB (a JSON column); the default 128 KiB is small


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    #: CSV: column name → cell text; JSONL: the line's object. None when the line is not an object.
    data: dict[str, Any] | None
    #: why ``data`` is None (a JSONL line that is not a JSON object)
    problem: str | None = None


def detect_format(path: Path) -> FileFormat:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    raise FileError(f"{path.name}: cannot tell CSV from JSONL by its name; set format in the mapping")


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


class RowReader:
    """``with RowReader(path, "csv") as rows: for row in rows: ...``; ``position``/``size`` in bytes."""

    def __init__(
        self, path: Path, file_format: FileFormat, *, delimiter: str = ",", encoding: str = "utf-8-sig"
    ) -> None:
        if not path.is_file():
            raise FileError(f"{path}: no such file")
        self.path = path
        self.format = file_format
        self.size = path.stat().st_size
        self._delimiter = delimiter
        self._encoding = encoding
        self._raw: IO[bytes] = path.open("rb")
        stream: IO[bytes] = (
            gzip.GzipFile(fileobj=self._raw) if is_gzip(path) else self._raw  # type: ignore[assignment]
        )
        self._text = io.TextIOWrapper(stream, encoding=encoding, newline="" if file_format == "csv" else None)
        self.header: list[str] | None = None
        if file_format == "csv":
            self._csv = csv.reader(self._text, delimiter=delimiter)
            try:
                header = next(self._csv)
            except StopIteration:
                raise FileError(f"{path.name}: empty file (a CSV file starts with its header)") from None
            except (UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile, zlib.error) as e:
                raise FileError(f"{path.name}: cannot read the header: {e}") from None
            self.header = [h.strip() for h in header]
            if len(set(self.header)) != len(self.header):
                raise FileError(f"{path.name}: the header names a column twice")

    @property
    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for gzip)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[Row]:
        return self._whole(self._csv_rows() if self.format == "csv" else self._jsonl_rows())

    def _whole(self, rows: Iterator[Row]) -> Iterator[Row]:
        """``rows``, ending in :class:`FileError` when gzip data ends early or is damaged (gzip raises
        EOFError, which the command line would print as a bare "Aborted.")."""
        number = 0
        try:
            for row in rows:
                number = row.number
                yield row
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise FileError(
                f"{self.path.name}: the gzip data ends early or is damaged after row {number} ({e})"
            ) from None

    def _csv_rows(self) -> Iterator[Row]:
        assert self.header is not None
        header, width = self.header, len(self.header)
        number = 0
        while True:
            try:
                cells = next(self._csv)
            except StopIteration:
                return
            except csv.Error as e:  # the reader goes on with the next line
                number += 1
                yield Row(number, None, f"not a CSV row ({e})")
                continue
            except UnicodeDecodeError as e:
                raise FileError(
                    f"{self.path.name}: not {self._encoding} text after row {number} ({e})"
                ) from None
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            number += 1
            if len(cells) != width:
                yield Row(number, None, f"has {len(cells)} cells; the header has {width} columns")
                continue
            yield Row(number, dict(zip(header, cells, strict=True)))

    def _jsonl_rows(self) -> Iterator[Row]:
        number = 0
        for line in self._text:
            if not line.strip():
                continue
            number += 1
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                yield Row(number, None, f"not valid JSON ({e})")
                continue
            if not isinstance(data, dict):
                yield Row(number, None, "not a JSON object")
                continue
            yield Row(number, data)

    def close(self) -> None:
        self._text.close()
        self._raw.close()

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
