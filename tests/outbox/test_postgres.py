"""What only the PostgreSQL outbox does: several nodes on one database (SKIP LOCKED leases, NOTIFY
wake-ups), versioned migrations and the messages of a schema mismatch, connections that die, errors
without the password. The behaviours both engines share are in test_conformance.py.

Needs ``XGATE_TEST_POSTGRES_URL`` (``eval "$(.ci/postgres.sh start)"``); skipped without it, except in CI.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from tests.postgreskit import RestartablePostgres
from typer.testing import CliRunner

from xgate.cli import app
from xgate.cli.output import EXIT_CONFIG
from xgate.config import StorageSettings
from xgate.conversion import MappedConversion
from xgate.errors import OutboxNotFound, OutboxReplaced, OutboxSchemaMismatch, OutboxUnavailable
from xgate.outbox import migrations, open_outbox, postgres
from xgate.outbox.postgres import PostgresOutbox
from xgate.testing import OutboxFactory, free_port

#: the shared fixture's PostgreSQL engine only
on_postgres = pytest.mark.parametrize("outbox_factory", ["postgresql"], indirect=True)


def conversion(n: int, destination: str = "x-main") -> MappedConversion:
    body = {"conversion_id": f"c{n}", "event_id": "o87ne"}
    return MappedConversion(destination, "o8z6j", "o87ne", f"c{n}", body, frozenset({"email"}), "purchase")


@pytest.fixture
def url(outbox_factory: OutboxFactory) -> str:
    return outbox_factory.url


def _sql(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        cur = db.execute(statement)
        return cur.fetchall() if cur.description else []


# -- several nodes -----------------------------------------------------------------------------------
@on_postgres
def test_two_nodes_leasing_at_once_never_get_the_same_row(outbox_factory: OutboxFactory) -> None:
    nodes = [outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")]
    nodes[0].enqueue([conversion(i) for i in range(3000)])
    taken: list[list[int]] = [[] for _ in range(8)]

    def drain(box: PostgresOutbox, mine: list[int]) -> None:
        while rows := box.lease(40, 300):
            mine.extend(r.id for r in rows)

    threads = [threading.Thread(target=drain, args=(nodes[i % 2], taken[i])) for i in range(len(taken))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [row_id for mine in taken for row_id in mine]
    assert len(every) == 3000 and len(set(every)) == 3000
    assert sum(1 for mine in taken if mine) > 2  # they really leased side by side
    holders = Counter(r.leased_by for r in nodes[1].rows(state="leased", limit=5000))
    assert set(holders) == {"node-a", "node-b"} and sum(holders.values()) == 3000


@on_postgres
def test_counts_stay_exact_under_concurrent_writers_of_two_nodes(outbox_factory: OutboxFactory) -> None:
    nodes = [outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")]

    def work(box: PostgresOutbox, start: int) -> None:
        for i in range(start, start + 200, 20):
            box.enqueue([conversion(n, destination=f"d{n % 3}") for n in range(i, i + 20)])
            rows = box.lease(15, 300)
            box.mark_delivered([r.id for r in rows[:5]], rows[0].lease_token, None)
            box.mark_retry([r.id for r in rows[5:10]], rows[0].lease_token, 0.0, "503")
            box.mark_dead([r.id for r in rows[10:]], rows[0].lease_token, "400")

    threads = [threading.Thread(target=work, args=(nodes[i % 2], i * 1000)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from_rows = Counter((r.destination, r.state) for r in nodes[0].rows(limit=10_000))
    assert sum(from_rows.values()) == 1200
    assert nodes[1].stats().counts == dict(from_rows)


@on_postgres
def test_an_enqueue_on_one_node_wakes_an_idle_dispatcher_on_another(outbox_factory: OutboxFactory) -> None:
    waiting, storing = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    waiting.wait_for_work(2.0)  # the first call starts listening (and returns once it listens)
    started = time.monotonic()
    waiting.wait_for_work(0.3)
    assert time.monotonic() - started >= 0.29  # nothing queued: it waits its timeout

    woke_after: list[float] = []

    def wait() -> None:
        t0 = time.monotonic()
        waiting.wait_for_work(20.0)
        woke_after.append(time.monotonic() - t0)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.2)
    storing.enqueue([conversion(1)])
    thread.join(25)
    assert woke_after and woke_after[0] < 5.0


@on_postgres
def test_rows_handed_to_the_storing_dispatcher_wake_no_one(outbox_factory: OutboxFactory) -> None:
    from xgate.outbox import HandoffLease

    waiting, storing = outbox_factory(node_id="node-a"), outbox_factory(node_id="node-b")
    waiting.wait_for_work(2.0)
    woke_after: list[float] = []

    def wait() -> None:
        t0 = time.monotonic()
        waiting.wait_for_work(1.5)
        woke_after.append(time.monotonic() - t0)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.1)
    storing.enqueue_leased([conversion(1), conversion(2)], HandoffLease("tok", 30, 10))
    thread.join(5)
    assert woke_after[0] >= 1.4


# -- connections -------------------------------------------------------------------------------------
@on_postgres
def test_pooled_connections_killed_by_the_server_are_replaced_without_an_error(
    outbox_factory: OutboxFactory, url: str
) -> None:
    box = outbox_factory(node_id="node-a")
    assert isinstance(box, PostgresOutbox)
    held = [box._pool.getconn() for _ in range(6)]  # a pool grown by busy threads, now idle
    for db in held:
        box._pool.putconn(db)
    box.enqueue([conversion(1)])
    with psycopg.connect(url, autocommit=True) as admin:  # what a server restart does to the pool
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed and killed[0] >= 6
    assert [o.status for o in box.enqueue([conversion(2)])] == ["queued"]
    assert box.stats().counts == {("x-main", "queued"): 2}


@on_postgres
def test_errors_name_the_server_but_never_the_password(url: str) -> None:
    with pytest.raises(OutboxUnavailable) as unreachable:
        PostgresOutbox("postgresql://xgate:pa55-w0rd-xyz@127.0.0.1:1/xgate")
    assert "127.0.0.1:1/xgate" in str(unreachable.value)
    assert "Connection refused" in str(unreachable.value)
    assert "pa55-w0rd-xyz" not in str(unreachable.value)
    # the server's own reason (here: no such database), still without the password
    server = urlsplit(url)
    bad_db = server._replace(
        netloc=f"postgres:pa55-w0rd-xyz@{server.netloc.split('@')[-1]}", path="/no_such_db"
    )
    with pytest.raises(OutboxUnavailable, match='database "no_such_db" does not exist') as missing:
        PostgresOutbox(urlunsplit(bad_db))
    assert "pa55-w0rd-xyz" not in str(missing.value)


@on_postgres
def test_a_database_gone_after_opening_fails_calls_with_the_servers_reason_and_no_password(
    outbox_factory: OutboxFactory, url: str
) -> None:
    parts = urlsplit(url)
    with_password = urlunsplit(parts._replace(netloc=f"postgres:pa55-w0rd-xyz@{parts.netloc.split('@')[-1]}"))
    box = PostgresOutbox(with_password, StorageSettings(state_dir=outbox_factory.state_dir), node_id="node-a")
    database = parts.path.strip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    _sql(admin_url, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        _sql(
            admin_url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        )
        with pytest.raises(OutboxUnavailable) as down:
            box.stats()
        assert "not currently accepting connections" in str(down.value)
        assert "pa55-w0rd-xyz" not in str(down.value)
        with pytest.raises(OutboxUnavailable, match="not currently accepting connections"):
            box.ping()
    finally:
        _sql(admin_url, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        box.close()


# -- bounded waits (the conformance suite has the held lock; these are PostgreSQL's own) ---------------
BOUND = StorageSettings(write_timeout_seconds=0.5)


@on_postgres
def test_a_write_waiting_for_a_pooled_connection_gives_up_within_the_bound(
    outbox_factory: OutboxFactory,
) -> None:
    box = outbox_factory(BOUND)
    assert isinstance(box, PostgresOutbox)
    taken = [box._pool.getconn() for _ in range(postgres._POOL_SIZE)]  # every connection busy elsewhere
    try:
        started = time.monotonic()
        with pytest.raises(OutboxUnavailable, match="all 8 pooled connections stayed busy with other calls"):
            box.enqueue([conversion(1)])
        assert time.monotonic() - started < 1.5
    finally:
        for db in taken:
            box._pool.putconn(db)
    assert [o.status for o in box.enqueue([conversion(1)])] == ["queued"]


@on_postgres
def test_timed_out_calls_leave_every_pooled_connection_idle_with_its_bounds(
    outbox_factory: OutboxFactory,
) -> None:
    box = outbox_factory(BOUND)
    assert isinstance(box, PostgresOutbox)
    box.enqueue([conversion(1)])
    (held,) = box.lease(1, 300)
    with outbox_factory.held_by_another_session():
        # autocommit (enqueue, settle), a transaction (lease), reads, a bound of its own (ping)
        for call in (
            lambda: box.enqueue([conversion(2)]),
            lambda: box.mark_dead([held.id], held.lease_token, "invalid"),
            lambda: box.lease(5, 300),
            lambda: box.stats(),
            lambda: box.ping(),
        ):
            with pytest.raises(OutboxUnavailable):
                call()
    pooled = [box._pool.getconn() for _ in range(postgres._POOL_SIZE)]
    try:
        for db in pooled:
            assert db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert not db.autocommit
            assert db.execute("SHOW lock_timeout").fetchone() == ("500ms",)
            assert db.execute("SHOW statement_timeout").fetchone() == ("500ms",)
            db.rollback()
    finally:
        for db in pooled:
            box._pool.putconn(db)
    assert box.mark_dead([held.id], held.lease_token, "invalid") == 1


@on_postgres
def test_reads_are_bounded_in_their_lock_waits_not_their_run_time(outbox_factory: OutboxFactory) -> None:
    box = outbox_factory(BOUND)
    assert isinstance(box, PostgresOutbox)
    slow = "SELECT pg_sleep(0.8)"
    box._call("a slow read", lambda db: db.execute(slow), reads=True)  # a console page over many rows
    with pytest.raises(OutboxUnavailable, match=r"statement timeout after 0\.5 s \(\[storage\] write_"):
        box._call("a slow write", lambda db: db.execute(slow))


@on_postgres
def test_the_urls_own_options_are_kept_beside_the_bounds(url: str, tmp_path: Path) -> None:
    _sql(url, "CREATE SCHEMA elsewhere")
    bound = BOUND.model_copy(update={"state_dir": tmp_path})
    box = PostgresOutbox(f"{url}?options=-csearch_path%3Delsewhere", bound, node_id="node-a")
    try:
        box.enqueue([conversion(1)])
        assert _sql(url, "SELECT count(*) FROM elsewhere.xgate_conversions") == [(1,)]
        with box._pool.connection() as db:
            found = db.execute("SELECT current_setting('lock_timeout'), current_setting('application_name')")
            assert found.fetchone() == ("500ms", "xgate node-a")
    finally:
        box.close()


# -- outages: the server stopped (.ci/postgres.sh restart) --------------------------------------------
def _failure(call: Callable[[], object]) -> str:
    """What ``call`` raises (OutboxUnavailable)."""
    with pytest.raises(OutboxUnavailable) as failed:
        call()
    return str(failed.value)


def _fails_at_once(call: Callable[[], object]) -> str:
    """What ``call`` raises (OutboxUnavailable), asserting it took well under the bound (5 s)."""
    started = time.monotonic()
    failure = _failure(call)
    assert time.monotonic() - started < 1.0, f"took {time.monotonic() - started:.1f} s: {failure}"
    return failure


def _until(what: str, ready: Callable[[], bool], seconds: float) -> float:
    """Poll ``ready`` until it holds; how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not ready():
        assert time.monotonic() - started < seconds, f"still not {what} after {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def _works(call: Callable[[], object]) -> bool:
    try:
        call()
    except OutboxUnavailable:
        return False
    return True


