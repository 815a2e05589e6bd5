"""The collector's routes, one module per area, each an ``APIRouter`` that ``create_app`` includes.

- :mod:`.ingest`: ``POST /v1/events``, with the fast lane that skips routing (its CORS, like every browser
  path's, is :mod:`xgate.collect.cors`'s).
- :mod:`.health`: ``/healthz``, ``/readyz``, ``/metrics``.
- :mod:`.activity`: ``/v1/activity`` (and ``/activity``, the old page).

State comes from :func:`xgate.collect.services.services`, access rules are dependencies in the same module.
"""
