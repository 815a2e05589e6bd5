"""xgate's configuration: one TOML file (``xgate.toml``) plus environment variables for secrets.

Load with :func:`load_config`; every mistake is reported by :class:`ConfigError` with the TOML path of
the field and the reason (``xgate config check`` prints them).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from xgate.errors import ConfigError as ConfigError

DEFAULT_CONFIG_NAME = "xgate.toml"
CONFIG_ENV = "XGATE_CONFIG"

_BASE36 = re.compile(r"^[0-9a-z]+$")
_EVENT_ID = re.compile(r"^(?:tw-([0-9a-z]+)-)?([0-9a-z]+)$")
_TOML_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _fail_at(title: str, problems: Sequence[tuple[tuple[str | int, ...], str]], value: Any) -> NoReturn:
    """Raise one pydantic error per ``(location, reason)``: a validator that finds several mistakes reports
    them all, each at its own TOML path, instead of stopping at the first."""
    raise ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("config", "{reason}", {"reason": reason}), loc=loc, input=value
            )
            for loc, reason in problems
        ],
    )


def _validate_also(
    handler: Any, data: Any, title: str, problems: Sequence[tuple[tuple[str | int, ...], str]]
) -> Any:
    """Validate ``data`` with pydantic's ``handler`` and report ``problems`` (found on the raw data by a wrap
    validator) together with pydantic's own errors: a cross-field check still speaks when a field fails."""
    try:
        result = handler(data)
    except ValidationError as e:
        if not problems:
            raise
        own = [
            InitErrorDetails(
                type=PydanticCustomError(err["type"], "{reason}", {"reason": err["msg"]}),
                loc=err["loc"],
                input=err["input"],
            )
            for err in e.errors()
        ]
        raise ValidationError.from_exception_data(
            title,
            own
            + [
                InitErrorDetails(
                    type=PydanticCustomError("config", "{reason}", {"reason": reason}), loc=loc, input=data
                )
                for loc, reason in problems
            ],
        ) from None
    if problems:
        _fail_at(title, problems, data)
    return result


def _event_name(v: str) -> str:
    if not v.strip():
        raise ValueError("an event name cannot be blank")
    if v != v.strip():
        raise ValueError(f"{v.strip()!r} has spaces around it; events are matched by their exact name")
    return v


#: an event_name as written in the configuration: events arrive with exact names, so blanks never match
EventName = Annotated[str, AfterValidator(_event_name)]


def _event_id(v: str) -> str:
    if not _EVENT_ID.match(v):
        raise ValueError(
            f"{v!r} is not an X event id (tw-PIXEL-EVENT or EVENT: base-36, lower-case letters and digits)"
        )
    return v


#: an X event id, ``tw-PIXEL-EVENT`` or the bare ``EVENT`` (shared/x-capi/SPEC.md); the pixel part is
#: checked against the destination's pixel by :class:`Destination`
EventId = Annotated[str, AfterValidator(_event_id)]


def event_id_pixel(event_id: str) -> str | None:
    """The pixel id written in ``tw-PIXEL-EVENT``; None for a bare event id or one that is no X event id."""
    m = _EVENT_ID.match(event_id)
    return m.group(1) if m else None


def _origin(v: str) -> str:
    """An ``Origin`` header as browsers send it: ``scheme://host[:port]``, lower case, no default port, no
    path and no trailing slash (RFC 6454 §6.1) - anything else never equals a request's origin."""
    if v == "*":
        return v
    if "://" not in v:
        raise ValueError(f"{v!r} has no scheme: write it as browsers send it, e.g. https://{v.strip('/')}")
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError:
        raise ValueError(f"{v!r} is not an origin (https://shop.example)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        raise ValueError(f"{v!r} is not an http(s) origin such as https://shop.example")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")
    if parts.path == "/" and not parts.query and not parts.fragment:
        raise ValueError(f"{v!r} ends with a slash; browsers send the origin without it: {origin}")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"{v!r} has a path; an origin is only scheme, host and port: {origin}")
    if v != origin:
        raise ValueError(f"{v!r} is never sent by a browser (lower case, no default port): write {origin}")
    return v


