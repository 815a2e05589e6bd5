"""Clients for an xgate gateway's HTTP API, for backends: buffered, batched, retried, flushed on exit.

``GatewayClient`` (a background thread) and ``AsyncGatewayClient`` (an asyncio task) send to ``xgate
serve``; ``xgate track`` sends one event from the command line. (``xgate.sdk`` is another thing: it maps
and sends straight to X, without the gateway's queue.)
"""

from __future__ import annotations

from xgate.client.aio import AsyncGatewayClient
from xgate.client.common import ClientStats, TrackResult
from xgate.client.sync import GatewayClient

__all__ = ["AsyncGatewayClient", "ClientStats", "GatewayClient", "TrackResult"]
