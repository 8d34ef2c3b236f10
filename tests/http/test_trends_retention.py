"""Trends and retention acceptance tests: PostHog's own trends (T*) and retention (R*) test cases plus
the rules of docs/trends.md and docs/retention.md, validation, scopes and methods.

Same style as test_funnels.py: every case gets a fresh project, events with explicit timestamps in a
fixed past range and an explicit date range in the query. Queries run through SQL
(`insights.trend_json` / `insights.retention_json`, cross-checked against the typed rows of
`insights.trend` / `insights.retention`); a representative subset also runs over HTTP (TrendsQuery /
RetentionQuery POST bodies and legacy GET filters with JSON-encoded values), whose body must equal
the SQL result.
"""

import json
from datetime import datetime, timedelta

import psycopg
import pytest
from conftest import BASE_URL, api, assert_error, sql

# ---------------------------------------------------------------------------------------------
# Helpers (copied from test_funnels.py): events, ingestion
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


def identify(distinct_id, anon_id, ts):
    return ev(distinct_id, "$identify", ts, {"$anon_distinct_id": anon_id})


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


# ---------------------------------------------------------------------------------------------
# Trends: queries, running (SQL, typed rows, HTTP)
# ---------------------------------------------------------------------------------------------

PV, PL = "$pageview", "$pageleave"


def tq(series, date_from="2020-01-09", date_to="2020-01-19", interval="day", trends=None, **kw):
    """A TrendsQuery. Series are event names or nodes; trendsFilter keys go in `trends`."""
    q = {
        "kind": "TrendsQuery",
        "series": [s if isinstance(s, dict) else node(s) for s in series],
        "dateRange": {"date_from": date_from, "date_to": date_to},
        "interval": interval,
        "trendsFilter": dict(trends or {}),
    }
    q.update(kw)
    return q


def _typed_trend_rows(result):
    """The (series, breakdown_value, value) rows `insights.trend` should return for a result."""
    rows = []
    for item in result:
        bd = item.get("breakdown_value")
        if isinstance(bd, list):
            bd = "::".join(x if isinstance(x, str) else json.dumps(x) for x in bd)
        elif bd is not None and not isinstance(bd, str):
            bd = json.dumps(bd)
        if "aggregated_value" in item:
            rows.append((item["label"], bd, float(item["aggregated_value"])))
        else:
            rows.extend((item["label"], bd, float(v)) for v in item["data"] or [])
    return rows


