"""The X side: credentials and signing, the Conversions API client, and X's answers."""

from xgate.x.auth import (
    Credentials,
    CredentialsError,
    credential_problems,
    destination_credential_problems,
    read_secret_file,
)
from xgate.x.client import AsyncXClient, XClient, classify, rate_limit_from
from xgate.x.result import DESTINATION_FAILURES, FailureReason, RateLimit, SendResult, XError, failure_of

__all__ = [
    "DESTINATION_FAILURES",
    "AsyncXClient",
    "Credentials",
    "CredentialsError",
    "FailureReason",
    "RateLimit",
    "SendResult",
    "XClient",
    "XError",
    "classify",
    "credential_problems",
    "destination_credential_problems",
    "failure_of",
    "rate_limit_from",
    "read_secret_file",
]