def test_while_the_server_is_down_calls_fail_at_once_and_work_again_within_seconds_of_its_return(
    restartable_postgres: RestartablePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    box = PostgresOutbox(restartable_postgres.url, node_id="node-a")  # the default bound: 5 s
    try:
        box.enqueue([conversion(1)])
        with caplog.at_level(logging.INFO):
            restart = restartable_postgres.restart(20)
            _until("down", lambda: not _works(box.ping), 15)
            # a load balancer's probes and the senders' retries: each answered at once, naming the cause
            calls = (lambda: box.enqueue([conversion(2)]), lambda: box.lease(10, 30), box.stats, box.ping)
            for _ in range(5):
                for call in calls:
                    assert "cannot connect:" in _fails_at_once(call)
                time.sleep(0.2)
            _until("refusing", lambda: "Connection refused" in _fails_at_once(box.ping), 15)
            assert "postgres@" not in _fails_at_once(box.ping)  # where, never who
            restart.wait(60)
            assert _until("stored again", lambda: _works(lambda: box.enqueue([conversion(3)])), 5) < 3
            box.ping()
        assert box.stats().counts == {("x-main", "queued"): 2}  # 1 and 3: nothing of the failed calls
    finally:
        box.close()
    # one line when the server became unreachable (and when its reason changed: shutting down, then
    # refusing), one when it was reached again; none of psycopg_pool's per attempt
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("xgate.outbox", "psycopg"))]
    assert not [line for line in lines if "error connecting" in line or "reconnection attempt" in line]
    assert 1 <= sum("calls fail at once until a connection opens" in line for line in lines) <= 4, lines
    assert sum("reachable again after" in line for line in lines) == 1, lines


