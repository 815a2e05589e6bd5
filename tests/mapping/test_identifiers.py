"""E-mails and phones are normalized and hashed exactly as X's spec says; unusable ones are dropped."""

from __future__ import annotations

import hashlib

import pytest

from xgate.identifiers import hash_email, hash_phone, normalize_email, normalize_phone


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace@Example.COM  ", "ada.lovelace@example.com"),
        ("ADA+ads@EXAMPLE.com", "ada+ads@example.com"),  # plus-addressing is kept as is
        ("mailto:ada@example.com", "ada@example.com"),
        ("ada@example.com.", "ada@example.com"),
        ("\tada@sub.example.co.uk\n", "ada@sub.example.co.uk"),
        ("jösé@exämple.de", "jösé@exämple.de"),
    ],
)
def test_emails_are_trimmed_and_lower_cased_before_hashing(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized
    assert hash_email(raw) == sha(normalized)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a b@example.com",
        "ada@@example.com",
        "ada@example..com",
        "ada\x00@example.com",  # a control character: not an address, whatever prints it
        "ada@exam\x07ple.com",
        "ada@example.com\x85x",
    ],
)
def test_unusable_emails_give_none(raw: str) -> None:
    assert hash_email(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "ad\u200ba@example.com",  # a zero-width space, pasted from a web page
        "\ufeffada@example.com",  # a byte-order mark: the first cell of a spreadsheet export
        "ada\u00ad@example.com",  # a soft hyphen
        "ada@exam\u200eple.com",  # a left-to-right mark
        "\u2060 Ada@Example.com \u200d",
    ],
)
def test_characters_that_print_nothing_are_removed_before_hashing(raw: str) -> None:
    """Hashed with them, the address would be another one to X and never match its user."""
    assert normalize_email(raw) == "ada@example.com"
    assert hash_email(raw) == sha("ada@example.com")


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 (415) 555-0123", "US", "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("+14155550123", "GB", "+14155550123"),  # a country code wins over the default region
        ("0044 20 7946 0958", "US", "+442079460958"),  # 00 international prefix
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+1 415 555 0123 ext. 12", "US", "+14155550123"),  # the extension is not part of E.164
    ],
)
def test_phones_become_e164_and_are_hashed_with_the_plus(raw: str, region: str, e164: str) -> None:
    assert normalize_phone(raw, region) == e164
    assert hash_phone(raw, region) == sha(e164)


def test_x_published_phone_digest_includes_the_plus() -> None:
    assert hash_phone("+1 415-555-0123") == sha("+14155550123") != sha("14155550123")


@pytest.mark.parametrize("raw", ["", "12", "phone", "+999 1234", "020 7946 0958"])
def test_unusable_phones_give_none(raw: str) -> None:
    assert hash_phone(raw, "US") is None


@pytest.mark.parametrize("hasher", [hash_email, hash_phone])
def test_a_sha256_digest_passes_through_lower_cased(hasher: object) -> None:
    digest = sha("ada@example.com")
    assert hasher(digest.upper()) == digest  # type: ignore[operator]
    assert hasher(f"  {digest}  ") == digest  # type: ignore[operator]


def test_the_e164_fast_path_agrees_with_phonenumbers_for_every_region() -> None:
    import phonenumbers

    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        expected = phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.E164)
        assert normalize_phone(e164, "US") == expected, region
        assert normalize_phone(e164[:4], "US") is None  # far too short for any region
        checked += 1
    assert checked > 200
