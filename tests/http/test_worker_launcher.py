"""The background workers in a real cluster (issue 17 item 6; src/worker.rs).

A launcher connected to no database starts one query worker per served database
(`pg_insights.worker_database`: a list, or `*`). A named database that does not exist is reported
once and waited for, without a loop of FATAL connection errors; once created with the extension
it gets its worker; a database without the extension gets none; taken out of the setting, its
worker stops. The stack's own database keeps its worker throughout.
"""

import fcntl
import os
import time
import uuid

import psycopg
import pytest
from conftest import sql

LOG = os.path.join(os.path.dirname(os.environ.get("PGHOST", "/nonexistent/run")), "postgres.log")


def workers(db):
    return sorted(sql(db, "SELECT coalesce(datname, ''), backend_type FROM pg_stat_activity "
                          "WHERE backend_type IN ('pg_insights launcher', 'pg_insights query worker')"))


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def set_served(db, value):
    if value is None:
        sql(db, "ALTER SYSTEM RESET pg_insights.worker_database")
    else:
        sql(db, f"ALTER SYSTEM SET pg_insights.worker_database = '{value}'")
    sql(db, "SELECT pg_reload_conf()")


@pytest.fixture
def spare_database(db):
    name = f"pgi_w_{uuid.uuid4().hex[:8]}"
    yield name
    set_served(db, None)
    sql(db, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_launcher_serves_the_stack_database(db):
    assert ("", "pg_insights launcher") in workers(db)
    assert ("insights", "pg_insights query worker") in workers(db)


def test_missing_database_is_waited_for_quietly_then_served(db, spare_database):
    log_start = os.path.getsize(LOG)
    set_served(db, f"insights, {spare_database}")
    time.sleep(7)  # more than one launcher pass (5 s)
    with open(LOG, errors="replace") as f:
        f.seek(log_start)
        log = f.read()
    assert log.count(f'database "{spare_database}" does not exist (pg_insights.worker_database)') == 1, log
    assert "FATAL" not in log, log

    # Created without the extension: no worker stays on it.
    sql(db, f"CREATE DATABASE {spare_database}")
    time.sleep(7)
    assert (spare_database, "pg_insights query worker") not in workers(db)

    # With the extension: served within a launcher pass or two.
    # CREATE EXTENSION reads the system-wide install script: hold the lock that installs take.
    with open(os.environ.get("PGI_INSTALL_LOCK", "/tmp/pg_insights-install.lock"), "a") as lock, \
            psycopg.connect(dbname=spare_database, autocommit=True) as other:
        fcntl.flock(lock, fcntl.LOCK_EX)
        other.execute("CREATE EXTENSION pg_insights")
    assert wait_for(lambda: (spare_database, "pg_insights query worker") in workers(db))

    # Taken out of the setting: its worker stops; the stack's database keeps its worker.
    set_served(db, None)
    assert wait_for(lambda: (spare_database, "pg_insights query worker") not in workers(db))
    assert ("insights", "pg_insights query worker") in workers(db)


def test_one_worker_per_database_after_a_launcher_restart(db):
    (launcher,) = sql(db, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_insights launcher'")[0]
    sql(db, "SELECT pg_terminate_backend(%s)", launcher)
    # The postmaster restarts the launcher after 5 s; the old query worker keeps its lock, so the
    # new launcher's attempts end at once and there is still exactly one worker.
    assert wait_for(lambda: sql(db, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_insights launcher' "
                                    "AND pid <> %s", launcher) == [(1,)])
    time.sleep(6)
    assert [w for w in workers(db) if w[1] == "pg_insights query worker"].count(("insights", "pg_insights query worker")) == 1
