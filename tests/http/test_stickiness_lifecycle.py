"""Stickiness and lifecycle acceptance tests: PostHog's own stickiness and lifecycle test cases (S* and L*)
plus the common rules (dates, timezone and week start: docs/dates.md; filters: docs/filters.md; merged
persons), the rules of docs/insights.md#stickiness and docs/insights.md#lifecycle, their actors, validation
and scopes.

Same style as test_trends_retention.py: every case gets a fresh project, events with explicit timestamps in a
fixed past range (12:00 UTC unless the case says otherwise) and an explicit date range in the query. Queries
run through SQL (`insights.stickiness_json` / `insights.lifecycle_json`, cross-checked against the typed rows of
`insights.stickiness` / `insights.lifecycle`, and, for legacy filters, against `insights.trend_json`, which
dispatches on `insight` / `shown_as`); a representative subset also runs over HTTP: legacy filters through
`/insights/trend/` (POST body or GET with JSON-encoded values), query nodes through `POST /query/`, and saved
insights through `/insights/:id/?refresh=blocking`, whose result must equal the SQL engine's. Actors are checked
through `insights.stickiness_actors` / `insights.lifecycle_actors` and the `persons/stickiness/` and
`persons/lifecycle/` endpoints.
"""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from conftest import api, assert_error, sql

# ---------------------------------------------------------------------------------------------
# Helpers (copied from test_trends_retention.py): events, ingestion
# ---------------------------------------------------------------------------------------------


def _iso(ts):
    """'2021-05-01 00:00:00' (UTC) or a datetime → an ISO timestamp with an explicit offset."""
    if isinstance(ts, datetime):
        ts = ts.strftime("%Y-%m-%d %H:%M:%S")
    t = ts.replace(" ", "T")
    return t if t.endswith("Z") or "+" in t[10:] else t + "Z"


def ev(distinct_id, event, ts, props=None):
    """One PostHog event for `insights.capture_batch`."""
    return {"event": event, "distinct_id": distinct_id, "timestamp": _iso(ts), "properties": dict(props or {})}


def identify(distinct_id, anon_id, ts, props=None):
    return ev(distinct_id, "$identify", ts, {"$anon_distinct_id": anon_id, **(props or {})})


def ingest(db, project, events):
    return sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))[0][0]


def make_action(db, project, name, steps):
    return sql(db, "INSERT INTO insights.actions (project_id, name, steps) VALUES (%s, %s, %s::jsonb) RETURNING id",
               project["id"], name, json.dumps(steps))[0][0]


def static_cohort(db, project, name, distinct_ids):
    """A static cohort holding the persons of `distinct_ids`."""
    cohort = sql(db, "INSERT INTO insights.cohorts (project_id, name, is_static) VALUES (%s, %s, true) RETURNING id",
                 project["id"], name)[0][0]
    sql(db, "INSERT INTO insights.cohort_people (cohort_id, person_id) SELECT DISTINCT %s, person_id "
            "FROM insights.person_distinct_ids WHERE project_id = %s AND distinct_id = ANY(%s)",
        cohort, project["id"], list(distinct_ids))
    return cohort


def node(event, **kw):
    return {"kind": "EventsNode", "event": event, **kw}


def prop(key, value, operator="exact", type_="event"):
    return {"key": key, "value": value, "operator": operator, "type": type_}


def project_tz(db, project):
    return sql(db, "SELECT timezone FROM insights.projects WHERE id = %s", project["id"])[0][0]


def set_test_account_filters(db, project, filters):
    sql(db, "UPDATE insights.projects SET test_account_filters = %s::jsonb WHERE id = %s",
        json.dumps(filters), project["id"])


def person_ids(db, project, *distinct_ids):
    """persons.id (as text) of the persons owning `distinct_ids`."""
    out = set()
    for did in distinct_ids:
        (row,) = sql(db, "SELECT person_id::text FROM insights.person_distinct_ids "
                         "WHERE project_id = %s AND distinct_id = %s", project["id"], did)
        out.add(row[0])
    return out


def day_range(first, last, step=timedelta(days=1)):
    d0, d1 = datetime.fromisoformat(first), datetime.fromisoformat(last)
    out = []
    while d0 <= d1:
        out.append(d0)
        d0 += step
    return out


def days_of(first, last, step=timedelta(days=1), fmt="%Y-%m-%d"):
    return [d.strftime(fmt) for d in day_range(first, last, step)]


def labels_of(days):
    return [f"{d.day}-{d.strftime('%b-%Y')}" for d in days]


PV, PL, OTHER = "$pageview", "$pageleave", "$other"
WM = "watched movie"

# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def entity(id_, type_="events", order=0, **kw):
    return {"id": id_, "type": type_, "order": order, **kw}


def sq(series, date_from, date_to, interval="day", sticky=None, **kw):
    """A StickinessQuery. Series are event names or nodes; stickinessFilter keys go in `sticky`."""
    q = {
        "kind": "StickinessQuery",
        "series": [s if isinstance(s, dict) else node(s) for s in series],
        "dateRange": {"date_from": date_from, "date_to": date_to},
        "interval": interval,
    }
    if sticky is not None:
        q["stickinessFilter"] = dict(sticky)
    q.update(kw)
    return q


def sl(date_from, date_to, events=None, actions=None, interval="day", **kw):
    """A legacy stickiness filter (both `insight` and `shown_as`, as clients send them)."""
    q = {"insight": "STICKINESS", "shown_as": "Stickiness", "date_from": date_from, "date_to": date_to,
         "interval": interval}
    if events is not None:
        q["events"] = [e if isinstance(e, dict) else entity(e, order=i) for i, e in enumerate(events)]
    if actions is not None:
        q["actions"] = actions
    q.update(kw)
    return q


def lq(series, date_from, date_to, interval="day", **kw):
    """A LifecycleQuery."""
    q = {
        "kind": "LifecycleQuery",
        "series": [s if isinstance(s, dict) else node(s) for s in series],
        "dateRange": {"date_from": date_from, "date_to": date_to},
        "interval": interval,
    }
    q.update(kw)
    return q


def ll(date_from, date_to, events=None, actions=None, interval="day", **kw):
    """A legacy lifecycle filter."""
    q = {"insight": "LIFECYCLE", "shown_as": "Lifecycle", "date_from": date_from, "date_to": date_to,
         "interval": interval}
    if events is not None:
        q["events"] = [e if isinstance(e, dict) else entity(e, order=i) for i, e in enumerate(events)]
    if actions is not None:
        q["actions"] = actions
    q.update(kw)
    return q


def stick_labels(n, unit="day", cumulative=False):
    more = " or more" if cumulative else ""
    return [f"{k} {unit}{'' if k == 1 else 's'}{more}" for k in range(1, n + 1)]


# ---------------------------------------------------------------------------------------------
# Running: SQL (JSON + typed rows + trend_json dispatch), HTTP
# ---------------------------------------------------------------------------------------------

ENVELOPE = {"result", "timezone", "is_cached", "last_refresh"}
STATUSES = ["new", "returning", "resurrecting", "dormant"]


