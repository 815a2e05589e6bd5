"""The tag's JavaScript, its version (a content hash) and the snippet a site owner pastes."""

from __future__ import annotations

import hashlib
import json
import re
import typing
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from xgate.config import Condition, Config, Destination, Source
from xgate.errors import SnippetError as SnippetError
from xgate.events import Event
from xgate.mapping.filters import condition_holds

TAG_JS: bytes = files("xgate.tag").joinpath("static/tag.js").read_bytes()
#: changes whenever the script does, so ``/tag.js?v=TAG_VERSION`` can be cached for a year
TAG_VERSION: str = hashlib.sha256(TAG_JS).hexdigest()[:12]
TAG_ETAG: str = f'"{TAG_VERSION}"'

#: what a host and port never hold, and would end the snippet's src="..." attribute or open a tag
_NOT_IN_AN_ORIGIN = re.compile(r"[\s\"'<>\\]")
_STUB = (
    "!function(w,n){var x=w.xgate=w.xgate||{q:[]};n.forEach(function(m){x[m]=x[m]||function(){"
    'x.q.push([m,arguments])}})}(window,["init","track","consent"]);'
)


#: what every browser event carries whatever the page passes: the tag adds the page's URL and the time
_TAG_SETS = frozenset({"context.page_url", "context.event_timestamp"})
#: ... and the gateway the visitor's address and browser, for sources that take the request's context
_REQUEST_SETS = frozenset({"context.ip", "context.user_agent"})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _event_field(path: str) -> bool:
    """Whether ``path`` is a field of xgate's event model (``value``, ``user.email``, ``items.0.id``): one a
    page passes to ``xgate.track``. Other paths (``channel``, ``custom.channel``) are properties of your
    own."""
    models: list[type[BaseModel]] = [Event]
    found = False
    for part in path.split("."):
        if part.isdigit() and found:
            continue  # an index into a list of models: items.0.id
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            return False
        found = True
        models = [m for f in fields for m in _models_in(f.annotation)]
    return True


def _anchored_literal(pattern: str) -> str | None:
    """The text a regular expression anchored at ``^`` must start with (``^https://shop\\.fr/`` →
    ``https://shop.fr/``), or None when that cannot be read simply (alternation, a flag, a class first)."""
    if not pattern.startswith("^") or "|" in pattern:
        return None
    literal = []
    i = 1
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            literal.append(pattern[i + 1])
            i += 2
            continue
        if c in ".^$*+?{}[]()\\|":
            # a quantifier makes the character before it optional or repeated
            if c in "*?{" and literal:
                literal.pop()
            break
        literal.append(c)
        i += 1
    return "".join(literal)


def _page_url_may_hold(condition: Condition, source: Source, pattern: re.Pattern[str] | None) -> bool:
    """Whether ``condition`` on ``context.page_url`` can hold for some page of ``source``'s origins (a page
    URL is ``ORIGIN/…``): decided for ``eq``, ``in`` and ``matches`` anchored with a plain prefix; any
    other condition may hold."""
    if "*" in source.allowed_origins:
        return True
    prefixes = [f"{origin}/" for origin in source.allowed_origins]

    def fits(url: Any) -> bool:
        return isinstance(url, str) and any(url.startswith(p) for p in prefixes)

    if condition.op == "eq":
        return fits(condition.value)
    if condition.op == "in":
        return any(fits(v) for v in condition.value)
    if condition.op == "matches" and pattern is not None:
        literal = _anchored_literal(pattern.pattern)
        if literal is None or pattern.search(prefixes[0]) is not None:
            return True
        return any(p.startswith(literal) or literal.startswith(p) for p in prefixes)
    return True


