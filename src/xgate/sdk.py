"""The Python face: build an event, map it, send it straight to X — in the spirit of Meta's business SDK.

    from xgate.sdk import ConversionsClient, Event, User

    with ConversionsClient(pixel_id="o8z6j", events={"purchase": "tw-o8z6j-o87ne"}) as x:
        answer = x.send(Event(event_name="purchase", id="ord-1", value=42.5, currency="EUR",
                              user=User(email="ada@example.com", phone="+1 415 555 0123")))
    print(answer.outcome, answer.debug_id)

Normalization and hashing belong to the mapping (as ``UserData.normalize()`` does in Meta's SDK): raw
e-mails and phones never leave the process unhashed. Credentials come from ``XGATE_X_*`` (or pass them).
No queue here: for retries that survive restarts, send through the gateway (``xgate serve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from xgate.config import Config, ConsentPolicy, Destination, IdentitySettings, XSettings
from xgate.conversion import MappedConversion
from xgate.errors import ConversionRejected as ConversionRejected
from xgate.events import Context, Event, Item, Partners, Product, Twitter, User
from xgate.mapping import Mapper
from xgate.x import AsyncXClient, Credentials, SendResult, XClient

__all__ = [
    "AsyncConversionsClient",
    "Context",
    "ConversionRejected",
    "ConversionsClient",
    "Event",
    "Item",
    "Partners",
    "Product",
    "Twitter",
    "User",
]


class _Face:
    def __init__(
        self,
        pixel_id: str,
        events: Mapping[str, str],
        *,
        default_event: str | None = None,
        credentials: Credentials | None = None,
        settings: XSettings | None = None,
        default_region: str = "US",
        consent: ConsentPolicy | None = None,
    ) -> None:
        destination = Destination(
            name="sdk",
            pixel_id=pixel_id,
            events=dict(events),
            default_event=default_event,
            consent=consent or ConsentPolicy(),
        )
        self.settings = settings or XSettings()
        self.pixel_id = pixel_id
        self._mapper = Mapper(
            Config(
                x=self.settings,
                identity=IdentitySettings(default_region=default_region),
                destinations=[destination],
            )
        )
        self._connect(credentials or Credentials.from_env())

    def _connect(self, credentials: Credentials) -> None:
        raise NotImplementedError

    def map(self, event: Event | dict[str, Any]) -> MappedConversion:
        """The X conversion for ``event``; raises :class:`ConversionRejected` (or ``InvalidEvent``)."""
        result = self._mapper.map(event)
        if result.rejections:
            raise ConversionRejected(result.rejections[0].errors)
        if not result.conversions:
            raise ConversionRejected([], f"not sent: {result.skipped.get('sdk', 'no X event for it')}")
        return result.conversions[0]


class ConversionsClient(_Face):
    """Blocking: ``send(*events)`` maps them and makes one request (up to X's 500)."""

    def _connect(self, credentials: Credentials) -> None:
        self._client = XClient(self.settings, credentials)

    def send(self, *events: Event | dict[str, Any]) -> SendResult:
        return self._client.send(self.pixel_id, [self.map(e).body for e in events])

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ConversionsClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncConversionsClient(_Face):
    """Asyncio: ``await send(*events)``."""

    def _connect(self, credentials: Credentials) -> None:
        self._client = AsyncXClient(self.settings, credentials)

    async def send(self, *events: Event | dict[str, Any]) -> SendResult:
        return await self._client.send(self.pixel_id, [self.map(e).body for e in events])

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncConversionsClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()
