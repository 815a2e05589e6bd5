"""A key spelled almost like a known field (``user.emial``) is kept, as every unknown property is, and named
in a warning with the field it was likely meant for; other unknown keys pass silently."""

from __future__ import annotations

from xgate.event_reader import KNOWN_FIELDS
from xgate.events import Context, Event, User, near_misses


def test_keys_spelled_almost_like_a_known_field_are_named_with_the_field_meant() -> None:
    event = {
        "event_name": "purchase",
        "curency": "EUR",
        "user": {"emial": "a@example.com", "Phone": "+14155550134", "id": "u-1"},
        "context": {"evnt_timestamp": 1700000000000, "page_url": "https://shop.example/"},
    }
    assert near_misses(event) == [
        "curency is not a known field; did you mean currency?",
        "user.emial is not a known field; did you mean user.email?",
        "user.Phone is not a known field; did you mean user.phone?",
        "context.evnt_timestamp is not a known field; did you mean context.event_timestamp?",
    ]


def test_known_fields_and_keys_of_ones_own_pass_without_a_word() -> None:
    event = {
        "event_name": "purchase",
        "id": "o-1",
        "value": 3,
        "custom": {"channel": "web", "emial": "not checked below the three levels"},
        "partners": {"twitter": {"twclid": "26abc"}},
        "items": [{"id": "sku-1", "phon": "items are not checked"}],
        "user": {"email": "a@example.com", "consent_categories": ["ads"], "loyalty_tier": "gold"},
        "context": {"page": "/done", "timestamp": 1, "campaign": "spring"},
        "user_id": "u-1",
    }
    assert near_misses(event) == []


def test_the_warning_names_the_key_never_the_value() -> None:
    (warning,) = near_misses({"event_name": "sign_up", "user": {"emial": "ada.lovelace@example.com"}})
    assert "ada" not in warning and "example" not in warning


def test_the_known_fields_are_the_models_fields() -> None:
    models = {"": Event, "user.": User, "context.": Context}
    assert [(prefix, list(known)) for prefix, known in KNOWN_FIELDS] == [
        (prefix, list(model.model_fields)) for prefix, model in models.items()
    ]
