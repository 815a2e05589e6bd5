"""The collector: the gateway's HTTP API (``POST /v1/events``, health, metrics, activity, OpenAPI)."""

from xgate.collect.app import create_app

__all__ = ["create_app"]
