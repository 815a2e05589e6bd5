"""What ``xgate config check`` warns about beyond validation: what will not work at run time (a write key
or credential variable unset, a webhook secret missing, Dynamic Product Ads lacking an event). Shared by the
command and the console's configuration page; messages name environment variables, never their values."""

from __future__ import annotations

import os
from collections.abc import Mapping

from xgate.config import WEBHOOK_SECRETS, Config, WebhookSource

#: the X events Dynamic Product Ads need
DPA_EVENTS = ("page_view", "view_item", "add_to_cart", "purchase")


def findings(config: Config, env: Mapping[str, str] | None = None) -> list[str]:
    """One message per problem, each starting with its TOML path (``sources.NAME``, ``destinations.NAME``)."""
    env = os.environ if env is None else env
    warnings: list[str] = []
    if not config.sources:
        # a warning, not an error: `xgate import` queues conversions without any source
        warnings.append(
            "sources: none configured, so the gateway takes no events over HTTP (only `xgate import`)"
        )
    for s in config.sources:
        if s.write_key_env and not env.get(s.write_key_env) and not s.write_key:
            warnings.append(
                f"sources.{s.name}: {s.write_key_env} is not set; this source cannot authenticate"
            )
        if isinstance(s, WebhookSource) and not s.resolve_signing_secret():
            warnings.append(
                f"sources.{s.name}: {s.signing_secret_env} is not set; every {s.kind} webhook will be "
                f"refused (put {WEBHOOK_SECRETS[s.kind]} in it)"
            )
    for d in config.destinations:
        missing = [name for name in credential_variables(config, d.name) if not env.get(name)]
        if missing and not config.x.secrets_file:
            warnings.append(f"destinations.{d.name}: credentials not set: {', '.join(missing)}")
        if d.dpa:
            lacking = [e for e in DPA_EVENTS if d.event_id_for(e) is None]
            if lacking:
                warnings.append(
                    f"destinations.{d.name}: declares dpa but has no X event for {', '.join(lacking)} "
                    "(Dynamic Product Ads need page_view, view_item, add_to_cart, purchase)"
                )
    return warnings


def credential_variables(config: Config, destination: str) -> list[str]:
    """The environment variables that hold ``destination``'s X credentials (names only)."""
    d = next(d for d in config.destinations if d.name == destination)
    names = (
        ("PIXEL_TOKEN",)
        if d.auth == "pixel_token"
        else ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
    )
    return [d.credentials_env_prefix + n for n in names]