def json_call(db, project, fn, query):
    body = sql(db, f"SELECT insights.{fn}(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert set(body) == ENVELOPE, body
    assert body["timezone"] == project_tz(db, project)
    return body["result"]


def _is_legacy(query):
    return "kind" not in query


def _sort_key(row):
    return tuple("" if x is None else x for x in row)


def check_stickiness_items(query, result):
    sticky = query.get("stickinessFilter") or {}
    cumulative = sticky.get("computedAs") == "cumulative"
    compare = bool((query.get("compareFilter") or {}).get("compare") or query.get("compare"))
    for item in result:
        assert {"label", "count", "data", "days", "labels", "action"} <= set(item), item
        n = len(item["data"])
        assert item["days"] == list(range(1, n + 1))
        assert len(item["labels"]) == n
        if not cumulative:
            assert item["count"] == sum(item["data"])
        if compare:
            assert item["compare"] is True and item["compare_label"] in ("current", "previous")


def stickiness_sql(db, project, query):
    """`insights.stickiness_json(...)["result"]`, checked against `insights.stickiness`'s typed rows and, for
    a legacy filter, against `insights.trend_json`."""
    result = json_call(db, project, "stickiness_json", query)
    check_stickiness_items(query, result)
    rows = sql(db, "SELECT series, compare_label, intervals, actors FROM insights.stickiness(%s, %s::jsonb)",
               project["id"], json.dumps(query))
    expected = [(i["label"], i.get("compare_label"), k, float(v))
                for i in result for k, v in enumerate(i["data"], 1)]
    assert sorted(rows, key=_sort_key) == sorted(expected, key=_sort_key)
    if _is_legacy(query):
        assert json_call(db, project, "trend_json", query) == result
    return result


def check_lifecycle_items(result):
    assert [i["status"] for i in result] == STATUSES
    n = len(result[0]["data"])
    for item in result:
        assert {"status", "label", "count", "data", "days", "labels", "action"} <= set(item), item
        assert item["label"].endswith(" - " + item["status"])
        assert len(item["data"]) == len(item["days"]) == len(item["labels"]) == n
        assert item["days"] == result[0]["days"]
        assert all(isinstance(v, float) for v in item["data"]), item["data"]
        assert isinstance(item["count"], float)
        assert item["count"] == pytest.approx(sum(item["data"]))
        if item["status"] == "dormant":
            assert all(v <= 0 for v in item["data"])
        else:
            assert all(v >= 0 for v in item["data"])


def _bucket_text(bucket, tz, hourly):
    return bucket.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S" if hourly else "%Y-%m-%d")


def lifecycle_sql(db, project, query):
    """`insights.lifecycle_json(...)["result"]`, checked against `insights.lifecycle`'s typed rows (bucket =
    the period start in the project timezone) and, for a legacy filter, against `insights.trend_json`."""
    result = json_call(db, project, "lifecycle_json", query)
    check_lifecycle_items(result)
    tz = project_tz(db, project)
    hourly = len(result[0]["days"][0]) > 10 if result[0]["days"] else False
    rows = sql(db, "SELECT status, bucket, value FROM insights.lifecycle(%s, %s::jsonb)",
               project["id"], json.dumps(query))
    got = sorted((s, _bucket_text(b, tz, hourly), v) for s, b, v in rows)
    expected = sorted((i["status"], d, float(v)) for i in result for d, v in zip(i["days"], i["data"]))
    assert got == expected
    if _is_legacy(query):
        assert json_call(db, project, "trend_json", query) == result
    return result


def trend_http(project, query, method="POST", key=None):
    """/insights/trend/: POST a JSON body, or GET with the filter as (JSON-encoded) query params."""
    path = f"/api/projects/{project['id']}/insights/trend/"
    key = key or project["key"]
    if method == "POST":
        return api("POST", path, key, json=query)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    return api("GET", path, key, params=params)


def post_query(project, query, refresh="blocking", key=None):
    body = {"query": query}
    if refresh is not None:
        body["refresh"] = refresh
    return api("POST", f"/api/projects/{project['id']}/query/", key or project["key"], json=body)


def check_http(db, project, query, result, method="POST"):
    """Legacy filters through /insights/trend/, query nodes through POST /query/: same items as SQL."""
    if _is_legacy(query):
        r = trend_http(project, query, method=method)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == result
        assert body["timezone"] == project_tz(db, project)
    else:
        r = post_query(project, query)
        assert r.status_code == 200, r.text
        assert r.json()["results"] == result


def run_stickiness(db, project, query, http=False, method="POST"):
    result = stickiness_sql(db, project, query)
    if http:
        check_http(db, project, query, result, method)
    return result


def run_lifecycle(db, project, query, http=False, method="POST"):
    result = lifecycle_sql(db, project, query)
    if http:
        check_http(db, project, query, result, method)
    return result


def data(result):
    return [item["data"] for item in result]


def by_status(result):
    return {item["status"]: item["data"] for item in result}


def stickiness_actors(db, project, query, k):
    rows = sql(db, "SELECT * FROM insights.stickiness_actors(%s, %s::jsonb, %s)",
               project["id"], json.dumps(query), k)
    return {r[0] for r in rows}


def lifecycle_actors(db, project, query, target_date, status):
    rows = sql(db, "SELECT * FROM insights.lifecycle_actors(%s, %s::jsonb, %s, %s)",
               project["id"], json.dumps(query), target_date, status)
    return {r[0] for r in rows}


PERSON_FIELDS = {"type", "id", "uuid", "distinct_ids", "properties", "created_at", "name", "is_identified"}


def persons_get(project, kind, params, key=None):
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return api("GET", f"/api/projects/{project['id']}/persons/{kind}/", key or project["key"], params=params)


def people_of(db, project, resp):
    """A persons/stickiness/ or persons/lifecycle/ answer → sorted tuples of each person's distinct ids."""
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) >= {"results", "next"}, body
    assert body["next"] is None
    (res,) = body["results"]
    assert res["count"] == len(res["people"])
    out = []
    for p in res["people"]:
        assert PERSON_FIELDS <= set(p), p
        assert p["type"] == "person"
        # Mirrors persons/trends/ (api._person_json): `uuid` is the person's uuid, `id` its persons.id.
        (pid, uuid) = sql(db, "SELECT p.id::text, p.uuid::text FROM insights.persons p "
                              "JOIN insights.person_distinct_ids d ON d.person_id = p.id "
                              "WHERE d.project_id = %s AND d.distinct_id = %s",
                          project["id"], p["distinct_ids"][0])[0]
        assert p["uuid"] == uuid
        assert str(p["id"]) in (pid, uuid)
        out.append(tuple(sorted(p["distinct_ids"])))
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# Stickiness fixture SF (PostHog's stickiness test cases): p1 $pageview + $pageleave every day
# 01-11..01-19 (Chrome), p2 $pageview on 01-11, 13, 15, 17, 19 (Firefox). All at 12:00 UTC.
# ---------------------------------------------------------------------------------------------

SF_P1_DAYS = list(range(11, 20))
SF_P2_DAYS = [11, 13, 15, 17, 19]


def sf_events():
    events = []
    for d in SF_P1_DAYS:
        events.append(ev("p1", PV, f"2020-01-{d:02d} 12:00:00", {"$browser": "Chrome"}))
        events.append(ev("p1", PL, f"2020-01-{d:02d} 12:30:00", {"$browser": "Chrome"}))
    for d in SF_P2_DAYS:
        events.append(ev("p2", PV, f"2020-01-{d:02d} 12:00:00", {"$browser": "Firefox"}))
    return events


