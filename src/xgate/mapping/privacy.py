"""Personal data in the fields X receives in clear (docs/security.md, "Personal data").

X takes e-mail addresses and phone numbers only hashed, as identifiers. The other text fields
(``conversion_id``, ``description``, ``search_string``, the ``contents`` texts, ``twclid``) reach X — and
the outbox, the activity log and X's Events Manager — as they are, so a value there that holds an e-mail
address or a phone number in international form is personal data sent in clear. The policy:

- ``conversion_id`` (the event's ``id`` by default): the event is refused for the destination. It is the
  key the pixel shares for deduplication, so it cannot be dropped or hashed without breaking that; the
  sender must use an order or event id.
- ``description``, ``search_string``, ``contents[].content_*`` texts and ``twclid``: X can do without
  them, so the field is dropped with a warning and the conversion kept.

"Phone number" here means the international form (``+``, then 8 to 15 digits, with or without spaces,
dots, dashes or brackets): bare digit runs are order numbers and product codes (GTINs) far more often.
"""

from __future__ import annotations

import re
from typing import Any

from xgate.conversion import FieldError

_EMAIL = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+[\s(]*\d[\d\s().-]{6,}\d")
#: top-level fields X can do without: dropped when they hold personal data
DROPPED_FIELDS = ("description", "search_string")
CONTENT_TEXT_FIELDS = ("content_id", "content_group_id", "content_name", "content_type")


def personal_kind(text: str) -> str | None:
    """``"an e-mail address"`` or ``"a phone number"`` when ``text`` holds one, else None."""
    if "@" in text and _EMAIL.search(text):
        return "an e-mail address"
    if "+" in text:
        for match in _PHONE.finditer(text):
            if 8 <= sum(ch.isdigit() for ch in match.group()) <= 15:
                return "a phone number"
    return None


def _dropped(field: str, kind: str) -> str:
    return f"{field}: holds {kind}, which X would receive in clear; field dropped"


def remove_personal_text(body: dict[str, Any]) -> tuple[list[FieldError], list[str]]:
    """Apply the policy to a conversion ``body`` (its own dict; nested lists are replaced, never changed):
    the errors that refuse it (a personal
    ``conversion_id``) and the warnings of the fields dropped (never the value).

    A text without ``@`` and ``+`` holds neither an e-mail address nor a phone number: that test, two
    string searches, settles nearly every field before :func:`personal_kind` is asked."""
    errors: list[FieldError] = []
    warnings: list[str] = []
    conversion_id = body.get("conversion_id")
    if (
        isinstance(conversion_id, str)
        and ("@" in conversion_id or "+" in conversion_id)
        and (kind := personal_kind(conversion_id))
    ):
        errors.append(
            FieldError(
                "conversion_id",
                f"holds {kind} (the event's id?), which X would receive in clear: use an order or event id",
            )
        )
    for key in DROPPED_FIELDS:
        value = body.get(key)
        if isinstance(value, str) and ("@" in value or "+" in value) and (kind := personal_kind(value)):
            del body[key]
            warnings.append(_dropped(key, kind))
    contents = body.get("contents")
    if isinstance(contents, list):
        kept: list[Any] | None = None  # a copy once something is dropped: the list is the event's
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                continue
            for key in CONTENT_TEXT_FIELDS:
                value = content.get(key)
                if (
                    isinstance(value, str)
                    and ("@" in value or "+" in value)
                    and (kind := personal_kind(value))
                ):
                    if kept is None:
                        kept = list(contents)
                    content = kept[i] = {k: v for k, v in content.items() if k != key}
                    warnings.append(_dropped(f"contents[{i}].{key}", kind))
        if kept is not None:
            body["contents"] = kept
    return errors, warnings
