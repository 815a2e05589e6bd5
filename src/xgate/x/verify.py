"""``xgate verify``: what can be proven about a destination's X side without recording a conversion.

Per destination, in order; a check that cannot run because an earlier one failed says so:

==================  ====================================================================================
``credentials``     every variable set (environment or secrets file) and plausible: printable ASCII,
                    no spaces, no quotes or placeholder left in (the values are never shown)
``signature``       oauth1: ``GET accounts`` answered 200, so X accepted the OAuth 1.0a signature
``ad account``      oauth1: ``GET accounts/:id`` (``ad_account_id``), else the readable account whose
                    event tags name the pixel
``user role``       oauth1: ``authenticated_user_access`` lists ``ACCOUNT_ADMIN`` or ``AD_MANAGER``, the
                    roles X's Conversion API guide requires
``pixel``           oauth1: an event tag of the account has ``website_tag_id`` = the pixel
``event NAME``      oauth1: the account has an event tag with that id, of this pixel
``conversions``     both: ``POST measurement/conversions/:pixel`` with an empty list, signed as a
                    delivery: 401 / 403 / 404 are refusals; a 400 (or 200) means X took the request past
                    authentication and the pixel lookup and recorded nothing
==================  ====================================================================================

A pixel token authenticates only the Conversions API, so for ``pixel_token`` destinations the Ads API
checks are "not checked" and only ``credentials`` and ``conversions`` run; docs/x-setup.md says what each
verdict does and does not prove.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from xgate.config import Config, Destination
from xgate.x.ads import AdsAnswer, AdsReader
from xgate.x.auth import Credentials, CredentialsError, credential_values

Verdict = Literal["ok", "failed", "not checked"]
#: X's Conversion API set-up guide: "user tokens … must be for users with AD_MANAGER or ACCOUNT_ADMIN"
SENDING_ROLES = ("ACCOUNT_ADMIN", "AD_MANAGER")
#: how many readable ad accounts are searched for the pixel when no ad_account_id is set
MAX_ACCOUNTS_SEARCHED = 50
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
_PLACEHOLDER = re.compile(r"^(?:\.\.\.|…|x+|changeme|todo|your[-_ ].*|<.*>|\$\{?\w+\}?)$", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """One verdict: ``detail`` says what was seen (or why not checked), ``fix`` what to do on failure."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DestinationReport:
    destination: str
    pixel_id: str
    auth: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """No check failed ("not checked" is not a failure: it is reported, never counted as proof)."""
        return all(c.verdict != "failed" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "pixel_id": self.pixel_id,
            "auth": self.auth,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }


def _form_problem(value: str) -> str | None:
    """Why a credential value cannot be right, without repeating it; None when it looks plausible."""
    if value != value.strip():
        return "has spaces or a line break around it"
    if value[:1] in "\"'" or value[-1:] in "\"'":
        return "is wrapped in quotes"
    if _PLACEHOLDER.match(value):
        return "is a placeholder, not a value"
    if not _PRINTABLE.match(value):
        return "holds spaces or characters outside printable ASCII"
    return None


def check_credentials(
    destination: Destination, secrets_file: str | None, env: Mapping[str, str] | None
) -> tuple[Check, Credentials | None]:
    """Presence and form of the destination's credential variables; the credentials when both hold."""
    prefix, auth = destination.credentials_env_prefix, destination.auth
    try:
        values = credential_values(prefix, auth, secrets_file, env)
    except CredentialsError as e:
        return Check("credentials", "failed", str(e), "fix [x] secrets_file or the file's lines"), None
    where = "the environment or the secrets file" if secrets_file else "the environment (or [x] secrets_file)"
    missing = [name for name, value in values.items() if not value]
    if missing:
        fix = f"set {', '.join(missing)} in {where}; docs/x-setup.md says where X shows them"
        return Check("credentials", "failed", f"not set: {', '.join(missing)}", fix), None
    bad = [f"{name} {why}" for name, value in values.items() if (why := _form_problem(value))]
    if bad:
        return Check("credentials", "failed", "; ".join(bad), "copy the value again, exactly"), None
    credentials = Credentials.from_env(prefix, auth, secrets_file, env)
    return Check("credentials", "ok", f"{', '.join(values)} set and well-formed"), credentials


