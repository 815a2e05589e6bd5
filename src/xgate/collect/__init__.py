"""The collector: the gateway's HTTP API (``POST /v1/events``, health, metrics, activity, OpenAPI); the app
is built by :func:`xgate.collect.app.create_app`."""