@pytest.fixture
def sf_project(db, project):
    ingest(db, project, sf_events())
    return project


S1_DATA = [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]


def test_s1_daily_stickiness(db, sf_project):
    (item,) = run_stickiness(db, sf_project, sl("2020-01-11", "2020-01-20", [PV]), http=True)
    assert item["label"] == PV
    assert item["count"] == 2
    assert item["data"] == S1_DATA
    assert item["days"] == list(range(1, 11))
    assert item["labels"] == stick_labels(10)
    assert item["labels"][0] == "1 day" and item["labels"][9] == "10 days"
    assert item["action"]["id"] == PV and item["action"]["type"] == "events" and item["action"]["order"] == 0
    assert "compare" not in item or item["compare"] is False


def test_s1_legacy_get_equals_sql(db, sf_project):
    (item,) = run_stickiness(db, sf_project, sl("2020-01-11", "2020-01-20", [PV]), http=True, method="GET")
    assert item["data"] == S1_DATA and item["count"] == 2


def test_s1_stickiness_query_node(db, sf_project):
    q = sq([PV], "2020-01-11", "2020-01-20")
    (item,) = run_stickiness(db, sf_project, q, http=True)
    assert item["data"] == S1_DATA and item["count"] == 2 and item["label"] == PV
    assert item["labels"] == stick_labels(10)
    assert item["action"]["id"] == PV and item["action"]["type"] == "events" and item["action"]["order"] == 0
    # The node and the legacy filter give the same numbers.
    (legacy,) = stickiness_sql(db, sf_project, sl("2020-01-11", "2020-01-20", [PV]))
    assert (legacy["data"], legacy["days"], legacy["labels"]) == (item["data"], item["days"], item["labels"])


@pytest.mark.parametrize("drop", ["insight", "shown_as"])
def test_s1_trend_json_dispatches_on_insight_or_shown_as(db, sf_project, drop):
    full = sl("2020-01-11", "2020-01-20", [PV])
    partial = {k: v for k, v in full.items() if k != drop}
    expected = json_call(db, sf_project, "stickiness_json", full)
    assert json_call(db, sf_project, "trend_json", partial) == expected
    assert expected[0]["data"] == S1_DATA
    r = trend_http(sf_project, partial)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == expected


def test_s1_typed_rows(db, sf_project):
    q = sl("2020-01-11", "2020-01-20", [PV])
    rows = sql(db, "SELECT series, compare_label, intervals, actors FROM insights.stickiness(%s, %s::jsonb)",
               sf_project["id"], json.dumps(q))
    assert len(rows) == 10
    assert ("$pageview", None, 5, 1.0) in rows and ("$pageview", None, 9, 1.0) in rows
    assert sum(r[3] for r in rows) == 2.0
    assert sorted(r[2] for r in rows) == list(range(1, 11))


def test_s1_cumulative(db, sf_project):
    # data[k-1] = persons with at least k days: p2 (5 days) counts for k ≤ 5, p1 (9 days) for k ≤ 9.
    q = sq([PV], "2020-01-11", "2020-01-20", sticky={"computedAs": "cumulative"})
    (item,) = run_stickiness(db, sf_project, q, http=True)
    assert item["data"] == [2, 2, 2, 2, 2, 1, 1, 1, 1, 0]
    assert item["count"] == 2  # unchanged by cumulative
    assert item["labels"] == stick_labels(10, cumulative=True)
    assert item["labels"][1] == "2 days or more"
    assert item["days"] == list(range(1, 11))


def test_s1_all_events_series(db, sf_project):
    # p1's $pageleave falls on days p1 already has: the same histogram, labelled "All events".
    (item,) = run_stickiness(db, sf_project, sq([node(None)], "2020-01-11", "2020-01-20"))
    assert item["label"] == "All events"
    assert item["data"] == S1_DATA


def test_s3_hour_interval(db, sf_project):
    # The test's `-2d`..now as an absolute range: both end hours are included (48 + 12 + 1 buckets).
    q = sl("2020-01-18T00:00:00Z", "2020-01-20T12:00:00Z", [PV], interval="hour")
    (item,) = run_stickiness(db, sf_project, q, http=True, method="GET")
    assert len(item["data"]) == 61 and item["days"] == list(range(1, 62))
    assert item["data"][0] == 1  # p2: 01-19 12:00
    assert item["data"][1] == 1  # p1: 01-18 12:00, 01-19 12:00
    assert sum(item["data"]) == 2 and item["count"] == 2
    assert item["labels"][:2] == ["1 hour", "2 hours"] and item["labels"][60] == "61 hours"


def test_s5_interval_count(db, project):
    # p1 daily 01-11..19, p2 on 11, 13, 15. Groups of 2 days anchored at the end of the range:
    # {20,19} {18,17} {16,15} {14,13} {12,11} → p1 in 5 groups, p2 in 3.
    ingest(db, project, [ev("p1", PV, f"2020-01-{d:02d} 12:00:00") for d in range(11, 20)]
           + [ev("p2", PV, f"2020-01-{d:02d} 12:00:00") for d in (11, 13, 15)])
    q = sq([PV], "2020-01-11", "2020-01-20", intervalCount=2)
    (item,) = run_stickiness(db, project, q, http=True)
    assert item["data"] == [0, 0, 1, 0, 1]
    assert item["days"] == [1, 2, 3, 4, 5]
    assert item["labels"] == stick_labels(5)
    assert item["count"] == 2


CHROME = [prop("$browser", "Chrome")]
S7_DATA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]


@pytest.mark.parametrize("form", ["legacy", "node"])
@pytest.mark.parametrize("variant", ["global", "series", "action"])
def test_s7_chrome_filter(db, sf_project, variant, form):
    if variant == "action":
        action = make_action(db, sf_project, "chrome views", [{"event": PV, "properties": CHROME}])
        if form == "legacy":
            q = sl("2020-01-11", "2020-01-20", actions=[entity(action, "actions")])
        else:
            q = sq([{"kind": "ActionsNode", "id": action}], "2020-01-11", "2020-01-20")
    elif variant == "global":
        q = (sl("2020-01-11", "2020-01-20", [PV], properties=CHROME) if form == "legacy"
             else sq([PV], "2020-01-11", "2020-01-20", properties=CHROME))
    else:
        q = (sl("2020-01-11", "2020-01-20", [entity(PV, properties=CHROME)]) if form == "legacy"
             else sq([node(PV, properties=CHROME)], "2020-01-11", "2020-01-20"))
    (item,) = run_stickiness(db, sf_project, q, http=variant == "action")
    assert item["data"] == S7_DATA and item["count"] == 1
    if variant == "action":
        assert item["label"] == "chrome views"
        # PostHog does not say whether a stickiness action id is a number or a string: compare as text.
        assert str(item["action"]["id"]) == str(action) and item["action"]["type"] == "actions"
    else:
        assert item["label"] == PV


