"""Field overrides ("smart mapping"): an X field read from a dotted path of the event or a constant."""

from __future__ import annotations

import hashlib
from typing import Any

from xgate.config import FieldOverride
from xgate.conversion import FieldError
from xgate.events import EventData, get_path


def _apply(transform: str, value: Any, separator: str) -> Any:
    if value is None:
        return None
    if transform == "join":
        return separator.join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if transform == "string":
        return str(value)
    if transform == "number":
        return float(str(value).replace(",", "."))
    if transform == "integer":
        return int(float(str(value)))
    text = str(value)
    if transform == "lower":
        return text.lower()
    if transform == "upper":
        return text.upper()
    if transform == "trim":
        return text.strip()
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()  # hash


def resolve(field: str, override: FieldOverride, event: EventData) -> tuple[Any, FieldError | None]:
    """The override's value for ``event`` (None when the path is absent), or the error a transform met."""
    value = override.const if override.path is None else get_path(event, override.path)
    try:
        for transform in override.transform:
            value = _apply(transform, value, override.separator)
    except (TypeError, ValueError):
        source = override.path or "const"
        return None, FieldError(
            f"mapping.{field}", f"cannot apply {override.transform} to the value of {source}"
        )
    return value, None
