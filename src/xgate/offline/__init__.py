"""Offline conversions: files from CRMs, shops and call centres, queued by ``xgate import``."""

from __future__ import annotations

from xgate.errors import ImportStopped
from xgate.offline.columns import ColumnMapping, load_column_mapping, parse_column_mapping
from xgate.offline.importer import Importer, ImportSummary, OutboxWait

__all__ = [
    "ColumnMapping",
    "ImportStopped",
    "ImportSummary",
    "Importer",
    "OutboxWait",
    "load_column_mapping",
    "parse_column_mapping",
]