def _refusal(what: str, answer: AdsAnswer) -> tuple[str, str]:
    """detail and fix for a failed call, by X's status."""
    why = answer.why()
    if answer.status is None:
        return f"{what}: X did not answer ({why})", "check [x] api_url and the network path to X"
    if answer.status == 401:
        return (
            f"signature refused: {why}",
            "check the credential values and that this machine's clock is right (X allows a few minutes)",
        )
    if answer.status == 403:
        return (
            f"{what}: access refused: {why}",
            "the app needs Ads API access and the user a role on the account",
        )
    if answer.status == 404:
        return f"{what}: not found: {why}", ""
    if answer.status == 429:
        return f"{what}: rate-limited by X: {why}", "run xgate verify again later"
    return f"{what}: {why}", ""


def _failed(name: str, what: str, answer: AdsAnswer, fix: str = "") -> Check:
    detail, default_fix = _refusal(what, answer)
    return Check(name, "failed", detail, fix or default_fix)


def _event_names(destination: Destination) -> list[tuple[str, str]]:
    named = list(destination.events.items())
    if destination.default_event:
        named.append(("default_event", destination.default_event))
    return named


def _bare(event_id: str) -> str:
    return event_id.rsplit("-", 1)[-1]


def _not_checked(destination: Destination, why: str) -> list[Check]:
    names = ["signature", "ad account", "user role", "pixel"]
    names += [f"event {name}" for name, _ in _event_names(destination)]
    return [Check(name, "not checked", why) for name in names]


def _find_account(
    reader: AdsReader, destination: Destination, accounts: list[dict[str, Any]]
) -> tuple[Check, str | None, list[dict[str, Any]]]:
    """The ad account whose event tags to read — the configured one, else the readable one whose tags name
    the pixel — with its tags; account id None when there is none."""
    if destination.ad_account_id:
        account_id = destination.ad_account_id
        answer = reader.account(account_id)
        if not answer.ok:
            fix = "set ad_account_id to an account this user can read (or remove it to search them all)"
            if answer.status == 404:
                detail = f"ad account {account_id} is not one this user can read (X answered 404)"
                return Check("ad account", "failed", detail, fix), None, []
            return _failed("ad account", f"ad account {account_id}", answer, fix), None, []
        name = answer.data.get("name") if isinstance(answer.data, dict) else None
        tags, answer = reader.web_event_tags(account_id)
        if not answer.ok:
            return _failed("ad account", f"event tags of {account_id}", answer), None, []
        label = f"{account_id} ({name})" if name else account_id
        return Check("ad account", "ok", f"{label}, from ad_account_id"), account_id, tags
    ids = [str(a["id"]) for a in accounts if isinstance(a, dict) and a.get("id")]
    if not ids:
        fix = "give the user a role on the ad account in X's Ads Manager, then run verify again"
        return Check("ad account", "failed", "this user can read no ad account", fix), None, []
    for account_id in ids[:MAX_ACCOUNTS_SEARCHED]:
        tags, answer = reader.web_event_tags(account_id)
        if answer.ok and any(t.get("website_tag_id") == destination.pixel_id for t in tags):
            detail = f'{account_id} owns the pixel (set ad_account_id = "{account_id}" to skip the search)'
            return Check("ad account", "ok", detail), account_id, tags
    searched = min(len(ids), MAX_ACCOUNTS_SEARCHED)
    detail = (
        f"no event tag of the {searched} ad account(s) this user can read belongs to pixel "
        f"{destination.pixel_id}"
    )
    fix = "check pixel_id, or set ad_account_id to the account that owns the pixel"
    return Check("ad account", "failed", detail, fix), None, []


def _role(reader: AdsReader, account_id: str) -> Check:
    answer = reader.user_access(account_id)
    if not answer.ok:
        return _failed("user role", f"authenticated_user_access of {account_id}", answer)
    data = answer.data if isinstance(answer.data, dict) else {}
    permissions = [str(p) for p in data.get("permissions") or []]
    if any(p in SENDING_ROLES for p in permissions):
        return Check("user role", "ok", f"{', '.join(permissions)} on {account_id}")
    held = ", ".join(permissions) or "no permission"
    detail = f"the user holds {held} on {account_id}; X's Conversion API needs ACCOUNT_ADMIN or AD_MANAGER"
    return Check(
        "user role", "failed", detail, "give the access token's user one of those roles on the account"
    )


