"""The web console under ``/console``: sign-in, overview, events, dead letters, with a JSON API behind each.

Everything shown comes from the outbox contract (:class:`xgate.outbox.base.Outbox`) and the metrics, so the
console works on every backend and shows every node's conversions. Include :data:`xgate.console.routes.router`
in an app whose ``app.state.services`` is the collector's.
"""
