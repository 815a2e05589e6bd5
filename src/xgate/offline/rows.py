"""One row of a file → one xgate event, by the column mapping; or the cells that could not be read."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from xgate.conversion import FieldError
from xgate.events import get_path
from xgate.observe.redact import excerpt
from xgate.offline.columns import CellError, ColumnMapping, read_cell


def set_path(event: dict[str, Any], path: str, value: Any) -> None:
    node = event
    *parents, last = path.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


#: parsed values kept per money and date column for a dry run to show
SAMPLES_PER_COLUMN = 5


def _shown(value: Any, kind: str) -> str:
    """A parsed cell as a dry run shows it: an amount with its currency, a date in UTC."""
    if kind == "money":
        amount, currency = value
        return f"{amount:,.2f} {currency}" if currency else f"{amount:,.2f}"
    return datetime.fromtimestamp(value / 1000, UTC).isoformat().replace("+00:00", "Z")


class RowMapper:
    """Reads rows into events: cells parsed per column, constants added, a stable id when none is mapped.

    ``sample``: keep the first few distinct (cell, parsed value) pairs of each money and date column
    (:attr:`samples`), for a dry run to show how the mapping reads the file."""

    def __init__(self, mapping: ColumnMapping, header: list[str] | None, *, sample: bool = False) -> None:
        self.mapping = mapping
        self.samples: dict[str, list[tuple[str, str]]] = (
            {
                name: []
                for name, column in mapping.columns.items()
                if column.type in ("money", "datetime") and not column.personal
            }
            if sample
            else {}
        )
        self._columns = list(mapping.columns.items())
        self._identity = mapping.identity_columns() if mapping.id_column is None else []
        self._raw_events = not mapping.columns  # JSONL lines that already are events
        self._nested = header is None  # JSONL: a column may be a dotted path into the line's object

    def missing_columns(self, header: list[str]) -> list[str]:
        return [name for name, _ in self._columns if name not in header]

    def _cell(self, data: dict[str, Any], name: str) -> Any:
        if name in data or not self._nested:
            return data.get(name)
        return get_path(data, name)

    def event(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        """The row's event and an error per unreadable cell (naming the column and why); with errors the
        event lacks those cells and must not be sent (its identifiers still count for coverage)."""
        errors: list[FieldError] = []
        event: dict[str, Any] = dict(data) if self._raw_events else {}
        default_zone = self.mapping.timezone
        for name, column in self._columns:
            try:
                value = read_cell(self._cell(data, name), column, default_zone)
            except CellError as e:
                shown = "" if column.personal else f" ({excerpt(str(self._cell(data, name)).strip())})"
                errors.append(FieldError(name, f"{e}{shown}"))
                continue
            if value is None:
                if column.required:
                    errors.append(FieldError(name, "required, but the cell is empty"))
                continue
            kept = self.samples.get(name)
            if kept is not None and len(kept) < SAMPLES_PER_COLUMN:
                pair = (str(self._cell(data, name)).strip()[:40], _shown(value, column.type))
                if pair not in kept:
                    kept.append(pair)
            if column.type == "money":
                amount, currency = value
                set_path(event, column.to, amount)
                if currency and column.currency_to:
                    set_path(event, column.currency_to, currency)
            else:
                set_path(event, column.to, value)
        if errors:
            return event, errors
        for path, value in self.mapping.constants.items():
            if get_path(event, path) is None:
                set_path(event, path, value)
        if not event.get("id"):
            event["id"] = self.stable_id(data)
        return event, []

    def stable_id(self, data: dict[str, Any]) -> str:
        """The same row always gets the same id: a digest of its identity columns (or the whole line)."""
        if self._identity:
            key = orjson.dumps([[name, self._cell(data, name)] for name in self._identity])
        else:
            key = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return "imp-" + hashlib.sha256(key).hexdigest()[:32]
