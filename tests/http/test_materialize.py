"""Materialised event properties (sql/materialize.sql): a stored column per hot property key.

Materialising must not change any answer, the engines must actually read the column, and bad
input must be a clean 22023.
"""

import json
import random
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from conftest import api, sql

KEY = "$browser"
START = datetime(2026, 5, 1, tzinfo=timezone.utc)


def ingest(db, project_id, events):
    return sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project_id, json.dumps(events))[0][0]


@pytest.fixture(scope="module")
def shop(db):
    """A project with 1,500 events whose $browser is a string, a number, JSON null, or missing."""
    name = f"test-mat-{random.Random().randrange(10**9)}"
    (row,) = sql(db, "SELECT project_id, personal_api_key FROM insights.create_project_with_key(%s, %s, %s, %s)",
                 name, f"{name}@example.com", ["*"], "UTC")
    rng = random.Random(21)
    events = []
    for _ in range(1500):
        props = {}
        b = rng.choice(["Chrome", "Safari", "Firefox", 42, None, "missing"])
        if b != "missing":
            props[KEY] = b
        ts = START + timedelta(seconds=rng.randrange(20 * 86400))
        events.append({"event": rng.choice(["$pageview", "signup", "buy"]), "distinct_id": f"u{rng.randrange(120)}",
                       "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "properties": props})
    ingest(db, row[0], events)
    return {"id": row[0], "key": row[1]}


def queries():
    rng = {"date_from": "2026-05-01", "date_to": "2026-05-20"}
    bd = {"breakdown": KEY, "breakdown_type": "event"}
    chrome = [{"key": KEY, "value": "Chrome", "operator": "exact", "type": "event"}]
    return {
        "dau_by_browser": ("trend", {"kind": "TrendsQuery", "dateRange": rng, "breakdownFilter": bd,
                                     "series": [{"kind": "EventsNode", "event": None, "math": "dau"}]}),
        "pageviews_chrome": ("trend", {"kind": "TrendsQuery", "dateRange": rng, "properties": chrome,
                                       "series": [{"kind": "EventsNode", "event": "$pageview"}]}),
        "not_chrome_is_set": ("trend", {"kind": "TrendsQuery", "dateRange": rng, "series": [
            {"kind": "EventsNode", "event": "buy", "properties": [
                {"key": KEY, "value": "Chrome", "operator": "is_not", "type": "event"},
                {"key": KEY, "operator": "is_set", "type": "event"}]}]}),
        "funnel_by_browser": ("funnel", {"kind": "FunnelsQuery", "dateRange": rng, "breakdownFilter": bd,
                                         "series": [{"kind": "EventsNode", "event": "$pageview"},
                                                    {"kind": "EventsNode", "event": "buy"}]}),
        "retention_by_browser": ("retention", {"kind": "RetentionQuery", "dateRange": {"date_to": "2026-05-20"},
                                               "breakdownFilter": bd,
                                               "retentionFilter": {"period": "Day", "totalIntervals": 7}}),
    }


def results(db, pid):
    out = {}
    for name, (kind, q) in queries().items():
        out[name] = sql(db, f"SELECT insights.{kind}_json(%s, %s::jsonb)->'result'", pid, json.dumps(q))[0][0]
    return out


@pytest.fixture(scope="module")
def materialized(db, shop):
    before = results(db, shop["id"])
    (col,) = sql(db, "SELECT insights.materialize_property(%s)", KEY)[0]
    yield before, col
    sql(db, "SELECT insights.dematerialize_property(%s)", KEY)


def test_materialising_changes_no_answer(db, shop, materialized):
    before, col = materialized
    assert col == "mat_$browser"
    assert sql(db, "SELECT insights.materialize_property(%s)", KEY) == [(col,)]  # idempotent
    after = results(db, shop["id"])
    for name in before:
        assert after[name] == before[name], name
    assert any(s["breakdown_value"] == "Chrome" for s in after["dau_by_browser"])


def test_the_engines_read_the_column(db, shop, materialized):
    """Pointing the registry at another text column (rolled back) changes the breakdown values, so the
    engines read the column it names, not the jsonb."""
    q = queries()["dau_by_browser"][1]
    with db.transaction():
        sql(db, "UPDATE insights.materialized_properties SET column_name = 'event' WHERE property = %s", KEY)
        values = {s["breakdown_value"] for s in
                  sql(db, "SELECT insights.trend_json(%s, %s::jsonb)->'result'", shop["id"], json.dumps(q))[0][0]}
        raise psycopg.Rollback()
    assert values == {"$pageview", "signup", "buy"}


def test_http_answers_match_after_materialising(db, shop, materialized):
    before, _ = materialized
    r = api("POST", f"/api/projects/{shop['id']}/insights/trend/", shop["key"],
            json=queries()["dau_by_browser"][1])
    assert r.status_code == 200, r.text
    assert r.json()["result"] == before["dau_by_browser"]


def test_ingestion_fills_the_column(db, shop, materialized):
    _, col = materialized
    ingest(db, shop["id"], [{"event": "x", "distinct_id": "new", "timestamp": "2026-05-02T00:00:00Z",
                             "properties": {KEY: "Edge"}}])
    rows = sql(db, f'SELECT "{col}" FROM insights.events WHERE project_id = %s AND distinct_id = %s',
               shop["id"], "new")
    assert rows == [("Edge",)]


@pytest.mark.parametrize("bad", ["", "x" * 201])
def test_bad_keys_are_22023(db, bad):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        sql(db, "SELECT insights.materialize_property(%s)", bad)
    assert e.value.diag.message_detail == "field: property"


def test_dematerialize_unknown_is_false(db):
    assert sql(db, "SELECT insights.dematerialize_property('never-materialized')") == [(False,)]


def test_the_api_role_cannot_materialize(db):
    with db.transaction():
        sql(db, "SET LOCAL ROLE pgi_api")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql(db, "SELECT insights.materialize_property('$os')")
        raise psycopg.Rollback()


def test_paths_read_a_materialised_url(db):
    """Paths items come from the `$current_url` column once it is materialised: the same edges,
    and the statement reads the column the registry names."""
    name = f"test-mat-paths-{random.Random().randrange(10**9)}"
    (row,) = sql(db, "SELECT project_id, personal_api_key FROM insights.create_project_with_key(%s, %s, %s, %s)",
                 name, f"{name}@example.com", ["*"], "UTC")
    rng = random.Random(5)
    events = [{"event": "$pageview", "distinct_id": f"u{i // 40}",
               "timestamp": (START + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "properties": {"$current_url": rng.choice(["/", "/pricing/", "/docs", "/signup"])}}
              for i in range(400)]
    ingest(db, row[0], events)
    q = json.dumps({"insight": "PATHS", "include_event_types": ["$pageview"],
                    "date_from": "2026-05-01", "date_to": "2026-05-02"})
    paths = lambda: sql(db, "SELECT insights.paths_json(%s, %s::jsonb)->'result'", row[0], q)[0][0]  # noqa: E731
    before = paths()
    assert sum(e["value"] for e in before if e["source"].startswith("1_")) == 10  # 10 persons, one session each
    assert {e["source"] for e in before} >= {"1_/", "1_/pricing"}  # one trailing '/' removed
    sql(db, "SELECT insights.materialize_property('$current_url')")
    try:
        assert paths() == before
        # The registry pointed at the `event` column (rolled back): every item is `$pageview`,
        # each session collapses to one item and no edge is left.
        with db.transaction():
            sql(db, "UPDATE insights.materialized_properties SET column_name = 'event' "
                    "WHERE property = '$current_url'")
            redirected = paths()
            raise psycopg.Rollback()
        assert redirected == []
    finally:
        sql(db, "SELECT insights.dematerialize_property('$current_url')")
