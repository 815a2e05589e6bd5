"""What the collector adds to an event from its request: receive time, client IP, user agent, twclid."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request

from xgate.config import ServerSettings
from xgate.tag.twclid import twclid_from_cookies, twclid_from_url


@dataclass(frozen=True, slots=True)
class RequestFacts:
    received_at: datetime
    ip: str | None
    user_agent: str | None
    #: the twclid from the request's cookies, if any
    cookie_twclid: str | None
    secure: bool


def _valid_ip(text: str) -> str | None:
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def request_facts(request: Request, settings: ServerSettings, received_at: datetime) -> RequestFacts:
    """Read the facts once per request. ``X-Forwarded-For`` / ``-Proto`` count only with trust_forwarded;
    then the client is the address the proxy appended last."""
    ip = request.client.host if request.client else None
    secure = request.scope.get("scheme") == "https"  # not request.url: building the URL costs more
    if settings.trust_forwarded:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            ip = _valid_ip(forwarded.rsplit(",", 1)[-1]) or ip
        proto = request.headers.get("x-forwarded-proto")
        if proto:
            secure = proto.rsplit(",", 1)[-1].strip().lower() == "https"
    cookie_twclid = twclid_from_cookies(request.cookies, settings) if request.cookies else None
    return RequestFacts(
        received_at=received_at,
        ip=ip,
        user_agent=request.headers.get("user-agent") or None,
        cookie_twclid=cookie_twclid,
        secure=secure,
    )


def enrich(event: dict[str, Any], facts: RequestFacts) -> dict[str, Any]:
    """A copy of ``event`` with context.ip, context.user_agent, context.event_timestamp and
    partners.twitter.twclid filled where absent. Parts of the wrong type are left for the mapper to reject."""
    context = event.get("context")
    if context is None:
        context = {}
    if isinstance(context, dict):
        context = dict(context)
        if context.get("event_timestamp") is None:
            context["event_timestamp"] = int(facts.received_at.timestamp() * 1000)
        if context.get("ip") is None and facts.ip:
            context["ip"] = facts.ip
        if context.get("user_agent") is None and facts.user_agent:
            context["user_agent"] = facts.user_agent
    event = {**event, "context": context}
    partners = event.get("partners")
    if partners is None:
        partners = {}
    if not isinstance(partners, dict):
        return event
    twitter = partners.get("twitter")
    if twitter is None:
        twitter = {}
    if not isinstance(twitter, dict) or twitter.get("twclid") is not None:
        return event
    page_url = context.get("page_url") if isinstance(context, dict) else None
    # a click id on the page's URL is fresher than the one the cookie kept from an earlier click
    twclid = (twclid_from_url(page_url) if isinstance(page_url, str) else None) or facts.cookie_twclid
    if twclid:
        event["partners"] = {**partners, "twitter": {**twitter, "twclid": twclid}}
    return event
