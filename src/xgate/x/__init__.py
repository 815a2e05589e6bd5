"""The X side: credentials and signing, the Conversions API client, and X's answers."""

from xgate.x.auth import Credentials, CredentialsError, read_secret_file
from xgate.x.client import AsyncXClient, XClient, classify, rate_limit_from
from xgate.x.result import RateLimit, SendResult, XError

__all__ = [
    "AsyncXClient",
    "Credentials",
    "CredentialsError",
    "RateLimit",
    "SendResult",
    "XClient",
    "XError",
    "classify",
    "rate_limit_from",
    "read_secret_file",
]
