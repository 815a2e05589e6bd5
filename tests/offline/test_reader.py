"""Streaming rows from CSV and JSON Lines files, plain or gzipped, with row numbers for the report."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from xgate.offline.reader import FileError, FileFormat, RowReader, detect_format


def rows(path: Path, fmt: str = "csv", **kw: str) -> list[tuple[int, object, object]]:
    with RowReader(path, fmt, **kw) as reader:  # type: ignore[arg-type]
        return [(r.number, r.data, r.problem) for r in reader]


def test_csv_with_bom_quoted_newlines_blank_lines_and_short_rows(tmp_path: Path) -> None:
    f = tmp_path / "crm.csv"
    f.write_bytes('\ufeffid;note\n1;"two\nlines"\n\n2;x;extra\n3;ok\n'.encode())
    assert rows(f, delimiter=";") == [
        (1, {"id": "1", "note": "two\nlines"}, None),
        (2, None, "has 3 cells; the header has 2 columns"),
        (3, {"id": "3", "note": "ok"}, None),
    ]


def test_gzip_is_recognised_by_its_content(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl.gz"
    f.write_bytes(gzip.compress(b'{"event_name": "purchase"}\nnot json\n[1]\n'))
    got = rows(f, "jsonl")
    assert got[0] == (1, {"event_name": "purchase"}, None)
    assert got[1][1] is None and "not valid JSON" in str(got[1][2])
    assert got[2] == (3, None, "not a JSON object")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_gzip_file_cut_short_ends_in_an_error_naming_the_last_row_read(
    tmp_path: Path, fmt: FileFormat
) -> None:
    """An export copied while still being written; not EOFError, which xgate import printed as 'Aborted.'."""
    lines = ["id"] if fmt == "csv" else []
    lines += [f"{i}" if fmt == "csv" else f'{{"id": "{i}"}}' for i in range(1, 20_001)]
    packed = gzip.compress("\n".join(lines).encode(), compresslevel=1)
    f = tmp_path / f"rows.{fmt}.gz"
    f.write_bytes(packed[: len(packed) // 2])
    read: list[int] = []
    with (
        pytest.raises(FileError, match=r"rows\..*\.gz: the gzip data ends early or is damaged after row \d+"),
        RowReader(f, fmt) as reader,
    ):
        read.extend(r.number for r in reader)
    assert read and read == list(range(1, len(read) + 1))


def test_formats_come_from_the_name_and_bad_files_are_refused(tmp_path: Path) -> None:
    assert detect_format(Path("a.CSV.gz")) == "csv"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    with pytest.raises(FileError, match="cannot tell"):
        detect_format(Path("a.xlsx"))
    with pytest.raises(FileError, match="no such file"):
        RowReader(tmp_path / "missing.csv", "csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FileError, match="empty file"):
        RowReader(tmp_path / "empty.csv", "csv")
    (tmp_path / "twice.csv").write_text("a,a\n1,2\n")
    with pytest.raises(FileError, match="twice"):
        RowReader(tmp_path / "twice.csv", "csv")


def test_a_wrong_delimiter_is_named_in_the_error(tmp_path: Path) -> None:
    from xgate.config import parse_config
    from xgate.offline import Importer, parse_column_mapping

    f = tmp_path / "semi.csv"
    f.write_text("email;kind\na@example.com;Sale\n")
    mapping = parse_column_mapping({"columns": {"email": {"to": "user.email"}, "kind": {"to": "event_name"}}})
    config = parse_config({"destinations": [{"name": "x", "pixel_id": "o8z6j", "default_event": "o87ne"}]})
    importer = Importer(config, mapping, None)
    with pytest.raises(FileError, match=r"lacks: email, kind .*delimiter ';'"):
        importer.run(f, state_dir=tmp_path / "state")
