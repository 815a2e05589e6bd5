"""Who may use the console: sign-in with a key, signed session cookies, CSRF tokens, a slowdown on failures.

- **Keys**: the admin key (``[server] admin_key_env``) gives the ``admin`` role, the viewer key
  (``[console] viewer_key_env``) the ``viewer`` role; keys are compared in constant time.
- **Sessions** are stateless, signed cookies (``role.expiry.nonce.signature``, HMAC-SHA256 under a secret
  derived from the keys), so every node that shares the keys accepts a session any node made. The cookie is
  HttpOnly, ``SameSite=Strict``, ``Path=/console`` and ``Secure`` when the request came over https.
  A changed key ends every session.
- **Sign-out** records the session in the outbox (:meth:`~xgate.outbox.base.Outbox.revoke_session`: a
  SHA-256 of its nonce, until the session would have expired) and clears the cookie; every session check
  of every node reads that record (one primary-key read per request: no cache, so a signed-out cookie is
  refused everywhere from the next request on, and a live stream ends within a poll, a second). When the
  outbox cannot be read, the session is refused (:class:`SessionUnverifiable`), never accepted.
- **CSRF**: every state-changing request with a session carries ``X-CSRF-Token`` (or a ``csrf`` form field)
  equal to HMAC(secret, nonce): a page of another site cannot read it (OWASP "synchronizer token").
  Requests with the key in ``Authorization: Bearer`` (scripts) need no token: a browser never sends it
  on its own.
- **Sign-in form** (OWASP "login CSRF": another site must not sign a browser in under its own key): the
  sign-in page sets a signed pre-session cookie (:data:`SIGN_IN_COOKIE`, ``expiry.nonce.signature``,
  HttpOnly, ``SameSite=Strict``, ``Path=/console``, :data:`SIGN_IN_FORM_SECONDS`) and puts HMAC(secret,
  nonce) in the form; a sign-in POST is checked against both (a signed double-submit cookie) before its key
  is looked at. Scripts never sign in: they send ``Authorization: Bearer``.
- **Slowdown** after failed sign-ins per client address: each failure doubles a wait (0.25 s, 0.5 s, ...,
  at most :data:`MAX_DELAY_SECONDS`) applied before the next answer to that address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from xgate.config import Config
from xgate.errors import OutboxUnavailable

Role = Literal["admin", "viewer"]
COOKIE = "xgate_console"
#: the pre-session cookie of the sign-in form, and how long a sign-in form may be used
SIGN_IN_COOKIE = "xgate_console_sign_in"
SIGN_IN_FORM_SECONDS = 3600
#: the longest wait a client's failed sign-ins impose
MAX_DELAY_SECONDS = 8.0
#: failures are forgotten this long after the last one
FORGET_AFTER_SECONDS = 900.0


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    expires_at: float
    nonce: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Revocations(Protocol):
    """Where sign-outs are shared by every node: the outbox (:class:`~xgate.outbox.base.Outbox`)."""

    def revoke_session(self, session_id: str, expires_at: float, *, now: float | None = None) -> None: ...

    def session_revoked(self, session_id: str, *, now: float | None = None) -> bool: ...


class SessionUnverifiable(Exception):
    """A session's cookie is well signed but whether it was signed out cannot be read now (the outbox is
    unavailable): the request is refused with 503, not let in."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ConsoleAccess:
    """The console's keys, sessions and CSRF tokens (one per app; safe across threads)."""

    def __init__(
        self, config: Config, env: Mapping[str, str] | None = None, *, revocations: Revocations
    ) -> None:
        env = os.environ if env is None else env
        admin_env = config.server.admin_key_env
        viewer_env = config.console.viewer_key_env
        self._keys: list[tuple[bytes, Role]] = []
        if admin_env and env.get(admin_env):
            self._keys.append((env[admin_env].encode(), "admin"))
        if viewer_env and env.get(viewer_env):
            self._keys.append((env[viewer_env].encode(), "viewer"))
        material = b"\x1f".join(k for k, _ in self._keys)
        self._secret = hashlib.sha256(b"xgate-console-session\x1f" + material).digest()
        self._lifetime = config.console.session_hours * 3600
        self._revocations = revocations

    @property
    def configured(self) -> bool:
        """Whether any key can sign in."""
        return bool(self._keys)

    def role_for(self, key: str | None) -> Role | None:
        """The role of ``key``, or None when it is no console key."""
        if not key:
            return None
        presented = key.encode()
        found: Role | None = None
        for value, role in self._keys:
            if hmac.compare_digest(value, presented):
                found = role
        return found

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def open_session(self, role: Role, *, now: float | None = None) -> tuple[str, Session]:
        """A new session for ``role``: the cookie value and the session."""
        now = time.time() if now is None else now
        session = Session(role, float(int(now + self._lifetime)), secrets.token_urlsafe(16))  # as the cookie
        payload = f"{role}.{int(session.expires_at)}.{session.nonce}"
        return f"{payload}.{self._sign(payload)}", session

    def session(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie value proves, or None (absent, forged, expired or signed out on any node).
        Raises :class:`SessionUnverifiable` when the sign-outs cannot be read. Blocking: one read of the
        outbox for a well-signed cookie."""
        if not cookie or not self._keys:
            return None
        parts = cookie.split(".")
        if len(parts) != 4:
            return None
        role, expiry, nonce, signature = parts
        if not hmac.compare_digest(self._sign(f"{role}.{expiry}.{nonce}"), signature):
            return None
        if role not in ("admin", "viewer") or not expiry.isdigit():
            return None
        session = Session("admin" if role == "admin" else "viewer", float(expiry), nonce)
        return session if self.is_open(session, now=now) else None

    def is_open(self, session: Session, *, now: float | None = None) -> bool:
        """Whether ``session`` has neither expired nor been signed out on any node (a live stream asks
        again as it goes). Raises :class:`SessionUnverifiable`. Blocking: one read of the outbox."""
        now = time.time() if now is None else now
        if session.expires_at <= now:
            return False
        try:
            return not self._revocations.session_revoked(_session_id(session), now=now)
        except OutboxUnavailable as e:
            raise SessionUnverifiable(str(e)) from e

    def close_session(self, session: Session) -> None:
        """Sign out: every node sharing the outbox refuses the session's cookie from now on. Raises
        OutboxUnavailable (then nothing was recorded: the sign-out failed)."""
        self._revocations.revoke_session(_session_id(session), session.expires_at)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of ``session`` (put in pages, sent back as ``X-CSRF-Token``)."""
        return self._sign(f"csrf.{session.nonce}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")

    def sign_in_form(self, *, now: float | None = None) -> tuple[str, str]:
        """A new sign-in form's pre-session cookie value and the token its form carries (field ``csrf``)."""
        now = time.time() if now is None else now
        payload = f"{int(now + SIGN_IN_FORM_SECONDS)}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._sign('sign-in-cookie.' + payload)}", self._sign_in_token(payload)

    def _sign_in_token(self, payload: str) -> str:
        return self._sign("sign-in-form." + payload)

    def sign_in_form_ok(self, cookie: str | None, token: str | None, *, now: float | None = None) -> bool:
        """Whether a sign-in POST carries this console's unexpired pre-session ``cookie`` and the ``token``
        of the form issued with it (a page of another site can set neither)."""
        now = time.time() if now is None else now
        parts = (cookie or "").split(".")
        if len(parts) != 3 or not token:
            return False
        expiry, nonce, signature = parts
        payload = f"{expiry}.{nonce}"
        if not hmac.compare_digest(self._sign("sign-in-cookie." + payload), signature):
            return False
        if not expiry.isdigit() or int(expiry) <= now:
            return False
        return hmac.compare_digest(self._sign_in_token(payload), token)


def _session_id(session: Session) -> str:
    """What the outbox records of a signed-out session: a hash of its nonce (the nonce itself never
    leaves the cookie)."""
    return hashlib.sha256(b"xgate-console-signed-out\x1f" + session.nonce.encode()).hexdigest()


class SignInThrottle:
    """Failed sign-ins per client address, and the wait each address must sit out before its next try."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def delay(self, client: str, *, now: float | None = None) -> float:
        """Seconds to wait before answering ``client`` (0 without recent failures)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
        if count == 0 or now - last > FORGET_AFTER_SECONDS:
            return 0.0
        return min(0.25 * 2.0 ** (count - 1), MAX_DELAY_SECONDS)

    def failed(self, client: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
            if now - last > FORGET_AFTER_SECONDS:
                count = 0
            self._failures[client] = (count + 1, now)
            if len(self._failures) > 10_000:  # many addresses: keep the most recent half
                recent = sorted(self._failures.items(), key=lambda kv: kv[1][1])[-5_000:]
                self._failures = dict(recent)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
