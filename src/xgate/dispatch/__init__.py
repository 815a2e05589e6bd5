"""Dispatch: deliver queued conversions to X (see :class:`Dispatcher`)."""

from xgate.dispatch.backoff import backoff_delay
from xgate.dispatch.dispatcher import Attempt, ClientFactory, Dispatcher, Observer

__all__ = ["Attempt", "ClientFactory", "Dispatcher", "Observer", "backoff_delay"]