Origin = Annotated[str, AfterValidator(_origin)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class XSettings(_Strict):
    """Where X is and how conversions are judged before sending."""

    api_url: str = "https://ads-api.x.com"
    api_version: str = "12"
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_conversions_per_request: int = Field(default=500, ge=1, le=500)
    max_conversion_age_days: int = Field(default=90, ge=1)
    max_clock_skew_seconds: int = Field(default=300, ge=0)
    rate_limit_window_seconds: int = Field(default=900, ge=1)
    rate_limit_requests: int = Field(default=60000, ge=1)
    #: where the four OAuth credentials (or a pixel token) come from when not in the environment
    secrets_file: str | None = None

    @field_validator("secrets_file")
    @classmethod
    def _secrets_file_exists(cls, v: str | None) -> str | None:
        # read at serve time by xgate.x.auth.Credentials.from_env: a missing file is a failure then
        if v is None:
            return v
        path = Path(v)
        if path.is_dir():
            raise ValueError(f"{v} is a directory, not a file of NAME=value lines")
        if not path.is_file():
            raise ValueError(f"{v}: no such file (the X credentials are read from it)")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{v}: not readable by this user")
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http(s) URL such as https://ads-api.x.com")
        return v.rstrip("/")


class StorageSettings(_Strict):
    #: ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` (relative to the configuration file's folder
    #: when loaded from a file) or ``postgresql://…``
    url: str = "sqlite:///var/xgate.db"
    dedup_window_days: int = Field(default=30, ge=1)
    retention_days: int = Field(default=7, ge=0)
    #: a folder for this node's own files (import checkpoints and reports in ``imports/``; on PostgreSQL
    #: the id of the outbox it used, ``outbox-<hex>.id``); relative to the configuration file's folder
    state_dir: Path = Path("var")
    #: the longest a write waits: SQLite for the outbox's write lock (another writer, a suspended ``xgate
    #: import``), PostgreSQL in all (a pooled connection, a lock, the server's answer); then ingest answers
    #: 503 with Retry-After and logs who holds the lock
    write_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    #: free space the outbox's file system must keep for ``/readyz`` to say ready (MiB)
    min_free_mb: int = Field(default=16, ge=0)
    #: start on an outbox that is not the one this node used (truncated, deleted, recreated or replaced
    #: while stopped) and record it; normally refused: prefer ``--accept-new-outbox`` once
    accept_new_outbox: bool = False

    @field_validator("url")
    @classmethod
    def _openable(cls, v: str) -> str:
        # reasons never quote the URL: a PostgreSQL URL may hold a password
        scheme, sep, rest = v.partition("://")
        if not sep:
            raise ValueError("not a URL: use sqlite:///path/to/xgate.db or postgresql://user@host/dbname")
        if scheme == "sqlite":
            _check_sqlite_url(rest)
        elif scheme in ("postgresql", "postgres"):
            _check_postgres_url(v)
        else:
            raise ValueError(
                f"unknown scheme {scheme!r}: use sqlite:///path/to/xgate.db or postgresql://user@host/dbname"
            )
        return v

    def relative_to(self, base_dir: Path) -> StorageSettings:
        """These settings with their relative paths (a ``sqlite:///`` file, ``state_dir``) read from
        ``base_dir``."""
        base = base_dir.absolute()
        url = self.url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
            url = f"sqlite:///{os.path.normpath(base / url.removeprefix('sqlite:///'))}"
        state_dir = (
            self.state_dir if self.state_dir.is_absolute() else Path(os.path.normpath(base / self.state_dir))
        )
        # the same settings read from another folder: those the file set stay the ones it set (the
        # console marks each setting "in the file" or "default"; model_copy would mark both as set)
        values = {**dict(self), "url": url, "state_dir": state_dir}
        return type(self).model_construct(_fields_set=set(self.model_fields_set), **values)


def _check_sqlite_url(rest: str) -> None:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's form)."""
    if not rest.startswith("/"):
        raise ValueError(
            "a SQLite URL has no host: three slashes before a relative path (sqlite:///var/xgate.db), "
            "four before an absolute one (sqlite:////var/lib/xgate/xgate.db)"
        )
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ValueError("names no database file: sqlite:///var/xgate.db")


def _check_postgres_url(url: str) -> None:
    """A libpq connection URI (PostgreSQL docs, "Connection URIs"):
    ``postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]``."""
    if any(c.isspace() for c in url):
        raise ValueError("a PostgreSQL URL cannot hold spaces (percent-encode them: %20)")
    parts = urlsplit(url)
    if parts.fragment:
        raise ValueError("a PostgreSQL URL has no #fragment")
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(","):
        port = host.rpartition("]:")[2] if host.startswith("[") else host.partition(":")[2]
        if host.startswith("[") and "]:" not in host:
            port = ""
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError("the port of a PostgreSQL URL must be a number between 1 and 65535")
    if parts.path.count("/") > 1:
        raise ValueError("the path of a PostgreSQL URL is one database name: postgresql://host/dbname")
    try:
        parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError("the query of a PostgreSQL URL is name=value pairs joined by &") from None
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:  # libpq's own parser: option names it knows, percent-encoding
        conninfo_to_dict(url)
    except psycopg.Error:
        raise ValueError(
            "not a URL libpq can read: postgresql://user@host:5432/dbname?option=value with libpq's option"
            " names (sslmode, connect_timeout, options, ...); percent-encode special characters"
        ) from None


class IdentitySettings(_Strict):
    #: ISO 3166 region used to read phone numbers written without a country code
    default_region: str = "US"

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        return phone_region(v)


def phone_region(v: str) -> str:
    """``v`` as the upper-case ISO 3166 alpha-2 region phonenumbers reads national numbers in; raises
    ValueError naming the value when phonenumbers knows no such region."""
    import phonenumbers

    region = v.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{v!r} is not a region phonenumbers knows (ISO 3166 alpha-2, e.g. US, GB)")
    return region


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_batch_events: int = Field(default=500, ge=1)
    #: name of the first-party cookie that keeps the X click id
    twclid_cookie: str = "_xgate_twclid"
    twclid_cookie_days: int = Field(default=30, ge=1)
    #: limits of the public listener (docs/security.md, "Limits"): a request's line and headers must
    #: arrive within header_timeout_seconds (else 408), its body within body_timeout_seconds of them;
    #: headers beyond max_header_bytes are refused (431); connections beyond max_connections are refused
    #: (503); an idle kept-alive connection closes after keep_alive_seconds
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    max_connections: int = Field(default=1000, ge=1)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    #: take the client IP from X-Forwarded-For (only behind a proxy you trust)
    trust_forwarded: bool = False
    #: environment variable holding the admin key (reads the activity log without a write key)
    admin_key_env: str | None = None
    #: a listener of its own for /metrics, /openapi.json, /docs and /redoc (unset: they need the admin
    #: key), on admin_host: loopback unless you open it (docs/security.md)
    admin_port: int | None = Field(default=None, ge=1, le=65535)
    admin_host: str = "127.0.0.1"
    #: who this process leases outbox rows as (default: the host name and a stable suffix, see
    #: xgate.outbox.default_node_id); give each of several processes of one role on one host its own
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")

    @field_validator("host", "admin_host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v.strip():  # the socket's "any address": every interface, the admin listener's too
            raise ValueError(
                "empty, which would listen on every interface: write 127.0.0.1 for this machine only, "
                "or 0.0.0.0 (:: for IPv6 too) to mean every interface"
            )
        return v

    @model_validator(mode="after")
    def _two_ports(self) -> ServerSettings:
        if self.admin_port is not None and self.admin_port == self.port:
            raise ValueError("admin_port must differ from port: the admin listener is a second one")
        return self


class ConsoleSettings(_Strict):
    """The web console under ``/console`` (xgate.console): who may sign in.

    Admins sign in with the key in ``[server] admin_key_env`` (they read, replay, discard and send test
    events); viewers with the key in ``viewer_key_env`` (they read). With neither set, nobody can sign in.
    """

    enabled: bool = True
    #: environment variable holding the viewer key (read-only access to the console)
    viewer_key_env: str | None = None
    #: how long a sign-in lasts
    session_hours: float = Field(default=12, gt=0, le=720)


class DispatchSettings(_Strict):
    enabled: bool = True
    batch_size: int = Field(default=500, ge=1, le=500)
    linger_ms: int = Field(default=200, ge=0)
    concurrency: int = Field(default=4, ge=1)
    lease_seconds: int = Field(default=60, ge=1)
    #: transient failures (5xx, timeouts, 429) are retried until the conversion has waited this long since
    #: the gateway accepted it, then it becomes a dead letter (docs/delivery.md explains the default)
    give_up_after_hours: float = Field(default=72.0, gt=0, le=24 * 90)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=900.0, gt=0)
    poll_interval_ms: int = Field(default=100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_attempts" in data:
            raise ValueError(
                "max_attempts was replaced by give_up_after_hours: retries are limited by time, not by "
                "count (see docs/delivery.md)"
            )
        return data


ConditionOp = Literal["eq", "ne", "in", "not_in", "exists", "not_exists", "gt", "gte", "lt", "lte", "matches"]


class Condition(_Strict):
    """One filter condition on a dotted path of the event."""

    path: str = Field(min_length=1)
    op: ConditionOp = "eq"
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op == "matches":
            if not isinstance(self.value, str):
                raise ValueError("op 'matches' needs a regular expression string")
            try:
                re.compile(self.value)
            except re.error as e:
                raise ValueError(f"invalid regular expression: {e}") from None
        if self.op in ("gt", "gte", "lt", "lte") and not isinstance(self.value, int | float):
            raise ValueError(f"op {self.op!r} needs a number")
        return self


class Filter(_Strict):
    """Which events a destination takes: all of ``when`` must hold; ``exclude_events`` never go."""

    exclude_events: list[EventName] = Field(default_factory=list)
    when: list[Condition] = Field(default_factory=list)


Transform = Literal["lower", "upper", "trim", "hash", "join", "string", "number", "integer"]


class FieldOverride(_Strict):
    """An X field read from a dotted path of the event, or a constant, optionally transformed."""

    path: str | None = None
    const: Any = None
    transform: list[Transform] = Field(default_factory=list)
    separator: str = ","

    @model_validator(mode="after")
    def _one_source(self) -> FieldOverride:
        if (self.path is None) == (self.const is None):
            raise ValueError("set exactly one of path or const")
        return self


ConsentAction = Literal["send", "restricted", "drop"]


class ConsentPolicy(_Strict):
    """What to do by the user's consent: ``user.consent_categories`` must hold ``category``."""

    category: str = "advertising"
    #: when the category was granted
    granted: ConsentAction = "send"
    #: when consent_categories is present but lacks the category
    denied: ConsentAction = "drop"
    #: when the event carries no consent information
    unknown: ConsentAction = "send"
    #: extra fields added to restricted conversions (should X document an RDU flag),
    #: e.g. {"restricted_data_use": true}
    restricted_extra: dict[str, Any] = Field(default_factory=dict)


#: what a source sends (docs/sources.md): ``xgate`` events (``/v1/events``, the tag, the SDK), Segment's
#: tracking API, GA4's Measurement Protocol and gtag hits, or a commerce platform's order webhooks
SourceKind = Literal["xgate", "segment", "ga4", "shopify", "woocommerce", "stripe"]
SOURCE_KINDS: tuple[str, ...] = ("xgate", "segment", "ga4", "shopify", "woocommerce", "stripe")
WEBHOOK_KINDS: tuple[str, ...] = ("shopify", "woocommerce", "stripe")

#: xgate event fields a source's ``mapping`` may set from its kind's payload (REFERENCE.md's event table);
#: ``custom.*`` paths are free
SOURCE_MAPPABLE_FIELDS = frozenset(
    {
        "event_name",
        "id",
        "value",
        "revenue",
        "currency",
        "type",
        "search_term",
        "items",
        "user.id",
        "user.email",
        "user.phone",
        "user.consent_categories",
        "context.event_timestamp",
        "context.ip",
        "context.user_agent",
        "context.page_url",
        "partners.twitter.twclid",
    }
)
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _override_shorthand(v: Any) -> Any:
    # `description = "custom.channel"` is shorthand for {path = "custom.channel"}
    if isinstance(v, dict):
        return {k: ({"path": x} if isinstance(x, str) else x) for k, x in v.items()}
    return v


class Source(_Strict):
    """What every kind of source has; on its own (``kind = "xgate"``), a source of xgate events.

    The kinds are :class:`XgateSource`, :class:`SegmentSource`, :class:`GA4Source` and the webhook kinds
    (:class:`WebhookSource`); ``[[sources]]`` entries are read as the one their ``kind`` names."""

    name: str = Field(min_length=1)
    kind: SourceKind = "xgate"
    #: the write key itself (browser keys are public by nature) ...
    write_key: str | None = None
    #: ... or the environment variable that holds it (server keys)
    write_key_env: str | None = None
    #: origins of the pages that may send with this key, as browsers send them (``https://shop.example``)
    allowed_origins: list[Origin] = Field(default_factory=list)
    #: fill context.ip / context.user_agent from the request when an event lacks them: right for a
    #: browser, wrong for a backend (its own address is not its user's). Default: browser sources only
    #: (those with allowed_origins).
    request_context: bool | None = None
    #: the kind's own event names -> xgate event names, beside the kind's table (``"Order Placed" =
    #: "purchase"``); not for kind xgate
    event_names: dict[str, EventName] = Field(default_factory=dict)
    #: xgate event fields read from the kind's payload (``value = "properties.total_with_tax"``), as a
    #: destination's mapping reads X fields from the event; not for kind xgate
    mapping: dict[str, FieldOverride] = Field(default_factory=dict)

    @property
    def key_is_public(self) -> bool:
        """A browser source (it has allowed_origins): its key is in every page, so anyone may send with it.
        Such a key never suppresses a server source's conversion, reads nothing and may travel in a URL
        (docs/security.md)."""
        return bool(self.allowed_origins)

    @property
    def takes_request_context(self) -> bool:
        return self.request_context if self.request_context is not None else bool(self.allowed_origins)

    @field_validator("mapping", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _override_shorthand(v)

    @field_validator("mapping")
    @classmethod
    def _known_fields(cls, v: dict[str, FieldOverride]) -> dict[str, FieldOverride]:
        unknown = sorted(k for k in v if k not in SOURCE_MAPPABLE_FIELDS and not k.startswith("custom."))
        if unknown:
            _fail_at(
                "mapping",
                [
                    (
                        (k,),
                        "not an xgate event field a source mapping can set; settable: "
                        f"{', '.join(sorted(SOURCE_MAPPABLE_FIELDS))}, or custom.ANYTHING",
                    )
                    for k in unknown
                ],
                v,
            )
        return v

    @model_validator(mode="after")
    def _fits_kind(self) -> Source:
        if self.kind == "xgate" and (self.mapping or self.event_names):
            field = "mapping" if self.mapping else "event_names"
            raise ValueError(
                f"{field} is for sources of another kind (segment, ga4, …): an xgate event already names "
                "its fields, and a destination's mapping reads any of them"
            )
        if self.requires_write_key() and not self.write_key and not self.write_key_env:
            raise ValueError(self._no_key_reason())
        return self

    def requires_write_key(self) -> bool:
        """Whether this source needs a write key (webhook kinds are signed instead)."""
        return True

    def _no_key_reason(self) -> str:
        return "set write_key or write_key_env"

    def resolve_write_key(self, env: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if env is None else env
        if self.write_key_env:
            return env.get(self.write_key_env) or self.write_key
        return self.write_key


class XgateSource(Source):
    """xgate events: ``POST /v1/events``, the browser tag, the Python SDK and client."""

    kind: Literal["xgate"] = "xgate"


class SegmentSource(Source):
    """Segment's HTTP tracking API (``/v1/track``, ``/v1/page``, ``/v1/identify``, ``/v1/batch``); the
    write key is the HTTP Basic user name, as Segment's libraries send it."""

    kind: Literal["segment"] = "segment"


class GA4Source(Source):
    """GA4 event data: Measurement Protocol JSON at ``/mp/collect`` (the write key is its ``api_secret``)
    and gtag's hits at ``/g/collect`` (taken for the ``measurement_ids`` listed, from ``allowed_origins``)."""

    kind: Literal["ga4"] = "ga4"
    #: GA4 measurement ids (``G-XXXXXXX``) whose gtag hits this source takes at ``/g/collect``
    measurement_ids: list[Annotated[str, Field(pattern=r"^G-[A-Z0-9]+$")]] = Field(default_factory=list)

    def requires_write_key(self) -> bool:
        return not self.measurement_ids

    def _no_key_reason(self) -> str:
        return (
            "set write_key or write_key_env (the api_secret Measurement Protocol senders present), "
            "or measurement_ids for gtag's hits"
        )


class WebhookSource(Source):
    """A commerce platform's webhooks, authenticated by the platform's signature made with a shared secret
    read from the environment variable ``signing_secret_env``; sent by the platform's servers, so it takes
    no write key and no ``allowed_origins`` (collect/cors.py answers no preflight for its endpoints)."""

    kind: Literal["shopify", "woocommerce", "stripe"]
    #: the environment variable holding the webhook signing secret
    signing_secret_env: str = Field(pattern=_ENV_NAME)

    def requires_write_key(self) -> bool:
        return False

    @model_validator(mode="before")
    @classmethod
    def _signed_by_servers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kind = data.get("kind")
            problems: list[tuple[tuple[str | int, ...], str]] = []
            if not data.get("signing_secret_env"):
                problems.append(
                    (
                        ("signing_secret_env",),
                        f"a {kind} source is authenticated by the webhook signature: name the environment "
                        f"variable holding {WEBHOOK_SECRETS.get(str(kind), 'the signing secret')}",
                    )
                )
            for key in ("write_key", "write_key_env"):
                if data.get(key):
                    problems.append(
                        (
                            (key,),
                            f"a {kind} source takes no write key: webhooks are signed (signing_secret_env)",
                        )
                    )
            if data.get("allowed_origins"):
                platform = WEBHOOK_PLATFORMS.get(str(kind), kind)
                problems.append(
                    (
                        ("allowed_origins",),
                        f"a {kind} source takes no allowed_origins: {platform}'s servers send its webhooks, "
                        "never a browser, so no page may call its endpoint (xgate answers no CORS preflight "
                        "there); remove the field, and give a page its own browser source",
                    )
                )
            if problems:
                _fail_at("WebhookSource", problems, data)
        return data

    def resolve_signing_secret(self, env: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if env is None else env
        return env.get(self.signing_secret_env) or None


#: each webhook kind's platform, as its errors name it
WEBHOOK_PLATFORMS = {"shopify": "Shopify", "woocommerce": "WooCommerce", "stripe": "Stripe"}
#: where each webhook kind's signing secret is found, for the errors that ask for it
WEBHOOK_SECRETS = {
    "shopify": "the app's client secret (Shopify signs X-Shopify-Hmac-Sha256 with it)",
    "woocommerce": "the webhook's secret (WooCommerce signs X-WC-Webhook-Signature with it)",
    "stripe": "the endpoint's signing secret, whsec_… (Stripe signs Stripe-Signature with it)",
}


class ShopifySource(WebhookSource):
    kind: Literal["shopify"] = "shopify"


class WooCommerceSource(WebhookSource):
    kind: Literal["woocommerce"] = "woocommerce"


class StripeSource(WebhookSource):
    kind: Literal["stripe"] = "stripe"
    #: seconds a Stripe-Signature timestamp may lag behind this machine's clock before the event is refused
    #: as a replay (Stripe's libraries default to 300)
    tolerance_seconds: int = Field(default=300, ge=1)


_SOURCE_CLASSES: dict[str, type[Source]] = {
    "xgate": XgateSource,
    "segment": SegmentSource,
    "ga4": GA4Source,
    "shopify": ShopifySource,
    "woocommerce": WooCommerceSource,
    "stripe": StripeSource,
}


def _source_tag(v: Any) -> str | None:
    kind = v.get("kind", "xgate") if isinstance(v, dict) else getattr(v, "kind", None)
    return f"kind:{kind}" if kind in _SOURCE_CLASSES else None


#: a ``[[sources]]`` entry, read as the class of its ``kind`` (default ``xgate``)
AnySource = Annotated[
    Annotated[XgateSource, Tag("kind:xgate")]
    | Annotated[SegmentSource, Tag("kind:segment")]
    | Annotated[GA4Source, Tag("kind:ga4")]
    | Annotated[ShopifySource, Tag("kind:shopify")]
    | Annotated[WooCommerceSource, Tag("kind:woocommerce")]
    | Annotated[StripeSource, Tag("kind:stripe")],
    Discriminator(
        _source_tag,
        custom_error_type="source_kind",
        custom_error_message=f"kind: not a source kind; one of {', '.join(SOURCE_KINDS)}",
    ),
]


AuthMode = Literal["oauth1", "pixel_token"]

#: X conversion fields a destination may override (REFERENCE.md's mapping table)
OVERRIDABLE_FIELDS = frozenset(
    {
        "conversion_time",
        "conversion_id",
        "value",
        "price_currency",
        "number_items",
        "description",
        "search_string",
        "twclid",
        "email",
        "phone",
        "ip_address",
        "user_agent",
        "event_id",
    }
)


#: event paths that hold raw personal data, and the one X field each may feed (hashed, or as an identifier)
PERSONAL_PATHS = {"user.email": "email", "user.phone": "phone", "context.ip": "ip_address"}


def _personal_source(field: str, override: FieldOverride) -> str | None:
    """Why an override may not read its path: raw personal data into a field X receives in clear
    (docs/security.md, "Personal data"). A path ending in ``hash`` is allowed: X then gets a digest."""
    path = override.path
    if path is None or (override.transform and override.transform[-1] == "hash"):
        return None
    for personal, meant_for in PERSONAL_PATHS.items():
        if field != meant_for and (path == personal or personal.startswith(path + ".")):
            return (
                f"{path!r} holds raw personal data and {field} reaches X in clear: it belongs in "
                f'{meant_for} (an identifier, hashed where X asks), or end transform with "hash"'
            )
    return None


class Destination(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    pixel_id: str
    auth: AuthMode = "oauth1"
    #: prefix of this destination's credential variables
    #: (``{prefix}CONSUMER_KEY`` ... or ``{prefix}PIXEL_TOKEN``)
    credentials_env_prefix: str = "XGATE_X_"
    #: our event_name -> X event id (``tw-PIXEL-EVENT`` or the bare event id)
    events: dict[EventName, EventId] = Field(default_factory=dict)
    #: X event id for event names not listed in ``events`` (None: such events are not sent)
    default_event: EventId | None = None
    filter: Filter = Field(default_factory=Filter)
    #: X fields read from the event; ``event_id`` lets an event name its own X event (per-event routing)
    mapping: dict[str, FieldOverride] = Field(default_factory=dict)
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    #: declares Dynamic Product Ads use: config check warns on missing DPA events
    dpa: bool = False
    #: the X ad account that owns the pixel (base-36, e.g. 18ce54d4x5t): ``xgate verify`` reads its event
    #: tags; when absent, verify looks for the pixel in every ad account the credentials can read
    ad_account_id: str | None = None

    @field_validator("pixel_id")
    @classmethod
    def _pixel(cls, v: str) -> str:
        if not _BASE36.match(v):
            raise ValueError(f"{v!r} is not a base-36 pixel id (lower-case letters and digits, e.g. o8z6j)")
        return v

    @field_validator("ad_account_id")
    @classmethod
    def _account(cls, v: str | None) -> str | None:
        if v is not None and not _BASE36.match(v):
            raise ValueError(
                f"{v!r} is not a base-36 ad account id (lower-case letters and digits, e.g. 18ce54d4x5t)"
            )
        return v

    @field_validator("mapping", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _override_shorthand(v)

    @field_validator("mapping")
    @classmethod
    def _known_fields(cls, v: dict[str, FieldOverride]) -> dict[str, FieldOverride]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for field in sorted(set(v) - OVERRIDABLE_FIELDS):
            problems.append(
                (
                    (field,),
                    f"not an X field a mapping can set; overridable: {', '.join(sorted(OVERRIDABLE_FIELDS))}",
                )
            )
        for field, override in sorted(v.items()):
            reason = _personal_source(field, override)
            if reason:
                problems.append(((field, "path"), reason))
        routed = v.get("event_id")
        if routed is not None and routed.path is None:
            problems.append(
                (
                    ("event_id",),
                    "read from a path of the event; a fixed X event id goes in events or default_event",
                )
            )
        if problems:
            _fail_at("mapping", problems, v)
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _event_ids(cls, data: Any, handler: Any) -> Any:
        # on the raw table, so that every event id of another pixel is named even when a field fails
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if isinstance(data, dict):
            pixel, events, default = data.get("pixel_id"), data.get("events"), data.get("default_event")
            mapping = data.get("mapping")
            if not events and not default and not (isinstance(mapping, dict) and "event_id" in mapping):
                problems.append(
                    (
                        ("events",),
                        "no X event: map event names to X event ids "
                        '(events = { purchase = "tw-PIXEL-EVENT" }), '
                        "or set default_event or mapping.event_id",
                    )
                )
            ids: list[tuple[tuple[str | int, ...], Any]] = (
                [(("events", name), i) for name, i in events.items()] if isinstance(events, dict) else []
            )
            ids.append((("default_event",), default))
            if isinstance(pixel, str) and _BASE36.match(pixel):
                problems.extend(
                    (loc, f"{event_id!r} belongs to pixel {other!r}, not this destination's {pixel!r}")
                    for loc, event_id in ids
                    if isinstance(event_id, str) and (other := event_id_pixel(event_id)) and other != pixel
                )
        return _validate_also(handler, data, "Destination", problems)

    def event_id_for(self, event_name: str) -> str | None:
        return self.events.get(event_name, self.default_event)


class Config(_Strict):
    x: XSettings = Field(default_factory=XSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    sources: list[AnySource] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list, validate_default=True)
    #: the file it was loaded from (absolute; None when built from a document in code), set by load_config
    _loaded_from: str | None = PrivateAttr(default=None)

    @property
    def loaded_from(self) -> str | None:
        """The absolute path of the file :func:`load_config` read this configuration from, else None."""
        return self._loaded_from

    @field_validator("destinations")
    @classmethod
    def _some_destination(cls, v: list[Destination]) -> list[Destination]:
        if not v:
            raise ValueError(
                "none configured, so nothing would ever be sent to X: add a [[destinations]] table "
                "with name, pixel_id and events"
            )
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _unique_names(cls, data: Any, handler: Any) -> Any:
        # on the raw tables, so that a duplicate is named even when an entry has another mistake
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for kind in ("sources", "destinations"):
            entries = data.get(kind) if isinstance(data, dict) else None
            first: dict[str, int] = {}
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                name = entry.get("name") if isinstance(entry, dict) else None
                if not isinstance(name, str):
                    continue
                if name in first:
                    problems.append(((kind, i, "name"), f"{name!r} is taken by {kind}[{first[name]}]"))
                first.setdefault(name, i)
        return _validate_also(handler, data, "Config", problems)

    def destination(self, name: str) -> Destination:
        for d in self.destinations:
            if d.name == name:
                return d
        raise KeyError(name)


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a configuration file: where (TOML path) and why."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}" if self.location else self.reason


def _toml_key(key: str) -> str:
    return key if _TOML_BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn pydantic's location into a TOML-ish path, naming array entries by their name."""
    parts: list[str] = []
    node = data
    for step in loc:
        if step == "[key]":  # the key itself was refused: the path already names it
            continue
        if isinstance(step, int):
            name = (
                node[step].get("name")
                if isinstance(node, list) and step < len(node) and isinstance(node[step], dict)
                else None
            )
            parts[-1] = f"{parts[-1]}[{step}]" + (f"({name})" if name else "") if parts else f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
        else:
            parts.append(_toml_key(str(step)))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts)


def config_problems(error: ValidationError, data: Mapping[str, Any]) -> list[ConfigProblem]:
    """pydantic's errors for a TOML document, each located by its TOML path."""
    problems = []
    for err in error.errors():
        # "function-…" steps are validators, "kind:…" steps the tag of a source's kind: not TOML paths
        loc = tuple(
            x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "kind:")))
        )
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "source_kind":
            kind = err["input"].get("kind") if isinstance(err["input"], dict) else None
            loc, reason = (*loc, "kind"), f"{kind!r} is not a source kind; one of {', '.join(SOURCE_KINDS)}"
        if err["type"] == "extra_forbidden":
            reason = "unknown setting (check the spelling; see the documentation of this file)"
        problems.append(ConfigProblem(_location(loc, data), reason))
    return problems


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", *, base_dir: Path | None = None
) -> Config:
    """Validate a configuration document; relative paths in it are read from ``base_dir`` (made absolute)
    or, without one, left relative to the working directory."""
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, config_problems(e, data)) from None
    if base_dir is None:
        return config
    return config.model_copy(update={"storage": config.storage.relative_to(base_dir)})


def resolve_config_path(path: str | Path | None = None) -> Path:
    if path:
        return Path(path)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def read_toml_text(path: Path) -> str:
    """The text of a TOML file: UTF-8, as TOML requires, with a byte-order mark skipped (Windows editors
    write one). Raises ``OSError``, or ``UnicodeDecodeError`` for another encoding (:func:`not_utf8`)."""
    return path.read_text(encoding="utf-8-sig")


def not_utf8(error: UnicodeDecodeError) -> str:
    """The problem of a TOML file in another encoding than UTF-8, where the first wrong byte is."""
    return f"not UTF-8 text (byte {error.start}): save it as UTF-8, which TOML requires"


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the configuration (``path``, else ``$XGATE_CONFIG``, else ``./xgate.toml``).

    Relative paths in it (``[storage] url = "sqlite:///var/xgate.db"``, ``state_dir``) are read from the
    file's folder, whatever the working directory: every command finds the same outbox."""
    p = resolve_config_path(path)
    try:
        text = read_toml_text(p)
    except FileNotFoundError:
        raise ConfigError(
            str(p), [ConfigProblem("", "file not found (pass --config or set XGATE_CONFIG)")]
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(p), [ConfigProblem("", not_utf8(e))]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), [ConfigProblem("", f"not valid TOML: {e}")]) from None
    config = parse_config(data, str(p), base_dir=p.parent)
    config._loaded_from = str(p.resolve())
    return config
