"""Normalize and SHA-256 the identifiers X matches on (shared/x-capi/SPEC.md, "Identifiers").

- e-mail: trim, lower-case, SHA-256, lower-case hex; characters that print nothing (a zero-width space,
  a byte-order mark, a soft hyphen: Unicode's format characters, which a copy from a web page or a
  spreadsheet carries along) are removed first, and one with a control character is not an address;
- phone: E.164 (``+`` country code and number, parsed with ``phonenumbers``; numbers written without a
  country code are read in the configured default region), then SHA-256 of the E.164 text **with** the ``+``;
- a value that already is a SHA-256 digest (64 hex characters) passes through, lower-cased;
- IP address: parsed by the stdlib ``ipaddress`` (a port and brackets stripped, an IPv4-mapped IPv6
  address written as IPv4), sent in its canonical text.

A value that cannot be used returns ``None``: the caller drops that identifier (with a warning that never
quotes the value) and keeps the event.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from functools import lru_cache

import phonenumbers

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# local@domain.tld: no spaces or control characters, one @, a dot in the domain, no empty labels
_EMAIL = re.compile(
    r"^[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@.\x00-\x1f\x7f-\x9f]+(?:\.[^\s@.\x00-\x1f\x7f-\x9f]+)+$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: an IPv4 address already in canonical text (ASCII digits, no leading zeros): what ``ipaddress`` would
#: give back unchanged, so the common case skips the parse (tests pin the two together)
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    # the length first: nearly every value is a raw e-mail or phone, far shorter than a digest
    return len(value) >= 64 and _SHA256.match(value) is not None


def normalize_email(raw: str) -> str | None:
    """``Shopper@Example.COM `` → ``shopper@example.com``; None when it is not an e-mail address."""
    if not raw.isascii():  # hashed with an invisible character, an address would never match at X
        raw = "".join(c for c in raw if unicodedata.category(c) != "Cf")
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[7:]
    value = value.rstrip(".")
    return value if _EMAIL.match(value) else None


def hash_email(raw: str | None) -> str | None:
    """X's ``hashed_email``; None when absent or unusable."""
    if not raw or not isinstance(raw, str):
        return None
    value = raw.strip()
    if is_sha256(value):
        return value.lower()
    normalized = normalize_email(value)
    return sha256_hex(normalized) if normalized else None


@lru_cache(maxsize=4096)
def _possible_length(country_code: int, length: int) -> bool:
    """Whether phonenumbers finds a national number of ``length`` digits possible for ``country_code``:
    its possibility check reads the length only, so any digits of that length (not starting with 0)
    stand for all of them."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int("1" * length))
    return bool(phonenumbers.is_possible_number(number))


def _e164_fast(compact: str) -> tuple[bool, str | None]:
    """For ``+digits`` input: (True, E.164 or None when impossible), or (False, None): the full parse decides.

    Builds the number from its country code and asks phonenumbers whether it is possible, which skips the
    parser's text handling. A national part starting with 0 goes to the full parse: the zero may be a trunk
    prefix to drop or, as in Italy, part of the number.
    """
    digits = compact[1:]
    for n in (1, 2, 3):
        code = int(digits[:n])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[n:]
            if not national or national[0] == "0":
                return False, None
            return True, compact if _possible_length(code, len(national)) else None
    return True, None  # no such country code


@lru_cache(maxsize=65_536)
def normalize_phone(raw: str, default_region: str = "US") -> str | None:
    """Any common way of writing a phone number → E.164 (``+14155550123``); None when not possible."""
    value = raw.strip()
    if not value:
        return None
    compact = _PHONE_SEPARATORS.sub("", value)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _E164.match(compact):
        decided, e164 = _e164_fast(compact)
        if decided:
            return e164
    try:
        number = phonenumbers.parse(compact if compact.startswith("+") else value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if _E164.match(e164) else None


def hash_phone(raw: str | None, default_region: str = "US") -> str | None:
    """X's ``hashed_phone_number``: SHA-256 of E.164 with the ``+``; None when absent or unusable."""
    if not raw or not isinstance(raw, str):
        return None
    value = raw.strip()
    if is_sha256(value):
        return value.lower()
    e164 = normalize_phone(value, default_region)
    return sha256_hex(e164) if e164 else None


#: longer than any IPv6 address with brackets and a port: not an address
_MAX_IP_TEXT = 64


def normalize_ip(raw: str | None) -> str | None:
    """``198.51.100.23:51234`` → ``198.51.100.23``; ``[2001:DB8::7334]:443`` → ``2001:db8::7334``;
    ``::ffff:198.51.100.23`` → ``198.51.100.23``; None when absent or not an IP address (a host name,
    an IPv6 address with a zone, a bad port)."""
    if not raw or not isinstance(raw, str) or len(raw) > _MAX_IP_TEXT:
        return None
    text = raw.strip()
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    return _normalize_ip(text)


@lru_cache(maxsize=4096)
def _normalize_ip(text: str) -> str | None:
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port: IPv6 has at least two colons
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
