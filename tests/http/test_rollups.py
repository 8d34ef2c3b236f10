"""The person-days rollup (sql/rollups.sql) and the retention engine's use of it.

The rollup must equal a recomputation from insights.events after every kind of write (ingestion,
person merges, deletes, updates, timezone changes, truncation of a project), and retention must
give the same answer whether it reads the rollup or the events (`pg_insights.use_rollups`).
"""

import json
import random
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from conftest import api, sql

RECOMPUTE = """
SELECT e.person_id, (e."timestamp" AT TIME ZONE p.timezone)::date AS day, count(*)::bigint
  FROM insights.events e JOIN insights.projects p ON p.id = e.project_id
 WHERE e.project_id = %s GROUP BY 1, 2 ORDER BY 1, 2"""
STORED = "SELECT person_id, day, events FROM insights.person_days WHERE project_id = %s ORDER BY 1, 2"


def ev(distinct_id, event, ts, props=None):
    return {"event": event, "distinct_id": distinct_id, "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "properties": dict(props or {})}


def ingest(db, project_id, events):
    return sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project_id, json.dumps(events))[0][0]


def assert_rollup_exact(db, project_id):
    stored = sql(db, STORED, project_id)
    assert stored == sql(db, RECOMPUTE, project_id)
    return stored


def random_events(rng, n, users, start, days):
    out = []
    for _ in range(n):
        ts = start + timedelta(seconds=rng.randrange(days * 86400))
        out.append(ev(f"u{rng.randrange(users)}", rng.choice(["$pageview", "signup", "buy"]), ts))
    return out


START = datetime(2026, 3, 1, tzinfo=timezone.utc)  # spans the Europe/Berlin DST change of 29 March


def test_ingestion_keeps_the_rollup_exact_in_a_non_utc_timezone(db, make_project):
    project = make_project(timezone="Europe/Berlin")
    rng = random.Random(11)
    for _ in range(3):  # repeated batches add to existing person-days
        assert ingest(db, project["id"], random_events(rng, 300, 40, START, 45)) == 300
    rows = assert_rollup_exact(db, project["id"])
    assert sum(r[2] for r in rows) == 900
    # 23:30 UTC on 1 March is 00:30 on 2 March in Berlin: the local day counts.
    ingest(db, project["id"], [ev("late", "x", datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc))])
    (day,) = sql(db, """SELECT d.day::text FROM insights.person_days d JOIN insights.person_distinct_ids i
                         ON i.person_id = d.person_id AND i.project_id = d.project_id
                        WHERE d.project_id = %s AND i.distinct_id = 'late'""", project["id"])
    assert day == ("2026-03-02",)


def test_merges_deletes_updates_and_timezone_changes_keep_it_exact(db, make_project):
    project = make_project()
    pid = project["id"]
    rng = random.Random(12)
    ingest(db, pid, random_events(rng, 400, 30, START, 30))
    # $identify merges the anonymous person into an identified one: events.person_id is rewritten.
    ingest(db, pid, [ev("u1", "$pageview", START + timedelta(days=3)), ev("anon-9", "$pageview", START + timedelta(days=3)),
                     ev("u1", "$identify", START + timedelta(days=4), {"$anon_distinct_id": "anon-9"})])
    assert_rollup_exact(db, pid)
    ingest(db, pid, [ev("u2", "$identify", START + timedelta(days=5), {"$anon_distinct_id": "u3"})])
    assert_rollup_exact(db, pid)
    # Deletes: some events of a day (the row shrinks) and all events of a person (rows vanish).
    sql(db, "DELETE FROM insights.events WHERE project_id = %s AND event = 'buy' AND \"timestamp\" < %s",
        pid, START + timedelta(days=10))
    (victim,) = sql(db, "SELECT person_id FROM insights.events WHERE project_id = %s LIMIT 1", pid)[0]
    sql(db, "DELETE FROM insights.events WHERE project_id = %s AND person_id = %s", pid, victim)
    rows = assert_rollup_exact(db, pid)
    assert victim not in {r[0] for r in rows}
    # Updates that move events to another day, and updates that change nothing the rollup keeps.
    sql(db, "UPDATE insights.events SET \"timestamp\" = \"timestamp\" + interval '36 hours' "
            "WHERE project_id = %s AND event = 'signup'", pid)
    sql(db, "UPDATE insights.events SET properties = properties || '{\"x\": 1}' WHERE project_id = %s", pid)
    assert_rollup_exact(db, pid)
    # A new timezone moves local days.
    before = sql(db, STORED, pid)
    sql(db, "UPDATE insights.projects SET timezone = 'Pacific/Auckland' WHERE id = %s", pid)
    after = assert_rollup_exact(db, pid)
    assert after != before
    # A rolled-back delete leaves the rollup as it was (the triggers run in the same transaction).
    with db.transaction():
        sql(db, "DELETE FROM insights.events WHERE project_id = %s AND event = 'signup'", pid)
        assert sql(db, STORED, pid) != after
        raise psycopg.Rollback()
    assert sql(db, STORED, pid) == after


def test_deleting_a_project_removes_its_rows(db, make_project):
    project = make_project()
    ingest(db, project["id"], random_events(random.Random(13), 50, 5, START, 5))
    assert sql(db, "SELECT count(*) FROM insights.person_days WHERE project_id = %s", project["id"])[0][0] > 0
    sql(db, "DELETE FROM insights.projects WHERE id = %s", project["id"])
    assert sql(db, "SELECT count(*) FROM insights.person_days WHERE project_id = %s", project["id"]) == [(0,)]


