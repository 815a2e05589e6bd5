"""The sandbox's check of OAuth 1.0a signatures, from oauthlib's RFC 5849 signature primitives."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

from oauthlib.common import urldecode
from oauthlib.oauth1.rfc5849 import signature, utils

from xgate.x.auth import Credentials

TIMESTAMP_WINDOW = 300


class SignatureChecker:
    """Verifies ``Authorization: OAuth …`` against the four credentials; remembers nonces against replays."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._nonces: OrderedDict[tuple[str, str], float] = OrderedDict()

    def problem(
        self, method: str, url: str, authorization: str | None, pixel_token: str | None
    ) -> str | None:
        """None when the request is authentic, else why not (X answers 401)."""
        if self.credentials.auth == "pixel_token":
            if pixel_token and hmac.compare_digest(pixel_token, self.credentials.pixel_token):
                return None
            return "missing or invalid X-Pixel-Token"
        if not authorization or not authorization.startswith("OAuth "):
            return "missing OAuth Authorization header"
        try:
            params = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(authorization)}
        except (ValueError, IndexError):
            return "malformed OAuth Authorization header"
        for required in (
            "oauth_consumer_key",
            "oauth_token",
            "oauth_signature",
            "oauth_nonce",
            "oauth_timestamp",
            "oauth_signature_method",
        ):
            if required not in params:
                return f"missing {required}"
        if params["oauth_signature_method"] != "HMAC-SHA1":
            return "unsupported oauth_signature_method"
        if params["oauth_consumer_key"] != self.credentials.consumer_key:
            return "unknown consumer key"
        if params["oauth_token"] != self.credentials.access_token:
            return "unknown access token"
        try:
            ts = int(params["oauth_timestamp"])
        except ValueError:
            return "invalid oauth_timestamp"
        now = time.time()
        if abs(now - ts) > TIMESTAMP_WINDOW:
            return "oauth_timestamp out of window"
        parts = urlsplit(url)
        query_params = urldecode(parts.query) if parts.query else []
        oauth_params = [(k, v) for k, v in params.items() if k not in ("oauth_signature", "realm")]
        normalized = signature.normalize_parameters(list(query_params) + oauth_params)
        base_uri = signature.base_string_uri(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
        base = signature.signature_base_string(method.upper(), base_uri, normalized)
        secrets = SimpleNamespace(
            client_secret=self.credentials.consumer_secret,
            resource_owner_secret=self.credentials.access_token_secret,
        )
        expected = signature.sign_hmac_sha1_with_client(base, secrets)
        if not hmac.compare_digest(expected, params["oauth_signature"]):
            return "invalid signature"
        key = (params["oauth_consumer_key"], params["oauth_nonce"])
        if key in self._nonces:
            return "nonce already used"
        self._nonces[key] = now
        while self._nonces and next(iter(self._nonces.values())) < now - TIMESTAMP_WINDOW:
            self._nonces.popitem(last=False)
        return None
