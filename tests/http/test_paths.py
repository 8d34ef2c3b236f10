"""Paths acceptance tests: PostHog's paths test cases (P1, P1.tf, P3, P13, P19.team, P27) and the
rules of docs/insights.md#paths, through SQL (`insights.paths_json`, cross-checked with the typed
edges of `insights.paths`) and over HTTP (`/insights/path/` GET and POST, `POST /query/` with a
PathsQuery, saved PATHS insights), plus validation, scopes and the team's cleaning rules. The
sequence rules themselves (start/end points, step limits, groupings, sessions) are covered case by
case in core/src/engines/paths_tests.rs.
"""

import json
from datetime import datetime, timedelta

import pytest
from conftest import api, assert_error, sql

PV, SCREEN = "$pageview", "$screen"
M = 60000.0


def _iso(ts):
    if isinstance(ts, datetime):
        ts = ts.strftime("%Y-%m-%d %H:%M:%S")
    t = ts.replace(" ", "T")
    return t if t.endswith("Z") or "+" in t[10:] else t + "Z"


def ev(distinct_id, event, ts, props=None):
    return {"event": event, "distinct_id": distinct_id, "timestamp": _iso(ts), "properties": dict(props or {})}


def pv(distinct_id, url, ts, props=None):
    return ev(distinct_id, PV, ts, {"$current_url": url, **(props or {})})


def ingest(db, project, events):
    return sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))[0][0]


