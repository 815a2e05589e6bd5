"""The Python face: build an event, map it, send it to X (the sandbox) in a few lines."""

from __future__ import annotations

import hashlib

import pytest

from xgate.sdk import (
    AsyncConversionsClient,
    ConversionRejected,
    ConversionsClient,
    Event,
    Item,
    Product,
    User,
)
from xgate.testing import RunningSandbox


def test_build_map_and_send(sandbox: RunningSandbox) -> None:
    event = Event(
        event_name="purchase",
        id="sdk-1",
        value=42.5,
        currency="eur",
        user=User(email=" Ada@Example.com", phone="+1 415 555 0123"),
        items=[Item(id="sku-1", quantity=2, price=21.25, product=Product(name="Socks"))],
    )
    with ConversionsClient(
        "o8z6j", {"purchase": "tw-o8z6j-o87ne"}, credentials=sandbox.credentials, settings=sandbox.settings
    ) as x:
        answer = x.send(event)
    assert answer.outcome == "delivered" and answer.debug_id
    [sent] = sandbox.conversions()
    assert sent["conversion_id"] == "sdk-1" and sent["price_currency"] == "EUR"
    assert {"hashed_email": hashlib.sha256(b"ada@example.com").hexdigest()} in sent["identifiers"]


async def test_async_send(sandbox: RunningSandbox) -> None:
    async with AsyncConversionsClient(
        "o8z6j", {"sign_up": "o87nf"}, credentials=sandbox.credentials, settings=sandbox.settings
    ) as x:
        answer = await x.send({"event_name": "sign_up", "user": {"email": "bob@example.com"}})
    assert answer.outcome == "delivered"


def test_an_event_x_would_refuse_raises_naming_the_field(sandbox: RunningSandbox) -> None:
    with ConversionsClient(
        "o8z6j", {"purchase": "o87ne"}, credentials=sandbox.credentials, settings=sandbox.settings
    ) as x:
        with pytest.raises(ConversionRejected) as e:
            x.send(Event(event_name="purchase", user=User(phone="12")))
        # the refusal names the identifier that was given and why it could not be used
        assert [err.field for err in e.value.errors] == ["identifiers", "user.phone"]
        with pytest.raises(ConversionRejected, match="no X event"):
            x.map(Event(event_name="page_view", user=User(email="a@example.com")))
    assert sandbox.conversions() == []