def test_rebuild_after_a_bulk_load_without_triggers(db, make_project):
    project = make_project(timezone="America/New_York")
    pid = project["id"]
    ingest(db, pid, random_events(random.Random(14), 100, 10, START, 10))
    with db.transaction():
        sql(db, "ALTER TABLE insights.events DISABLE TRIGGER person_days_insert")
        sql(db, """INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, "timestamp")
                   SELECT project_id, gen_random_uuid(), event, distinct_id, person_id, "timestamp" + interval '1 day'
                     FROM insights.events WHERE project_id = %s""", pid)
        sql(db, "ALTER TABLE insights.events ENABLE TRIGGER person_days_insert")
    assert sql(db, STORED, pid) != sql(db, RECOMPUTE, pid)
    (n,) = sql(db, "SELECT insights.rebuild_person_days(%s)", pid)[0]
    assert n == len(assert_rollup_exact(db, pid))


def retention_query(ty, period, intervals=6, cumulative=False, date_to="2026-04-20"):
    return {"kind": "RetentionQuery", "dateRange": {"date_to": date_to},
            "retentionFilter": {"period": period, "totalIntervals": intervals, "retentionType": ty,
                                "cumulative": cumulative,
                                "targetEntity": {"id": None, "type": "events"},
                                "returningEntity": {"id": None, "type": "events"}}}


def retention(db, pid, q, rollups):
    with db.transaction():
        sql(db, f"SET LOCAL pg_insights.use_rollups = {'on' if rollups else 'off'}")
        return sql(db, "SELECT insights.retention_json(%s, %s::jsonb)->'result'", pid, json.dumps(q))[0][0]


@pytest.fixture(scope="module")
def berlin(db):
    """A project in Europe/Berlin (weeks start Monday): 150 persons, 2,000 events over 80 days."""
    name = f"test-rollup-{random.Random().randrange(10**9)}"
    (row,) = sql(db, "SELECT project_id, personal_api_key FROM insights.create_project_with_key(%s, %s, %s, %s)",
                 name, f"{name}@example.com", ["*"], "Europe/Berlin")
    pid = row[0]
    sql(db, "UPDATE insights.projects SET week_start_day = 1 WHERE id = %s", pid)
    # Persons arrive over the whole span (so every period has first-timers) and come back at random.
    rng = random.Random(15)
    first = START - timedelta(days=30)
    arrival = {u: rng.randrange(80 * 86400) for u in range(150)}
    events = []
    for _ in range(2000):
        u = rng.randrange(150)
        ts = first + timedelta(seconds=arrival[u] + rng.randrange(80 * 86400 - arrival[u]))
        events.append(ev(f"u{u}", rng.choice(["$pageview", "signup"]), ts))
    ingest(db, pid, events)
    return {"id": pid, "key": row[1]}


@pytest.mark.parametrize("ty", ["retention_first_time", "retention_recurring", "retention_first_ever_occurrence"])
@pytest.mark.parametrize("period,intervals", [("Day", 10), ("Week", 6), ("Month", 3)])
@pytest.mark.parametrize("cumulative", [False, True])
def test_retention_is_the_same_from_the_rollup_and_from_the_events(db, berlin, ty, period, intervals, cumulative):
    q = retention_query(ty, period, intervals, cumulative)
    with_rollup = retention(db, berlin["id"], q, True)
    assert with_rollup == retention(db, berlin["id"], q, False)
    assert sum(c["values"][0]["count"] for c in with_rollup) > 0


def test_the_rollup_is_what_retention_reads(db, berlin):
    """Proof that the switch works: an edit to the rollup (rolled back) shows in the result with the
    rollup on and not with it off."""
    q = retention_query("retention_first_time", "Week")
    honest = retention(db, berlin["id"], q, False)
    with db.transaction():
        sql(db, "UPDATE insights.person_days SET day = day - 400 WHERE project_id = %s", berlin["id"])
        sql(db, "SET LOCAL pg_insights.use_rollups = on")
        skewed = sql(db, "SELECT insights.retention_json(%s, %s::jsonb)->'result'", berlin["id"], json.dumps(q))[0][0]
        sql(db, "SET LOCAL pg_insights.use_rollups = off")
        off = sql(db, "SELECT insights.retention_json(%s, %s::jsonb)->'result'", berlin["id"], json.dumps(q))[0][0]
        raise psycopg.Rollback()
    assert off == honest
    assert all(c["values"][0]["count"] == 0 for c in skewed) and honest != skewed


def test_http_retention_and_its_actors_match_the_events(db, berlin):
    """Through nginx and PostgREST (rollup on by default) against the events read directly."""
    q = retention_query("retention_first_time", "Week")
    r = api("POST", f"/api/projects/{berlin['id']}/insights/retention/", berlin["key"], json=q)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result == retention(db, berlin["id"], q, False)
    for c in (1, 3):
        people = api("POST", f"/api/projects/{berlin['id']}/persons/retention/", berlin["key"],
                     json={**q, "selected_interval": c})
        assert people.status_code == 200, people.text
        actors = people.json()["result"]
        assert len(actors) == result[c]["values"][0]["count"] > 0
        # Each period's returning actors, counted from their appearances, are the cohort's row.
        for k, cell in enumerate(result[c]["values"]):
            assert sum(k in a["appearances"] for a in actors) == cell["count"]