def test_calls_fail_at_once_whatever_the_level_of_psycopg_pools_logger(
    restartable_postgres: RestartablePostgres,
) -> None:
    """The outage is known from the pool's connection class, not from its log records: an operator who
    quiets ``psycopg.pool`` (records below CRITICAL never made) keeps the fail-fast answers."""
    quiet = logging.getLogger("psycopg.pool")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    box = PostgresOutbox(restartable_postgres.url, node_id="node-a")
    try:
        box.enqueue([conversion(1)])
        restart = restartable_postgres.restart(8)
        _until("down", lambda: not _works(box.ping), 6)
        _until("refusing", lambda: "Connection refused" in _fails_at_once(box.ping), 6)
        assert "cannot connect:" in _fails_at_once(lambda: box.enqueue([conversion(2)]))
        restart.wait(60)
        _until("stored again", lambda: _works(lambda: box.enqueue([conversion(3)])), 5)
    finally:
        quiet.setLevel(level)
        box.close()


def test_a_failure_after_an_outage_gives_its_own_reason_not_the_outages(
    restartable_postgres: RestartablePostgres,
) -> None:
    box = PostgresOutbox(restartable_postgres.url, BOUND, node_id="node-a")
    try:
        restartable_postgres.restart(3)
        _until("down", lambda: not _works(box.ping), 15)
        _until("refusing", lambda: "Connection refused" in _failure(box.ping), 15)
        restartable_postgres.wait()
        _until("stored again", lambda: _works(lambda: box.enqueue([conversion(1)])), 5)
        # the server reachable, but no new connection opens in time: the server does not answer a new
        # one, and the pool's own connections are all in use
        taken = []
        try:
            with restartable_postgres.frozen():
                time.sleep(0.3)  # connections opening when it froze are in the pool
                while box._pool.get_stats()["pool_available"]:
                    taken.append(box._pool.getconn())
                failed = _fails_at_once(lambda: box.enqueue([conversion(2)]))
        finally:
            for db in taken:
                box._pool.putconn(db)
        assert "no pooled connection opened within 0.5 s" in failed
        assert "refused" not in failed and "cannot connect" not in failed
        _until("stored again", lambda: _works(lambda: box.enqueue([conversion(2)])), 5)
    finally:
        box.close()