@pytest.mark.parametrize("form", ["legacy", "node"])
def test_s7_tf_filter_test_accounts(db, sf_project, form):
    set_test_account_filters(db, sf_project, [prop("$browser", "Chrome")])
    if form == "legacy":
        q = sl("2020-01-11", "2020-01-20", [PV], filter_test_accounts=True)
    else:
        q = sq([PV], "2020-01-11", "2020-01-20", filterTestAccounts=True)
    (item,) = run_stickiness(db, sf_project, q, http=True)
    assert item["data"] == S7_DATA
    # Without the flag the team filter does not apply.
    (plain,) = stickiness_sql(db, sf_project, {k: v for k, v in q.items()
                                               if k not in ("filter_test_accounts", "filterTestAccounts")})
    assert plain["data"] == S1_DATA


def test_s9_compare(db, sf_project):
    q = sl("2020-01-11", "2020-01-20", [PV], compare=True)
    current, previous = run_stickiness(db, sf_project, q, http=True)
    assert (current["compare_label"], previous["compare_label"]) == ("current", "previous")
    assert current["compare"] is True and previous["compare"] is True
    assert current["count"] == 2 and current["data"] == S1_DATA
    # The previous period is 01-01..01-10: nobody.
    assert previous["count"] == 0 and previous["data"] == [0] * 10
    assert previous["labels"] == stick_labels(10)


def test_s9_compare_to_minus_1d(db, sf_project):
    q = sl("2020-01-12", "2020-01-20", [PV], compare=True, compare_to="-1d")
    current, previous = run_stickiness(db, sf_project, q, http=True, method="GET")
    # Current 01-12..01-20: p1 8 days, p2 4. Previous 01-11..01-19: p1 9, p2 5.
    assert current["data"] == [0, 0, 0, 1, 0, 0, 0, 1, 0] and current["count"] == 2
    assert previous["data"] == [0, 0, 0, 0, 1, 0, 0, 0, 1] and previous["count"] == 2
    assert [current["compare_label"], previous["compare_label"]] == ["current", "previous"]


# ---------------------------------------------------------------------------------------------
# Stickiness fixture MP (PostHog's stickiness test cases): `watched movie`, base 2020-01-01 12:00.
# person1 once; person2 at base, base+P, base+P; person3{3a,3b} at base, +P, +2P; person4 (Safari) at +4P.
# Others Chrome.
# ---------------------------------------------------------------------------------------------


def mp_events(period=timedelta(days=1)):
    base = datetime(2020, 1, 1, 12)
    chrome, safari = {"$browser": "Chrome"}, {"$browser": "Safari"}

    def named(name, props):
        return {**props, "$set": {"name": name}}

    return [
        ev("person1", WM, base, named("person1", chrome)),
        ev("person2", WM, base, named("person2", chrome)),
        ev("person2", WM, base + period, chrome),
        ev("person2", WM, base + period, chrome),
        identify("person3a", "person3b", base - timedelta(hours=1), {"$set": {"name": "person3"}}),
        ev("person3a", WM, base, chrome),
        ev("person3b", WM, base + period, chrome),
        ev("person3a", WM, base + 2 * period, chrome),
        ev("person4", WM, base + 4 * period, named("person4", safari)),
    ]


@pytest.fixture
def mp_project(db, project):
    ingest(db, project, mp_events())
    return project


S13_DATA = [2, 1, 1, 0, 0, 0, 0, 0]


def test_s13_day_period(db, mp_project):
    (item,) = run_stickiness(db, mp_project, sq([WM], "2020-01-01", "2020-01-08"), http=True)
    assert item["count"] == 4
    assert item["data"] == S13_DATA
    assert item["label"] == WM and item["labels"] == stick_labels(8)


def test_s15_week_period(db, project):
    ingest(db, project, mp_events(timedelta(weeks=1)))
    q = sl("2020-01-01", "2020-02-15", [WM], interval="week")
    (item,) = run_stickiness(db, project, q, http=True)
    # Sunday weeks 2019-12-29 .. 2020-02-09: 7 buckets, partial weeks at both ends count.
    assert item["data"] == [2, 1, 1, 0, 0, 0, 0]
    assert item["days"] == list(range(1, 8))
    assert item["labels"] == stick_labels(7, "week")
    assert item["labels"][:2] == ["1 week", "2 weeks"]


@pytest.mark.parametrize("variant, count, expected", [
    ("global-chrome", 3, [1, 1, 1, 0, 0, 0, 0, 0]),
    ("series-chrome", 3, [1, 1, 1, 0, 0, 0, 0, 0]),
    ("series-person-name", 1, [1, 0, 0, 0, 0, 0, 0, 0]),
])
def test_s17_filters(db, mp_project, variant, count, expected):
    if variant == "global-chrome":
        q = sq([WM], "2020-01-01", "2020-01-08", properties=CHROME)
    elif variant == "series-chrome":
        q = sq([node(WM, properties=CHROME)], "2020-01-01", "2020-01-08")
    else:
        q = sq([node(WM, properties=[prop("name", "person1", type_="person")])], "2020-01-01", "2020-01-08")
    (item,) = run_stickiness(db, mp_project, q, http=variant == "series-person-name")
    assert item["count"] == count
    assert item["data"] == expected


def test_s19_compare_node(db, mp_project):
    q = sq([WM], "2020-01-01", "2020-01-08", compareFilter={"compare": True})
    current, previous = run_stickiness(db, mp_project, q, http=True)
    assert current["data"] == S13_DATA and current["compare_label"] == "current"
    assert previous["data"] == [0] * 8 and previous["compare_label"] == "previous"
    assert current["compare"] is True and previous["compare"] is True
    rows = sql(db, "SELECT series, compare_label, intervals, actors FROM insights.stickiness(%s, %s::jsonb)",
               mp_project["id"], json.dumps(q))
    assert len(rows) == 16
    assert (WM, "current", 1, 2.0) in rows and (WM, "previous", 1, 0.0) in rows


@pytest.mark.parametrize("tz, index", [("UTC", 1), ("US/Pacific", 2)])
def test_s21_days_in_project_timezone(db, make_project, tz, index):
    # UTC: 05-02, 05-02, 05-04 → 2 days. US/Pacific (UTC-7): 05-01 18:00, 05-02 02:00, 05-03 20:00 → 3 days.
    p = make_project(timezone=tz)
    ingest(db, p, [ev("person1", PV, "2021-05-02 01:00:00"), ev("person1", PV, "2021-05-02 09:00:00"),
                   ev("person1", PV, "2021-05-04 03:00:00")])
    (item,) = run_stickiness(db, p, sl("2021-05-01", "2021-05-15", [PV]), http=True, method="GET")
    expected = [0] * 15
    expected[index] = 1
    assert item["data"] == expected
    assert item["days"] == list(range(1, 16))


# ---------------------------------------------------------------------------------------------
# Stickiness: criteria, coarse intervals, empty ranges (own cases)
# ---------------------------------------------------------------------------------------------


def criteria_events():
    """Day n = 2020-01-0n. a: ×2 on 1, ×1 on 2, ×3 on 3, ×2 on 4; b: ×1 on 1, ×1 on 2; c: ×2 on 2."""
    spec = [("a", 1, 2), ("a", 2, 1), ("a", 3, 3), ("a", 4, 2), ("b", 1, 1), ("b", 2, 1), ("c", 2, 2)]
    return [ev(who, PV, datetime(2020, 1, day, 12, i)) for who, day, times in spec for i in range(times)]


