"""OAuth 1.0a: X's published signing example, and our requests checked by an independent verifier."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from authlib.oauth1.rfc5849 import signature as authlib_signature
from authlib.oauth1.rfc5849.util import unescape

from xgate.x import Credentials
from xgate.x.auth import read_secret_file

X_EXAMPLE = Credentials(
    "oauth1",
    consumer_key="xvz1evFS4wEEPTGEFPHBog",
    consumer_secret="kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
    access_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
    access_token_secret="LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
)


def sign_x_example(host: str) -> str:
    client = X_EXAMPLE.oauth1_client(
        nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", timestamp="1318622958"
    )
    _, headers, _ = client.sign(
        f"https://{host}/1.1/statuses/update.json?include_entities=true",
        http_method="POST",
        body="status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return str(headers["Authorization"])


def test_x_published_signing_example() -> None:
    """X's "Creating a signature": these keys, nonce and timestamp give hCtSmYh+iHYCEqBWrE7C7hYmtUk=.

    The signature was computed for api.twitter.com; X's current page shows api.x.com in the request but
    kept the old signature. The host is part of the signature base string, so only the original host
    reproduces it.
    """
    assert 'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D"' in sign_x_example("api.twitter.com")
    assert "hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D" not in sign_x_example("api.x.com")


def _authlib_verify(credentials: Credentials, method: str, url: str, authorization: str) -> bool:
    """authlib (a different library from the signer's oauthlib) recomputes the signature."""
    params = [
        (k.strip(), unescape(v.strip().strip('"')))
        for k, v in (p.split("=", 1) for p in authorization.removeprefix("OAuth ").split(","))
    ]
    sent = dict(params)["oauth_signature"]
    base = authlib_signature.construct_base_string(
        method,
        authlib_signature.normalize_base_string_uri(url),
        [*parse_qsl(urlsplit(url).query), *((k, v) for k, v in params if k != "oauth_signature")],
    )
    expected = authlib_signature.hmac_sha1_signature(
        base, credentials.consumer_secret, credentials.access_token_secret
    )
    return bool(expected == sent)


def test_our_signature_verifies_independently_and_excludes_the_json_body() -> None:
    creds = Credentials("oauth1", "ck-1", "cs-1", "at-1", "ats-1")
    url = "https://ads-api.x.com/12/measurement/conversions/o8z6j"
    auth = creds.auth_headers("POST", url)["Authorization"]
    assert _authlib_verify(creds, "POST", url, auth)
    wrong = Credentials("oauth1", "ck-1", "other", "at-1", "ats-1")
    assert not _authlib_verify(wrong, "POST", url, auth)


def test_query_parameters_are_signed_and_checked_independently() -> None:
    creds = Credentials("oauth1", "ck-1", "cs-1", "at-1", "ats-1")
    url = "https://ads-api.x.com/12/measurement/conversions/o8z6j?debug=true"
    auth = creds.auth_headers("POST", url)["Authorization"]
    assert _authlib_verify(creds, "POST", url, auth)
    assert not _authlib_verify(creds, "POST", url.replace("true", "false"), auth)


def test_pixel_token_mode_sends_the_token_header_only() -> None:
    creds = Credentials.from_env(auth="pixel_token", env={"XGATE_X_PIXEL_TOKEN": "tok"})
    assert creds.auth_headers("POST", "https://ads-api.x.com/x") == {"X-Pixel-Token": "tok"}


def test_credentials_never_show_their_secrets() -> None:
    creds = Credentials("oauth1", "ck-visible?", "very-secret", "at", "also-secret")
    assert "secret" not in repr(creds).replace("secrets hidden", "")
    assert "very-secret" not in str(creds)


def test_missing_credentials_name_the_variables(tmp_path: object) -> None:
    import pytest

    from xgate.x import CredentialsError

    with pytest.raises(CredentialsError, match="XGATE_X_ACCESS_TOKEN_SECRET"):
        Credentials.from_env(
            env={"XGATE_X_CONSUMER_KEY": "a", "XGATE_X_CONSUMER_SECRET": "b", "XGATE_X_ACCESS_TOKEN": "c"}
        )


def test_credentials_from_a_secret_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "secrets"
    path.write_text(
        "# X credentials\nexport XGATE_X_CONSUMER_KEY=ck\nXGATE_X_CONSUMER_SECRET='cs'\n"
        'XGATE_X_ACCESS_TOKEN=at\nXGATE_X_ACCESS_TOKEN_SECRET="ats"\n'
    )
    assert read_secret_file(path)["XGATE_X_CONSUMER_SECRET"] == "cs"
    creds = Credentials.from_env(secrets_file=path, env={})
    assert (creds.consumer_key, creds.access_token_secret) == ("ck", "ats")