def trend_sql(db, project, query):
    """`insights.trend_json(...)["result"]`, checked against the typed rows of `insights.trend`."""
    body = sql(db, "SELECT insights.trend_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert set(body) == {"result", "timezone", "is_cached", "last_refresh"}, body
    result = body["result"]
    rows = sql(db, "SELECT series, breakdown_value, bucket, value FROM insights.trend(%s, %s::jsonb)",
               project["id"], json.dumps(query))
    assert [(s, b, v) for s, b, _, v in rows] == _typed_trend_rows(result)
    # Buckets: the day of each data point (UTC projects), NULL for total-value items.
    flat_days = [d for item in result if "aggregated_value" not in item for d in (item.get("days") or [])]
    buckets = [b for _, _, b, _ in rows]
    # Week/month buckets: see test_typed_rows_bucket_is_the_bucket_start (a product bug).
    coarse = query.get("interval") in ("week", "month")
    if not coarse and flat_days and len(flat_days) == len(buckets) and all(b is not None for b in buckets):
        assert [b.strftime("%Y-%m-%d") for b in buckets] == [d[:10] for d in flat_days]
    return result


def trend_http(project, query, method="POST", prefix="projects", key=None):
    """Trends over HTTP: POST a JSON body, or GET with the filter as (JSON-encoded) query params."""
    path = f"/api/{prefix}/{project['id']}/insights/trend/"
    key = key or project["key"]
    if method == "POST":
        return api("POST", path, key, json=query)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    return api("GET", path, key, params=params)


def run_trend(db, project, query, http=False, method="POST", prefix="projects"):
    """Run through SQL; with http=True also through the REST API, whose result must be identical."""
    result = trend_sql(db, project, query)
    if http:
        r = trend_http(project, query, method=method, prefix=prefix)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == result
        assert body["is_cached"] is False and body["timezone"] == project_tz(db, project)
    return result


def data(result):
    return [item["data"] for item in result]


def day_range(first, last):
    d0, d1 = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return [(d0 + timedelta(days=i)) for i in range((d1 - d0).days + 1)]


def labels_of(days):
    return [f"{d.day}-{d.strftime('%b-%Y')}" for d in days]


# ---------------------------------------------------------------------------------------------
# Fixture "TQ" (PostHog's trends test cases)
# ---------------------------------------------------------------------------------------------

TQ_PERSONS = {
    "p1": {"$browser": "Chrome", "prop": 10, "bool_field": True},
    "p2": {"$browser": "Firefox", "prop": 20, "bool_field": False},
    "p3": {"$browser": "Edge", "prop": 30, "bool_field": True},
    "p4": {"$browser": "Safari", "prop": 40, "bool_field": False},
}
TQ_EVENTS = {
    "p1": {PV: [11, 12, 13, 15, 17, 19], PL: [11, 12, 13]},
    "p2": {PV: [9, 12], PL: [13]},
    "p3": {PV: [12], PL: [13]},
    "p4": {PV: [15], PL: [16]},
}


def tq_fixture(db, project):
    """TQ: the event properties ($browser, prop, bool_field) are on every event of the person; the
    person gets them too (plus p1's email) through `$set` on the first event."""
    events = []
    for p, per_event in TQ_EVENTS.items():
        props = TQ_PERSONS[p]
        person_props = {**props, **({"email": "test@posthog.com"} if p == "p1" else {})}
        first = True
        for name, days in per_event.items():
            for d in days:
                extra = {"$set": person_props} if first else {}
                first = False
                events.append(ev(p, name, f"2020-01-{d:02d} 12:00:00", {**props, **extra}))
    ingest(db, project, events)


@pytest.fixture
def tq_project(db, project):
    tq_fixture(db, project)
    return project


PV_DAILY = [1, 0, 1, 3, 1, 0, 2, 0, 1, 0, 1]


def test_t1_pageviews_total(db, tq_project):
    (item,) = run_trend(db, tq_project, tq([PV]), http=True)
    days = day_range("2020-01-09", "2020-01-19")
    assert item["data"] == PV_DAILY
    assert item["count"] == 10
    assert item["days"] == [d.strftime("%Y-%m-%d") for d in days]
    assert item["labels"] == labels_of(days)
    assert item["labels"][0] == "9-Jan-2020"
    assert item["label"] == PV
    assert item["action"]["id"] == PV and item["action"]["type"] == "events"
    assert item["action"]["order"] == 0 and item["action"]["math"] == "total"
    assert "breakdown_value" not in item or item["breakdown_value"] is None
    assert "compare" not in item or item["compare"] is False


def test_t1_legacy_get_equals_sql(db, tq_project):
    legacy = {"insight": "TRENDS", "date_from": "2020-01-09", "date_to": "2020-01-19", "interval": "day",
              "events": [{"id": PV, "type": "events", "order": 0}]}
    (item,) = run_trend(db, tq_project, legacy, http=True, method="GET")
    assert item["data"] == PV_DAILY and item["count"] == 10 and item["label"] == PV


def test_t1_environments_path(db, tq_project):
    (item,) = run_trend(db, tq_project, tq([PV]), http=True, prefix="environments")
    assert item["data"] == PV_DAILY


def test_t3_two_series(db, tq_project):
    result = run_trend(db, tq_project, tq([PV, PL]), http=True)
    assert [i["label"] for i in result] == [PV, PL]
    assert [i["count"] for i in result] == [10, 6]
    assert data(result) == [PV_DAILY, [0, 0, 1, 1, 3, 0, 0, 1, 0, 0, 0]]
    assert [i["action"]["order"] for i in result] == [0, 1]


def test_t3_legacy_get_two_series(db, tq_project):
    legacy = {"insight": "TRENDS", "date_from": "2020-01-09", "date_to": "2020-01-19",
              "events": [{"id": PV, "order": 0}, {"id": PL, "order": 1}]}
    result = run_trend(db, tq_project, legacy, http=True, method="GET")
    assert [i["count"] for i in result] == [10, 6]


def test_t5_formula_with_compare(db, tq_project):
    q = tq([PV, PL], "2020-01-15", "2020-01-19", trends={"formula": "A+2*B"}, compareFilter={"compare": True})
    result = run_trend(db, tq_project, q, http=True)
    assert len(result) == 2
    cur, prev = result
    assert cur["data"] == [2, 2, 1, 0, 1] and cur["count"] == 6
    assert cur["compare"] is True and cur["compare_label"] == "current"
    assert cur["days"] == ["2020-01-15", "2020-01-16", "2020-01-17", "2020-01-18", "2020-01-19"]
    assert prev["data"] == [0, 3, 5, 7, 0] and prev["count"] == 15
    assert prev["compare"] is True and prev["compare_label"] == "previous"
    assert prev["days"] == ["2020-01-10", "2020-01-11", "2020-01-12", "2020-01-13", "2020-01-14"]
    assert cur["label"] == "Formula (A+2*B)" and cur["action"] is None


def test_t5_legacy_get_formula_compare(db, tq_project):
    legacy = {"insight": "TRENDS", "date_from": "2020-01-15", "date_to": "2020-01-19", "formula": "A+2*B",
              "compare": True, "events": [{"id": PV, "order": 0}, {"id": PL, "order": 1}]}
    result = run_trend(db, tq_project, legacy, http=True, method="GET")
    assert data(result) == [[2, 2, 1, 0, 1], [0, 3, 5, 7, 0]]
    assert [i["compare_label"] for i in result] == ["current", "previous"]


@pytest.mark.parametrize("compare_to, previous", [(None, 15), ("-1w", 9)])
def test_t7_formula_compare_bold_number(db, tq_project, compare_to, previous):
    cmp = {"compare": True, **({"compare_to": compare_to} if compare_to else {})}
    q = tq([PV, PL], "2020-01-15", "2020-01-19", trends={"formula": "A+2*B", "display": "BoldNumber"},
           compareFilter=cmp)
    result = run_trend(db, tq_project, q, http=True)
    assert [i["aggregated_value"] for i in result] == [6, previous]
    assert [i["compare_label"] for i in result] == ["current", "previous"]
    for i in result:
        assert i["count"] == 0
        assert i["data"] is None  # docs/trends.md#formulas: null for a total-value formula


def test_t11_series_cohort_filter(db, tq_project):
    c1 = static_cohort(db, tq_project, "c1", ["p1"])
    q = tq([node(PV, properties=[{"key": "id", "value": c1, "type": "cohort"}])], date_to="2020-01-20")
    (item,) = run_trend(db, tq_project, q, http=True)
    assert item["count"] == 6
    assert item["data"] == [0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0]


@pytest.mark.parametrize("formula, expected", [
    ("A+B", {"c1": (9, None), "all": (16, [1, 0, 2, 4, 4, 0, 2, 1, 1, 0, 1, 0])}),
    ("B+1", {"c1": (15, [1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]), "all": (18, None)}),
])
def test_t13_cohort_breakdown_formula(db, tq_project, formula, expected):
    c1 = static_cohort(db, tq_project, "c1", ["p1"])
    q = tq([PV, PL], date_to="2020-01-20", trends={"formula": formula},
           breakdownFilter={"breakdown": [c1, "all"], "breakdown_type": "cohort"})
    result = run_trend(db, tq_project, q, http=True)
    by_bd = {("c1" if i["breakdown_value"] == c1 else i["breakdown_value"]): i for i in result}
    assert set(by_bd) == {"c1", "all"}
    for key, (count, series) in expected.items():
        assert by_bd[key]["count"] == count
        if series is not None:
            assert by_bd[key]["data"] == series
    # Breakdown formula results are sorted by total desc.
    assert [i["count"] for i in result] == sorted((i["count"] for i in result), reverse=True)


def test_t15_formula_breakdown_without_data(db, tq_project):
    q = tq(["nothing1", "nothing2"], trends={"formula": "A+B"}, breakdownFilter={"breakdown": "$browser"})
    assert run_trend(db, tq_project, q, http=True) == []


def test_t17_breakdown_ordering(db, tq_project):
    q = tq([PV], date_to="2020-01-20", breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"})
    result = run_trend(db, tq_project, q, http=True)
    assert [(i["breakdown_value"], i["count"]) for i in result] == [
        ("Chrome", 6), ("Firefox", 2), ("Edge", 1), ("Safari", 1)]
    assert [i["label"] for i in result] == ["Chrome", "Firefox", "Edge", "Safari"]
    assert result[0]["data"] == [0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0]


def test_t17_legacy_get_breakdown(db, tq_project):
    legacy = {"insight": "TRENDS", "date_from": "2020-01-09", "date_to": "2020-01-20", "breakdown": "$browser",
              "breakdown_type": "event", "events": [{"id": PV, "order": 0}]}
    result = run_trend(db, tq_project, legacy, http=True, method="GET")
    assert [i["breakdown_value"] for i in result] == ["Chrome", "Firefox", "Edge", "Safari"]


def test_t17_two_series_breakdown_labels(db, tq_project):
    q = tq([PV, PL], date_to="2020-01-20", breakdownFilter={"breakdown": "$browser"})
    result = run_trend(db, tq_project, q)
    assert {i["label"]: i["count"] for i in result} == {
        "$pageview - Chrome": 6, "$pageview - Firefox": 2, "$pageview - Edge": 1, "$pageview - Safari": 1,
        "$pageleave - Chrome": 3, "$pageleave - Firefox": 1, "$pageleave - Edge": 1, "$pageleave - Safari": 1}


def test_t18_boolean_breakdown_values(db, tq_project):
    q = tq([PV], date_to="2020-01-20", breakdownFilter={"breakdown": "bool_field"})
    result = run_trend(db, tq_project, q)
    assert [(i["breakdown_value"], i["count"]) for i in result] == [("true", 7), ("false", 3)]


def test_t19_histogram_breakdown(db, tq_project):
    q = tq([PV], date_to="2020-01-20", breakdownFilter={"breakdown": "prop", "breakdown_histogram_bin_count": 4})
    result = run_trend(db, tq_project, q, http=True)
    got = {i["breakdown_value"]: i["count"] for i in result}
    assert got == {"[10,17.5]": 6, "[17.5,25]": 2, "[25,32.5]": 1, "[32.5,40.01]": 1}


def test_t21_breakdown_with_compare(db, tq_project):
    q = tq([PV], "2020-01-15", "2020-01-20", breakdownFilter={"breakdown": "$browser"},
           compareFilter={"compare": True})
    result = run_trend(db, tq_project, q, http=True)
    assert [(i["breakdown_value"], i["count"], i["compare_label"]) for i in result] == [
        ("Chrome", 3, "current"), ("Safari", 1, "current"),
        ("Chrome", 3, "previous"), ("Firefox", 2, "previous"), ("Edge", 1, "previous")]
    assert all(len(i["data"]) == 6 for i in result)


SUM_PROP = [20, 0, 10, 60, 10, 0, 50, 0, 10, 0, 10, 0]


def test_t23_math_hogql(db, tq_project):
    q = tq([node(PV, math="hogql", math_hogql="sum(properties.prop)")], date_to="2020-01-20")
    (item,) = run_trend(db, tq_project, q, http=True)
    assert item["data"] == SUM_PROP


def test_t25_weekly_active(db, tq_project):
    (item,) = run_trend(db, tq_project, tq([node(PV, math="weekly_active")], date_to="2020-01-20"), http=True)
    assert item["data"] == [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 2, 2]


def test_t26_weekly_active_week_interval(db, tq_project):
    # docs/trends.md#maths: with interval week, weekly_active degrades to distinct persons per week
    # (Sunday weeks: 01-05 {p1, p2}, 01-12 {p1, p2, p3, p4}, 01-19 {p1}).
    q = tq([node(PV, math="weekly_active")], date_to="2020-01-20", interval="week")
    (item,) = run_trend(db, tq_project, q)
    assert item["days"] == ["2020-01-05", "2020-01-12", "2020-01-19"]
    assert item["data"] == [2, 4, 1]


def test_t27_monthly_active(db, tq_project):
    (item,) = run_trend(db, tq_project, tq([node(PV, math="monthly_active")], date_to="2020-01-20"), http=True)
    assert item["data"] == [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]


@pytest.mark.parametrize("interval", ["week", "month"])
def test_typed_rows_bucket_is_the_bucket_start(db, tq_project, interval):
    q = tq([PV], date_to="2020-01-20", interval=interval)
    (item,) = trend_sql(db, tq_project, q)
    rows = sql(db, "SELECT bucket FROM insights.trend(%s, %s::jsonb)", tq_project["id"], json.dumps(q))
    assert [b.strftime("%Y-%m-%d") for (b,) in rows] == item["days"]


def test_t27_monthly_active_month_interval(db, tq_project):
    q = tq([node(PV, math="monthly_active")], "2019-12-31", "2020-02-01", interval="month")
    (item,) = run_trend(db, tq_project, q)
    assert item["data"] == [0, 4, 0]
    assert item["days"] == ["2019-12-01", "2020-01-01", "2020-02-01"]


@pytest.mark.parametrize("math, expected", [
    ("sum", SUM_PROP),
    ("avg", [20, 0, 10, 20, 10, 0, 25, 0, 10, 0, 10, 0]),
    ("max_count_per_actor", [1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0]),
])
def test_t29_property_math(db, tq_project, math, expected):
    n = node(PV, math=math, **({"math_property": "prop"} if math in ("sum", "avg") else {}))
    (item,) = run_trend(db, tq_project, tq([n], date_to="2020-01-20"), http=math == "sum")
    assert item["data"] == expected
    assert item["count"] == sum(expected)


def test_dau_count_is_sum_of_data(db, tq_project):
    # docs/trends.md#result-items: count = sum of data for every math (dau count = sum of daily uniques).
    (item,) = run_trend(db, tq_project, tq([node(PV, math="dau")], date_to="2020-01-20"))
    assert item["data"] == [1, 0, 1, 3, 1, 0, 2, 0, 1, 0, 1, 0]
    assert item["count"] == 10


def test_t30_total_value_display(db, tq_project):
    # docs/trends.md#displays: one aggregation over the whole range; distinct maths count distinct actors.
    q = tq([PV, node(PV, math="dau")], date_to="2020-01-20", trends={"display": "ActionsPie"})
    result = run_trend(db, tq_project, q, http=True)
    assert [i["aggregated_value"] for i in result] == [10, 4]
    for i in result:
        assert i["data"] == [] and i["days"] == [] and i["labels"] == [] and i["count"] == 0


def test_t31_cumulative(db, tq_project):
    q = tq([PV], date_to="2020-01-20", trends={"display": "ActionsLineGraphCumulative"})
    (item,) = run_trend(db, tq_project, q, http=True)
    assert item["data"] == [1, 1, 2, 5, 6, 6, 8, 8, 9, 9, 10, 10]
    assert item["count"] == 10


def test_t31_cumulative_dau_counts_each_person_once(db, tq_project):
    q = tq([node(PV, math="dau")], date_to="2020-01-20", trends={"display": "ActionsLineGraphCumulative"})
    (item,) = run_trend(db, tq_project, q)
    assert item["data"] == [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]
    assert item["count"] == 4


def test_t33_formula_division(db, project):
    # T33's fixture: one day with 3 pageviews and 1 pageleave.
    ingest(db, project, [ev("u1", PV, "2020-01-09 10:00:00"), ev("u2", PV, "2020-01-09 11:00:00"),
                         ev("u3", PV, "2020-01-09 12:00:00"), ev("u1", PL, "2020-01-09 13:00:00")])
    q = tq([PV, PL], "2020-01-09", "2020-01-09", trends={"formula": "B/A"})
    (item,) = run_trend(db, project, q, http=True)
    assert item["data"] == [0.3333333333333333]


def test_t35_smoothing(db, tq_project):
    (item,) = run_trend(db, tq_project, tq([PV], date_to="2020-01-20", trends={"smoothingIntervals": 7}), http=True)
    assert item["data"] == [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]


def test_first_time_for_user(db, project):
    # docs/trends.md#maths: persons whose first-ever matching event (all time) falls in the bucket.
    # Smallest fixture: a: pv 01-05 (before the range) and 01-10; b: pv 01-10, 01-11; c: pv 01-11.
    ingest(db, project, [ev("a", PV, "2020-01-05 12:00:00"), ev("a", PV, "2020-01-10 12:00:00"),
                         ev("b", PV, "2020-01-10 12:00:00"), ev("b", PV, "2020-01-11 12:00:00"),
                         ev("c", PV, "2020-01-11 13:00:00")])
    q = tq([node(PV, math="first_time_for_user")], "2020-01-09", "2020-01-12")
    (item,) = run_trend(db, project, q, http=True)
    assert item["data"] == [0, 1, 1, 0]
    assert item["count"] == 2


def test_actions_series_label_and_id(db, tq_project):
    action = make_action(db, tq_project, "viewed", [{"event": PV}])
    q = tq([{"kind": "ActionsNode", "id": action}])
    (item,) = run_trend(db, tq_project, q)
    assert item["label"] == "viewed" and item["action"]["id"] == action and item["action"]["type"] == "actions"
    assert item["data"] == PV_DAILY


def test_custom_name_and_all_events(db, tq_project):
    q = tq([node(PV, custom_name="Views"), node(None)])
    result = run_trend(db, tq_project, q)
    assert [i["label"] for i in result] == ["Views", "All events"]
    assert [i["count"] for i in result] == [10, 16]


def test_breakdown_limit_other_and_null(db, project):
    # docs/trends.md#breakdowns: top values by total, then the null bucket, then Other; hide_other
    # drops Other.
    events = [ev(f"u{n}", PV, "2020-01-10 12:00:00", {"v": f"v{n}"}) for n in range(1, 4) for _ in range(n)]
    events += [ev("u0", PV, "2020-01-10 12:00:00")]
    ingest(db, project, events)
    q = tq([PV], "2020-01-10", "2020-01-10", breakdownFilter={"breakdown": "v", "breakdown_limit": 2})
    result = run_trend(db, project, q, http=True)
    assert [(i["breakdown_value"], i["count"]) for i in result] == [
        ("v3", 3), ("v2", 2), ("$$_posthog_breakdown_other_$$", 2)]
    q["breakdownFilter"]["breakdown_hide_other_aggregation"] = True
    result = run_trend(db, project, q)
    assert [i["breakdown_value"] for i in result] == ["v3", "v2"]
    q["breakdownFilter"] = {"breakdown": "v"}
    result = run_trend(db, project, q)
    assert [i["breakdown_value"] for i in result] == ["v3", "v2", "v1", "$$_posthog_breakdown_null_$$"]


# ---------------------------------------------------------------------------------------------
# Trends: validation, scopes, methods
# ---------------------------------------------------------------------------------------------


def trend_error(db, project, query, exc=psycopg.errors.InvalidParameterValue):
    with pytest.raises(exc) as e:
        sql(db, "SELECT insights.trend_json(%s, %s::jsonb)", project["id"], json.dumps(query))
    return e.value


def _attr(err):
    detail = err.diag.message_detail or ""
    return detail.removeprefix("field: ").split()[0] if detail else None


@pytest.mark.parametrize("query, attr", [
    ({"insight": "TRENDS", "date_from": "2020-01-09", "date_to": "2020-01-19"}, "events"),
    (tq([PV, PL], trends={"formula": "A+C"}), "formula"),
    (tq([node(PV, math="sum")]), None),
    (tq([PV], intervalCount=2), "interval_count"),
    (tq([PV], breakdownFilter={"breakdown": [999999], "breakdown_type": "cohort"}), "breakdown"),
], ids=["no-series", "bad-formula-letter", "sum-without-property", "interval-count", "bad-cohort"])
def test_trend_validation_errors(db, project, query, attr):
    err = trend_error(db, project, query)
    got_attr = _attr(err)
    if attr is not None:
        assert got_attr == attr
    body = assert_error(trend_http(project, query), 400, "validation_error", "invalid_input", attr=got_attr)
    assert body["detail"] == err.diag.message_primary


@pytest.mark.parametrize("query, attr", [
    (tq([PV], date_to="nonsense"), "date_to"),
    (tq([PV], compareFilter={"compare": True, "compare_to": "2020-01-01"}), "compare_to"),
], ids=["date-to", "compare-to"])
def test_trend_bad_dates_are_22007(db, project, query, attr):
    err = trend_error(db, project, query, psycopg.errors.InvalidDatetimeFormat)
    assert _attr(err) == attr
    body = assert_error(trend_http(project, query), 400, "validation_error", "invalid_input", attr=_attr(err))
    assert body["detail"] == err.diag.message_primary


def test_trend_needs_insight_read(db, make_project):
    p = make_project(scopes=["person:read"])
    tq_fixture(db, p)
    body = assert_error(trend_http(p, tq([PV])), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:read'"
    body = assert_error(trend_http(p, {"events": json.dumps([{"id": PV}])}, method="GET"), 403,
                        "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:read'"


def test_trend_wrong_method_and_no_key(db, project):
    for method in ("DELETE", "PUT", "PATCH"):
        assert_error(api(method, f"/api/projects/{project['id']}/insights/trend/", project["key"]),
                     405, "invalid_request", "method_not_allowed")
    assert_error(api("POST", f"/api/projects/{project['id']}/insights/trend/", json=tq([PV])),
                 401, "authentication_error", "not_authenticated")


# ---------------------------------------------------------------------------------------------
# Retention: queries, running
# ---------------------------------------------------------------------------------------------


def d(n, hour=5, month=0):
    """PostHog's retention `_date`: 2020-06-(10+n) at `hour` UTC (months offset the same way)."""
    return datetime(2020, 6 + month, 10, hour) + timedelta(days=n)


def rq(date_to=None, date_from=None, properties=None, **rf):
    """A RetentionQuery; keyword arguments go into retentionFilter."""
    q = {"kind": "RetentionQuery", "retentionFilter": rf}
    dr = {}
    if date_to is not None:
        dr["date_to"] = _iso(date_to) if isinstance(date_to, datetime) else date_to
    if date_from is not None:
        dr["date_from"] = date_from
    if dr:
        q["dateRange"] = dr
    if properties is not None:
        q["properties"] = properties
    return q


def entity(id_, type_="events", **kw):
    return {"id": id_, "type": type_, **kw}


def retention_sql(db, project, query):
    """`insights.retention_json(...)["result"]`, checked against `insights.retention`'s rows."""
    body = sql(db, "SELECT insights.retention_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert set(body) == {"result", "timezone", "is_cached", "last_refresh"}, body
    result = body["result"]
    rows = sql(db, "SELECT cohort_date, cohort_label, period, count, percentage FROM insights.retention(%s, %s::jsonb)",
               project["id"], json.dumps(query))
    expected = []
    for cohort in result:
        size = cohort["values"][0]["count"] if cohort["values"] else 0
        for k, v in enumerate(cohort["values"]):
            expected.append((cohort["date"], cohort["label"], k, v["count"],
                             v["count"] * 100.0 / size if size else 0.0))
    assert [(a, b, c, e) for a, b, c, e, _ in rows] == [(a, b, c, e) for a, b, c, e, _ in expected]
    assert [r[4] for r in rows] == pytest.approx([x[4] for x in expected])
    return result


def retention_http(project, query, method="POST", prefix="projects", key=None):
    path = f"/api/{prefix}/{project['id']}/insights/retention/"
    key = key or project["key"]
    if method == "POST":
        return api("POST", path, key, json=query)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    return api("GET", path, key, params=params)


def run_retention(db, project, query, http=False, method="POST", prefix="projects"):
    result = retention_sql(db, project, query)
    if http:
        r = retention_http(project, query, method=method, prefix=prefix)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == result
        assert body["is_cached"] is False and body["timezone"] == project_tz(db, project)
    return result


def counts(result):
    return [[v["count"] for v in c["values"]] for c in result]


def pad(rows):
    """PostHog's tests pad the triangle with zeros to the full matrix (docs/retention.md#result)."""
    n = len(rows[0])
    return [r + [0] * (n - len(r)) for r in rows]


def r2_events(props=None):
    """The R2 fixture (PostHog's test_day_interval): P1 {person1, alias1}: pv d0, d1, d2, d5,
    d5 9h (alias1), d6. P2: pv d1, d2, d3, d6. `props` maps an event index (0..9) → properties."""
    spec = [("person1", d(0)), ("person1", d(1)), ("person1", d(2)), ("person1", d(5)), ("alias1", d(5, 9)),
            ("person1", d(6)), ("person2", d(1)), ("person2", d(2)), ("person2", d(3)), ("person2", d(6))]
    props = props or {}
    return [identify("person1", "alias1", d(-30))] + [
        ev(who, PV, ts, props.get(i)) for i, (who, ts) in enumerate(spec)]


def day_labels(n, title="Day"):
    return [f"{title} {i}" for i in range(n)]


def test_r1_no_date_range_defaults(db, project):
    ingest(db, project, r2_events())
    result = run_retention(db, project, rq(), http=True)
    assert [c["label"] for c in result] == day_labels(11)
    assert counts(result) == [[0] * 11] * 11
    assert all(v["label"] == f"Day {k}" for c in result for k, v in enumerate(c["values"]))


def test_r2_day_interval(db, project):
    ingest(db, project, r2_events())
    result = run_retention(db, project, rq(date_to=d(10, hour=6), totalIntervals=11), http=True)
    assert [c["label"] for c in result] == day_labels(11)
    assert result[0]["date"] == "2020-06-10T00:00:00Z"
    assert result[10]["date"] == "2020-06-20T00:00:00Z"
    assert counts(result) == pad([
        [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0], [2, 2, 1, 0, 1, 2, 0, 0, 0, 0], [2, 1, 0, 1, 2, 0, 0, 0, 0],
        [1, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [2, 0, 0, 0, 0], [0, 0, 0, 0],
        [0, 0, 0], [0, 0], [0]])
    assert all(c["breakdown_value"] is None for c in result)


def test_r2_legacy_get_equals_sql(db, project):
    ingest(db, project, r2_events())
    legacy = {"insight": "RETENTION", "date_to": _iso(d(10, hour=6)), "period": "Day", "total_intervals": 11,
              "retention_type": "retention_recurring", "target_entity": {"id": PV, "type": "events"},
              "returning_entity": {"id": PV, "type": "events"}}
    result = run_retention(db, project, legacy, http=True, method="GET")
    assert counts(result)[1] == [2, 2, 1, 0, 1, 2, 0, 0, 0, 0, 0]


def test_r2_environments_path(db, project):
    ingest(db, project, r2_events())
    result = run_retention(db, project, rq(date_to=d(10, hour=6)), http=True, prefix="environments")
    assert counts(result)[0] == [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]


def test_r3_month_period(db, project):
    months1 = [1, 2, 3, 5, 6, 9]
    months2 = [1, 2, 3, 6, 7, 11]
    ingest(db, project, [identify("person1", "alias1", "2019-01-01 00:00:00")]
           + [ev("person1", PV, f"2020-{m:02d}-10 00:00:00") for m in months1]
           + [ev("person2", PV, f"2020-{m:02d}-10 00:00:00") for m in months2])
    q = rq(date_to="2020-11-25T00:00:00Z", period="Month", totalIntervals=11)
    result = run_retention(db, project, q, http=True)
    assert [c["date"] for c in result] == [f"2020-{m:02d}-01T00:00:00Z" for m in range(1, 12)]
    assert [c["label"] for c in result] == day_labels(11, "Month")
    assert counts(result) == pad([
        [2, 2, 2, 0, 1, 2, 1, 0, 1, 0, 1], [2, 2, 0, 1, 2, 1, 0, 1, 0, 1], [2, 0, 1, 2, 1, 0, 1, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0, 0], [2, 1, 0, 1, 0, 1], [1, 0, 0, 0, 1], [0, 0, 0, 0],
        [1, 0, 0], [0, 0], [1]])


def test_r5_hour_period(db, project):
    h1 = [6, 7, 8, 10, 11, 14]
    h2 = [6, 7, 8, 11, 12, 16]
    ingest(db, project, [ev("person1", PV, f"2020-06-10 {h:02d}:00:00") for h in h1]
           + [ev("person2", PV, f"2020-06-10 {h:02d}:00:00") for h in h2])
    q = rq(date_to="2020-06-10T16:13:00Z", period="Hour", totalIntervals=11)
    result = run_retention(db, project, q, http=True)
    assert result[0]["date"] == "2020-06-10T06:00:00Z" and result[10]["date"] == "2020-06-10T16:00:00Z"
    assert [c["label"] for c in result] == day_labels(11, "Hour")
    assert counts(result) == pad([
        [2, 2, 2, 0, 1, 2, 1, 0, 1, 0, 1], [2, 2, 0, 1, 2, 1, 0, 1, 0, 1], [2, 0, 1, 2, 1, 0, 1, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0, 0], [2, 1, 0, 1, 0, 1], [1, 0, 0, 0, 1], [0, 0, 0, 0],
        [1, 0, 0], [0, 0], [1]])


def test_week_period_labels(db, project):
    # Week: cohorts start on Sundays (week_start_day 0); R2 data (06-10 is a Wednesday).
    ingest(db, project, r2_events())
    result = run_retention(db, project, rq(date_to=d(10, hour=6), period="Week", totalIntervals=3), http=True)
    # date_to 06-20 (Sat) → end 06-21 (exclusive), three weeks back.
    assert [c["date"] for c in result] == ["2020-05-31T00:00:00Z", "2020-06-07T00:00:00Z", "2020-06-14T00:00:00Z"]
    assert [c["label"] for c in result] == day_labels(3, "Week")
    assert counts(result) == [[0, 0, 0], [2, 2, 0], [2, 0, 0]]


def r7_events():
    """Smallest fixture for R6/R7 (the case list we ported from does not give R6): A: pv d0, 3× d2.
    B: pv d0, 2× d3. C: pv d1, 3× d2. D: pv d2, 3× d3. E: pv d3. Nobody on d4."""
    out = []
    for who, day, times in [("A", 0, 1), ("A", 2, 3), ("B", 0, 1), ("B", 3, 2), ("C", 1, 1), ("C", 2, 3),
                            ("D", 2, 1), ("D", 3, 3), ("E", 3, 1)]:
        out += [ev(who, PV, d(day) + timedelta(minutes=i)) for i in range(times)]
    return out


def test_r6_cumulative(db, project):
    ingest(db, project, r7_events())
    result = run_retention(db, project, rq(date_to=d(4), totalIntervals=5, cumulative=True), http=True)
    assert counts(result) == pad([[2, 2, 2, 1, 0], [1, 1, 0, 0], [3, 1, 0], [3, 0], [0]])
    result = run_retention(db, project, rq(date_to=d(4), totalIntervals=5))
    assert counts(result) == pad([[2, 0, 1, 1, 0], [1, 1, 0, 0], [3, 1, 0], [3, 0], [0]])


def test_r7_cumulative_minimum_occurrences(db, project):
    ingest(db, project, r7_events())
    q = rq(date_to=d(4), totalIntervals=5, cumulative=True, minimumOccurrences=3)
    result = run_retention(db, project, q, http=True)
    assert counts(result) == pad([[2, 1, 1, 0, 0], [1, 1, 0, 0], [3, 1, 0], [3, 0], [0]])


def test_minimum_occurrences_keeps_cohort_size(db, project):
    ingest(db, project, r7_events())
    result = run_retention(db, project, rq(date_to=d(4), totalIntervals=5, minimumOccurrences=3))
    assert counts(result) == pad([[2, 0, 1, 0, 0], [1, 1, 0, 0], [3, 1, 0], [3, 0], [0]])


def test_r11_first_time_first_event_outside_range(db, project):
    ingest(db, project, [ev("person1", "event1", d(0)), ev("person1", "event1", d(1)), ev("person1", "event1", d(2)),
                         ev("person1", "event2", d(2)), ev("person1", "event2", d(3))])
    q = rq(date_to=d(2, hour=6), totalIntervals=4, retentionType="retention_first_time",
           targetEntity=entity("event2"), returningEntity=entity("event1"))
    result = run_retention(db, project, q, http=True)
    assert [c["date"][:10] for c in result] == ["2020-06-09", "2020-06-10", "2020-06-11", "2020-06-12"]
    assert counts(result) == pad([[0, 0, 0, 0], [0, 0, 0], [0, 0], [1]])


def test_r13_all_events(db, project):
    # PostHog's test_retention_any_event.
    ingest(db, project, [identify("person1", "alias1", d(-30))]
           + [ev(p, "$some_event", d(n)) for p, n in [("person1", 0), ("person1", 1), ("person1", 2), ("person1", 3),
                                                      ("person2", 0), ("person2", 1), ("person2", 2), ("person2", 3),
                                                      ("person3", 5)]]
           + [ev(p, PV, d(n)) for p, n in [("person1", 5), ("person1", 6), ("person2", 5)]])
    q = rq(date_to=d(6, hour=6), period="Day", totalIntervals=7,
           targetEntity=entity(None), returningEntity=entity(None))
    result = run_retention(db, project, q, http=True)
    assert [c["label"] for c in result] == day_labels(7)
    assert counts(result) == pad([[2, 2, 2, 2, 0, 2, 1], [2, 2, 2, 0, 2, 1], [2, 2, 0, 2, 1], [2, 0, 2, 1],
                                  [0, 0, 0], [3, 1], [1]])


def test_r15_global_property_filter(db, project):
    # R2 with $some_property=value on the even-indexed events (P1 d0, d2, d5 9h; P2 d1, d3).
    ingest(db, project, r2_events({i: {"$some_property": "value"} for i in (0, 2, 4, 6, 8)}))
    props = {"type": "AND", "values": [{"type": "AND", "values": [
        {"key": "$some_property", "operator": "exact", "value": ["value"]}]}]}
    result = run_retention(db, project, rq(date_to=d(10, hour=0), properties=props, totalIntervals=11), http=True)
    assert result[0]["date"] == "2020-06-10T00:00:00Z"
    assert counts(result) == pad([[1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                                  [1, 0, 0, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0], [0] * 7, [1, 0, 0, 0, 0, 0],
                                  [0] * 5, [0] * 4, [0] * 3, [0] * 2, [0]])


def test_r17_first_time_target_property(db, project):
    ingest(db, project, r2_events({2: {"$target_event_property": "value"}, 3: {"$target_event_property": "value"}}))
    q = rq(date_to=d(10, hour=0), retentionType="retention_first_time", totalIntervals=11,
           targetEntity=entity(PV, properties=[prop("$target_event_property", ["value"])]))
    result = run_retention(db, project, q, http=True)
    expected = [[0] * 11 for _ in range(11)]
    expected[2] = [1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert counts(result) == expected


def test_target_property_recurring(db, project):
    # PostHog's test_retention_with_properties_on_start_event (target filter, recurring).
    ingest(db, project, r2_events({0: {"$target_event_property": "value"}}))
    q = rq(date_to=d(10, hour=0), totalIntervals=11,
           targetEntity=entity(PV, properties=[prop("$target_event_property", ["value"])]))
    result = run_retention(db, project, q)
    expected = [[0] * 11 for _ in range(11)]
    expected[0] = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]
    assert counts(result) == expected


def test_return_property_recurring(db, project):
    # PostHog's test_retention_with_properties_on_return_event: the return filter only on P1's d1.
    ingest(db, project, r2_events({1: {"$target_event_property": "value"}}))
    q = rq(date_to=d(10, hour=0), totalIntervals=11,
           returningEntity=entity(PV, properties=[prop("$target_event_property", ["value"])]))
    result = run_retention(db, project, q)
    assert [c[0] for c in counts(result)] == [1, 2, 2, 1, 0, 1, 2, 0, 0, 0, 0]
    assert counts(result)[0] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert all(sum(c[1:]) == 0 for c in counts(result)[1:])


def test_r19_first_time_return_property(db, project):
    ingest(db, project, r2_events({3: {"$target_event_property": "value"}}))
    q = rq(date_to=d(10, hour=0), retentionType="retention_first_time", totalIntervals=11,
           returningEntity=entity(PV, properties=[prop("$target_event_property", ["value"])]))
    result = run_retention(db, project, q, http=True)
    expected = [[0] * 11 for _ in range(11)]
    expected[0] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    expected[1] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert counts(result) == expected


def r21_events():
    """PostHog's _create_first_time_retention_events (as in PostHog's retention test case R21)."""
    signups = [("X", -5), ("X", -1), ("person1", -1), ("alias1", 1), ("person1", 2), ("alias1", 3), ("person1", 4),
               ("person2", -1), ("person3", 0), ("person4", 2)]
    pageviews = [("person1", 0), ("person1", 1), ("person1", 2), ("person1", 5), ("alias1", (5, 9)), ("person1", 6),
                 ("person2", 1), ("person2", 2), ("person2", 3), ("person2", 6),
                 ("person3", 1), ("person3", 3), ("person3", 4), ("person3", 5),
                 ("person4", 3), ("person4", 5)]

    def at(n):
        return d(*n) if isinstance(n, tuple) else d(n)

    return ([identify("person1", "alias1", d(-30))]
            + [ev(p, "$user_signed_up", at(n)) for p, n in signups]
            + [ev(p, PV, at(n)) for p, n in pageviews])


def test_r21_first_time_signup(db, project):
    ingest(db, project, r21_events())
    q = rq(date_to=d(5, hour=6), period="Day", totalIntervals=7, retentionType="retention_first_time",
           targetEntity=entity("$user_signed_up"), returningEntity=entity(PV))
    result = run_retention(db, project, q, http=True)
    assert [c["date"][:10] for c in result] == [f"2020-06-{n:02d}" for n in range(9, 16)]
    assert [c["label"] for c in result] == day_labels(7)
    assert counts(result) == pad([[2, 1, 2, 2, 1, 0, 1], [1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 1, 0, 1],
                                  [0, 0, 0], [0, 0], [0]])


def test_r21_legacy_get_first_time(db, project):
    ingest(db, project, r21_events())
    legacy = {"insight": "RETENTION", "date_to": _iso(d(5, hour=6)), "period": "Day", "total_intervals": 7,
              "retention_type": "retention_first_time", "target_entity": {"id": "$user_signed_up", "type": "events"},
              "returning_entity": {"id": PV, "type": "events"}}
    result = run_retention(db, project, legacy, http=True, method="GET")
    assert counts(result)[0] == [2, 1, 2, 2, 1, 0, 1]


def test_r23_matrix(db, project):
    # R2 fixture plus an extra P2 pageview on d7.
    ingest(db, project, r2_events() + [ev("person2", PV, d(7))])
    result = run_retention(db, project, rq(date_to=d(10, hour=6), totalIntervals=11))
    assert counts(result)[0] == [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]
    assert counts(result)[2] == [2, 1, 0, 1, 2, 1, 0, 0, 0, 0, 0]


def test_r23_retention_actors(db, project):
    ingest(db, project, r2_events() + [ev("person2", PV, d(7))])
    legacy = {"insight": "RETENTION", "date_to": _iso(d(10, hour=6)), "total_intervals": 11,
              "selected_interval": 2}
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in legacy.items()}
    r = api("GET", f"/api/projects/{project['id']}/persons/retention/", project["key"], params=params)
    assert r.status_code == 200, r.text
    people = r.json()["result"]
    assert [sorted(p["person"]["distinct_ids"]) for p in people] == [["person2"], ["alias1", "person1"]]
    assert [p["appearances"] for p in people] == [[0, 1, 4, 5], [0, 3, 4]]


def test_action_target_entity(db, project):
    # PostHog's test_retention_action_start_point: target = return = an action on $pageview.
    action = make_action(db, project, "signed up", [{"event": PV}])
    ingest(db, project, r2_events())
    q = rq(date_to=d(6, hour=0), totalIntervals=7, targetEntity=entity(action, "actions"),
           returningEntity=entity(action, "actions"))
    result = run_retention(db, project, q, http=True)
    assert counts(result) == pad([[1, 1, 1, 0, 0, 1, 1], [2, 2, 1, 0, 1, 2], [2, 1, 0, 1, 2], [1, 0, 0, 1],
                                  [0, 0, 0], [1, 1], [2]])


def test_non_utc_project_dates(db, make_project):
    # docs/retention.md#result: `date` carries the project tz offset; periods are truncated in the project tz.
    p = make_project(timezone="Europe/Berlin")
    ingest(db, p, [ev("a", PV, "2020-06-10 05:00:00"), ev("a", PV, "2020-06-11 05:00:00")])
    result = run_retention(db, p, rq(date_to="2020-06-11T12:00:00", totalIntervals=2), http=True)
    assert [c["date"] for c in result] == ["2020-06-10T00:00:00+02:00", "2020-06-11T00:00:00+02:00"]
    assert counts(result) == [[1, 1], [1, 0]]


# ---------------------------------------------------------------------------------------------
# Retention: validation, scopes, methods
# ---------------------------------------------------------------------------------------------


def retention_error(db, project, query, exc=psycopg.errors.InvalidParameterValue):
    with pytest.raises(exc) as e:
        sql(db, "SELECT insights.retention_json(%s, %s::jsonb)", project["id"], json.dumps(query))
    return e.value


@pytest.mark.parametrize("query, exc, attr", [
    (rq(totalIntervals=64), psycopg.errors.InvalidParameterValue, "total_intervals"),
    (rq(totalIntervals=0), psycopg.errors.InvalidParameterValue, "total_intervals|retentionFilter__totalIntervals"),
    (rq(targetEntity=entity(987654321, "actions")), psycopg.errors.InvalidParameterValue, "target_entity__id"),
    (rq(date_to="nonsense"), psycopg.errors.InvalidDatetimeFormat, "date_to"),
    ({**rq(), "breakdownFilter": {"breakdown": [1], "breakdown_type": "cohort"}},
     psycopg.errors.InvalidParameterValue, "breakdown"),
], ids=["too-many-intervals", "zero-intervals", "unknown-action", "bad-date", "cohort-breakdown"])
def test_retention_validation_errors(db, project, query, exc, attr):
    err = retention_error(db, project, query, exc)
    got = _attr(err)
    assert got in attr.split("|"), got
    body = assert_error(retention_http(project, query), 400, "validation_error", "invalid_input", attr=got)
    assert body["detail"] == err.diag.message_primary


def test_retention_needs_insight_read(db, make_project):
    p = make_project(scopes=["person:read"])
    ingest(db, p, r2_events())
    body = assert_error(retention_http(p, rq(date_to=d(10, hour=6))), 403, "authentication_error",
                        "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:read'"
    (key,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'w', ARRAY['insight:write'])",
                 p["user_id"])[0]
    r = retention_http(p, rq(date_to=d(10, hour=6)), key=key)
    assert r.status_code == 200, r.text


def test_retention_wrong_method_and_malformed_body(db, project):
    for method in ("DELETE", "PUT"):
        assert_error(api(method, f"/api/projects/{project['id']}/insights/retention/", project["key"]),
                     405, "invalid_request", "method_not_allowed")
    r = api("POST", f"/api/projects/{project['id']}/insights/retention/", project["key"], data=b"{bad",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request", "parse_error")


# ---------------------------------------------------------------------------------------------
# Retention actors: persons/retention/ (docs/retention.md#actors)
# ---------------------------------------------------------------------------------------------


def retention_actors(project, query, method="GET", prefix="projects", key=None, **extra):
    path = f"/api/{prefix}/{project['id']}/persons/retention/"
    key = key or project["key"]
    q = {**query, **extra}
    if method == "POST":
        return api("POST", path, key, json=q)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in q.items()}
    return api("GET", path, key, params=params)


def actor_rows(resp):
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return [(sorted(p["person"]["distinct_ids"]), p["appearances"]) for p in body["result"]]


R23_LEGACY = {"insight": "RETENTION", "date_to": _iso(d(10, hour=6)), "total_intervals": 11}


def test_retention_actors_interval_0_get_and_post(db, project):
    ingest(db, project, r2_events() + [ev("person2", PV, d(7))])
    rows = actor_rows(retention_actors(project, R23_LEGACY, selected_interval=0))
    assert rows == [(["alias1", "person1"], [0, 1, 2, 5, 6])]
    # Default selected_interval is 0; a RetentionQuery POST body works too, on both path prefixes.
    assert actor_rows(retention_actors(project, R23_LEGACY)) == rows
    body = rq(date_to=d(10, hour=6), totalIntervals=11)
    assert actor_rows(retention_actors(project, body, method="POST", selected_interval=0)) == rows
    assert actor_rows(retention_actors(project, body, method="POST", prefix="environments",
                                      selected_interval=0)) == rows
    r = retention_actors(project, R23_LEGACY, selected_interval=0)
    person = r.json()["result"][0]["person"]
    assert person["type"] == "person" and set(person) >= {"id", "uuid", "distinct_ids", "properties", "name"}
    assert r.json()["next"] is None and r.json()["missing_persons"] == 0


def test_retention_actors_last_interval(db, project):
    ingest(db, project, r2_events())
    q = {**R23_LEGACY, "date_to": _iso(d(6, hour=6)), "total_intervals": 7}
    rows = actor_rows(retention_actors(project, q, selected_interval=6))
    # Both persons viewed on d6: one appearance each (the cohort period), ordered by person uuid.
    assert sorted(r[0] for r in rows) == [["alias1", "person1"], ["person2"]]
    assert [r[1] for r in rows] == [[0], [0]]
    # Cohort 5 (d5, only P1) has two values: d5 and d6.
    assert actor_rows(retention_actors(project, q, selected_interval=5)) == [(["alias1", "person1"], [0, 1])]


@pytest.mark.parametrize("retention_type", [None, "retention_recurring", "retention_first_time"])
def test_retention_actors_match_the_matrix(db, project, retention_type):
    # Without a breakdown: for every cohort, the actors are the cohort (values[0]) and the actors
    # with offset k in their appearances are the count of values[k].
    ingest(db, project, r2_events() + [ev("person2", PV, d(7))])
    rf = {} if retention_type is None else {"retentionType": retention_type}
    query = rq(date_to=d(10, hour=6), totalIntervals=11, **rf)
    matrix = counts(run_retention(db, project, query))
    for c, row in enumerate(matrix):
        rows = actor_rows(retention_actors(project, query, method="POST", selected_interval=c))
        assert len(rows) == row[0], (c, rows)
        for k, count in enumerate(row):
            assert sum(1 for _, apps in rows if k in apps) == count, (c, k, rows)
        lens = [len(a) for _, a in rows]
        assert lens == sorted(lens, reverse=True)


def test_retention_actors_first_time(db, project):
    ingest(db, project, r2_events())
    q = {**R23_LEGACY, "retention_type": "retention_first_time"}
    # P1's first pageview is d0; P2's is d1 (then d2, d3, d6).
    assert actor_rows(retention_actors(project, q, selected_interval=1)) == [(["person2"], [0, 1, 2, 5])]
    assert actor_rows(retention_actors(project, q, selected_interval=2)) == []


def test_retention_actors_sql_function(db, project):
    ingest(db, project, r2_events() + [ev("person2", PV, d(7))])
    rows = sql(db, "SELECT d.distinct_id, a.appearances FROM insights.retention_actors(%s, %s::jsonb, 2) a "
                   "JOIN insights.person_distinct_ids d ON d.person_id = a.actor::bigint AND d.distinct_id LIKE 'person%%' "
                   "ORDER BY 1", project["id"], json.dumps(R23_LEGACY))
    assert rows == [("person1", [0, 3, 4]), ("person2", [0, 1, 4, 5])]


def test_retention_actors_paging(db, project):
    ingest(db, project, [ev(f"u{i}", PV, d(0)) for i in range(5)])
    r = retention_actors(project, R23_LEGACY, selected_interval=0, limit=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["result"]) == 2 and body["next"] and "offset=2" in body["next"]
    seen = [p["person"]["uuid"] for p in body["result"]]
    while body["next"]:
        body = requests_get(body["next"], project["key"])
        seen += [p["person"]["uuid"] for p in body["result"]]
    assert len(seen) == 5 and len(set(seen)) == 5


def requests_get(url, key):
    import requests
    r = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("value", ["x", "-1", "11", "1.5"])
def test_retention_actors_bad_selected_interval(db, project, value):
    ingest(db, project, r2_events())
    r = retention_actors(project, R23_LEGACY, selected_interval=value)
    assert_error(r, 400, "validation_error", "invalid_input", attr="selected_interval")


def test_retention_actors_scope_and_method(db, make_project):
    p = make_project(scopes=["insight:read"])
    r = retention_actors(p, R23_LEGACY)
    assert_error(r, 403, "authentication_error", "permission_denied")
    p = make_project(scopes=["person:read"])
    assert retention_actors(p, R23_LEGACY).status_code == 200
    r = api("DELETE", f"/api/projects/{p['id']}/persons/retention/", p["key"])
    assert_error(r, 405, "invalid_request", "method_not_allowed")


# ---------------------------------------------------------------------------------------------
# Trends actors: persons/trends/ and persons_urls (docs/trends.md#actors)
# ---------------------------------------------------------------------------------------------


def follow(project, url, key=None):
    """GET a persons_url (a path with its query string) → the distinct ids of each person."""
    assert url.startswith(f"/api/projects/{project['id']}/persons/trends/?"), url
    r = api("GET", url, key or project["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"results", "next", "missing_persons"}
    (res,) = body["results"]
    assert res["count"] == len(res["people"])
    return sorted(p["distinct_ids"][0] for p in res["people"])


def tq_persons_on(event, day, browser=None):
    return sorted(p for p, per in TQ_EVENTS.items() if day in per.get(event, [])
                  and (browser is None or TQ_PERSONS[p]["$browser"] == browser))


@pytest.mark.parametrize("math", ["total", "dau"])
def test_trend_persons_urls_total_and_dau(db, tq_project, math):
    q = tq([node(PV, math=math), node(PL, math=math)])
    result = run_trend(db, tq_project, q, http=True)
    days = list(range(9, 20))
    for item, event in zip(result, [PV, PL]):
        assert len(item["persons_urls"]) == 11
        for i, u in enumerate(item["persons_urls"]):
            people = follow(tq_project, u["url"])
            assert people == tq_persons_on(event, days[i]), (event, days[i])
            if math == "dau":
                assert len(people) == item["data"][i]


def test_trend_persons_urls_breakdown(db, tq_project):
    q = tq([node(PV, math="dau")], breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"},
           date_to="2020-01-20")
    result = run_trend(db, tq_project, q, http=True)
    assert [i["breakdown_value"] for i in result] == ["Chrome", "Firefox", "Edge", "Safari"]
    for item in result:
        for i, u in enumerate(item["persons_urls"]):
            people = follow(tq_project, u["url"])
            assert people == tq_persons_on(PV, 9 + i, item["breakdown_value"])
            assert len(people) == item["data"][i]


def test_trend_persons_urls_legacy_get_and_total_value(db, tq_project):
    legacy = {"insight": "TRENDS", "events": [{"id": PV, "math": "dau"}], "date_from": "2020-01-09",
              "date_to": "2020-01-19", "display": "BoldNumber"}
    r = trend_http(tq_project, legacy, method="GET")
    assert r.status_code == 200, r.text
    (item,) = r.json()["result"]
    assert item["aggregated_value"] == 4
    assert follow(tq_project, item["persons_urls"][0]["url"]) == ["p1", "p2", "p3", "p4"]


def test_trend_persons_urls_weekly_active(db, tq_project):
    q = tq([node(PV, math="weekly_active")], date_to="2020-01-20")
    (item,) = run_trend(db, tq_project, q)
    assert item["data"] == [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 2, 2]
    assert [len(follow(tq_project, u["url"])) for u in item["persons_urls"]] == item["data"]


def test_trend_persons_urls_cumulative_dau(db, tq_project):
    # Cumulative: a point's persons are those from the start of the range up to the point.
    q = tq([node(PV, math="dau")], trends={"display": "ActionsLineGraphCumulative"})
    (item,) = run_trend(db, tq_project, q)
    assert item["data"] == [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 4]
    assert [len(follow(tq_project, u["url"])) for u in item["persons_urls"]] == item["data"]


def test_trend_persons_cohort_breakdown(db, tq_project):
    c1 = static_cohort(db, tq_project, "c1", ["p1"])
    q = tq([node(PV)], breakdownFilter={"breakdown": [c1, "all"], "breakdown_type": "cohort"})
    result = run_trend(db, tq_project, q)
    by_value = {i["breakdown_value"]: i for i in result}
    assert follow(tq_project, by_value[c1]["persons_urls"][3]["url"]) == ["p1"]
    assert follow(tq_project, by_value["all"]["persons_urls"][3]["url"]) == ["p1", "p2", "p3"]


def test_trend_persons_urls_compare_previous(db, tq_project):
    q = tq([PV], "2020-01-15", "2020-01-19", compareFilter={"compare": True})
    current, previous = run_trend(db, tq_project, q)
    assert previous["compare_label"] == "previous" and previous["days"][0] == "2020-01-10"
    for item in (current, previous):
        for day, u in zip(item["days"], item["persons_urls"]):
            assert follow(tq_project, u["url"]) == tq_persons_on(PV, int(day[8:10])), day


def test_trend_persons_urls_groups(db, tq_project):
    def grp(did, key, ts):
        return ev(did, "$groupidentify", ts, {"$group_type": "organization", "$group_key": key,
                                             "$group_set": {"name": key.upper()}})
    ingest(db, tq_project, [grp("p1", "org:1", "2020-01-01 00:00:00"),
                            ev("p1", "login", "2020-01-12 10:00:00", {"$groups": {"organization": "org:1"}}),
                            ev("p2", "login", "2020-01-12 11:00:00", {"$groups": {"organization": "org:1"}}),
                            ev("p3", "login", "2020-01-12 12:00:00", {"$groups": {"organization": "org:2"}})])
    q = tq([node("login", math="unique_group", math_group_type_index=0)])
    (item,) = run_trend(db, tq_project, q)
    assert item["data"][3] == 2
    r = api("GET", item["persons_urls"][3]["url"], tq_project["key"])
    assert r.status_code == 200, r.text
    people = r.json()["results"][0]["people"]
    assert [(a["type"], a["group_key"], a["group_type_index"]) for a in people] == \
        [("group", "org:1", 0), ("group", "org:2", 0)]
    assert people[0]["group_properties"] == {"name": "ORG:1"}


def persons_trends(project, params, method="GET", key=None, prefix="projects"):
    path = f"/api/{prefix}/{project['id']}/persons/trends/"
    if method == "POST":
        return api("POST", path, key or project["key"], json=params)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return api("GET", path, key or project["key"], params=params)


def test_persons_trends_direct_request_and_paging(db, tq_project):
    base = {"events": [{"id": PV}], "entity_id": PV, "entity_type": "events", "entity_math": "total",
            "date_from": "2020-01-12T00:00:00Z", "date_to": "2020-01-12T23:59:59Z", "explicit_date": "true"}
    r = persons_trends(tq_project, {**base, "limit": "2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"][0]["people"]) == 2 and body["results"][0]["label"] == PV
    assert body["next"] and "offset=2" in body["next"]
    rest = requests_get(body["next"], tq_project["key"])
    assert len(rest["results"][0]["people"]) == 1 and rest["next"] is None
    # POST body, environments prefix, and an entity that is not among the series.
    r = persons_trends(tq_project, {**base, "events": [], "entity_id": PL}, method="POST", prefix="environments")
    assert r.status_code == 200, r.text
    assert sorted(p["distinct_ids"][0] for p in r.json()["results"][0]["people"]) == ["p1"]
    r = persons_trends(tq_project, {**base, "entity_id": PL, "date_from": "2020-01-13T00:00:00Z",
                                    "date_to": "2020-01-13T23:59:59Z"}, method="POST")
    assert sorted(p["distinct_ids"][0] for p in r.json()["results"][0]["people"]) == ["p1", "p2", "p3"]


@pytest.mark.parametrize("extra, attr", [
    ({"breakdown": "$browser", "breakdown_value": "$$_posthog_breakdown_other_$$"}, "breakdown_value"),
    ({"entity_id": "nope"}, "entity_type"),
    ({"entity_id": "x", "entity_type": "actions"}, "entity_id"),
    ({"date_from": "nonsense"}, "date_from"),
    ({"events": [{"id": PV, "math": "bogus"}], "entity_math": "bogus"}, None),
], ids=["other", "unknown-entity", "bad-action-id", "bad-date", "bad-math"])
def test_persons_trends_errors(db, tq_project, extra, attr):
    base = {"events": [{"id": PV}], "date_from": "2020-01-12", "date_to": "2020-01-12"}
    r = persons_trends(tq_project, {**base, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "validation_error", r.json()
    if attr is not None:
        assert r.json()["attr"] == attr, r.json()


def test_persons_trends_needs_person_read(db, make_project):
    p = make_project(scopes=["insight:read"])
    r = persons_trends(p, {"events": [{"id": PV}]})
    assert_error(r, 403, "authentication_error", "permission_denied")


# ---------------------------------------------------------------------------------------------
# Trends CSV export: /insights/trend/?format=csv (docs/trends.md#csv-export)
# ---------------------------------------------------------------------------------------------


def test_trend_csv_small_case(db, tq_project):
    params = {"events": json.dumps([{"id": PV}, {"id": PL, "custom_name": "Leaves, all"}]),
              "date_from": "2020-01-11", "date_to": "2020-01-13", "format": "csv"}
    r = api("GET", f"/api/projects/{tq_project['id']}/insights/trend/", tq_project["key"], params=params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="export (2020-01-11 - 2020-01-13) from PostHog.csv"'
    assert r.text == ("series,11-Jan-2020,12-Jan-2020,13-Jan-2020\r\n"
                      "$pageview,1,3,1\r\n"
                      "\"Leaves, all\",1,1,3\r\n")
    # Without format=csv the same endpoint still answers JSON.
    params.pop("format")
    r = api("GET", f"/api/projects/{tq_project['id']}/insights/trend/", tq_project["key"], params=params)
    assert r.headers["Content-Type"].startswith("application/json")
    assert [i["data"] for i in r.json()["result"]] == [[1, 3, 1], [1, 1, 3]]


def test_trend_csv_breakdown_and_export_name(db, tq_project):
    q = tq([PV], date_from="2020-01-12", date_to="2020-01-13",
           breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"})
    r = api("POST", f"/api/projects/{tq_project['id']}/insights/trend/?format=csv&export_name=My%20Views!",
            tq_project["key"], json=q)
    assert r.status_code == 200, r.text
    assert r.text == ("series,12-Jan-2020,13-Jan-2020\r\n"
                      "Chrome,1,1\r\nEdge,1,0\r\nFirefox,1,0\r\n")
    assert 'filename="my-views (2020-01-12 - 2020-01-13) from PostHog.csv"' in r.headers["Content-Disposition"]
    r = api("GET", f"/api/projects/{tq_project['id']}/insights/trend/", tq_project["key"],
            params={"events": json.dumps([{"id": PV}]), "date_from": "2020-01-12", "date_to": "2020-01-12",
                    "format": "csv", "export_insight_id": "abc123"})
    assert r.status_code == 200, r.text
    assert r.text == f"{BASE_URL}/insights/abc123/\nseries,12-Jan-2020\r\n$pageview,3\r\n"


def test_trend_csv_errors_stay_json(db, project):
    r = api("GET", f"/api/projects/{project['id']}/insights/trend/", project["key"],
            params={"events": json.dumps([{"id": PV}]), "date_from": "nonsense", "format": "csv"})
    assert_error(r, 400, "validation_error", "invalid_input", attr="date_from")
    r = api("GET", f"/api/projects/{project['id']}/insights/trend/", params={"format": "csv"})
    assert_error(r, 401, "authentication_error", "not_authenticated")


# ---------------------------------------------------------------------------------------------
# Retention breakdowns (docs/retention.md#breakdowns)
# ---------------------------------------------------------------------------------------------


def r2_browser_events(p2_first="Firefox"):
    """R2 with $browser on every pageview: P1 Chrome, P2 Firefox (P2's first pageview `p2_first`)."""
    props = {i: {"$browser": "Chrome"} for i in range(6)}
    props.update({i: {"$browser": "Firefox"} for i in range(7, 10)})
    props[6] = {"$browser": p2_first}
    return r2_events(props)


def retention_json_http(db, project, query, method="POST"):
    body = sql(db, "SELECT insights.retention_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    r = retention_http(project, query, method=method)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == body["result"]
    return body["result"]


def by_breakdown(result):
    out = {}
    for row in result:
        out.setdefault(row["breakdown_value"], []).append([v["count"] for v in row["values"]])
    return out


def test_retention_breakdown_event_property(db, project):
    ingest(db, project, r2_browser_events())
    plain = counts(run_retention(db, project, rq(date_to=d(10, hour=6), totalIntervals=11)))
    q = {**rq(date_to=d(10, hour=6), totalIntervals=11), "breakdownFilter": {"breakdown": "$browser"}}
    result = retention_json_http(db, project, q)
    # The full matrix per value, ranked by total cohort size: Chrome (P1: 5 cohorts), Firefox (P2: 4).
    assert [r["breakdown_value"] for r in result] == ["Chrome"] * 11 + ["Firefox"] * 11
    assert [r["label"] for r in result] == day_labels(11) * 2
    assert [r["date"] for r in result[:11]] == [r["date"] for r in result[11:]]
    m = by_breakdown(result)
    assert m["Chrome"][0] == [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]
    assert m["Firefox"][1] == [1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    # Each person has one value: the matrices add up to the unbroken one.
    assert [[a + b for a, b in zip(x, y)] for x, y in zip(m["Chrome"], m["Firefox"])] == plain


def test_retention_breakdown_value_of_the_first_target_event(db, project):
    # P2's first pageview says Safari: P2 is counted under Safari in every cohort.
    ingest(db, project, r2_browser_events(p2_first="Safari"))
    q = {**rq(date_to=d(10, hour=6), totalIntervals=11), "breakdownFilter": {"breakdown": "$browser"}}
    m = by_breakdown(retention_json_http(db, project, q))
    assert sorted(m) == ["Chrome", "Safari"]
    assert [row[0] for row in m["Safari"]] == [0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


def test_retention_breakdown_limit_other_and_legacy_get(db, project):
    ingest(db, project, r2_browser_events() + [ev("person3", PV, d(1))])
    legacy = {"insight": "RETENTION", "date_to": _iso(d(10, hour=6)), "total_intervals": 11,
              "breakdown": "$browser", "breakdown_type": "event", "breakdown_limit": 1}
    m = by_breakdown(retention_json_http(db, project, legacy, method="GET"))
    # Chrome (5) kept; Firefox (4) and the person without a browser (1) merge into Other.
    assert list(m) == ["Chrome", "$$_posthog_breakdown_other_$$"]
    assert m["$$_posthog_breakdown_other_$$"][1][0] == 2
    m = by_breakdown(retention_json_http(db, project, {**legacy, "breakdown_limit": 5}, method="GET"))
    assert list(m) == ["Chrome", "Firefox", "$$_posthog_breakdown_null_$$"]
    m = by_breakdown(retention_json_http(db, project, {**legacy, "breakdown_hide_other_aggregation": True},
                                         method="GET"))
    assert list(m) == ["Chrome"]


def test_retention_typed_rows_reject_breakdowns(db, project):
    q = {**rq(), "breakdownFilter": {"breakdown": "$browser"}}
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        sql(db, "SELECT * FROM insights.retention(%s, %s::jsonb)", project["id"], json.dumps(q))