@pytest.mark.parametrize("sticky, expected, count", [
    (None, [1, 1, 0, 1, 0], 3),                                                  # a 4, b 2, c 1
    ({"stickinessCriteria": {"operator": "gte", "value": 2}}, [1, 0, 1, 0, 0], 2),  # a 3, c 1
    ({"stickinessCriteria": {"operator": "lte", "value": 1}}, [1, 1, 0, 0, 0], 2),  # a 1, b 2
    ({"stickinessCriteria": {"operator": "exact", "value": 3}}, [1, 0, 0, 0, 0], 1),  # a 1
    ({"stickinessCriteria": {"operator": "gte", "value": 2}, "computedAs": "cumulative"}, [2, 1, 1, 0, 0], 2),
], ids=["none", "gte-2", "lte-1", "exact-3", "gte-2-cumulative"])
def test_stickiness_criteria(db, project, sticky, expected, count):
    ingest(db, project, criteria_events())
    q = sq([PV], "2020-01-01", "2020-01-05", sticky=sticky)
    (item,) = run_stickiness(db, project, q, http=sticky is not None and "computedAs" not in sticky)
    assert item["data"] == expected
    assert item["count"] == count


def test_stickiness_criteria_actors(db, project):
    ingest(db, project, criteria_events())
    gte2 = sq([PV], "2020-01-01", "2020-01-05", sticky={"stickinessCriteria": {"operator": "gte", "value": 2}})
    assert stickiness_actors(db, project, gte2, 3) == person_ids(db, project, "a")
    assert stickiness_actors(db, project, gte2, 1) == person_ids(db, project, "c")
    assert stickiness_actors(db, project, gte2, 2) == set()
    lte1 = sq([PV], "2020-01-01", "2020-01-05", sticky={"stickinessCriteria": {"operator": "lte", "value": 1}})
    assert stickiness_actors(db, project, lte1, 2) == person_ids(db, project, "b")


def test_stickiness_weekly_partial_weeks(db, project):
    # 2020-01-08 (Wed) .. 01-22 (Wed): Sunday weeks 01-05, 01-12, 01-19. Events from the start of the first
    # week count (a's 01-06); c's only event (01-04) is in the week before.
    ingest(db, project, [ev("a", PV, "2020-01-06 12:00:00"), ev("a", PV, "2020-01-14 12:00:00"),
                         ev("b", PV, "2020-01-22 20:00:00"), ev("c", PV, "2020-01-04 12:00:00")])
    (item,) = run_stickiness(db, project, sq([PV], "2020-01-08", "2020-01-22", interval="week"), http=True)
    assert item["data"] == [1, 1, 0]
    assert item["labels"] == ["1 week", "2 weeks", "3 weeks"]
    assert item["count"] == 2


def test_stickiness_monthly(db, project):
    # 2020-01-10 .. 03-20, month: Jan, Feb, Mar. p2's 01-05 counts (date_from snaps to 01-01); p3's only
    # event (03-25) is after date_to (the end of 03-20).
    ingest(db, project, [ev("p1", PV, "2020-01-15 12:00:00"), ev("p1", PV, "2020-02-10 12:00:00"),
                         ev("p1", PV, "2020-03-05 12:00:00"), ev("p2", PV, "2020-01-05 12:00:00"),
                         ev("p2", PV, "2020-02-20 12:00:00"), ev("p3", PV, "2020-03-25 12:00:00")])
    q = sl("2020-01-10", "2020-03-20", [PV], interval="month")
    (item,) = run_stickiness(db, project, q, http=True, method="GET")
    assert item["data"] == [0, 1, 1]
    assert item["labels"] == ["1 month", "2 months", "3 months"]
    assert item["days"] == [1, 2, 3]
    assert item["count"] == 2


@pytest.mark.parametrize("date_from, date_to, interval, n, unit", [
    ("2020-01-01", "2020-01-07", "day", 7, "day"),
    ("2020-01-01", "2020-01-31", "week", 5, "week"),      # Sunday weeks 12-29, 01-05, 01-12, 01-19, 01-26
    ("2020-01-15", "2020-03-01", "month", 3, "month"),
    ("2020-01-01T00:00:00Z", "2020-01-01T05:00:00Z", "hour", 6, "hour"),
])
def test_stickiness_empty_range(db, project, date_from, date_to, interval, n, unit):
    ingest(db, project, [ev("p1", PV, "2019-06-01 12:00:00")])  # far outside the range
    (item,) = run_stickiness(db, project, sq([PV], date_from, date_to, interval=interval), http=True)
    assert item["data"] == [0] * n
    assert item["days"] == list(range(1, n + 1))
    assert item["labels"] == stick_labels(n, unit)
    assert item["count"] == 0


# ---------------------------------------------------------------------------------------------
# Stickiness actors: insights.stickiness_actors, persons/stickiness/
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, who", [(5, ["p2"]), (9, ["p1"]), (1, []), (10, [])])
def test_stickiness_actors_sql(db, sf_project, k, who):
    for q in (sl("2020-01-11", "2020-01-20", [PV]), sq([PV], "2020-01-11", "2020-01-20")):
        assert stickiness_actors(db, sf_project, q, k) == person_ids(db, sf_project, *who)


@pytest.mark.parametrize("k, who", [(1, ["p1", "p2"]), (5, ["p1", "p2"]), (6, ["p1"]), (9, ["p1"]), (10, [])])
def test_stickiness_actors_cumulative(db, sf_project, k, who):
    q = sq([PV], "2020-01-11", "2020-01-20", sticky={"computedAs": "cumulative"})
    assert stickiness_actors(db, sf_project, q, k) == person_ids(db, sf_project, *who)


@pytest.mark.parametrize("k, who", [(5, [("p2",)]), (9, [("p1",)]), (3, [])])
def test_persons_stickiness_endpoint(db, sf_project, k, who):
    params = {**sl("2020-01-11", "2020-01-20", [PV]), "stickiness_days": str(k), "entity_id": PV,
              "entity_type": "events"}
    assert people_of(db, sf_project, persons_get(sf_project, "stickiness", params)) == who


def test_persons_stickiness_series_properties(db, sf_project):
    # The target entity is the filter's series with that id and type, including its properties.
    params = {**sl("2020-01-11", "2020-01-20", [entity(PV, properties=CHROME)]), "entity_id": PV,
              "entity_type": "events"}
    assert people_of(db, sf_project, persons_get(sf_project, "stickiness", {**params, "stickiness_days": "9"})) \
        == [("p1",)]
    assert people_of(db, sf_project, persons_get(sf_project, "stickiness", {**params, "stickiness_days": "5"})) == []


@pytest.mark.parametrize("k, who", [
    (1, [("person1",), ("person4",)]),
    (2, [("person2",)]),
    (3, [("person3a", "person3b")]),   # one merged person with both distinct ids
])
def test_persons_stickiness_merged_person(db, mp_project, k, who):
    params = {**sl("2020-01-01", "2020-01-08", [WM]), "stickiness_days": str(k), "entity_id": WM,
              "entity_type": "events"}
    assert people_of(db, mp_project, persons_get(mp_project, "stickiness", params)) == who


# ---------------------------------------------------------------------------------------------
# Lifecycle fixture LF (PostHog's lifecycle test cases): p1 pageviews 01-11, 12, 13, 15, 17, 19;
# p2 01-09, 12; p3 01-12; p4 01-15, all at 12:00 UTC. p1 has email test@posthog.com (person) and
# `$number: 1` on every event.
# ---------------------------------------------------------------------------------------------