@pytest.mark.parametrize(
    ("bad_url", "reason"),
    [
        ("postgresql://u:pa55-w0rd-xyz@db:99999/xgate", "must be a number between 1 and 65535"),
        ("postgresql://u:pa55-w0rd-xyz@db:5432/xgate/more", "is one database name"),
        ("postgresql://u:pa55-w0rd-xyz@db/xgate?sslmod=require", "not a URL libpq can read"),
    ],
)
def test_a_malformed_postgresql_url_is_refused_with_the_reason_and_without_the_password(
    bad_url: str, reason: str
) -> None:
    from xgate.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config({"storage": {"url": bad_url}})
    assert reason in str(refused.value) and "storage.url" in str(refused.value)
    assert "pa55-w0rd-xyz" not in str(refused.value)


def test_well_formed_postgresql_urls_are_accepted() -> None:
    for url in ("postgresql://xgate@db.internal:5432/xgate?sslmode=require", "postgres:///xgate"):
        assert StorageSettings(url=url).url == url


# -- schema versions ---------------------------------------------------------------------------------
@pytest.fixture
def empty_url(url: str) -> Iterator[str]:
    """The test database, without the schema the fixture's first open may have created."""
    _sql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    yield url


@on_postgres
def test_db_upgrade_creates_the_schema_in_an_empty_database(empty_url: str, tmp_path: object) -> None:
    runner = CliRunner()
    config = _config(empty_url, tmp_path)
    before = runner.invoke(app, ["db", "status", "-c", config])
    assert before.exit_code == 1 and "no outbox schema yet" in before.output
    upgraded = runner.invoke(app, ["db", "upgrade", "-c", config])
    assert upgraded.exit_code == 0, upgraded.output
    latest = len(migrations.postgresql())
    assert "applied: 0001_initial" in upgraded.output and f"to version {latest}" in upgraded.output
    assert _sql(empty_url, "SELECT version FROM xgate_schema_version ORDER BY version") == [
        (v,) for v in range(1, latest + 1)
    ]
    after = runner.invoke(app, ["db", "status", "-c", config])
    assert after.exit_code == 0 and "up to date" in after.output
    again = runner.invoke(app, ["db", "upgrade", "-c", config])
    assert again.exit_code == 0 and "already up to date" in again.output


