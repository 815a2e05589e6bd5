"""xgate's configuration: one TOML file (``xgate.toml``) plus environment variables for secrets.

Load with :func:`load_config`; every mistake is reported by :class:`ConfigError` with the TOML path of
the field and the reason (``xgate config check`` prints them).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from xgate.errors import ConfigError as ConfigError

DEFAULT_CONFIG_NAME = "xgate.toml"
CONFIG_ENV = "XGATE_CONFIG"

_BASE36 = re.compile(r"^[0-9a-z]+$")
_EVENT_ID = re.compile(r"^(?:tw-([0-9a-z]+)-)?([0-9a-z]+)$")


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
    #: a folder for this node's own files (import checkpoints and reports in ``imports/``); relative to
    #: the configuration file's folder
    state_dir: Path = Path("var")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// (a file) or postgresql://")
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
        return self.model_copy(update={"url": url, "state_dir": state_dir})


class IdentitySettings(_Strict):
    #: ISO 3166 region used to read phone numbers written without a country code
    default_region: str = "US"

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
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
    #: take the client IP from X-Forwarded-For (only behind a proxy you trust)
    trust_forwarded: bool = False
    #: environment variable holding the admin key (reads the activity log without a write key)
    admin_key_env: str | None = None
    #: who this process leases outbox rows as (default: the host name and a stable suffix, see
    #: xgate.outbox.default_node_id); give each of several processes of one role on one host its own
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class DispatchSettings(_Strict):
    enabled: bool = True
    batch_size: int = Field(default=500, ge=1, le=500)
    linger_ms: int = Field(default=200, ge=0)
    concurrency: int = Field(default=4, ge=1)
    lease_seconds: int = Field(default=60, ge=1)
    max_attempts: int = Field(default=20, ge=1)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=900.0, gt=0)
    poll_interval_ms: int = Field(default=100, ge=1)


class Source(_Strict):
    name: str = Field(min_length=1)
    #: the write key itself (browser keys are public by nature) ...
    write_key: str | None = None
    #: ... or the environment variable that holds it (server keys)
    write_key_env: str | None = None
    allowed_origins: list[str] = Field(default_factory=list)
    #: fill context.ip / context.user_agent from the request when an event lacks them: right for a
    #: browser, wrong for a backend (its own address is not its user's). Default: browser sources only
    #: (those with allowed_origins).
    request_context: bool | None = None

    @property
    def takes_request_context(self) -> bool:
        return self.request_context if self.request_context is not None else bool(self.allowed_origins)

    @model_validator(mode="after")
    def _one_key(self) -> Source:
        if not self.write_key and not self.write_key_env:
            raise ValueError("set write_key or write_key_env")
        return self

    def resolve_write_key(self, env: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if env is None else env
        if self.write_key_env:
            return env.get(self.write_key_env) or self.write_key
        return self.write_key


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

    exclude_events: list[str] = Field(default_factory=list)
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
    }
)


class Destination(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    pixel_id: str
    auth: AuthMode = "oauth1"
    #: prefix of this destination's credential variables
    #: (``{prefix}CONSUMER_KEY`` ... or ``{prefix}PIXEL_TOKEN``)
    credentials_env_prefix: str = "XGATE_X_"
    #: our event_name -> X event id (``tw-PIXEL-EVENT`` or the bare event id)
    events: dict[str, str] = Field(min_length=1)
    #: X event id for event names not listed in ``events`` (None: such events are not sent)
    default_event: str | None = None
    filter: Filter = Field(default_factory=Filter)
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
        # `description = "custom.channel"` is shorthand for {path = "custom.channel"}
        if isinstance(v, dict):
            return {k: ({"path": x} if isinstance(x, str) else x) for k, x in v.items()}
        return v

    @field_validator("mapping")
    @classmethod
    def _known_fields(cls, v: dict[str, FieldOverride]) -> dict[str, FieldOverride]:
        unknown = sorted(set(v) - OVERRIDABLE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown X field(s) {', '.join(unknown)}; "
                f"overridable: {', '.join(sorted(OVERRIDABLE_FIELDS))}"
            )
        return v

    @model_validator(mode="after")
    def _event_ids(self) -> Destination:
        ids = dict(self.events)
        if self.default_event:
            ids["default_event"] = self.default_event
        for name, event_id in ids.items():
            m = _EVENT_ID.match(event_id)
            if not m:
                raise ValueError(
                    f"events.{name}: {event_id!r} is not an X event id (tw-PIXEL-EVENT or EVENT)"
                )
            if m.group(1) and m.group(1) != self.pixel_id:
                raise ValueError(
                    f"events.{name}: {event_id!r} belongs to pixel {m.group(1)!r}, not {self.pixel_id!r}"
                )
        return self

    def event_id_for(self, event_name: str) -> str | None:
        return self.events.get(event_name, self.default_event)


class Config(_Strict):
    x: XSettings = Field(default_factory=XSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    sources: list[Source] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (
            ("sources", [s.name for s in self.sources]),
            ("destinations", [d.name for d in self.destinations]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate name(s) {', '.join(dupes)}")
        return self

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


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn pydantic's location into a TOML-ish path, naming array entries by their name."""
    parts: list[str] = []
    node = data
    for step in loc:
        if isinstance(step, int):
            name = (
                node[step].get("name")
                if isinstance(node, list) and step < len(node) and isinstance(node[step], dict)
                else None
            )
            parts[-1] = f"{parts[-1]}[{step}]" + (f"({name})" if name else "") if parts else f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts)


def config_problems(error: ValidationError, data: Mapping[str, Any]) -> list[ConfigProblem]:
    """pydantic's errors for a TOML document, each located by its TOML path."""
    problems = []
    for err in error.errors():
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        reason = err["msg"].removeprefix("Value error, ")
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


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the configuration (``path``, else ``$XGATE_CONFIG``, else ``./xgate.toml``).

    Relative paths in it (``[storage] url = "sqlite:///var/xgate.db"``, ``state_dir``) are read from the
    file's folder, whatever the working directory: every command finds the same outbox."""
    p = resolve_config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(p), [ConfigProblem("", "file not found (pass --config or set XGATE_CONFIG)")]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), [ConfigProblem("", f"not valid TOML: {e}")]) from None
    return parse_config(data, str(p), base_dir=p.parent)
