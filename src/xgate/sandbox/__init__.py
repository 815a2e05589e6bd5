"""The sandbox: a faithful stand-in for X's Conversions API endpoint (see :mod:`xgate.sandbox.app`)."""

from xgate.sandbox.accounts import AdAccount, EventTag, accounts_from_config
from xgate.sandbox.app import FaultingApp, Sandbox, create_sandbox
from xgate.sandbox.faults import FaultSettings
from xgate.sandbox.schema import check_request

__all__ = [
    "AdAccount",
    "EventTag",
    "FaultSettings",
    "FaultingApp",
    "Sandbox",
    "accounts_from_config",
    "check_request",
    "create_sandbox",
]