@on_postgres
def test_a_read_only_command_on_an_empty_database_finds_no_outbox(empty_url: str) -> None:
    with pytest.raises(OutboxNotFound):
        open_outbox(empty_url, create=False)
    assert _sql(empty_url, "SELECT to_regclass('xgate_conversions')") == [(None,)]


@on_postgres
def test_nodes_starting_together_on_an_empty_database_create_the_schema_once(
    empty_url: str, tmp_path: Path
) -> None:
    boxes: list[PostgresOutbox] = []

    def start(node: str) -> None:
        boxes.append(PostgresOutbox(empty_url, StorageSettings(state_dir=tmp_path), node_id=node))

    threads = [threading.Thread(target=start, args=(f"n{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(boxes) == 4
    assert _sql(empty_url, "SELECT count(*) FROM xgate_schema_version") == [(len(migrations.postgresql()),)]
    for box in boxes:
        box.close()


def _with_a_newer_step(monkeypatch: pytest.MonkeyPatch) -> int:
    """This xgate, as if it shipped one migration more than the database holds."""
    real = migrations.postgresql()
    step = migrations.Migration(len(real) + 1, "test_step", "CREATE TABLE xgate_test_step (x integer);")
    monkeypatch.setattr(migrations, "postgresql", lambda: (*real, step))
    return step.version


@on_postgres
def test_a_gateway_on_an_older_schema_stops_and_says_to_run_db_upgrade(
    outbox_factory: OutboxFactory, url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    outbox_factory().close()  # the schema this xgate creates
    old = len(migrations.postgresql())
    new = _with_a_newer_step(monkeypatch)
    with pytest.raises(OutboxSchemaMismatch) as stopped:
        open_outbox(url)
    assert str(stopped.value) == (
        f"the outbox schema is version {old}, this xgate needs {new}: run xgate db upgrade"
    )
    assert _sql(url, "SELECT to_regclass('xgate_test_step')") == [(None,)]  # nothing upgraded silently
    config = _config(url, tmp_path)
    # on a port of its own: serve binds its port before it opens the outbox, and 8080 may be taken
    for command in (["serve", "--port", str(free_port())], ["dispatch"], ["status"]):
        stopped_cli = CliRunner().invoke(app, [*command, "-c", config])
        assert stopped_cli.exit_code == EXIT_CONFIG, stopped_cli.output  # not restarted by systemd
        assert f"error: the outbox schema is version {old}, this xgate needs {new}" in " ".join(
            stopped_cli.output.split()
        )
    pending = CliRunner().invoke(app, ["db", "status", "-c", config])
    assert pending.exit_code == 1 and f"pending: {new:04d}_test_step" in pending.output
    assert CliRunner().invoke(app, ["db", "upgrade", "-c", config]).exit_code == 0
    outbox_factory().close()
    assert _sql(url, "SELECT max(version) FROM xgate_schema_version") == [(new,)]


@on_postgres
def test_a_gateway_on_a_newer_schema_says_to_upgrade_xgate(outbox_factory: OutboxFactory, url: str) -> None:
    outbox_factory().close()
    _sql(url, "INSERT INTO xgate_schema_version (version, name) VALUES (99, 'from_the_future')")
    with pytest.raises(OutboxSchemaMismatch, match="version 99, newer than this xgate knows") as stopped:
        open_outbox(url)
    assert "upgrade xgate" in str(stopped.value)
    with pytest.raises(OutboxSchemaMismatch, match="upgrade xgate"):
        migrations.upgrade(url)


@on_postgres
def test_two_db_upgrades_at_once_apply_each_step_once_and_only_the_one_that_did_says_applied(
    url: str, tmp_path: object
) -> None:
    # docs/deploy.md: `xgate db upgrade` is safe to run from any host at once; the one that waited on
    # the other's lock must not report the steps it found pending as applied by itself
    migrate_lock = "hashtext(current_schema() || ':xgate-migrate')"
    steps = tuple(f"{m.version:04d}_{m.name}" for m in migrations.postgresql())
    results: list[tuple[migrations.SchemaStatus, tuple[str, ...], migrations.SchemaStatus]] = []
    threads = [threading.Thread(target=lambda: results.append(migrations.upgrade(url))) for _ in range(2)]
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute(f"SELECT pg_advisory_lock({migrate_lock})")  # both read the status, then wait
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        while _sql(url, waiting) != [(2,)]:
            assert time.monotonic() < deadline, "the two upgrades never waited on the lock"
            time.sleep(0.05)
        holder.execute(f"SELECT pg_advisory_unlock({migrate_lock})")
    for thread in threads:
        thread.join(timeout=30)
    assert [before.pending for before, _, _ in results] == [steps, steps]
    assert sorted(applied for _, applied, _ in results) == [(), steps]
    assert _sql(url, "SELECT count(*) FROM xgate_schema_version") == [(len(steps),)]
    again = CliRunner().invoke(app, ["db", "upgrade", "-c", _config(url, tmp_path)])
    assert again.exit_code == 0 and "already up to date" in again.output and "applied" not in again.output


@on_postgres
def test_purge_deletes_in_batches_until_done_and_keeps_the_counts(
    outbox_factory: OutboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "_PURGE_BATCH", 7)
    box = outbox_factory(StorageSettings(retention_days=1, dedup_window_days=2))
    long_ago = time.time() - 3 * 86400
    box.enqueue([conversion(i) for i in range(30)], now=long_ago)
    rows = box.lease(30, 60, now=long_ago)
    assert box.mark_delivered([r.id for r in rows[:25]], rows[0].lease_token, None, now=long_ago) == 25
    assert box.purge() == 25
    assert box.stats().counts == {("x-main", "leased"): 5}
    assert _sql(outbox_factory.url, "SELECT count(*) FROM xgate_dedup_keys") == [(0,)]
    # the keys are gone with the window: the same conversions are new again
    assert {o.status for o in box.enqueue([conversion(i) for i in range(3)])} == {"queued"}


def _config(url: str, tmp_path: object) -> str:
    from pathlib import Path

    path = Path(str(tmp_path)) / "xgate.toml"
    path.write_text(  # a port of its own: `serve` binds it before it opens the outbox
        f'[storage]\nurl = "{url}"\n[server]\nport = {free_port()}\n'
        '[[destinations]]\nname = "x-main"\npixel_id = "o8z6j"\nevents = { purchase = "o87ne" }\n'
    )
    return str(path)


def test_messages_show_the_storage_url_without_its_password() -> None:
    from xgate.outbox import storage_location

    assert storage_location("postgresql://xgate:pa55-w0rd-xyz@db:5432/xgate?sslmode=require") == (
        "postgresql://xgate:***@db:5432/xgate?sslmode=require"
    )
    assert storage_location("postgresql://xgate@db/xgate?sslmode=require&password=pa55-w0rd-xyz") == (
        "postgresql://xgate@db/xgate?sslmode=require&password=***"
    )
    assert storage_location("postgresql://xgate@db/xgate?sslpassword=k3y-pa55&sslmode=require") == (
        "postgresql://xgate@db/xgate?sslpassword=***&sslmode=require"
    )
    assert storage_location("postgresql://xgate@db/xgate") == "postgresql://xgate@db/xgate"
    assert storage_location("sqlite:////var/lib/xgate/xgate.db") == "sqlite:////var/lib/xgate/xgate.db"


# -- identity ----------------------------------------------------------------------------------------
def test_a_nodes_record_is_named_after_the_database_its_url_reaches_not_the_password(tmp_path: Path) -> None:
    record = postgres.identity_record
    one = record(tmp_path, "postgresql://xgate@db1:5432,db2:5432/xgate?target_session_attrs=read-write")
    # the password (in the URL or as a parameter) and the connection's settings do not change it...
    assert record(tmp_path, "postgresql://xgate:pa55@db1:5432,db2:5432/xgate") == one
    assert record(tmp_path, "postgresql://xgate@db1:5432,db2:5432/xgate?password=x&sslmode=require") == one
    # ...another database, server, user or schema does
    others = {
        record(tmp_path, "postgresql://xgate@db1:5432,db2:5432/other"),
        record(tmp_path, "postgresql://xgate@db3:5432/xgate"),
        record(tmp_path, "postgresql://admin@db1:5432,db2:5432/xgate"),
        record(tmp_path, "postgresql://xgate@db1:5432,db2:5432/xgate?options=-csearch_path%3Dxgate"),
    }
    assert len(others) == 4 and one not in others
    assert one.parent == tmp_path and re.fullmatch(r"outbox-[0-9a-f]{16}\.id", one.name)


@on_postgres
def test_the_record_and_the_refusal_name_the_database_but_never_the_password(
    outbox_factory: OutboxFactory, url: str, tmp_path: Path
) -> None:
    parts = urlsplit(url)  # the test cluster trusts loopback: a password in the URL is never asked for
    with_password = urlunsplit(parts._replace(netloc=f"postgres:pa55-w0rd-xyz@{parts.netloc.split('@')[-1]}"))
    state = StorageSettings(state_dir=tmp_path / "state")
    open_outbox(with_password, state).close()
    record = postgres.identity_record(tmp_path / "state", url)
    assert record.exists()  # the same record as without the password
    text = record.read_text(encoding="utf-8")
    assert (
        "pa55-w0rd-xyz" not in text and f"{parts.hostname}:{parts.port}{parts.path} (schema public)" in text
    )
    _sql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")  # the tables dropped and created anew
    with pytest.raises(OutboxReplaced) as refused:
        open_outbox(with_password, state)
    assert "PostgreSQL at" in str(refused.value) and "pa55-w0rd-xyz" not in str(refused.value)
    assert "dropped and recreated, restored from another backup, or replaced" in str(refused.value)


@on_postgres
def test_a_database_upgraded_from_before_outbox_ids_gets_one_and_its_nodes_record_it(
    empty_url: str, tmp_path: Path
) -> None:
    before = len(migrations.postgresql()) - 1  # 0009_outbox_identity: the step that added the id
    outbox = PostgresOutbox(empty_url, check_schema=False)
    try:
        postgres._apply(outbox, upto=before)
    finally:
        outbox.close()
    assert _sql(empty_url, "SELECT to_regclass('xgate_meta')") == [(None,)]
    assert CliRunner().invoke(app, ["db", "upgrade", "-c", _config(empty_url, tmp_path)]).exit_code == 0
    [(outbox_id,)] = _sql(empty_url, "SELECT value FROM xgate_meta WHERE key = 'outbox_id'")
    state = StorageSettings(state_dir=tmp_path / "state")
    open_outbox(empty_url, state).close()  # no record yet: a first start
    record = postgres.identity_record(tmp_path / "state", empty_url)
    assert record.read_text(encoding="utf-8").split()[0] == outbox_id


@on_postgres
def test_db_commands_and_a_read_only_command_write_no_record(empty_url: str, tmp_path: Path) -> None:
    config = _config(empty_url, tmp_path)  # state_dir: var/ beside it
    assert CliRunner().invoke(app, ["db", "upgrade", "-c", config]).exit_code == 0
    for command in (["db", "status"], ["status"], ["activity"], ["dlq", "list"]):
        ran = CliRunner().invoke(app, [*command, "-c", config])
        assert ran.exit_code in (0, 1), ran.output
    assert not (tmp_path / "var").exists()