def paths_sql(db, project, query):
    body = sql(db, "SELECT insights.paths_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert set(body) == {"result", "timezone", "is_cached", "last_refresh"}
    rows = sql(db, "SELECT source, target, value, average_conversion_time FROM insights.paths(%s, %s::jsonb)",
               project["id"], json.dumps(query))
    assert [list(r) for r in rows] == [[e["source"], e["target"], e["value"], e["average_conversion_time"]]
                                       for e in body["result"]]
    return body["result"]


def path_http(project, query, method="POST", key=None):
    path = f"/api/projects/{project['id']}/insights/path/"
    if method == "GET":
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
        return api("GET", path, key or project["key"], params=params)
    return api("POST", path, key or project["key"], json=query)


def run(db, project, query, method=None):
    result = paths_sql(db, project, query)
    for m in [method] if method else []:
        r = path_http(project, query, m)
        assert r.status_code == 200, r.text
        assert r.json()["result"] == result
    return result


def edges(result):
    return [(e["source"], e["target"], e["value"], e["average_conversion_time"]) for e in result]


@pytest.fixture
def p1_project(make_project, db):
    """P1: four persons on 2012-01-14 (p2 with two distinct ids) and two older events."""
    project = make_project()
    d = "2012-01-14 "
    events = [
        pv("p1", "/", d + "03:21:34", {"$set": {"email": "p1@posthog.com"}}), pv("p1", "/about", d + "03:28:34"),
        pv("p2a", "/", d + "03:21:34"), pv("p2b", "/pricing", d + "03:28:34"), pv("p2b", "/about", d + "03:29:34"),
        pv("p3", "/pricing", d + "03:21:34"), pv("p3", "/", d + "03:28:34"),
        pv("p4", "/", d + "03:21:34"), pv("p4", "/pricing", d + "03:28:34"),
        pv("p5", "/", "2012-01-01 03:21:34"), pv("p5", "/about", "2012-01-01 03:22:34"),
    ]
    # p2a and p2b are one person; the merge happens before the range so its event is no path item.
    ingest(db, project, [ev("p2a", "$pageleave", "2011-12-01 00:00:00"),
                         ev("p2b", "$identify", "2011-12-01 00:00:01", {"$anon_distinct_id": "p2a"})])
    ingest(db, project, events)
    return project


P1 = [("1_/", "2_/pricing", 2, 7 * M), ("1_/", "2_/about", 1, 7 * M),
      ("1_/pricing", "2_/", 1, 7 * M), ("2_/pricing", "3_/about", 1, M)]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_p1_paths(db, p1_project, method):
    q = {"insight": "PATHS", "date_from": "2012-01-08", "date_to": "2012-01-15"}
    assert edges(run(db, p1_project, q, method)) == P1


def test_p1_paths_query_node_and_empty_ranges(db, p1_project):
    node = {"kind": "PathsQuery", "dateRange": {"date_from": "2012-01-08", "date_to": "2012-01-15"},
            "pathsFilter": {}}
    result = paths_sql(db, p1_project, node)
    assert edges(result) == P1
    r = api("POST", f"/api/projects/{p1_project['id']}/query/", p1_project["key"],
            json={"query": node, "refresh": "blocking"})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == result
    # date_from after date_to is PostHog's 400; a range without events is [].
    r = path_http(p1_project, {"date_from": "2012-01-22", "date_to": "2012-01-15"})
    assert r.status_code == 400, r.text
    assert paths_sql(db, p1_project, {"insight": "PATHS", "date_from": "2012-01-08", "date_to": "2012-01-08"}) == []


def test_p1_filter_test_accounts(db, p1_project):
    sql(db, "UPDATE insights.projects SET test_account_filters = %s::jsonb WHERE id = %s",
        json.dumps([{"key": "email", "value": "@posthog.com", "operator": "not_icontains", "type": "person"}]),
        p1_project["id"])
    q = {"insight": "PATHS", "date_from": "2012-01-08", "date_to": "2012-01-15", "filter_test_accounts": True}
    assert edges(run(db, p1_project, q, "POST")) == [e for e in P1 if e[:2] != ("1_/", "2_/about")]


def test_p3_screens(db, make_project):
    project = make_project()
    t0 = datetime(2012, 1, 14, 3, 21, 34)
    seq = {"p1": ["/", "/about"], "p2": ["/", "/pricing", "/about"], "p3": ["/pricing", "/"], "p4": ["/", "/pricing"]}
    ingest(db, project, [ev(p, SCREEN, t0 + timedelta(minutes=i), {"$screen_name": s})
                         for p, names in seq.items() for i, s in enumerate(names)])
    q = {"insight": "PATHS", "include_event_types": [SCREEN], "date_from": "2012-01-08", "date_to": "2012-01-15"}
    assert edges(run(db, project, q, "GET")) == [(s, t, n, M) for s, t, n, _ in P1]


def test_p13_sessions_and_trailing_slash(db, make_project):
    project = make_project()
    events = []
    for day, urls in [("2021-05-01", ["/1", "/2", "/3"]), ("2021-05-02", ["/1", "/2/", "/3"])]:
        t = datetime.fromisoformat(day + " 10:00:00")
        for url, dt in zip(urls, [0, 1, 4]):
            events.append(pv("p", url, t + timedelta(minutes=dt)))
    ingest(db, project, events)
    q = {"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-03"}
    assert edges(run(db, project, q, "POST")) == [("1_/1", "2_/2", 2, M), ("2_/2", "3_/3", 2, 3 * M)]


def test_p19_team_cleaning_rules(db, make_project):
    project = make_project()
    t0 = datetime(2021, 5, 1, 10, 0, 0)
    events = []
    for i in range(3):
        for k, url in enumerate(["test.com/step1", "test.com/step2/5", f"test.com/step2/5?key=value{i}"]):
            events.append(pv(f"u{i}", url, t0 + timedelta(minutes=k)))
    ingest(db, project, events)
    sql(db, "UPDATE insights.projects SET path_cleaning_filters = %s::jsonb WHERE id = %s",
        json.dumps([{"regex": "\\?(.*)", "alias": "?<param>"}]), project["id"])
    q = {"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-02", "path_replacements": True,
         "local_path_cleaning_filters": [{"regex": "/\\d+(/|\\?)?", "alias": "/<id>"}]}
    want = [("1_test.com/step1", "2_test.com/step2/<id>", 3, M),
            ("2_test.com/step2/<id>", "3_test.com/step2/<id><param>", 3, M)]
    assert edges(run(db, project, q, "POST")) == want
    # Without path_replacements the team's rule is not applied.
    q["path_replacements"] = False
    assert edges(paths_sql(db, project, q))[1][1] == "3_test.com/step2/<id>?key=value0" or \
        len(edges(paths_sql(db, project, q))) == 4


@pytest.fixture
def p27_project(make_project, db):
    project = make_project()
    t0 = datetime(2021, 5, 1, 10, 0, 0)
    seq = [(PV, {"$current_url": "/"}), (PV, {"$current_url": "/about"}), (PV, {"$current_url": "/something else"}),
           (SCREEN, {"$screen_name": "/screen1"}), (SCREEN, {"$screen_name": "/screen2"}),
           ("custom1", {}), ("custom2", {})]
    ingest(db, project, [ev("p", e, t0 + timedelta(minutes=i), props) for i, (e, props) in enumerate(seq)])
    return project


@pytest.mark.parametrize("filter_, want", [
    ({"path_type": PV, "start_point": "/about"}, [("1_/about", "2_/something else")]),
    ({"include_event_types": ["custom_event"], "start_point": "custom2"}, []),
    ({"include_event_types": [SCREEN], "start_point": "/screen1"}, [("1_/screen1", "2_/screen2")]),
    ({"include_event_types": ["custom_event"]}, [("1_custom1", "2_custom2")]),
    ({"include_event_types": ["hogql"], "paths_hogql_expression": "event", "step_limit": 2},
     [(f"1_{PV}", "2_$screen")]),
])
def test_p27_event_types(db, p27_project, filter_, want):
    q = {"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-02", **filter_}
    assert [e[:2] for e in edges(run(db, p27_project, q))] == want


def test_all_events_and_excluded_pageviews(db, p27_project):
    q = {"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-02", "step_limit": 10}
    got = [e[:2] for e in edges(paths_sql(db, p27_project, q))]
    assert got[0] == ("1_/", "2_/about") and got[-1] == ("6_custom1", "7_custom2")
    assert ("3_/something else", "4_/screen1") in got
    # Excluded pageviews are named by their event, so excluding `$pageview` drops them all.
    q["exclude_events"] = [PV]
    got = [e[:2] for e in edges(paths_sql(db, p27_project, q))]
    assert got == [("1_/screen1", "2_/screen2"), ("2_/screen2", "3_custom1"), ("3_custom1", "4_custom2")]


def test_saved_paths_insight(db, p1_project):
    base = f"/api/projects/{p1_project['id']}/insights/"
    filters = {"insight": "PATHS", "date_from": "2012-01-08", "date_to": "2012-01-15"}
    r = api("POST", base, p1_project["key"], json={"name": "paths", "filters": filters})
    assert r.status_code == 201, r.text
    r = api("GET", f"{base}{r.json()['id']}/", p1_project["key"], params={"refresh": "blocking"})
    assert r.status_code == 200, r.text
    assert edges(r.json()["result"]) == P1
    node = {"kind": "InsightVizNode", "source": {"kind": "PathsQuery", "dateRange": {"date_from": "2012-01-08",
                                                                                    "date_to": "2012-01-15"}}}
    r = api("POST", base, p1_project["key"], json={"name": "paths node", "query": node})
    assert r.status_code == 201, r.text
    r = api("GET", f"{base}{r.json()['id']}/", p1_project["key"], params={"refresh": "blocking"})
    assert edges(r.json()["result"]) == P1


@pytest.mark.parametrize("filter_, attr", [
    ({"local_path_cleaning_filters": [{"regex": "(", "alias": "x"}]}, "local_path_cleaning_filters__0__regex"),
    ({"min_edge_weight": 5, "max_edge_weight": 2}, "max_edge_weight"),
    ({"include_event_types": ["$nope"]}, "include_event_types__0"),
    ({"include_event_types": ["hogql"]}, "paths_hogql_expression"),
    ({"step_limit": "many"}, "step_limit"),
])
def test_bad_input_is_a_400(p1_project, filter_, attr):
    r = path_http(p1_project, {"date_from": "2012-01-08", **filter_})
    assert_error(r, 400, "validation_error", "invalid_input", attr)


def test_scopes_and_methods(make_project):
    project = make_project(scopes=("feature_flag:read",))
    r = path_http(project, {"date_from": "-7d"})
    assert r.status_code == 403, r.text
    ok = make_project()
    r = api("DELETE", f"/api/projects/{ok['id']}/insights/path/", ok["key"])
    assert r.status_code == 405, r.text


# ---------------------------------------------------------------------------------------------
# Funnel paths (P21, P23) and the persons behind a node or an edge
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def p17_project(make_project, db):
    """P17: 35 users on 2021-05-01: 5 convert through every step, 10 stop after `step two` with
    two more events, 20 drop off (the even ones with a branch)."""
    project = make_project()
    t0 = datetime(2021, 5, 1, 0, 0, 0)
    s = timedelta(seconds=1)
    m = timedelta(minutes=1)
    events = []
    for i in range(5):
        for k, e in enumerate(["step one", "between_step_1_a", "between_step_1_b", "between_step_1_c",
                               "step two", "step three"]):
            events.append(ev(f"full{i}", e, t0 + k * m))
    for i in range(10):
        for t, e in [(0 * m, "step one"), (m, "between_step_1_a"), (2 * m, "between_step_1_b"), (3 * m, "step two"),
                     (4 * m + 20 * s, "between_step_2_a"), (5 * m + 40 * s, "between_step_2_b")]:
            events.append(ev(f"two{i}", e, t0 + t))
    for i in range(20):
        names = ["step one", "step dropoff1", "step dropoff2"] + (["step branch"] if i % 2 == 0 else [])
        for k, e in enumerate(names):
            events.append(ev(f"drop{i}", e, t0 + k * m))
    ingest(db, project, events)
    return project


FUNNEL = {"insight": "FUNNELS", "events": [{"id": "step one", "order": 0}, {"id": "step two", "order": 1},
                                           {"id": "step three", "order": 2}],
          "date_from": "2021-05-01", "date_to": "2021-05-07", "funnel_window_interval": 7,
          "funnel_window_interval_type": "day"}


def funnel_paths_query(kind, step):
    return {"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-07",
            "funnel_paths": kind, "funnel_filter": {**FUNNEL, "funnel_step": step}}


def test_p21_funnel_path_after_step(db, p17_project):
    result = run(db, p17_project, funnel_paths_query("funnel_path_after_step", 2), "POST")
    assert edges(result) == [("1_step two", "2_between_step_2_a", 10, 80000.0),
                             ("2_between_step_2_a", "3_between_step_2_b", 10, 80000.0),
                             ("1_step two", "2_step three", 5, M)]
    # GET sends funnel_filter as JSON text, as PostHog's UI does.
    r = path_http(p17_project, funnel_paths_query("funnel_path_after_step", 2), "GET")
    assert r.status_code == 200, r.text
    assert r.json()["result"] == result


def test_p23_funnel_path_between_steps(db, p17_project):
    result = run(db, p17_project, funnel_paths_query("funnel_path_between_steps", 2))
    assert [e[:3] for e in edges(result)] == [
        ("1_step one", "2_between_step_1_a", 15), ("2_between_step_1_a", "3_between_step_1_b", 15),
        ("3_between_step_1_b", "4_step two", 10), ("3_between_step_1_b", "4_between_step_1_c", 5),
        ("4_between_step_1_c", "5_step two", 5)]


def test_funnel_paths_query_node_and_drop_offs(db, p17_project):
    node = {"kind": "PathsQuery", "dateRange": {"date_from": "2021-05-01", "date_to": "2021-05-07"},
            "funnelPathsFilter": {"funnelPathType": "funnel_path_after_step", "funnelStep": -2,
                                  "funnelSource": {**FUNNEL}}}
    result = paths_sql(db, p17_project, node)
    assert [e[:3] for e in edges(result)] == [("1_step one", "2_step dropoff1", 20),
                                             ("2_step dropoff1", "3_step dropoff2", 20),
                                             ("3_step dropoff2", "4_step branch", 10)]
    r = path_http(p17_project, funnel_paths_query("funnel_path_sideways", 2))
    assert_error(r, 400, "validation_error", "invalid_input", "funnel_paths")
    r = path_http(p17_project, funnel_paths_query("funnel_path_after_step", 0))
    assert_error(r, 400, "validation_error", "invalid_input", "funnel_step")


def distinct_ids_of(db, project, person_ids):
    rows = sql(db, "SELECT distinct_id FROM insights.person_distinct_ids WHERE project_id = %s "
                   "AND person_id = ANY(%s::bigint[]) ORDER BY 1", project["id"], [int(p) for p in person_ids])
    return [r[0] for r in rows]


def test_paths_persons(db, p1_project):
    q = {"insight": "PATHS", "date_from": "2012-01-08", "date_to": "2012-01-15"}
    ids = [r[0] for r in sql(db, "SELECT * FROM insights.paths_actors(%s, %s::jsonb, %s, %s)",
                             p1_project["id"], json.dumps(q), "1_/", "2_/pricing")]
    assert distinct_ids_of(db, p1_project, ids) == ["p2a", "p2b", "p4"]
    base = f"/api/projects/{p1_project['id']}/persons/path/"
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in q.items()}
    r = api("GET", base, p1_project["key"], params={**params, "path_end_key": "3_/about"})
    assert r.status_code == 200, r.text
    (page,) = r.json()["results"]
    assert page["count"] == 1
    assert sorted(page["people"][0]["distinct_ids"]) == ["p2a", "p2b"]
    r = api("POST", base, p1_project["key"], json={**q, "path_dropoff_key": "2_/pricing"})
    assert r.status_code == 200, r.text
    assert sorted(d for p in r.json()["results"][0]["people"] for d in p["distinct_ids"]) == ["p4"]
    r = api("POST", base, p1_project["key"], json={**q, "path_start_key": "1_/pricing"})
    assert sorted(d for p in r.json()["results"][0]["people"] for d in p["distinct_ids"]) == ["p3"]
    r = api("POST", base, p1_project["key"], json=q)
    assert_error(r, 400, "validation_error", "invalid_input", "path_start_key")


def test_funnel_paths_persons(db, p17_project):
    q = {**funnel_paths_query("funnel_path_after_step", 2), "path_start_key": "1_step two",
         "path_end_key": "2_step three"}
    r = api("POST", f"/api/projects/{p17_project['id']}/persons/path/", p17_project["key"], json=q)
    assert r.status_code == 200, r.text
    people = r.json()["results"][0]["people"]
    assert sorted(d for p in people for d in p["distinct_ids"]) == [f"full{i}" for i in range(5)]
