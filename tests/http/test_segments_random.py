"""The columnar segments (sql/segments.sql, docs/segments.md) never change an answer: random ingestion,
late events, person merges, deletes, property updates and timezone changes, then every trends and
funnels, retention, stickiness, lifecycle and paths query answered with `pg_insights.use_segments` on must equal the heap's answer (off).

Each case (a fixed seed) builds a fresh project (random timezone) with random persons and events over
12 closed UTC days of 2022 (many near midnight), with `$browser` materialised (so filters and breakdowns
on it can read segments), seals it, then applies random changes, sometimes resealing, and compares a set of
random trends, funnels, retention, stickiness, lifecycle and paths queries after every step. The worker seals in the background too (this database is
served), which only adds interleavings. `insights.explain` must report segments for a good share of
the queries, so the comparison is never vacuous.
"""

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from conftest import api, sql

UTC = timezone.utc
EVENTS = ["$pageview", "click", "signup"]
BROWSERS = ["Chrome", "Safari", "Firefox", None]
TIMEZONES = ["UTC", "US/Pacific", "Asia/Kolkata", "Europe/London"]
START = datetime(2022, 3, 20, tzinfo=UTC)  # 12 days around Europe's DST change (03-27)
SEEDS = list(range(1, 13))


@pytest.fixture(scope="module")
def materialized(db):
    """$browser materialised for the module (rewrites insights.events; undone at the end)."""
    (had,) = sql(db, "SELECT count(*) FROM insights.materialized_properties WHERE property = '$browser'")[0]
    sql(db, "SELECT insights.materialize_property('$browser')")
    yield
    if not had:
        sql(db, "SELECT insights.dematerialize_property('$browser')")


def event(rng, distinct_id, name=None, at=None):
    if at is None:
        day = rng.randrange(12)
        # Half of them within an hour of UTC midnight, where day segments meet.
        sec = rng.choice([rng.randrange(86400), rng.randrange(3600), 86400 - 1 - rng.randrange(3600)])
        at = START + timedelta(days=day, seconds=sec)
    props = {}
    browser = rng.choice(BROWSERS)
    if browser:
        props["$browser"] = browser
    return {"event": name or rng.choice(EVENTS), "distinct_id": distinct_id, "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
            "timestamp": at.isoformat().replace("+00:00", "Z"), "properties": props}


def capture(db, pid, events):
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb, NULL)", pid, json.dumps(events))


def random_query(rng):
    q = {"events": [{"id": rng.choice([None, "$pageview", "click"]), "math": rng.choice(["total", "dau"])}],
         "interval": rng.choice(["day", "day", "week", "hour", "month"]),
         "date_from": (START + timedelta(days=rng.randrange(0, 4))).date().isoformat(),
         "date_to": (START + timedelta(days=rng.randrange(6, 13))).date().isoformat()}
    if rng.random() < 0.5:
        q["breakdown"], q["breakdown_type"] = "$browser", "event"
    if rng.random() < 0.4:
        op = rng.choice([{"operator": "exact", "value": rng.choice(["Chrome", "Safari"])},
                         {"operator": "is_not", "value": "Chrome"}, {"operator": "is_set"},
                         {"operator": "icontains", "value": "a"}])
        q["properties"] = [dict(key="$browser", type="event", **op)]
    if rng.random() < 0.2:
        q["display"] = "ActionsTable"
    if rng.random() < 0.15:
        q["compare"] = True
    return q


