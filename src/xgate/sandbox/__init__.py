"""The sandbox: a faithful stand-in for X's Conversions API endpoint (see :mod:`xgate.sandbox.app`)."""

from xgate.sandbox.app import FaultingApp, Sandbox, create_sandbox
from xgate.sandbox.faults import FaultSettings
from xgate.sandbox.schema import check_request

__all__ = ["FaultSettings", "FaultingApp", "Sandbox", "check_request", "create_sandbox"]
