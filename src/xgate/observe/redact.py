"""The guard that keeps raw PII and secrets out of logs and the activity log.

Strings pass through :func:`scrub`: e-mail addresses and phone-number-like digit runs are masked, and any
registered secret (write keys, the admin key, X credentials) is replaced. Mapping keys that name a secret or a
raw identifier have their values masked outright, unless the value is already a SHA-256 hex digest.

Error texts (:class:`xgate.conversion.FieldError`, HTTP answers, import reports) go through
:func:`error_text`: scrubbed and bounded. A refused value is shown, if at all, by :func:`excerpt`: a short,
scrubbed excerpt and its length, never the whole of it (docs/security.md, "Personal data").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[redacted]"

_EMAIL = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[A-Za-z]{2,}")
# a phone number: 9+ digits in groups, optionally led by + or (. ISO dates (2026-03-15) do not match.
_PHONE = re.compile(
    r"(?<![\w.:/-])\+?\(?\d{1,4}\)?[\s.-]?\(?\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}(?![\w:/-])"
)
# a phone number written in short groups after a + or a trunk 0, as most of the world writes them
# (+33 6 12 34 56 78, 06 12 34 56 78, +34 612 34 56 78, +81 3-1234-5678, +91 98765 43210): masked
# when its digits are as many as a phone number's, 9 to 15
_GROUPED_PHONE = re.compile(
    r"(?<![\w.:/+-])(?:\+\d{0,4}|0\d{1,4})(?:[ \u00a0.-]\d{1,8}){2,7}(?![\w:/-]|\.\d)"
)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SECRET_KEY = re.compile(
    r"secret|password|passwd|token|authorization|write_key|api_key|admin_key|credential", re.IGNORECASE
)
_PII_KEY = re.compile(r"^(e-?mail|phone|phone_number|user\.email|user\.phone)$", re.IGNORECASE)

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values (6+ characters) so that :func:`scrub` masks them wherever they appear."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 6)


def scrub(text: str) -> str:
    """``text`` with e-mails, phone numbers and registered secrets masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:
        text = _EMAIL.sub(MASK, text)
    return _PHONE.sub(MASK, _GROUPED_PHONE.sub(_mask_phone, text))


def _mask_phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match[0])
    return MASK if 9 <= digits <= 15 else match[0]


#: the longest error text kept (field names and reasons); the rest is cut with an ellipsis
MAX_ERROR_TEXT = 300
#: characters of a refused value an error may quote
EXCERPT_CHARS = 24


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` scrubbed (:func:`scrub`) and cut to ``limit`` characters: for any error text that may hold
    what a sender sent (a field name, a header, a cell)."""
    return _cut(scrub(_cut(text, limit * 4)), limit)


def excerpt(value: Any) -> str:
    """How an error may quote a refused ``value``: ``'EUR'``, or for longer text a scrubbed head and the
    length, ``'12,50 EU…' (31 characters)``; an e-mail- or phone-like value shows as ``[redacted]``."""
    text = value if isinstance(value, str) else repr(value)
    shown = scrub(_cut(text, EXCERPT_CHARS + 40))
    if MASK in shown or "@" in text[:EXCERPT_CHARS]:
        return MASK
    if len(text) <= EXCERPT_CHARS:
        return repr(text) if isinstance(value, str) else text
    return f"{_cut(text, EXCERPT_CHARS)!r} ({len(text)} characters)"


def scrub_value(value: Any, key: str = "") -> Any:
    """A JSON-like value made safe to log; ``key`` is the name it is stored under."""
    if key and _SECRET_KEY.search(key):
        return MASK if value not in (None, "") else value
    if isinstance(value, str):
        if key and _PII_KEY.match(key) and not _SHA256.match(value):
            return MASK
        return scrub(value)
    if isinstance(value, Mapping):
        return {str(k): scrub_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub_value(v) for v in value]
    return value