LF_DAYS = {"p1": [11, 12, 13, 15, 17, 19], "p2": [9, 12], "p3": [12], "p4": [15]}


def lf_events(other_for=()):
    """LF; the persons in `other_for` send `$other` instead of `$pageview`."""
    events = []
    for p, days in LF_DAYS.items():
        for i, d in enumerate(days):
            props = {}
            if p == "p1":
                props["$number"] = 1
                if i == 0:
                    props["$set"] = {"email": "test@posthog.com"}
            events.append(ev(p, OTHER if p in other_for else PV, f"2020-01-{d:02d} 12:00:00", props))
    return events


@pytest.fixture
def lf_project(db, project):
    ingest(db, project, lf_events())
    return project


L1_RANGE = ("2020-01-12T00:00:00Z", "2020-01-19T00:00:00Z")
L1 = {
    "new": [1, 0, 0, 1, 0, 0, 0, 0],
    "returning": [1, 1, 0, 0, 0, 0, 0, 0],
    "resurrecting": [1, 0, 0, 1, 0, 1, 0, 1],
    "dormant": [0, -2, -1, 0, -2, 0, -1, 0],
}
L1_DAYS = days_of("2020-01-12", "2020-01-19")


def test_l1_lifecycle(db, lf_project):
    result = run_lifecycle(db, lf_project, ll(*L1_RANGE, [PV]), http=True)
    assert by_status(result) == L1
    assert [i["label"] for i in result] == [f"{PV} - {s}" for s in STATUSES]
    assert [i["count"] for i in result] == [2.0, 2.0, 4.0, -6.0]
    for item in result:
        assert item["days"] == L1_DAYS
        assert item["labels"] == labels_of(day_range("2020-01-12", "2020-01-19"))
        assert item["labels"][0] == "12-Jan-2020"
        assert item["action"]["id"] == PV and item["action"]["type"] == "events" and item["action"]["order"] == 0


def test_l1_legacy_get_equals_sql(db, lf_project):
    result = run_lifecycle(db, lf_project, ll(*L1_RANGE, [PV]), http=True, method="GET")
    assert by_status(result) == L1


def test_l1_lifecycle_query_node(db, lf_project):
    result = run_lifecycle(db, lf_project, lq([PV], *L1_RANGE), http=True)
    assert by_status(result) == L1
    assert result[0]["days"] == L1_DAYS
    assert [i["label"] for i in result] == [f"{PV} - {s}" for s in STATUSES]


@pytest.mark.parametrize("drop", ["insight", "shown_as"])
def test_l1_trend_json_dispatches_on_insight_or_shown_as(db, lf_project, drop):
    full = ll(*L1_RANGE, [PV])
    partial = {k: v for k, v in full.items() if k != drop}
    expected = json_call(db, lf_project, "lifecycle_json", full)
    assert json_call(db, lf_project, "trend_json", partial) == expected
    assert by_status(expected) == L1
    r = trend_http(lf_project, partial)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == expected


