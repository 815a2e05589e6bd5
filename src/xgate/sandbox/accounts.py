"""What the sandbox's X knows: ad accounts, their pixels and their event tags.

X's Ads API models a pixel's conversion events as *web event tags* of an ad account: a tag's ``id`` is the
base-36 event id (the ``o87ne`` of ``tw-o8z6j-o87ne``; X's v11 reference: the conversion's ``event_id`` "is
called ID in the corresponding Single Event Website Tag in Ads Manager and Ads API") and its
``website_tag_id`` is the pixel (base tag) it belongs to. The sandbox answers ``GET accounts``, ``GET
accounts/:id``, ``GET accounts/:id/authenticated_user_access`` and ``GET accounts/:id/web_event_tags`` from
these declarations, and refuses conversions for an event its pixel does not declare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xgate.config import Config

#: the ad account id the sandbox uses when a destination names none (the shape of X's examples)
DEFAULT_ACCOUNT_ID = "18ce54d4x5t"


def bare_event_id(event_id: str) -> str:
    """``tw-o8z6j-o87ne`` -> ``o87ne``; a bare id is returned as is."""
    return event_id.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class EventTag:
    """One conversion event of a pixel, as X's ``web_event_tags`` lists it."""

    id: str
    pixel_id: str
    name: str = ""
    type: str = "CUSTOM"

    def as_x(self) -> dict[str, object]:
        """The tag in X's response shape (the fields xgate reads, and a few X sends besides)."""
        return {
            "id": self.id,
            "name": self.name or f"event {self.id}",
            "website_tag_id": self.pixel_id,
            "type": self.type,
            "status": "ACTIVE",
            "click_window": 30,
            "view_through_window": 1,
            "retargeting_enabled": True,
            "deleted": False,
        }


@dataclass(frozen=True)
class AdAccount:
    """An ad account the sandbox's one user can read, with that user's permissions on it."""

    id: str
    name: str = "Sandbox ad account"
    event_tags: tuple[EventTag, ...] = ()
    permissions: tuple[str, ...] = ("ACCOUNT_ADMIN",)

    @property
    def pixels(self) -> frozenset[str]:
        return frozenset(t.pixel_id for t in self.event_tags)

    def as_x(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "business_name": None,
            "timezone": "Etc/UTC",
            "approval_status": "ACCEPTED",
            "deleted": False,
        }


def accounts_from_config(config: Config, default_account_id: str = DEFAULT_ACCOUNT_ID) -> list[AdAccount]:
    """The ad accounts, pixels and event tags a configuration's destinations name (each destination's
    ``ad_account_id``, else ``default_account_id``): a sandbox that knows exactly what the configuration
    expects of X."""
    tags: dict[str, dict[tuple[str, str], EventTag]] = {}
    for d in config.destinations:
        account = tags.setdefault(d.ad_account_id or default_account_id, {})
        named = list(d.events.items()) + ([("default_event", d.default_event)] if d.default_event else [])
        for name, event_id in named:
            tag = EventTag(bare_event_id(event_id), d.pixel_id, name)
            account.setdefault((tag.pixel_id, tag.id), tag)
    return [AdAccount(account_id, event_tags=tuple(t.values())) for account_id, t in tags.items()]


def known_events(accounts: Iterable[AdAccount]) -> dict[str, frozenset[str]]:
    """pixel id -> the bare event ids declared for it."""
    events: dict[str, set[str]] = {}
    for account in accounts:
        for tag in account.event_tags:
            events.setdefault(tag.pixel_id, set()).add(tag.id)
    return {pixel: frozenset(ids) for pixel, ids in events.items()}