def _pixel_and_events(destination: Destination, account_id: str, tags: list[dict[str, Any]]) -> list[Check]:
    pixel = destination.pixel_id
    by_id = {str(t.get("id")): t for t in tags}
    named_pixels = {t.get("website_tag_id") for t in tags} - {None}
    checks: list[Check] = []
    if pixel in named_pixels:
        mine = sum(1 for t in tags if t.get("website_tag_id") == pixel)
        checks.append(Check("pixel", "ok", f"{pixel}: {mine} event tag(s) in ad account {account_id}"))
    elif not named_pixels and tags:
        checks.append(Check("pixel", "not checked", "X's event tags name no pixel (website_tag_id)"))
    else:
        fix = "check pixel_id against the pixel's ID in Events Manager"
        detail = f"no event tag of ad account {account_id} belongs to pixel {pixel}"
        checks.append(Check("pixel", "failed", detail, fix))
    for name, event_id in _event_names(destination):
        tag = by_id.get(_bare(event_id))
        check = f"event {name}"
        if tag is None:
            detail = (
                f"{event_id}: ad account {account_id} has no event tag {_bare(event_id)} "
                "(deleted, or of another account)"
            )
            checks.append(Check(check, "failed", detail, "copy the event's ID from Events Manager"))
        elif tag.get("website_tag_id") not in (None, pixel):
            owner = tag.get("website_tag_id")
            detail = f"{event_id}: event tag {tag.get('id')} belongs to pixel {owner}, not {pixel}"
            checks.append(Check(check, "failed", detail, "use an event of this destination's pixel"))
        else:
            label = tag.get("name") or tag.get("id")
            kind = f", {tag['type']}" if tag.get("type") else ""
            checks.append(Check(check, "ok", f'{event_id}: "{label}"{kind}'))
    return checks


def _conversions_probe(reader: AdsReader, destination: Destination) -> Check:
    answer = reader.empty_conversions(destination.pixel_id)
    pixel = destination.pixel_id
    if answer.status == 400 or answer.ok:
        return Check(
            "conversions",
            "ok",
            f"an empty request for pixel {pixel} was answered {answer.status}, not refused; nothing recorded",
        )
    what = "empty conversions request"
    if answer.status == 401:
        key = "token" if destination.auth == "pixel_token" else "signature"
        return Check(
            "conversions",
            "failed",
            f"{key} refused by the Conversions API: {answer.why()}",
            "check the credential values (a pixel token belongs to one pixel)"
            if destination.auth == "pixel_token"
            else "check the credential values and this machine's clock",
        )
    if answer.status == 404:
        return Check(
            "conversions",
            "failed",
            f"pixel {pixel} unknown to X: {answer.why()}",
            "check pixel_id in Events Manager",
        )
    return _failed("conversions", what, answer)


def verify_destination(
    config: Config,
    destination: Destination,
    *,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> DestinationReport:
    """Run every check for one destination against ``config.x.api_url`` (X, or the sandbox)."""

    def report(checks: list[Check]) -> DestinationReport:
        return DestinationReport(destination.name, destination.pixel_id, destination.auth, tuple(checks))

    first, credentials = check_credentials(destination, config.x.secrets_file, env)
    if credentials is None:
        why = "no usable credentials"
        return report([first, *_not_checked(destination, why), Check("conversions", "not checked", why)])
    checks = [first]
    with AdsReader(config.x, credentials, transport=transport) as reader:
        if destination.auth == "pixel_token":
            checks += _not_checked(destination, "X's Ads API reads take OAuth 1.0a only, not a pixel token")
        else:
            checks += _ads_checks(reader, destination)
        checks.append(_conversions_probe(reader, destination))
    return report(checks)


def _ads_checks(reader: AdsReader, destination: Destination) -> list[Check]:
    """signature, ad account, user role, pixel and events, from the Ads API's reads."""
    accounts = reader.accounts()
    if not accounts.ok:
        fix = ""
        if accounts.status == 403:
            fix = "the app needs Ads API access (X developer portal); the user a role on the ad account"
        signature = _failed("signature", "GET accounts", accounts, fix)
        return [signature, *_not_checked(destination, "the signature was not accepted")[1:]]
    listed = accounts.data if isinstance(accounts.data, list) else []
    detail = f"X accepted the OAuth 1.0a signature (GET accounts: {len(listed)} ad account(s))"
    checks = [Check("signature", "ok", detail)]
    account_check, account_id, tags = _find_account(reader, destination, listed)
    checks.append(account_check)
    if account_id is None:
        rest = _not_checked(destination, "no ad account to read")[2:]
        if listed and not destination.ad_account_id:
            # the search itself is the pixel check: no readable account has an event tag of the pixel
            rest[1] = Check("pixel", "failed", account_check.detail, account_check.fix)
        return checks + rest
    checks.append(_role(reader, account_id))
    checks += _pixel_and_events(destination, account_id, tags)
    return checks


def verify(
    config: Config,
    destinations: list[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[DestinationReport]:
    """Reports for the named destinations (all when None). KeyError names an unknown destination."""
    chosen = [config.destination(n) for n in destinations] if destinations else list(config.destinations)
    return [verify_destination(config, d, env=env, transport=transport) for d in chosen]