def test_l1_typed_rows(db, lf_project):
    q = ll(*L1_RANGE, [PV])
    rows = sql(db, "SELECT status, bucket, value FROM insights.lifecycle(%s, %s::jsonb)",
               lf_project["id"], json.dumps(q))
    assert len(rows) == 32
    got = {(s, b.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d")): v for s, b, v in rows}
    assert got[("dormant", "2020-01-13")] == -2.0
    assert got[("new", "2020-01-15")] == 1.0
    assert got[("resurrecting", "2020-01-19")] == 1.0
    assert got[("returning", "2020-01-14")] == 0.0


@pytest.mark.parametrize("form", ["legacy", "node"])
@pytest.mark.parametrize("where", ["global", "series"])
def test_l5_property_filter(db, lf_project, where, form):
    number = [prop("$number", 1)]
    if form == "legacy":
        q = (ll(*L1_RANGE, [PV], properties=number) if where == "global"
             else ll(*L1_RANGE, [entity(PV, properties=number)]))
    else:
        q = (lq([PV], *L1_RANGE, properties=number) if where == "global"
             else lq([node(PV, properties=number)], *L1_RANGE))
    result = run_lifecycle(db, lf_project, q, http=where == "series")
    assert by_status(result) == {
        "new": [0] * 8,
        "returning": [1, 1, 0, 0, 0, 0, 0, 0],
        "resurrecting": [0, 0, 0, 1, 0, 1, 0, 1],
        "dormant": [0, 0, -1, 0, -1, 0, -1, 0],
    }


def l7_events():
    # One person {p1, another_p1}: the $identify (01-12 11:00) creates it, so created_at is in 01-12.
    return [identify("p1", "another_p1", "2020-01-12 11:00:00"),
            ev("p1", PV, "2020-01-12 12:00:00"), ev("another_p1", PV, "2020-01-14 12:00:00"),
            ev("p1", PV, "2020-01-15 12:00:00"), ev("p1", PV, "2020-01-17 12:00:00"),
            ev("p1", PV, "2020-01-19 12:00:00")]


L7 = {
    "new": [1, 0, 0, 0, 0, 0, 0, 0],
    "returning": [0, 0, 0, 1, 0, 0, 0, 0],
    "resurrecting": [0, 0, 1, 0, 0, 1, 0, 1],
    "dormant": [0, -1, 0, 0, -1, 0, -1, 0],
}


def test_l7_merged_person(db, project):
    ingest(db, project, l7_events())
    assert person_ids(db, project, "p1") == person_ids(db, project, "another_p1")
    result = run_lifecycle(db, project, ll("2020-01-12", "2020-01-19", [PV]), http=True)
    assert by_status(result) == L7


def test_l9_all_events(db, project):
    ingest(db, project, lf_events(other_for=("p3", "p4")))
    result = run_lifecycle(db, project, ll(*L1_RANGE, [entity(None)]), http=True)
    assert by_status(result) == L1
    assert [i["label"] for i in result] == [f"All events - {s}" for s in STATUSES]
    # Only p1 and p2 send $pageview here.
    result = run_lifecycle(db, project, lq([PV], *L1_RANGE))
    assert by_status(result) == {
        "new": [0] * 8,
        "returning": [1, 1, 0, 0, 0, 0, 0, 0],
        "resurrecting": [1, 0, 0, 1, 0, 1, 0, 1],
        "dormant": [0, -1, -1, 0, -1, 0, -1, 0],
    }


def test_l11_monday_weeks(db, project):
    sql(db, "UPDATE insights.projects SET week_start_day = 1 WHERE id = %s", project["id"])
    dates = {"p1": ["02-01", "02-05", "02-10", "02-15", "02-27", "03-02"], "p2": ["02-11", "02-18"],
             "p3": ["02-12"], "p4": ["02-27"]}
    ingest(db, project, [ev(p, PV, f"2020-{md} 12:00:00") for p, mds in dates.items() for md in mds])
    result = run_lifecycle(db, project, ll("2020-02-05", "2020-03-09", [PV], interval="week"), http=True)
    assert result[0]["days"] == ["2020-02-03", "2020-02-10", "2020-02-17", "2020-02-24", "2020-03-02",
                                 "2020-03-09"]
    assert by_status(result) == {
        "new": [0, 2, 0, 1, 0, 0],
        "returning": [1, 1, 1, 0, 1, 0],
        "resurrecting": [0, 0, 0, 1, 0, 0],
        "dormant": [0, 0, -2, -1, -1, -1],
    }


@pytest.mark.parametrize("form", ["legacy", "node"])
def test_l13_filter_test_accounts(db, lf_project, form):
    set_test_account_filters(db, lf_project, [prop("email", "@posthog.com", "not_icontains", "person")])
    q = (ll(*L1_RANGE, [PV], filter_test_accounts=True) if form == "legacy"
         else lq([PV], *L1_RANGE, filterTestAccounts=True))
    result = run_lifecycle(db, lf_project, q, http=True)
    assert by_status(result) == {
        "new": [1, 0, 0, 1, 0, 0, 0, 0],
        "returning": [0] * 8,
        "resurrecting": [1, 0, 0, 0, 0, 0, 0, 0],
        "dormant": [0, -2, 0, 0, -1, 0, 0, 0],
    }


def test_l15_cohort_property(db, lf_project):
    cohort = static_cohort(db, lf_project, "posthog people", ["p1"])  # the persons with test@posthog.com
    q = ll(*L1_RANGE, [PV], properties=[{"type": "cohort", "key": "id", "value": cohort}])
    result = run_lifecycle(db, lf_project, q, http=True)
    assert [i["count"] for i in result] == [0.0, 2.0, 3.0, -3.0]


def test_l17_us_pacific(db, make_project):
    p = make_project(timezone="US/Pacific")
    ingest(db, p, [ev("p1", PV, "2025-03-09 12:00:00")])
    q = ll("2025-03-09T00:00:00Z", "2025-03-12T00:00:00Z", [PV])
    result = run_lifecycle(db, p, q, http=True, method="GET")
    # The bounds are local days 03-08..03-11; the event is 03-09 04:00/05:00 local.
    assert result[0]["days"] == ["2025-03-08", "2025-03-09", "2025-03-10", "2025-03-11"]
    assert by_status(result) == {
        "new": [0, 1, 0, 0],
        "returning": [0, 0, 0, 0],
        "resurrecting": [0, 0, 0, 0],
        "dormant": [0, 0, -1, 0],
    }


def test_l19_created_by_another_event(db, project):
    ingest(db, project, [ev("person1", OTHER, "2020-01-11 12:00:00")]
           + [ev("person1", PV, f"2020-01-{d:02d} 12:00:00") for d in (12, 13, 15, 16)])
    result = run_lifecycle(db, project, lq([PV], "2020-01-11", "2020-01-18"), http=True)
    assert by_status(result) == {
        "new": [0] * 8,
        "returning": [0, 0, 1, 0, 0, 1, 0, 0],
        "resurrecting": [0, 1, 0, 0, 1, 0, 0, 0],
        "dormant": [0, 0, 0, -1, 0, 0, -1, 0],
    }


# ---------------------------------------------------------------------------------------------
# Lifecycle: own cases
# ---------------------------------------------------------------------------------------------


def test_lifecycle_hour_interval(db, project):
    # a: created 10:30, active 10, 11, 13 → new@10, returning@11, resurrecting@13, dormant@12, @14.
    # b: created 09:30 (the extra period before), active 09, 10 → returning@10, dormant@11.
    ingest(db, project, [ev("b", PV, "2020-01-12 09:30:00"), ev("a", PV, "2020-01-12 10:30:00"),
                         ev("b", PV, "2020-01-12 10:45:00"), ev("a", PV, "2020-01-12 11:15:00"),
                         ev("a", PV, "2020-01-12 13:05:00")])
    q = ll("2020-01-12T10:00:00Z", "2020-01-12T14:00:00Z", [PV], interval="hour")
    result = run_lifecycle(db, project, q, http=True)
    assert result[0]["days"] == [f"2020-01-12 {h:02d}:00:00" for h in range(10, 15)]
    assert by_status(result) == {
        "new": [1, 0, 0, 0, 0],
        "returning": [1, 1, 0, 0, 0],
        "resurrecting": [0, 0, 0, 1, 0],
        "dormant": [0, -1, -1, 0, -1],
    }


def test_lifecycle_empty_range(db, project):
    ingest(db, project, [ev("p1", PV, "2019-06-01 12:00:00")])
    result = run_lifecycle(db, project, lq([PV], "2020-01-01", "2020-01-03"), http=True)
    assert by_status(result) == {s: [0.0, 0.0, 0.0] for s in STATUSES}
    assert [i["count"] for i in result] == [0.0] * 4
    assert result[0]["days"] == ["2020-01-01", "2020-01-02", "2020-01-03"]


@pytest.mark.parametrize("form", ["legacy", "node"])
def test_lifecycle_action_series(db, lf_project, form):
    action = make_action(db, lf_project, "viewed", [{"event": PV}])
    q = (ll(*L1_RANGE, actions=[entity(action, "actions")]) if form == "legacy"
         else lq([{"kind": "ActionsNode", "id": action}], *L1_RANGE))
    result = run_lifecycle(db, lf_project, q, http=True)
    assert by_status(result) == L1
    assert [i["label"] for i in result] == [f"viewed - {s}" for s in STATUSES]
    for item in result:
        assert item["action"]["id"] == str(action)  # the action id as a string, as PostHog's lifecycle
        assert item["action"]["type"] == "actions" and item["action"]["order"] == 0


# ---------------------------------------------------------------------------------------------
# Lifecycle actors: insights.lifecycle_actors, persons/lifecycle/
# ---------------------------------------------------------------------------------------------

L1_ACTORS = [
    ("2020-01-12", "new", ["p3"]),
    ("2020-01-12", "returning", ["p1"]),
    ("2020-01-12", "resurrecting", ["p2"]),
    ("2020-01-12", "dormant", []),
    ("2020-01-13", "dormant", ["p2", "p3"]),
    ("2020-01-13", "returning", ["p1"]),
    ("2020-01-14", "dormant", ["p1"]),
    ("2020-01-15", "new", ["p4"]),
    ("2020-01-15", "resurrecting", ["p1"]),
    ("2020-01-16", "dormant", ["p1", "p4"]),
]


@pytest.mark.parametrize("target_date, status, who", L1_ACTORS)
def test_lifecycle_actors_sql(db, lf_project, target_date, status, who):
    for q in (ll(*L1_RANGE, [PV]), lq([PV], *L1_RANGE)):
        assert lifecycle_actors(db, lf_project, q, target_date, status) == person_ids(db, lf_project, *who)


def test_lifecycle_actors_match_the_counts(db, lf_project):
    q = ll(*L1_RANGE, [PV])
    result = lifecycle_sql(db, lf_project, q)
    for item in result:
        for day, value in zip(item["days"], item["data"]):
            assert len(lifecycle_actors(db, lf_project, q, day, item["status"])) == abs(value), (day, item["status"])


@pytest.mark.parametrize("target_date, status, who", [
    ("2020-01-13", "dormant", [("p2",), ("p3",)]),
    ("2020-01-12", "new", [("p3",)]),
    ("2020-01-15", "resurrecting", [("p1",)]),
    ("2020-01-18", "new", []),
])
def test_persons_lifecycle_endpoint(db, lf_project, target_date, status, who):
    params = {**ll(*L1_RANGE, [PV]), "target_date": target_date, "lifecycle_type": status}
    assert people_of(db, lf_project, persons_get(lf_project, "lifecycle", params)) == who


def test_persons_lifecycle_merged_person(db, project):
    ingest(db, project, l7_events())
    params = {**ll("2020-01-12", "2020-01-19", [PV]), "target_date": "2020-01-14", "lifecycle_type": "resurrecting"}
    assert people_of(db, project, persons_get(project, "lifecycle", params)) == [("another_p1", "p1")]


@pytest.mark.parametrize("missing, detail", [
    ("target_date", "Must include specified date"),
    ("lifecycle_type", "Must include lifecycle type"),
])
def test_persons_lifecycle_missing_parameter(db, lf_project, missing, detail):
    params = {**ll(*L1_RANGE, [PV]), "target_date": "2020-01-13", "lifecycle_type": "dormant"}
    del params[missing]
    body = assert_error(persons_get(lf_project, "lifecycle", params), 400, "validation_error", "invalid_input",
                        missing)
    assert body["detail"] == detail


# ---------------------------------------------------------------------------------------------
# Saved insights
# ---------------------------------------------------------------------------------------------


def create_insight(project, body):
    r = api("POST", f"/api/projects/{project['id']}/insights/", project["key"], json=body)
    assert r.status_code == 201, r.text
    return r.json()


def saved_result(project, insight_id):
    r = api("GET", f"/api/projects/{project['id']}/insights/{insight_id}/?refresh=blocking", project["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] is not None, body
    return body["result"]


def test_saved_stickiness_query_insight(db, sf_project):
    source = sq([PV], "2020-01-11", "2020-01-20")
    ins = create_insight(sf_project, {"name": "sticky", "query": {"kind": "InsightVizNode", "source": source}})
    result = saved_result(sf_project, ins["id"])
    assert result == json_call(db, sf_project, "stickiness_json", source)
    assert result[0]["data"] == S1_DATA


def test_saved_lifecycle_filters_insight(db, lf_project):
    filters = ll(*L1_RANGE, [PV])
    ins = create_insight(lf_project, {"name": "lifecycle", "filters": filters})
    result = saved_result(lf_project, ins["id"])
    assert result == json_call(db, lf_project, "lifecycle_json", filters)
    assert by_status(result) == L1


def test_saved_lifecycle_query_insight(db, lf_project):
    source = lq([PV], *L1_RANGE)
    ins = create_insight(lf_project, {"name": "lifecycle q", "query": {"kind": "InsightVizNode", "source": source}})
    result = saved_result(lf_project, ins["id"])
    assert result == json_call(db, lf_project, "lifecycle_json", source)
    assert by_status(result) == L1


# ---------------------------------------------------------------------------------------------
# Validation, scopes
# ---------------------------------------------------------------------------------------------


def _attr(err):
    detail = err.diag.message_detail or ""
    return detail.removeprefix("field: ").split()[0] if detail else None


def test_lifecycle_two_series_is_400(db, lf_project):
    q = lq([PV, OTHER], *L1_RANGE)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        sql(db, "SELECT insights.lifecycle_json(%s, %s::jsonb)", lf_project["id"], json.dumps(q))
    assert _attr(e.value) == "series"
    assert_error(post_query(lf_project, q), 400, "validation_error", "invalid_input", "series")


def test_stickiness_between_criteria_is_400(db, sf_project):
    q = sq([PV], "2020-01-11", "2020-01-20", sticky={"stickinessCriteria": {"operator": "between", "value": 2}})
    with pytest.raises(psycopg.Error):
        sql(db, "SELECT insights.stickiness_json(%s, %s::jsonb)", sf_project["id"], json.dumps(q))
    r = post_query(sf_project, q)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "validation_error", body
    assert (body.get("attr") or "").startswith("stickinessFilter"), body


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", ["stickiness", "lifecycle"])
def test_trend_endpoint_needs_insight_read(db, make_project, kind, method):
    p = make_project(scopes=["feature_flag:read"])
    ingest(db, p, sf_events())
    q = sl("2020-01-11", "2020-01-20", [PV]) if kind == "stickiness" else ll(*L1_RANGE, [PV])
    body = assert_error(trend_http(p, q, method=method), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:read'"


@pytest.mark.parametrize("expr, want", [
    # One actor for everybody: active on every day of 01-11..01-19 (nine days).
    ("'everyone'", [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
    # Browsers as actors: Chrome (p1) nine days, Firefox (p2) five.
    ("properties.$browser", [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]),
])
def test_stickiness_hogql_actors(db, sf_project, expr, want):
    q = sq([node(PV, math="hogql", math_hogql=expr)], "2020-01-11", "2020-01-20")
    (item,) = run_stickiness(db, sf_project, q, http=True)
    assert item["data"] == want and item["count"] == sum(want)


def test_stickiness_hogql_actor_errors(db, sf_project):
    q = sq([node(PV, math="hogql", math_hogql="nope(")], "2020-01-11", "2020-01-20")
    r = post_query(sf_project, q)
    assert r.status_code == 400, r.text
    assert r.json()["attr"].endswith("math_hogql"), r.text


@pytest.fixture
def groups_project(db, project):
    """Two organizations: org:1 identified on 01-10 and active on 01-12 and 01-13; org:2 identified
    on 01-12 and active that day only."""
    def grp(did, key, ts):
        return ev(did, "$groupidentify", ts, {"$group_type": "organization", "$group_key": key})
    ingest(db, project, [
        grp("p1", "org:1", "2020-01-10 08:00:00"), grp("p3", "org:2", "2020-01-12 09:00:00"),
        ev("p1", "login", "2020-01-12 10:00:00", {"$groups": {"organization": "org:1"}}),
        ev("p2", "login", "2020-01-13 11:00:00", {"$groups": {"organization": "org:1"}}),
        ev("p3", "login", "2020-01-12 12:00:00", {"$groups": {"organization": "org:2"}}),
        ev("p4", "login", "2020-01-12 12:00:00"),  # no group: no actor
    ])
    return project


def test_lifecycle_of_groups(db, groups_project):
    q = lq(["login"], "2020-01-12", "2020-01-14", aggregation_group_type_index=0)
    result = run_lifecycle(db, groups_project, q, http=True)
    # "new" is the group's creation period: org:2 is new on 01-12, org:1 (created 01-10) resurrects.
    assert by_status(result) == {"new": [1, 0, 0], "returning": [0, 1, 0],
                                 "resurrecting": [1, 0, 0], "dormant": [0, -1, -1]}
    keys = sql(db, "SELECT * FROM insights.lifecycle_actors(%s, %s::jsonb, '2020-01-12', 'new')",
               groups_project["id"], json.dumps(q))
    assert keys == [("org:2",)]


def test_stickiness_of_groups(db, groups_project):
    q = sq(["login"], "2020-01-12", "2020-01-14", aggregation_group_type_index=0)
    (item,) = run_stickiness(db, groups_project, q, http=True)
    assert item["data"] == [1, 1, 0] and item["count"] == 2
    q = sq([node("login", math="unique_group", math_group_type_index=0)], "2020-01-12", "2020-01-14")
    (item,) = run_stickiness(db, groups_project, q)
    assert item["data"] == [1, 1, 0]
