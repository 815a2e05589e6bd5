"""Dispatch: deliver queued conversions to X (see :class:`Dispatcher`)."""

from xgate.dispatch.backoff import backoff_delay
from xgate.dispatch.dispatcher import ClientFactory, Dispatcher, Observer

__all__ = ["ClientFactory", "Dispatcher", "Observer", "backoff_delay"]