def random_funnel(rng):
    steps = [{"id": rng.choice(EVENTS[:2]), "order": i} for i in range(rng.randrange(2, 4))]
    q = {"insight": "FUNNELS", "events": steps,
         "funnel_order_type": rng.choice(["ordered", "strict", "unordered"]),
         "funnel_window_interval": rng.choice([1, 3, 14]), "funnel_window_interval_unit": rng.choice(["hour", "day"]),
         "date_from": (START + timedelta(days=rng.randrange(0, 4))).date().isoformat(),
         "date_to": (START + timedelta(days=rng.randrange(6, 13))).date().isoformat()}
    if rng.random() < 0.5:
        q["breakdown"], q["breakdown_type"] = "$browser", "event"
        q["breakdown_attribution_type"] = rng.choice(["first_touch", "last_touch", "all_events", "step"])
        if q["breakdown_attribution_type"] == "step":
            q["breakdown_attribution_value"] = 0 if q["funnel_order_type"] == "unordered" else 1
    if rng.random() < 0.3:
        steps[1]["properties"] = [{"key": "$browser", "value": "Chrome", "type": "event"}]
    if rng.random() < 0.2:
        last = len(steps) - 1 if q["funnel_order_type"] == "unordered" else 1  # no partial ones there
        q["exclusions"] = [{"id": "signup", "type": "events", "funnel_from_step": 0, "funnel_to_step": last}]
    if rng.random() < 0.3:
        q["funnel_viz_type"] = rng.choice(["trends", "time_to_convert"])
    return q


def random_paths(rng):
    """A paths query: events or pageviews (their URL items are empty here), start points, a step limit."""
    q = {"insight": "PATHS", "include_event_types": rng.choice([[], ["$pageview"], ["custom_event"]]),
         "step_limit": rng.choice([3, 5]),
         "date_from": (START + timedelta(days=rng.randrange(0, 4))).date().isoformat(),
         "date_to": (START + timedelta(days=rng.randrange(6, 13))).date().isoformat()}
    if rng.random() < 0.3:
        q["start_point"] = "click"
    if rng.random() < 0.3:
        q["properties"] = [{"key": "$browser", "value": "Safari", "operator": "is_not", "type": "event"}]
    return q


def random_retention(rng):
    """A recurring retention of one entity (it reads each person's periods from segments)."""
    ent = {"id": rng.choice([None, "$pageview", "click"]), "type": "events"}
    q = {"insight": "RETENTION", "retention_type": "retention_recurring", "target_entity": ent,
         "returning_entity": ent, "period": rng.choice(["Day", "Day", "Week", "Hour"]),
         "total_intervals": rng.choice([3, 7]), "cumulative": rng.random() < 0.3,
         "date_to": (START + timedelta(days=rng.randrange(6, 13))).date().isoformat()}
    if rng.random() < 0.4:
        q["properties"] = [{"key": "$browser", "value": "Chrome", "operator": "exact", "type": "event"}]
    return q


def random_periods(rng):
    """A stickiness, lifecycle, retention or paths query (the first three read each person's periods
    from segments)."""
    if rng.random() < 0.25:
        return random_paths(rng)
    if rng.random() < 0.25:
        return random_retention(rng)
    q = {"insight": rng.choice(["STICKINESS", "LIFECYCLE"]),
         "events": [{"id": rng.choice([None, "$pageview", "click"]), "type": "events"}],
         "interval": rng.choice(["day", "day", "week", "hour", "month"]),
         "date_from": (START + timedelta(days=rng.randrange(0, 4))).date().isoformat(),
         "date_to": (START + timedelta(days=rng.randrange(6, 13))).date().isoformat()}
    if q["interval"] == "hour":
        q["date_from"] = q["date_to"]  # a day of hours (the mask form holds at most 63 periods)
    if rng.random() < 0.4:
        op = rng.choice([{"operator": "exact", "value": "Chrome"}, {"operator": "is_not", "value": "Chrome"},
                         {"operator": "is_set"}])
        q["properties"] = [dict(key="$browser", type="event", **op)]
    if q["insight"] == "STICKINESS" and rng.random() < 0.2:
        q["compare"] = True
    return q


FUNCTIONS = {"FUNNELS": "funnel_json", "STICKINESS": "stickiness_json", "LIFECYCLE": "lifecycle_json",
             "PATHS": "paths_json", "RETENTION": "retention_json"}


def answers(db, pid, q):
    fn = FUNCTIONS.get(q.get("insight"), "trend_json")
    out = []
    for on in ("on", "off"):
        sql(db, f"SET pg_insights.use_segments = {on}")
        out.append(sql(db, f"SELECT insights.{fn}(%s, %s::jsonb) -> 'result'", pid, json.dumps(q))[0][0])
    sql(db, "RESET pg_insights.use_segments")
    paths = [r[0] for r in sql(db, "SELECT path FROM insights.explain(%s, %s::jsonb)", pid, json.dumps(q))]
    return out[0], out[1], "segments" in paths


