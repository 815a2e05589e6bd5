"""The tag's JavaScript, its version (a content hash) and the snippet a site owner pastes."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files

from xgate.config import Config
from xgate.errors import SnippetError as SnippetError

TAG_JS: bytes = files("xgate.tag").joinpath("static/tag.js").read_bytes()
#: changes whenever the script does, so ``/tag.js?v=TAG_VERSION`` can be cached for a year
TAG_VERSION: str = hashlib.sha256(TAG_JS).hexdigest()[:12]
TAG_ETAG: str = f'"{TAG_VERSION}"'

_STUB = (
    "!function(w,n){var x=w.xgate=w.xgate||{q:[]};n.forEach(function(m){x[m]=x[m]||function(){"
    'x.q.push([m,arguments])}})}(window,["init","track","consent"]);'
)


def pixel_events(config: Config) -> dict[str, str]:
    """event_name -> X event id for the pixel, from the destinations (the first destination wins)."""
    events: dict[str, str] = {}
    for destination in config.destinations:
        for name, event_id in destination.events.items():
            full = event_id if event_id.startswith("tw-") else f"tw-{destination.pixel_id}-{event_id}"
            events.setdefault(name, full)
    return events


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
    if not collector_url.startswith(("https://", "http://")):
        raise SnippetError(f"collector URL {collector_url!r}: must start with https:// (or http://)")
    options: dict[str, object] = {"writeKey": source.write_key, "pixelEvents": pixel_events(config)}
    if consent_required:
        options["consent"] = "required"
    init = json.dumps(options, separators=(",", ":")).replace("</", "<\\/")
    base = collector_url.rstrip("/")
    return (
        f"<script>{_STUB}xgate.init({init});</script>\n"
        f'<script async src="{base}/tag.js?v={TAG_VERSION}"></script>'
    )