def browser_refusal(destination: Destination, source: Source, event_name: str) -> str | None:
    """Why ``destination`` would never take ``event_name`` sent by the tag from a page of ``source`` (None:
    it may, by what a browser event carries).

    The rule: the event's name is known; what the tag and the gateway always set (``context.page_url``,
    ``context.event_timestamp``, and ``context.ip`` / ``context.user_agent`` for a source that takes the
    request's context) exists, and the page URL starts with one of the source's ``allowed_origins`` (judged
    for ``eq``, ``in`` and a ``matches`` anchored with ``^`` and plain text); a field of xgate's event
    model (``value``, ``user.…``, ``items``…) depends on what the page passes, so a condition on it may
    hold; any other property (``channel``) is one the tag never sets, so a condition on it is judged on an
    absent value: ``channel eq "store"`` never holds for a browser, ``channel ne "store"`` always does.
    Documented in docs/browser.md (Setup).
    """
    if event_name in destination.filter.exclude_events:
        return f"filter: event_name {event_name!r} is excluded"
    always_set = _TAG_SETS | (_REQUEST_SETS if source.takes_request_context else frozenset())
    for condition in destination.filter.when:
        what = f"filter {condition.path} {condition.op} {condition.value!r}"
        pattern = re.compile(condition.value) if condition.op == "matches" else None
        if condition.path == "event_name":
            if not condition_holds(condition, event_name, pattern):
                return f"{what} does not hold for {event_name!r}"
        elif condition.path in always_set:
            if condition.op == "not_exists":
                return f"{what}: the tag always sets {condition.path}"
            if condition.path == "context.page_url" and not _page_url_may_hold(condition, source, pattern):
                return f"{what}: no page of {', '.join(source.allowed_origins)} has such a URL"
        elif not _event_field(condition.path) and not condition_holds(condition, None, pattern):
            return f"{what}: the tag never sets {condition.path}"
    return None


@dataclass(frozen=True)
class PixelEvents:
    """The pixel's events for one web source: ``events`` (event_name → ``tw-PIXEL-EVENT``) and, per
    destination left out entirely, why its filter takes no event of that source's pages."""

    events: dict[str, str]
    left_out: dict[str, str]


def pixel_events(config: Config, source: Source) -> PixelEvents:
    """The X pixel events the tag fires on the pages of ``source``: those of the destinations that would
    take the same event from the gateway (see :func:`browser_refusal`), so the pixel never counts an event
    meant for another destination (an offline store sale). The first destination wins a shared name."""
    events: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for destination in config.destinations:
        refusals = []
        for name, event_id in destination.events.items():
            refusal = browser_refusal(destination, source, name)
            if refusal:
                refusals.append(refusal)
                continue
            full = event_id if event_id.startswith("tw-") else f"tw-{destination.pixel_id}-{event_id}"
            events.setdefault(name, full)
        if refusals and len(refusals) == len(destination.events):
            left_out[destination.name] = refusals[0]
    return PixelEvents(events, left_out)


def collector_origin(url: str) -> str:
    """The gateway's public origin (``scheme://host[:port]``) that ``url`` names, as the snippet loads the
    tag from it; SnippetError (quoting ``url``) when ``url`` is not an origin: the tag sends events to the
    origin it is loaded from, so a path, a query or a fragment would be lost."""
    if not url.startswith(("https://", "http://")):
        raise SnippetError(f"{url!r}: must start with https:// (or http://)")
    parts = urlsplit(url)
    if (
        parts.path.strip("/")
        or parts.query
        or parts.fragment
        or not parts.netloc
        or _NOT_IN_AN_ORIGIN.search(parts.netloc)
    ):
        raise SnippetError(
            f"{url!r}: the gateway's origin only, such as https://xgate.shop.example "
            "(the tag sends events to the origin it is loaded from, so a path or a query would be lost)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def snippet(config: Config, source_name: str, collector_url: str, *, consent_required: bool = False) -> str:
    """The two lines a site owner pastes into every page, before ``</head>``."""
    source = next((s for s in config.sources if s.name == source_name), None)
    if source is None:
        known = ", ".join(s.name for s in config.sources) or "none"
        raise SnippetError(f"source {source_name!r}: no such source (configured: {known})")
    if not source.allowed_origins:
        raise SnippetError(f"sources.{source_name}.allowed_origins: empty, so browsers may not send events")
    if not source.write_key:
        raise SnippetError(
            f"sources.{source_name}.write_key: a browser source needs its (public) key in the file"
        )
    try:
        base = collector_origin(collector_url)
    except SnippetError as e:
        raise SnippetError(f"collector URL {e}") from None
    options: dict[str, object] = {
        "writeKey": source.write_key,
        "pixelEvents": pixel_events(config, source).events,
    }
    if consent_required:
        options["consent"] = "required"
    init = json.dumps(options, separators=(",", ":")).replace("</", "<\\/")
    return (
        f"<script>{_STUB}xgate.init({init});</script>\n"
        f'<script async src="{base}/tag.js?v={TAG_VERSION}"></script>'
    )