def change(db, rng, pid, ids):
    """One random change of the project's events; returns its name."""
    kind = rng.choice(["late", "merge", "delete", "update", "timezone", "reseal"])
    if kind == "late":
        capture(db, pid, [event(rng, rng.choice(ids)) for _ in range(rng.randrange(1, 6))])
    elif kind == "merge":
        a, b = rng.sample(ids, 2)
        capture(db, pid, [{"event": "$identify", "distinct_id": a, "timestamp": (START + timedelta(days=5)).isoformat(),
                           "properties": {"$anon_distinct_id": b}}])
    elif kind == "delete":
        sql(db, "DELETE FROM insights.events WHERE project_id = %s AND uuid IN "
                "(SELECT uuid FROM insights.events WHERE project_id = %s ORDER BY uuid LIMIT %s)",
            pid, pid, rng.randrange(1, 5))
    elif kind == "update":
        sql(db, "UPDATE insights.events SET properties = properties || %s::jsonb WHERE project_id = %s AND uuid IN "
                "(SELECT uuid FROM insights.events WHERE project_id = %s ORDER BY uuid DESC LIMIT 3)",
            json.dumps({"$browser": rng.choice(["Chrome", "Edge"])}), pid, pid)
    elif kind == "timezone":
        sql(db, "UPDATE insights.projects SET timezone = %s WHERE id = %s", rng.choice(TIMEZONES), pid)
    else:
        sql(db, "SELECT insights.seal_segments(%s)", pid)
    return kind


@pytest.mark.parametrize("seed", SEEDS)
def test_segments_answer_as_the_heap(db, make_project, materialized, seed):
    rng = random.Random(seed)
    pid = make_project(timezone=rng.choice(TIMEZONES))["id"]
    ids = [f"u{i}" for i in range(rng.randrange(3, 12))]
    capture(db, pid, [event(rng, rng.choice(ids)) for _ in range(rng.randrange(20, 120))])
    sql(db, "SELECT insights.seal_segments(%s)", pid)
    (clean,) = sql(db, "SELECT count(*) FROM insights.segments WHERE project_id = %s AND state = 'clean'", pid)[0]
    assert clean >= 10, "the 12 closed days were sealed"
    via_segments = total = 0
    steps = ["start"]
    for step in range(6):
        for k in range(12):
            q = [random_query, random_funnel, random_periods][k % 3](rng)
            on, off, seg = answers(db, pid, q)
            assert on == off, f"seed {seed}, after {steps}: {json.dumps(q)}"
            via_segments += seg
            total += 1
        steps.append(change(db, rng, pid, ids))
    assert via_segments >= total // 4, f"only {via_segments} of {total} queries read segments"


def test_http_trend_reads_segments(db, make_project, materialized):
    """Over HTTP (nginx → PostgREST → the same function): a DAU trend by $browser reads segments and gives
    the heap's numbers."""
    rng = random.Random(99)
    p = make_project()
    capture(db, p["id"], [event(rng, f"u{i % 7}") for i in range(200)])
    sql(db, "SELECT insights.seal_segments(%s)", p["id"])
    q = {"events": [{"id": "$pageview", "math": "dau"}], "breakdown": "$browser", "breakdown_type": "event",
         "date_from": "2022-03-20", "date_to": "2022-03-31"}
    paths = sql(db, "SELECT path FROM insights.explain(%s, %s::jsonb)", p["id"], json.dumps(q))
    assert paths == [("segments",)]
    r = api("POST", f"/api/projects/{p['id']}/insights/trend/", p["key"], json=q)
    assert r.status_code == 200, r.text
    sql(db, "SET pg_insights.use_segments = off")
    heap = sql(db, "SELECT insights.trend_json(%s, %s::jsonb) -> 'result'", p["id"], json.dumps(q))[0][0]
    sql(db, "RESET pg_insights.use_segments")
    assert r.json()["result"] == heap
    assert sum(sum(s["data"]) for s in heap) > 0
