"""Funnel acceptance tests: PostHog's own funnel test cases (ordered, strict, unordered, conversion
times, breakdowns) plus the validation rules (docs/funnels.md#validation), funnel actors
(docs/funnels.md#actors), scopes, and the generic `insights.window_funnel` aggregate (ClickHouse
windowFunnel modes, parallel plans: docs/funnels.md#windowfunnel).

Every case gets a fresh project (the `project` / `make_project` fixtures of conftest.py), events
with explicit timestamps in a fixed past range, and an explicit date range in the query. Funnels run
through SQL (`insights.funnel_json`, cross-checked against the typed rows of `insights.funnel`); a
representative subset also runs over HTTP, where the body must equal the SQL result.
"""

import json
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
import requests
from conftest import api, assert_error, sql

# ---------------------------------------------------------------------------------------------
# Helpers: events, queries, running a funnel
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


def seq(distinct_id, events, start="2021-05-01 00:00:00", step=timedelta(minutes=1)):
    """Events of one person one after the other (PostHog's "sequential" fixtures)."""
    t0 = datetime.fromisoformat(start)
    return [ev(distinct_id, e, t0 + i * step) for i, e in enumerate(events)]


def identify(distinct_id, anon_id, ts):
    return ev(distinct_id, "$identify", ts, {"$anon_distinct_id": anon_id})


def pay(distinct_id, ts, props=None):
    """An autocapture click that satisfies the action `paid` (button, text "Pay $10")."""
    return ev(distinct_id, "$autocapture", ts, {**(props or {}), "$elements": [{"tag_name": "button", "text": "Pay $10"}]})


def movie(distinct_id, ts, props=None):
    """An autocapture click that satisfies the action `watched movie` (a, href /movie)."""
    return ev(distinct_id, "$autocapture", ts, {**(props or {}), "$elements": [{"tag_name": "a", "href": "/movie"}]})


def ingest(db, project, events):
    return sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))[0][0]


def make_action(db, project, name, steps):
    return sql(db, "INSERT INTO insights.actions (project_id, name, steps) VALUES (%s, %s, %s::jsonb) RETURNING id",
               project["id"], name, json.dumps(steps))[0][0]


def base_actions(db, project):
    """The "BF" fixture's actions: (paid id, watched movie id)."""
    paid = make_action(db, project, "paid", [{"event": "$autocapture", "tag_name": "button", "text": "Pay $10"}])
    watched = make_action(db, project, "watched movie", [{"event": "$autocapture", "tag_name": "a", "href": "/movie"}])
    return paid, watched


def node(event, **kw):
    return {"kind": "EventsNode", "event": event, **kw}


def action_node(action_id, **kw):
    return {"kind": "ActionsNode", "id": action_id, **kw}


def excl(event, from_step, to_step):
    return {"kind": "FunnelExclusionEventsNode", "event": event, "funnelFromStep": from_step, "funnelToStep": to_step}


def prop(key, value, operator="exact", type_="event"):
    return {"key": key, "value": value, "operator": operator, "type": type_}


def window(n, unit):
    return {"funnelWindowInterval": n, "funnelWindowIntervalUnit": unit}


_TOP_LEVEL = {"breakdownFilter", "properties", "filterTestAccounts", "aggregation_group_type_index", "interval",
              "funnelAggregateByHogQL"}


def fq(steps, date_from="2021-05-01", date_to="2021-05-20", **kw):
    """A FunnelsQuery. Steps are event names or nodes; funnelsFilter keys and top-level keys mix."""
    q = {
        "kind": "FunnelsQuery",
        "series": [s if isinstance(s, dict) else node(s) for s in steps],
        "dateRange": {"date_from": date_from, "date_to": date_to},
        "funnelsFilter": {},
    }
    for k, v in kw.items():
        (q if k in _TOP_LEVEL else q["funnelsFilter"])[k] = v
    return q


def _rows_from_json(result):
    """The typed rows `insights.funnel` should return for a steps result."""
    series = result if result and isinstance(result[0], list) else ([result] if result else [])
    rows = []
    for s in series:
        for st in s:
            bd = st.get("breakdown_value", None)
            if isinstance(bd, list):
                bd = bd[0] if len(bd) == 1 and isinstance(bd[0], str) else json.dumps(bd, separators=(",", ":"))
            elif bd is not None and not isinstance(bd, str):
                bd = json.dumps(bd)
            rows.append((bd, st["order"] + 1, st["name"], st["count"],
                         st["average_conversion_time"], st["median_conversion_time"]))
    return rows


def funnel_sql(db, project, query):
    """`insights.funnel_json(...)["result"]`, checked against the typed rows of `insights.funnel`."""
    body = sql(db, "SELECT insights.funnel_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert set(body) == {"result", "timezone", "is_cached", "last_refresh"}, body
    result = body["result"]
    viz = (query.get("funnelsFilter") or {}).get("funnelVizType", query.get("funnel_viz_type", "steps"))
    if viz == "steps":
        rows = sql(db, "SELECT breakdown_value, step, name, count, average_conversion_time, median_conversion_time "
                       "FROM insights.funnel(%s, %s::jsonb)", project["id"], json.dumps(query))
        assert sorted(rows, key=repr) == sorted(_rows_from_json(result), key=repr)
    return result


def funnel_http(project, query, method="POST", prefix="projects", key=None):
    """The funnel over HTTP: POST a JSON body, or GET with the filter as (JSON-encoded) query params."""
    path = f"/api/{prefix}/{project['id']}/insights/funnel/"
    key = key or project["key"]
    if method == "POST":
        return api("POST", path, key, json=query)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    return api("GET", path, key, params=params)


def run_funnel(db, project, query, http=False):
    """Run through SQL; with http=True also through the REST API, whose result must be identical."""
    result = funnel_sql(db, project, query)
    if http:
        r = funnel_http(project, query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == result
        assert body["is_cached"] is False and body["timezone"] == sql(
            db, "SELECT timezone FROM insights.projects WHERE id = %s", project["id"])[0][0]
    return result


def counts(result):
    return [s["count"] for s in result]


def series_by_breakdown(result):
    """{breakdown value (a list becomes a tuple): [counts]} of a breakdown result."""
    out = {}
    for s in result:
        bd = s[0]["breakdown_value"]
        key = tuple(bd) if isinstance(bd, list) else bd
        assert key not in out, f"duplicate series {key}"
        out[key] = counts(s)
    return out


def strip_urls(result):
    """A steps result without its people URLs (they repeat the query, which may differ)."""
    return [{k: v for k, v in s.items() if not k.endswith("_url")} for s in result]


def series_named(result, bd):
    (s,) = [s for s in result if s[0]["breakdown_value"] == bd]
    return s


def avg_times(result):
    return [s["average_conversion_time"] for s in result]


def median_times(result):
    return [s["median_conversion_time"] for s in result]


def _names(db, ids):
    """Person ids → the smallest distinct id of each person (the tests name persons p1, p2, …)."""
    if not ids:
        return set()
    rows = sql(db, "SELECT person_id, min(distinct_id) FROM insights.person_distinct_ids "
                   "WHERE person_id = ANY(%s) GROUP BY person_id", [int(i) for i in ids])
    assert len(rows) == len(ids), (ids, rows)
    return {r[1] for r in rows}


def actors(db, project, query, step, breakdown=None):
    """`insights.funnel_actors` as a set of person names (their smallest distinct id)."""
    ids = [r[0] for r in sql(db, "SELECT a FROM insights.funnel_actors(%s, %s::jsonb, %s, %s::jsonb) a",
                             project["id"], json.dumps(query), step,
                             None if breakdown is None else json.dumps(breakdown))]
    return _names(db, ids)


def people_at(project, url, key=None):
    """Follow a converted_people_url / dropped_people_url as given; the person names it lists."""
    r = api("GET", url, key or project["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    (page,) = body["results"]
    assert page["count"] == len(page["people"])
    return {min(p["distinct_ids"]) for p in page["people"]}


def sql_error(db, project, query):
    """The error `insights.funnel_json` raises for an invalid query (must be SQLSTATE 22023)."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        sql(db, "SELECT insights.funnel_json(%s, %s::jsonb)", project["id"], json.dumps(query))
    return e.value


def assert_invalid(db, project, query, detail_contains):
    """Invalid in SQL (22023) and over HTTP (400, PostHog's validation_error body, same message)."""
    err = sql_error(db, project, query)
    assert detail_contains in err.diag.message_primary, err.diag.message_primary
    field = (err.diag.message_detail or "").removeprefix("field: ").split()[0] if err.diag.message_detail else None
    body = assert_error(funnel_http(project, query), 400, "validation_error", "invalid_input", attr=field)
    assert body["detail"] == err.diag.message_primary
    return body


SIGNUP = "user signed up"

# ---------------------------------------------------------------------------------------------
# Ordered funnels: PostHog's ordered funnel test cases (docs/funnels.md#ordered-funnels)
# ---------------------------------------------------------------------------------------------


def f1_fixture(db, project):
    paid, watched = base_actions(db, project)
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-01 00:00:00"),
        ev("p2", SIGNUP, "2021-05-01 00:00:00"), pay("p2", "2021-05-01 01:00:00"),
        ev("p3", SIGNUP, "2021-05-01 00:00:00"), identify("p3", "p3-anon", "2021-05-01 00:30:00"),
        pay("p3-anon", "2021-05-01 01:00:00"), movie("p3", "2021-05-01 02:00:00"),
        movie("p4", "2021-05-01 00:00:00"),
        pay("p5", "2021-05-01 00:00:00"), ev("p5", SIGNUP, "2021-05-01 01:00:00"), movie("p5", "2021-05-01 02:00:00"),
    ])
    return fq([SIGNUP, action_node(paid), action_node(watched)]), paid, watched


def test_f1_basic_ordered_funnel_with_actions(db, project):
    query, paid, watched = f1_fixture(db, project)
    result = run_funnel(db, project, query, http=True)
    assert counts(result) == [4, 2, 1]
    assert [(s["name"], s["action_id"], s["type"], s["order"]) for s in result] == [
        (SIGNUP, SIGNUP, "events", 0), ("paid", paid, "actions", 1), ("watched movie", watched, "actions", 2)]
    assert result[0]["average_conversion_time"] is None and result[0]["dropped_people_url"] is None
    assert actors(db, project, query, 1) == {"p1", "p2", "p3", "p5"}
    assert actors(db, project, query, 2) == {"p2", "p3"}
    assert actors(db, project, query, 3) == {"p3"}
    assert actors(db, project, query, -2) == {"p1", "p5"}
    assert actors(db, project, query, -3) == {"p2"}


def test_f1_people_urls_over_http(db, project):
    query, _, _ = f1_fixture(db, project)
    r = funnel_http(project, query)
    assert r.status_code == 200, r.text
    steps = r.json()["result"]
    assert [people_at(project, s["converted_people_url"]) for s in steps] == [
        {"p1", "p2", "p3", "p5"}, {"p2", "p3"}, {"p3"}]
    assert steps[0]["dropped_people_url"] is None
    assert [people_at(project, s["dropped_people_url"]) for s in steps[1:]] == [{"p1", "p5"}, {"p2"}]
    # p3 owns both of its distinct ids.
    page = api("GET", steps[2]["converted_people_url"], project["key"]).json()
    assert page["results"][0]["people"][0]["distinct_ids"] == ["p3", "p3-anon"]


def test_funnel_people_pagination(db, project):
    query, _, _ = f1_fixture(db, project)
    url = funnel_sql(db, project, query)[0]["converted_people_url"]
    first = api("GET", url + "&limit=3", project["key"]).json()
    assert first["results"][0]["count"] == 3 and first["previous"] is None
    assert first["next"] is not None and "offset=3" in first["next"]
    second = requests_get_absolute(first["next"], project["key"])
    assert second["results"][0]["count"] == 1 and second["next"] is None
    seen = [min(p["distinct_ids"]) for page in (first, second) for p in page["results"][0]["people"]]
    assert sorted(seen) == ["p1", "p2", "p3", "p5"]


def requests_get_absolute(url, key):
    """`next` links are absolute URLs."""
    r = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_f3_all_events_steps(db, project):
    ingest(db, project, seq("p1", [SIGNUP]) + seq("p2", [SIGNUP, "movie"]) + seq("p3", [SIGNUP, "movie"])
           + seq("p4", ["movie"]) + seq("p5", ["movie", SIGNUP, "movie"]))
    result = run_funnel(db, project, fq([node(None), node(None), node(None)]))
    assert counts(result) == [5, 3, 1]
    assert [(s["name"], s["action_id"]) for s in result] == [("All events", None)] * 3


def test_f5_global_property_filter(db, project):
    paid, _ = base_actions(db, project)
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-01 00:00:00", {"$browser": "Safari"}),
        pay("p1", "2021-05-01 01:00:00", {"$browser": "Safari"}),
        ev("p2", SIGNUP, "2021-05-01 00:00:00"), pay("p2", "2021-05-01 01:00:00"),
        ev("p3", SIGNUP, "2021-05-01 00:00:00", {"$browser": "Safari"}), pay("p3", "2021-05-01 01:00:00"),
    ])
    query = fq([SIGNUP, action_node(paid)], properties=[prop("$browser", "Safari")])
    assert counts(run_funnel(db, project, query, http=True)) == [2, 1]
    assert actors(db, project, query, 2) == {"p1"}


def test_f7_person_property_filter_on_a_step(db, project):
    paid, watched = base_actions(db, project)
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-01 00:00:00", {"$set": {"email": "hello@posthog.com"}}),
        pay("p1", "2021-05-01 01:00:00"), movie("p1", "2021-05-01 02:00:00"),
        ev("p2", SIGNUP, "2021-05-01 00:00:00", {"$set": {"email": "other@example.com"}}),
        pay("p2", "2021-05-01 01:00:00"),
    ])
    query = fq([node(SIGNUP, properties=[prop("email", "hello@posthog.com", type_="person")]),
                action_node(paid), action_node(watched)])
    assert counts(run_funnel(db, project, query)) == [1, 1, 1]


def test_f9_filter_test_accounts(db, project):
    sql(db, "UPDATE insights.projects SET test_account_filters = %s::jsonb WHERE id = %s",
        json.dumps([prop("email", "posthog.com", "not_icontains", "person")]), project["id"])
    ingest(db, project, [
        ev("p1", "event1", "2021-05-01 00:00:00", {"$set": {"email": "test@posthog.com"}}),
        ev("p2", "event1", "2021-05-01 00:00:00"),
    ])
    query = fq(["event1", "event1"], filterTestAccounts=True)
    result = run_funnel(db, project, query)
    assert counts(result) == [1, 0]
    assert actors(db, project, query, 1) == {"p2"}
    assert counts(run_funnel(db, project, fq(["event1", "event1"]))) == [2, 0]


def test_f13_same_event_twice(db, project):
    ingest(db, project, seq("p1", [SIGNUP, SIGNUP]) + seq("p2", [SIGNUP]))
    query = fq([SIGNUP, SIGNUP])
    assert counts(run_funnel(db, project, query, http=True)) == [2, 1]
    assert actors(db, project, query, 2) == {"p1"}


def test_f15_equal_windows_in_other_units(db, project):
    ingest(db, project, seq("p1", ["a", "b", "c"], step=timedelta(seconds=5))
           + seq("p2", ["a", "b"], step=timedelta(seconds=30)) + seq("p3", ["a"]))
    results = [run_funnel(db, project, fq(["a", "b", "c"], **window(n, unit)))
               for n, unit in [(14, "day"), (2, "week"), (1, "hour")]]
    assert counts(results[0]) == [3, 2, 1]
    assert avg_times(results[0]) == [None, 17.5, 5.0]
    assert strip_urls(results[0]) == strip_urls(results[1]) == strip_urls(results[2])


def test_f17_repeated_pageview_steps(db, project):
    pv = "$pageview"
    ingest(db, project, seq("p1", [pv, SIGNUP]) + seq("p2", [SIGNUP, pv])
           + seq("p3", [pv, SIGNUP, "blah", pv]) + seq("p4", ["blah", pv, "blah", pv, SIGNUP, pv])
           + seq("p5", [SIGNUP, pv, "blah", pv, pv, pv]) + seq("p6", [pv, "blah", pv, pv, pv]))
    query = fq([SIGNUP, pv, pv, pv, pv])
    assert counts(run_funnel(db, project, query, http=True)) == [5, 4, 1, 1, 1]
    assert actors(db, project, query, 5) == {"p5"}


def test_f19_same_timestamp_counts_as_in_order(db, project):
    signup = make_action(db, project, "sign up", [{"event": "sign up"}])
    ingest(db, project, [
        ev("p1", "sign up", "2020-01-03 12:00:00", {"key": "val"}), ev("p1", "$pageview", "2020-01-03 12:00:00"),
        ev("p2", "sign up", "2020-01-03 12:00:00", {"key": "val"}),
    ])
    query = fq([action_node(signup), "$pageview"], "2020-01-01", "2020-01-07")
    result = run_funnel(db, project, query)
    assert counts(result) == [2, 1]
    # A 0-second conversion is left out of the average and median (docs/funnels.md#step-results).
    assert result[1]["average_conversion_time"] is None and result[1]["median_conversion_time"] is None
    assert actors(db, project, query, 2) == {"p1"}


def test_f21_step_property_filters(db, project):
    pv, url = "$pageview", "$current_url"

    def v(d, e, t, u=None):
        return ev(d, e, f"2021-05-01 {t}", {url: u} if u else {})

    ingest(db, project, [
        v("p1", SIGNUP, "00:00:00"),
        v("p2", SIGNUP, "00:00:00"), v("p2", pv, "00:01:00", "aloha.com"),
        v("p3", SIGNUP, "00:00:00"), v("p3", pv, "00:01:00", "aloha.com"), v("p3", "blah", "00:02:00", "aloha.com"),
        v("p3", pv, "00:03:00", "aloha2.com"),
        v("p4", SIGNUP, "00:00:00"), v("p4", pv, "00:01:00", "aloha.com"), v("p4", pv, "00:02:00", "aloha2.com"),
        v("p4", pv, "00:03:00", "aloha2.com"), v("p4", "blah", "00:04:00"),
        v("p5", SIGNUP, "00:00:00"), v("p5", pv, "00:01:00", "aloha.com"), v("p5", "blah", "00:02:00"),
        v("p5", pv, "00:03:00", "aloha2.com"), v("p5", pv, "00:04:00", "aloha.com"),
        v("p5", pv, "00:05:00", "aloha2.com"),
    ])
    query = fq([SIGNUP, node(pv, properties=[prop(url, "aloha.com")]), node(pv, properties=[prop(url, "aloha2.com")]),
                node(pv, properties=[prop(url, "aloha2.com")]), node(pv)])
    assert counts(run_funnel(db, project, query)) == [5, 4, 3, 2, 0]
    assert actors(db, project, query, 4) == {"p4", "p5"}


def test_f23_window_in_seconds(db, project):
    events = []
    for i in range(10):
        events += [ev(f"fast{i}", "step one", "2021-05-01 00:00:00"), ev(f"fast{i}", "step two", "2021-05-01 00:00:10")]
    for i in range(15):
        events += [ev(f"slow{i}", "step one", "2021-05-01 00:00:00"), ev(f"slow{i}", "step two", "2021-05-01 00:00:20")]
    ingest(db, project, events)
    result = run_funnel(db, project, fq(["step one", "step two", "step three"], **window(15, "second")), http=True)
    assert counts(result) == [25, 10, 0]
    assert avg_times(result) == [None, 10.0, None]


def test_f25_exclusion_drops_the_person(db, project):
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-01 01:00:00"), ev("p1", "paid", "2021-05-01 02:00:00"),
        ev("p2", SIGNUP, "2021-05-01 03:00:00"), ev("p2", "x", "2021-05-01 03:30:00"), ev("p2", "paid", "2021-05-01 04:00:00"),
        ev("p3", SIGNUP, "2021-05-01 05:00:00"), ev("p3", "x", "2021-05-01 06:00:00"),
        ev("p4", SIGNUP, "2021-05-01 07:00:00"), ev("p4", "x", "2021-05-02 08:00:00"),
    ])
    query = fq([SIGNUP, "paid"], **window(1, "day"), exclusions=[excl("x", 0, 1)])
    result = run_funnel(db, project, query, http=True)
    assert counts(result) == [2, 1]
    assert actors(db, project, query, 1) == {"p1", "p4"}
    assert actors(db, project, query, 2) == {"p1"}
    assert people_at(project, result[1]["dropped_people_url"]) == {"p4"}


@pytest.mark.parametrize("case, times, expected", [
    ("F27", (0, 31, 32), [1, 0]),  # the exclusion is outside the first attempt's window
    ("F28", (0, 1, 2), []),        # both attempts are excluded: nobody is left
])
def test_f27_f28_exclusion_and_restarts(db, project, case, times, expected):
    t0 = datetime(2021, 5, 1)
    ingest(db, project, [ev("u", "step one", t0 + timedelta(seconds=times[0])),
                         ev("u", "step one", t0 + timedelta(seconds=times[1])),
                         ev("u", "exclusion", t0 + timedelta(seconds=times[2]))])
    query = fq(["step one", "step two"], **window(10, "second"), exclusions=[excl("exclusion", 0, 1)])
    assert counts(run_funnel(db, project, query)) == expected


def test_f29_exclusion_is_an_action(db, project):
    signup_kv = make_action(db, project, "sign up with key",
                            [{"event": "sign up", "properties": [prop("key", "val")]}])
    ingest(db, project, seq("p1", [SIGNUP, "paid"]) + seq("p3", [SIGNUP, "paid"]) + [
        ev("p2", SIGNUP, "2021-05-01 00:00:00"), ev("p2", "sign up", "2021-05-01 00:01:00", {"key": "val"}),
        ev("p2", "paid", "2021-05-01 00:02:00"),
    ])
    query = fq([SIGNUP, "paid"], exclusions=[
        {"kind": "FunnelExclusionActionsNode", "id": signup_kv, "funnelFromStep": 0, "funnelToStep": 1}])
    assert counts(run_funnel(db, project, query)) == [2, 2]
    assert actors(db, project, query, 2) == {"p1", "p3"}


def f31_events():
    steps = {"signup": SIGNUP, "pv": "$pageview", "insight": "insight viewed", "invite": "invite teammate",
             "pv2": "pageview2", "x": "x"}

    def person(did, plan):
        return [ev(did, steps[e], f"2021-05-01 {t}:00") for t, e in plan]

    return (
        person("p1", [("01:00", "signup"), ("02:00", "pv"), ("03:00", "x"), ("04:00", "insight"), ("04:30", "x"),
                      ("05:00", "invite"), ("05:30", "x"), ("06:00", "pv2")])
        + person("p2", [("01:00", "signup"), ("02:00", "pv"), ("04:00", "insight"), ("04:30", "x"),
                        ("05:00", "invite"), ("05:30", "x"), ("06:00", "pv2")])
        + person("p3", [("01:00", "signup"), ("01:30", "x"), ("02:00", "pv"), ("04:00", "insight"),
                        ("05:00", "invite"), ("05:30", "x"), ("06:00", "pv2")])
    )


@pytest.mark.parametrize("from_step, to_step, expected, who", [
    (0, 1, [2, 2, 2, 2, 2], {"p1", "p2"}),
    (1, 2, [2, 2, 2, 2, 2], {"p2", "p3"}),
    (2, 3, [1, 1, 1, 1, 1], {"p3"}),
    (3, 4, [], set()),
    (1, 3, [1, 1, 1, 1, 1], {"p3"}),
])
def test_f31_exclusions_between_steps(db, project, from_step, to_step, expected, who):
    ingest(db, project, f31_events())
    query = fq([SIGNUP, "$pageview", "insight viewed", "invite teammate", "pageview2"],
               exclusions=[excl("x", from_step, to_step)])
    assert counts(run_funnel(db, project, query)) == expected
    assert actors(db, project, query, 1) == who
    assert actors(db, project, query, 5) == who


def test_f33_many_identical_first_steps_at_one_instant(db, project):
    ingest(db, project, [ev("test", "step one", "2024-01-10 12:01:00") for _ in range(20)]
           + [ev("test", "step two", "2024-01-11 12:01:00")])
    result = run_funnel(db, project, fq(["step one", "step two"], "2024-01-10", "2024-01-12"))
    assert counts(result) == [1, 1]
    assert avg_times(result) == [None, 86400.0]


def test_f37_range_is_in_project_timezone(db, make_project):
    project = make_project(timezone="US/Pacific")
    ingest(db, project, [ev("p1", SIGNUP, "2020-01-01 01:00:00"), ev("p1", "paid", "2020-01-01 01:30:00")])
    assert run_funnel(db, project, fq([SIGNUP, "paid"], "2020-01-01", "2020-01-14"), http=True) == []
    # The same events on the local day before are counted.
    assert counts(run_funnel(db, project, fq([SIGNUP, "paid"], "2019-12-31", "2020-01-14"))) == [1, 1]


def test_f39_boolean_property_matches_true_string(db, project):
    ingest(db, project, [ev("p", "e1", "2021-05-01 00:00:00", {"is_saved": True}),
                         ev("p", "e2", "2021-05-01 00:01:00", {"is_saved": True}),
                         ev("q", "e1", "2021-05-01 00:00:00", {"is_saved": False})])
    step = node(None, properties=[prop("is_saved", ["true"])])
    assert counts(run_funnel(db, project, fq([step, step]))) == [1, 1]


@pytest.mark.parametrize("timezone", ["UTC", "US/Pacific"])
def test_f41_window_is_absolute_seconds_across_dst(db, make_project, timezone):
    project = make_project(timezone=timezone)
    ingest(db, project, [ev("p", "$pageview", "2024-03-01 15:10:00"), ev("p", "sign up", "2024-03-15 14:27:00")])
    result = run_funnel(db, project, fq(["$pageview", "sign up"], "2024-02-17", "2024-03-18"), http=True)
    assert counts(result) == [1, 1]
    assert result[1]["average_conversion_time"] == result[1]["median_conversion_time"] == 1207020


@pytest.mark.parametrize("breakdown", [None, {"breakdown": "$browser", "breakdown_type": "event"}])
def test_f44_time_to_convert_bins(db, project, breakdown):
    ingest(db, project, [ev("p1", "a", "2021-05-01 00:00:00", {"$browser": "Chrome"}),
                         ev("p1", "b", "2021-05-01 00:01:00", {"$browser": "Chrome"}),
                         ev("p2", "a", "2021-05-01 00:00:00", {"$browser": "Safari"}),
                         ev("p2", "b", "2021-05-01 00:06:00", {"$browser": "Safari"}),
                         ev("p3", "a", "2021-05-01 00:00:00")])
    query = fq(["a", "b"], funnelVizType="time_to_convert", **({"breakdownFilter": breakdown} if breakdown else {}))
    result = run_funnel(db, project, query, http=True)
    # Time to convert ignores the breakdown (F44).
    assert result == {"bins": [[60, 1], [210, 0], [360, 1]], "average_conversion_time": 210.0}


@pytest.mark.parametrize("second_first_time, expected", [(False, [1, 1]), (True, [1, 0])])
def test_f45_first_time_for_user(db, project, second_first_time, expected):
    ingest(db, project, [ev("p", "$pageview", "2021-05-01 13:46:00"), ev("p", "$pageview", "2021-05-01 13:47:00")])
    first = node("$pageview", math="first_time_for_user")
    query = fq([first, first if second_first_time else node("$pageview")])
    assert counts(run_funnel(db, project, query)) == expected


@pytest.mark.parametrize("from_step, to_step", [(0, 1), (1, 2)])
def test_f47_exclusions_ignored_inside_a_same_timestamp_group(db, project, from_step, to_step):
    ingest(db, project, [ev("u", "step zero", "2021-05-01 12:00:00")]
           + [ev("u", "step one", "2021-05-01 12:01:00") for _ in range(30)]
           + [ev("u", "exclusion", "2021-05-01 12:01:00"), ev("u", "step two", "2021-05-01 12:01:00"),
              ev("u", "step three", "2021-05-01 12:02:00")])
    query = fq(["step zero", "step one", "step two", "step three"],
               exclusions=[excl("exclusion", from_step, to_step)])
    assert counts(run_funnel(db, project, query))[-1] == 1


@pytest.mark.parametrize("date_from, expected", [("2024-03-22", [2, 1]), ("2023-03-22", [3, 1])])
def test_f49_first_time_for_user_looks_at_all_history(db, project, date_from, expected):
    pv = "$pageview"
    ingest(db, project, [
        ev("anon_1", pv, "2023-03-22 13:00:00"),
        identify("user_1", "anon_1", "2024-03-22 12:00:00"),
        ev("user_1", pv, "2024-03-22 13:00:00"), ev("user_1", pv, "2024-03-22 14:00:00"),
        ev("anon_2", pv, "2024-03-22 13:00:00"), identify("user_2", "anon_2", "2024-03-22 13:30:00"),
        ev("user_2", pv, "2024-03-22 14:00:00"),
        ev("p3", pv, "2024-03-22 15:00:00"),
    ])
    query = fq([node(pv, math="first_time_for_user"), node(pv)], date_from, "2024-03-22")
    assert counts(run_funnel(db, project, query)) == expected
    assert actors(db, project, query, 2) == {"anon_2"}


def test_f51_personless_events(db, project):
    for event, ts in [("$pageview", "2021-05-01 13:00:00+00"), ("sign up", "2021-05-01 14:00:00+00")]:
        sql(db, "INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, \"timestamp\") "
                "VALUES (%s, %s, %s, 'ghost', -424242, %s)", project["id"], uuid.uuid4(), event, ts)
    result = run_funnel(db, project, fq(["$pageview", "sign up"]))
    assert counts(result) == [1, 1]
    assert avg_times(result) == [None, 3600.0]


def test_f53_exclusion_after_the_window_then_a_new_attempt(db, project):
    t0 = datetime(2021, 5, 1)
    ingest(db, project, [ev("u", e, t0 + timedelta(seconds=s)) for e, s in
                         [("step one", 0), ("exclusion", 11), ("step one", 12), ("exclusion", 13), ("step two", 14)]])
    query = fq(["step one", "step two"], **window(10, "second"), exclusions=[excl("exclusion", 0, 1)])
    assert run_funnel(db, project, query) == []


def test_f51_personless_actor_is_counted_as_missing_person(db, project):
    for event, ts in [("$pageview", "2021-05-01 13:00:00+00"), ("sign up", "2021-05-01 14:00:00+00")]:
        sql(db, "INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, \"timestamp\") "
                "VALUES (%s, %s, %s, 'ghost', -424242, %s)", project["id"], uuid.uuid4(), event, ts)
    url = funnel_sql(db, project, fq(["$pageview", "sign up"]))[1]["converted_people_url"]
    body = api("GET", url, project["key"]).json()
    assert body["results"][0]["people"] == []
    assert body["missing_persons"] == 1


def test_f57_group_aggregation(db, project):
    def g(org):
        return {"$groups": {"organization": org}}

    ingest(db, project, [
        ev("u1", SIGNUP, "2020-01-02 14:00:00", g("org:5")), ev("u1", SIGNUP, "2020-01-10 14:00:00", g("org:6")),
        ev("u2", "paid", "2020-01-03 14:00:00", g("org:5")),
    ])
    query = fq([SIGNUP, "paid"], "2020-01-01", "2020-01-14", aggregation_group_type_index=0)
    result = run_funnel(db, project, query, http=True)
    assert counts(result) == [2, 1]
    assert avg_times(result) == [None, 86400.0]
    ids = {r[0] for r in sql(db, "SELECT insights.funnel_actors(%s, %s::jsonb, 2)", project["id"], json.dumps(query))}
    assert ids == {"org:5"}


def test_f57_group_actors_over_http(db, project):
    g5 = {"$groups": {"organization": "org:5"}}
    ingest(db, project, [ev("u1", SIGNUP, "2020-01-02 14:00:00", g5), ev("u2", "paid", "2020-01-03 14:00:00", g5)])
    query = fq([SIGNUP, "paid"], "2020-01-01", "2020-01-14", aggregation_group_type_index=0)
    r = api("GET", funnel_sql(db, project, query)[1]["converted_people_url"], project["key"])
    assert r.status_code == 200, r.text
    assert [(a["type"], a["group_key"]) for a in r.json()["results"][0]["people"]] == [("group", "org:5")]


def test_f59_group_aggregation_ignores_events_without_the_group(db, project):
    g5 = {"$groups": {"organization": "org:5"}}
    ingest(db, project, [
        ev("u1", SIGNUP, "2020-01-02 14:00:00", g5), ev("u1", "paid", "2020-01-03 14:00:00"),
        ev("u1", "paid", "2020-01-04 14:00:00", g5),
        ev("u2", SIGNUP, "2020-01-02 14:00:00"), ev("u2", "paid", "2020-01-03 14:00:00"),
    ])
    query = fq([SIGNUP, "paid"], "2020-01-01", "2020-01-14", aggregation_group_type_index=0)
    result = run_funnel(db, project, query)
    assert counts(result) == [1, 1]
    assert avg_times(result) == [None, 2 * 86400.0]


# ---------------------------------------------------------------------------------------------
# Strict funnels: PostHog's strict funnel test cases (docs/funnels.md#strict-funnels)
# ---------------------------------------------------------------------------------------------


def test_fs1_strict_order(db, project):
    pv, ins = "$pageview", "insight viewed"
    ingest(db, project, seq("p1", [SIGNUP]) + seq("p2", [pv, SIGNUP]) + seq("p3", [SIGNUP, pv, "blah", ins])
           + seq("p4", [ins, "blah", pv, SIGNUP]) + seq("p5", [pv, SIGNUP, "blah", pv, ins])
           + seq("p6", ["blah", SIGNUP, "blah", pv]) + seq("p7", ["blah", SIGNUP, pv, ins, "blah"])
           + seq("p8", [ins, pv]))
    query = fq([SIGNUP, pv, ins], funnelOrderType="strict")
    result = run_funnel(db, project, query, http=True)
    assert counts(result) == [7, 2, 1]
    assert actors(db, project, query, 2) == {"p3", "p7"}
    assert actors(db, project, query, 3) == {"p7"}
    assert people_at(project, result[1]["converted_people_url"]) == {"p3", "p7"}


def test_fs3_strict_conversion_times(db, project):
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-02 00:00:00"),
        ev("p2", SIGNUP, "2021-05-02 00:00:00"), ev("p2", "$pageview", "2021-05-02 01:00:00"),
        ev("p3", SIGNUP, "2021-05-02 00:00:00"), ev("p3", "$pageview", "2021-05-02 02:00:00"),
        ev("p3", "insight viewed", "2021-05-02 04:00:00"),
    ])
    result = run_funnel(db, project, fq([SIGNUP, "$pageview", "insight viewed"], funnelOrderType="strict"))
    assert counts(result) == [3, 2, 1]
    assert avg_times(result) == [None, 5400.0, 7200.0]


# ---------------------------------------------------------------------------------------------
# Unordered funnels: PostHog's unordered funnel test cases (docs/funnels.md#unordered-funnels)
# ---------------------------------------------------------------------------------------------


def test_u1_unordered_breakdown_all_events(db, project):
    ingest(db, project, [
        ev("p1", "sign up", "2020-01-01 12:00:00", {"$browser": "Chrome"}),
        ev("p1", "sign up", "2020-01-02 13:00:00", {"$browser": "Safari"}),
        ev("p1", "play movie", "2020-01-02 14:00:00", {"$browser": "Safari"}),
    ])
    query = fq(["sign up", "play movie"], "2020-01-01", "2020-01-08", **window(7, "day"), funnelOrderType="unordered",
               breakdownAttributionType="all_events", breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"})
    result = run_funnel(db, project, query, http=True)
    assert series_by_breakdown(result) == {("Safari",): [1, 1], ("Chrome",): [1, 0]}
    keys = ["action_id", "name", "custom_name", "order", "count", "type", "average_conversion_time",
            "median_conversion_time", "breakdown", "breakdown_value"]
    assert [{k: s[k] for k in keys} for s in series_named(result, ["Safari"])] == [
        {"action_id": None, "name": "Completed 1 step", "custom_name": None, "order": 0, "count": 1, "type": "events",
         "average_conversion_time": None, "median_conversion_time": None,
         "breakdown": ["Safari"], "breakdown_value": ["Safari"]},
        {"action_id": None, "name": "Completed 2 steps", "custom_name": None, "order": 1, "count": 1, "type": "events",
         "average_conversion_time": 3600.0, "median_conversion_time": 3600.0,
         "breakdown": ["Safari"], "breakdown_value": ["Safari"]},
    ]


def u3_fixture(db, project):
    pv, ins = "$pageview", "insight viewed"
    ingest(db, project, seq("p1", [SIGNUP]) + seq("p2", [pv, SIGNUP]) + seq("p3", [SIGNUP, pv, "blah", ins])
           + seq("p4", [ins, pv, SIGNUP]) + seq("p5", [pv, SIGNUP, "blah", ins]) + seq("p6", ["blah", ins])
           + seq("p7", [pv, "blah"]) + seq("p8", [ins, pv]))
    return fq([SIGNUP, pv, ins], funnelOrderType="unordered")


def test_u3_unordered_counts_names_and_actors(db, project):
    query = u3_fixture(db, project)
    result = run_funnel(db, project, query, http=True)
    assert counts(result) == [8, 5, 3]
    assert [s["name"] for s in result] == ["Completed 1 step", "Completed 2 steps", "Completed 3 steps"]
    assert [s["action_id"] for s in result] == [None, None, None]
    assert actors(db, project, query, 2) == {"p2", "p3", "p4", "p5", "p8"}
    assert actors(db, project, query, 3) == {"p3", "p4", "p5"}
    assert actors(db, project, query, -2) == {"p1", "p6", "p7"}
    assert actors(db, project, query, -3) == {"p2", "p8"}


def test_u3_unordered_people_urls_over_http(db, project):
    r = funnel_http(project, u3_fixture(db, project))
    assert r.status_code == 200, r.text
    steps = r.json()["result"]
    assert people_at(project, steps[1]["dropped_people_url"]) == {"p1", "p6", "p7"}
    assert people_at(project, steps[2]["dropped_people_url"]) == {"p2", "p8"}
    assert people_at(project, steps[2]["converted_people_url"]) == {"p3", "p4", "p5"}


def test_u5_unordered_conversion_times_first_complete_conversion(db, project):
    pv, ins = "$pageview", "insight viewed"
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-02 00:00:00"),
        ev("p2", pv, "2021-05-02 00:00:00"), ev("p2", SIGNUP, "2021-05-02 01:00:00"),
        ev("p3", ins, "2021-05-02 00:00:00"), ev("p3", SIGNUP, "2021-05-02 02:00:00"), ev("p3", pv, "2021-05-02 04:00:00"),
        ev("p3", pv, "2021-05-03 00:00:00"), ev("p3", ins, "2021-05-03 03:00:00"), ev("p3", SIGNUP, "2021-05-03 06:00:00"),
    ])
    query = fq([SIGNUP, pv, ins], "2021-05-01", "2021-05-07", **window(1, "day"), funnelOrderType="unordered")
    result = run_funnel(db, project, query)
    assert counts(result) == [3, 2, 1]
    assert avg_times(result) == [None, 5400.0, 7200.0]


def test_u7_unordered_exclusion_clears_progress(db, project):
    ingest(db, project, [
        ev("p1", SIGNUP, "2021-05-01 01:00:00"), ev("p1", "paid", "2021-05-01 02:00:00"),
        ev("p2", SIGNUP, "2021-05-01 03:00:00"), ev("p2", "x", "2021-05-01 03:30:00"), ev("p2", "paid", "2021-05-01 04:00:00"),
        ev("p3", SIGNUP, "2021-05-01 05:00:00"), ev("p3", "paid", "2021-05-01 06:00:00"),
    ])
    query = fq([SIGNUP, "paid"], funnelOrderType="unordered", exclusions=[excl("x", 0, 1)])
    assert counts(run_funnel(db, project, query, http=True)) == [3, 2]
    assert actors(db, project, query, 2) == {"p1", "p3"}
    assert actors(db, project, query, -2) == {"p2"}


def test_u9_unordered_two_exclusions(db, project):
    names = {"signup": SIGNUP, "pv": "$pageview", "insight": "insight viewed", "invite": "invite teammate",
             "pv2": "pageview2", "x": "x", "y": "y"}

    def person(did, plan):
        return [ev(did, names[e], f"2021-05-01 {t}:00") for t, e in plan]

    ingest(db, project,
           person("p1", [("01:00", "signup"), ("02:00", "x"), ("03:00", "pv"), ("04:00", "insight"), ("04:30", "y"),
                         ("05:00", "invite"), ("06:00", "pv2")])
           + person("p2", [("01:00", "signup"), ("01:30", "y"), ("02:00", "pv"), ("04:00", "insight"), ("04:30", "y"),
                           ("05:00", "invite"), ("05:30", "x"), ("06:00", "pv2")])
           + person("p3", [("01:00", "signup"), ("01:30", "x"), ("02:00", "pv"), ("04:00", "insight"),
                           ("05:00", "invite"), ("05:30", "x"), ("06:00", "pv2")])
           + person("p4", [("01:00", "signup"), ("02:00", "pv"), ("04:00", "insight"), ("05:00", "invite"),
                           ("06:00", "pv2")])
           + person("p5", [("01:00", "signup"), ("01:30", "x"), ("02:00", "pv"), ("02:30", "x"), ("04:00", "insight"),
                           ("04:30", "y"), ("05:00", "invite"), ("05:30", "x"), ("06:00", "pv2")]))
    query = fq([SIGNUP, "$pageview", "insight viewed", "invite teammate", "pageview2"], funnelOrderType="unordered",
               exclusions=[excl("x", 0, 4), excl("y", 0, 4)])
    assert counts(run_funnel(db, project, query)) == [5, 2, 1, 1, 1]
    assert actors(db, project, query, 2) == {"p1", "p4"}
    assert actors(db, project, query, 3) == actors(db, project, query, 5) == {"p4"}


def test_u11_unordered_same_event_with_different_filters(db, project):
    ingest(db, project, [ev("p", "usu", "2021-05-01 00:00:00", {"prop_a": "some value"}),
                         ev("p", "usu", "2021-05-01 00:01:00", {"prop_b": "another value"})])
    query = fq([node("usu", properties=[prop("prop_a", "some value")]),
                node("usu", properties=[prop("prop_b", "another", "icontains")])], funnelOrderType="unordered")
    assert counts(run_funnel(db, project, query)) == [1, 1]


def u13_fixture(db, project):
    ingest(db, project, [
        ev("u1", "s1", "2024-03-01 10:00:00"), ev("u1", "s2", "2024-03-01 11:00:00"),
        ev("u1", "excl", "2024-03-01 12:00:00"), ev("u1", "s3", "2024-03-01 13:00:00"),
        ev("u2", "s1", "2024-03-01 10:00:00"), ev("u2", "s2", "2024-03-01 11:00:00"), ev("u2", "s3", "2024-03-01 12:00:00"),
    ])
    return dict(date_from="2024-03-01", date_to="2024-03-01", **window(6, "hour"), funnelOrderType="unordered",
                exclusions=[excl("excl", 0, 2)])


def test_u13_unordered_exclusion_steps_viz(db, project):
    kw = u13_fixture(db, project)
    assert counts(run_funnel(db, project, fq(["s1", "s2", "s3"], **kw))) == [2, 1, 1]


def test_u13_unordered_exclusion_trends_viz(db, project):
    kw = u13_fixture(db, project)
    result = run_funnel(db, project, fq(["s1", "s2", "s3"], **kw, funnelVizType="trends", funnelToStep=1), http=True)
    assert len(result) == 1
    assert result[0]["count"] == 1 and result[0]["data"] == [50.0] and result[0]["days"] == ["2024-03-01"]
    assert result[0]["labels"] == ["1-Mar-2024"]


def u17_events():
    start = datetime(2024, 12, 1, 10, 0)
    days = {"user_1": range(31),
            "user_2": [i + j for i in range(0, 31, 7) for j in range(0, 7, 3)],
            "user_3": [i + j for i in range(0, 31, 7) for j in range(0, 7, 4)],
            "user_4": range(0, 31, 7),
            "user_5": range(0, 31, 14)}
    events = [ev(u, "event 3", start + timedelta(days=d)) for u, ds in days.items() for d in ds]
    for u in days:
        events += [ev(u, "event 1", start + timedelta(days=30, hours=1)), ev(u, "event 2", start + timedelta(days=30, hours=2))]
    return events


@pytest.mark.parametrize("interval, days, entered", [
    ("month", ["2024-12-01"], [5]),
    ("week", ["2024-12-01", "2024-12-08", "2024-12-15", "2024-12-22", "2024-12-29"], [5, 4, 5, 4, 5]),
])
def test_u17_unordered_trends_by_week_and_month(db, project, interval, days, entered):
    ingest(db, project, u17_events())
    query = fq(["event 1", "event 2", "event 3"], "2024-12-01", "2024-12-31", **window(40, "day"),
               funnelOrderType="unordered", funnelVizType="trends", interval=interval)
    (series,) = run_funnel(db, project, query)
    assert series["days"] == days and series["count"] == len(days)
    assert series["labels"] == [datetime.fromisoformat(d).strftime("%-d-%b-%Y") for d in days]
    assert series["entered_count"] == entered and series["converted_count"] == entered
    assert series["data"] == [100.0] * len(days)


# ---------------------------------------------------------------------------------------------
# Conversion times: PostHog's conversion time test cases (docs/funnels.md#step-results)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["ordered", "strict", "unordered"])
def test_c1_conversion_time_of_the_completed_attempt(db, project, order):
    ingest(db, project, [
        ev("p", SIGNUP, "2021-05-01 01:00:00"), ev("p", "$pageview", "2021-05-01 02:00:00"),
        ev("p", "something else", "2021-05-01 03:00:00"),
        ev("p", SIGNUP, "2021-05-03 04:00:00"), ev("p", "$pageview", "2021-05-03 05:00:00"),
        ev("p", SIGNUP, "2021-05-04 07:00:00"), ev("p", "$pageview", "2021-05-04 10:00:00"),
    ])
    query = fq([SIGNUP, "$pageview", "something else"], **window(1, "day"), funnelOrderType=order)
    result = run_funnel(db, project, query)
    assert counts(result) == [1, 1, 1]
    assert result[1]["average_conversion_time"] == result[1]["median_conversion_time"] == 3600


@pytest.mark.parametrize("win, expected, avg, step2", [
    (window(14, "day"), [3, 2], 600.0, {"p1", "p3"}),
    (window(5, "minute"), [3, 1], 300.0, {"p1"}),
])
def test_c3_window_boundary_is_inclusive(db, project, win, expected, avg, step2):
    ingest(db, project, [
        ev("p1", SIGNUP, "2020-01-02 14:00:00"), ev("p1", "$pageview", "2020-01-02 14:05:00"),
        ev("p2", SIGNUP, "2020-01-02 14:03:00"),
        ev("p3", SIGNUP, "2020-01-02 12:00:00"), ev("p3", "$pageview", "2020-01-02 12:15:00"),
    ])
    query = fq([SIGNUP, "$pageview"], "2020-01-01", "2020-01-14", **win)
    result = run_funnel(db, project, query, http=True)
    assert counts(result) == expected and result[1]["average_conversion_time"] == avg
    assert actors(db, project, query, 2) == step2


def test_c2_average_and_median(db, project):
    ingest(db, project, [
        ev("p1", "sign up", "2020-01-01 12:00:00"), ev("p1", "play movie", "2020-01-01 13:00:00"),
        ev("p1", "buy", "2020-01-01 15:00:00"),
        ev("p2", "sign up", "2020-01-02 14:00:00"), ev("p2", "play movie", "2020-01-02 16:00:00"),
        ev("p3", "sign up", "2020-01-02 14:00:00"), ev("p3", "play movie", "2020-01-02 16:00:00"),
        ev("p3", "buy", "2020-01-02 17:00:00"),
    ])
    result = run_funnel(db, project, fq(["sign up", "play movie", "buy"], "2020-01-01", "2020-01-08"))
    assert counts(result) == [3, 3, 2]
    assert avg_times(result) == [None, 6000.0, 5400.0]
    assert median_times(result) == [None, 7200.0, 5400.0]


# ---------------------------------------------------------------------------------------------
# Breakdowns: PostHog's funnel breakdown test cases (docs/funnels.md#breakdowns-and-attribution)
# ---------------------------------------------------------------------------------------------


def test_b1_multi_property_breakdown(db, project):
    def b(did, name, ts, browser, version):
        return ev(did, name, ts, {"$browser": browser, "$browser_version": version})

    ingest(db, project, [
        b("p1", "sign up", "2020-01-01 12:00:00", "Chrome", 95), b("p1", "play movie", "2020-01-01 13:00:00", "Chrome", 95),
        b("p1", "buy", "2020-01-01 15:00:00", "Chrome", 95),
        b("p2", "sign up", "2020-01-02 14:00:00", "Safari", 15), b("p2", "play movie", "2020-01-02 16:00:00", "Safari", 15),
        b("p3", "sign up", "2020-01-02 14:00:00", "Safari", 14),
    ])
    query = fq(["sign up", "play movie", "buy"], "2020-01-01", "2020-01-08", breakdownFilter={"breakdowns": [
        {"property": "$browser", "type": "event"}, {"property": "$browser_version", "type": "event"}]})
    result = run_funnel(db, project, query, http=True)
    assert series_by_breakdown(result) == {
        ("Chrome", "95"): [1, 1, 1], ("Safari", "14"): [1, 0, 0], ("Safari", "15"): [1, 1, 0]}
    assert avg_times(series_named(result, ["Chrome", "95"])) == [None, 3600.0, 7200.0]
    assert avg_times(series_named(result, ["Safari", "15"]))[1] == 7200.0


def b3_query_and_events():
    events = []
    for n in range(1, 10):
        for i in range(n):
            events += seq(f"v{n}-{i}", ["step one", "step two", "step three"])
            for e in events[-3:]:
                e["properties"]["some_breakdown_val"] = str(n)
    query = fq(["step one", "step two", "step three"],
               breakdownFilter={"breakdown": "some_breakdown_val", "breakdown_type": "event", "breakdown_limit": 5})
    return query, events


def test_b3_breakdown_limit_counts(db, project):
    query, events = b3_query_and_events()
    ingest(db, project, events)
    result = run_funnel(db, project, query)
    by_bd = series_by_breakdown(result)
    assert len(by_bd) == 6
    for n in range(5, 10):
        assert by_bd[(str(n),)] == [n, n, n]
    (other,) = [v for k, v in by_bd.items() if k not in {(str(n),) for n in range(5, 10)}]
    assert other == [10, 10, 10]


def test_b3_other_series_is_labelled_other(db, project):
    query, events = b3_query_and_events()
    ingest(db, project, events)
    result = run_funnel(db, project, query)
    assert set(series_by_breakdown(result)) == {("5",), ("6",), ("7",), ("8",), ("9",), ("Other",)}


def test_b5_step_zero_attribution_one_person_in_several_series(db, project):
    ingest(db, project, [ev("p", "sign up", f"2020-01-01 12:0{i}:00", {"$browser": b})
                         for i, b in enumerate(["Chrome", "Safari", "Mac", 0])])
    query = fq(["sign up", "other event"], "2020-01-01", "2020-01-08", breakdownAttributionType="step",
               breakdownAttributionValue=0, breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"})
    assert series_by_breakdown(run_funnel(db, project, query)) == {
        ("0",): [1, 0], ("Chrome",): [1, 0], ("Mac",): [1, 0], ("Safari",): [1, 0]}


def b7_run(db, project):
    """B7: one person in a static cohort; the cohort breakdown ["all", id]."""
    ingest(db, project, [ev("p1", "sign up", "2020-01-01 12:00:00"), ev("p2", "other", "2020-01-01 12:00:00")])
    cohort = sql(db, "INSERT INTO insights.cohorts (project_id, name, is_static) VALUES (%s, 'test_cohort', true) "
                     "RETURNING id", project["id"])[0][0]
    sql(db, "INSERT INTO insights.cohort_people (cohort_id, person_id) SELECT %s, person_id "
            "FROM insights.person_distinct_ids WHERE project_id = %s AND distinct_id = 'p1'", cohort, project["id"])
    query = fq(["sign up", "other event"], "2020-01-01", "2020-01-08",
               breakdownFilter={"breakdown": ["all", cohort], "breakdown_type": "cohort"})
    return query, run_funnel(db, project, query, http=True), cohort


def test_b7_cohort_breakdown(db, project):
    _, result, cohort = b7_run(db, project)
    got = sorted((s[0]["breakdown"], s[0]["breakdown_value"], counts(s)) for s in result)
    assert got == sorted([("all users", 0, [1, 0]), ("test_cohort", cohort, [1, 0])])


def test_b7_cohort_breakdown_actors(db, project):
    query, result, cohort = b7_run(db, project)
    assert actors(db, project, query, 1, 0) == {"p1"}
    assert actors(db, project, query, 1, cohort) == {"p1"}
    assert [people_at(project, s[0]["converted_people_url"]) for s in result] == [{"p1"}, {"p1"}]


def b9_events(with_p5=True):
    events = [
        ev("p1", "sign up", "2020-01-01 12:00:00", {"$browser": "Chrome"}), ev("p1", "buy", "2020-01-01 13:00:00"),
        ev("p2", "sign up", "2020-01-01 13:00:00"), ev("p2", "buy", "2020-01-02 13:00:00", {"$browser": "Safari"}),
        ev("p3", "sign up", "2020-01-02 14:00:00", {"$browser": "Mac"}), ev("p3", "buy", "2020-01-02 15:00:00"),
        ev("p4", "sign up", "2020-01-02 15:00:00", {"$browser": 0}),
        ev("p4", "buy", "2020-01-02 16:00:00", {"$browser": "alakazam"}),
    ]
    if with_p5:
        events += [ev("p5", "sign up", "2020-01-02 15:00:00"), ev("p5", "buy", "2020-01-02 16:00:00")]
    return events


def b9_query(**kw):
    return fq(["sign up", "buy"], "2020-01-01", "2020-01-08",
              breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"}, **kw)


def test_b9_first_touch_takes_the_first_non_null_value(db, project):
    ingest(db, project, b9_events())
    query = b9_query(breakdownAttributionType="first_touch")
    result = run_funnel(db, project, query, http=True)
    assert series_by_breakdown(result) == {
        ("",): [1, 1], ("0",): [1, 1], ("Chrome",): [1, 1], ("Mac",): [1, 1], ("Safari",): [1, 1]}
    assert {tuple(s[0]["breakdown_value"]): s[1]["average_conversion_time"] for s in result} == {
        ("",): 3600.0, ("0",): 3600.0, ("Chrome",): 3600.0, ("Mac",): 3600.0, ("Safari",): 86400.0}
    assert actors(db, project, query, 2, ["Safari"]) == {"p2"}
    assert actors(db, project, query, 1, [""]) == {"p5"}
    safari = series_named(result, ["Safari"])
    assert people_at(project, safari[1]["converted_people_url"]) == {"p2"}
    assert people_at(project, series_named(result, ["Chrome"])[0]["converted_people_url"]) == {"p1"}


def test_b11_step_zero_attribution(db, project):
    ingest(db, project, b9_events(with_p5=False))
    result = run_funnel(db, project, b9_query(breakdownAttributionType="step", breakdownAttributionValue=0))
    assert series_by_breakdown(result) == {("",): [1, 1], ("0",): [1, 1], ("Chrome",): [1, 1], ("Mac",): [1, 1]}
    assert series_named(result, [""])[1]["average_conversion_time"] == 86400.0


def test_b13_group_property_breakdown(db, project):
    def grp(did, key, industry, ts):
        return ev(did, "$groupidentify", ts, {"$group_type": "organization", "$group_key": key,
                                             "$group_set": {"industry": industry}})

    def e(did, name, ts, org):
        return ev(did, name, ts, {"$groups": {"organization": org}})

    ingest(db, project, [
        grp("p1", "org:5", "finance", "2020-01-01 00:00:00"), grp("p2", "org:6", "technology", "2020-01-01 00:00:00"),
        e("p1", "sign up", "2020-01-01 12:00:00", "org:5"), e("p1", "play movie", "2020-01-01 13:00:00", "org:5"),
        e("p1", "buy", "2020-01-01 15:00:00", "org:5"),
        e("p2", "sign up", "2020-01-02 14:00:00", "org:6"), e("p2", "play movie", "2020-01-02 16:00:00", "org:6"),
        e("p3", "sign up", "2020-01-02 14:00:00", "org:6"),
    ])
    query = fq(["sign up", "play movie", "buy"], "2020-01-01", "2020-01-08", breakdownFilter={
        "breakdown": "industry", "breakdown_type": "group", "breakdown_group_type_index": 0})
    result = run_funnel(db, project, query, http=True)
    assert series_by_breakdown(result) == {"finance": [1, 1, 1], "technology": [2, 1, 0]}
    assert avg_times(series_named(result, "finance")) == [None, 3600.0, 7200.0]
    assert avg_times(series_named(result, "technology")) == [None, 7200.0, None]


@pytest.mark.parametrize("attribution, expected", [
    ({"breakdownAttributionType": "first_touch"}, {("Chrome",): [1, 1, 1]}),
    ({"breakdownAttributionType": "all_events"}, {("Chrome",): [1, 1, 1]}),
    ({"breakdownAttributionType": "step", "breakdownAttributionValue": 0}, {("Chrome",): [1, 1, 1]}),
    ({"breakdownAttributionType": "step", "breakdownAttributionValue": 1},
     {("Safari",): [1, 1, 1], ("Chrome",): [1, 1, 1]}),
    ({"breakdownAttributionType": "step", "breakdownAttributionValue": 2}, {("Chrome",): [1, 1, 1]}),
], ids=["first_touch", "all_events", "step0", "step1", "step2"])
def test_f55_breakdown_attribution_variants(db, project, attribution, expected):
    t0 = datetime(2021, 5, 1)
    ingest(db, project, [ev("u", e, t0 + timedelta(seconds=s), {"$browser": b}) for e, s, b in
                         [("one", 0, "Chrome"), ("two", 1, "Safari"), ("two", 2, "Chrome"), ("three", 3, "Chrome")]])
    query = fq(["one", "two", "three"], **window(30, "second"), **attribution,
               breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"})
    assert series_by_breakdown(run_funnel(db, project, query)) == expected


# ---------------------------------------------------------------------------------------------
# More of docs/funnels.md: ranges, attribution, names, aggregation, funnel trends
# ---------------------------------------------------------------------------------------------


def test_every_step_must_be_inside_the_range_and_explicit_date(db, project):
    ingest(db, project, [
        ev("a1", SIGNUP, "2021-05-20 23:00:00"), ev("a1", "paid", "2021-05-21 01:00:00"),  # paid after date_to
        ev("a2", SIGNUP, "2021-05-20 10:00:00"), ev("a2", "paid", "2021-05-20 23:59:59"),
        ev("a3", SIGNUP, "2021-05-01 00:00:00"),
    ])
    assert counts(run_funnel(db, project, fq([SIGNUP, "paid"]))) == [3, 1]
    # A datetime date_to is snapped to the end of its day, unless explicitDate.
    assert counts(run_funnel(db, project, fq([SIGNUP, "paid"], date_to="2021-05-20 12:00:00"))) == [3, 1]
    explicit = fq([SIGNUP, "paid"], date_to="2021-05-20 12:00:00")
    explicit["dateRange"]["explicitDate"] = True
    assert counts(run_funnel(db, project, explicit)) == [2, 0]


def test_last_touch_attribution(db, project):
    ingest(db, project, b9_events())
    result = run_funnel(db, project, b9_query(breakdownAttributionType="last_touch"))
    assert series_by_breakdown(result) == {
        ("",): [1, 1], ("Chrome",): [1, 1], ("Mac",): [1, 1], ("Safari",): [1, 1], ("alakazam",): [1, 1]}


def test_step_names_custom_names_and_ignored_math(db, project):
    ingest(db, project, b9_events())
    result = run_funnel(db, project, fq([node("sign up", custom_name="Signed up", math="dau"), node("buy", name="Bought")],
                                        "2020-01-01", "2020-01-08"))
    assert [(s["name"], s["custom_name"], s["count"]) for s in result] == [
        ("sign up", "Signed up", 5), ("Bought", None, 5)]
    assert set(result[1]) == {"action_id", "name", "custom_name", "order", "type", "count", "people",
                              "average_conversion_time", "median_conversion_time", "converted_people_url",
                              "dropped_people_url"}
    assert result[1]["people"] == []


def test_aggregate_by_session(db, project):
    def s(did, e, ts, sid):
        return ev(did, e, ts, {"$session_id": sid})

    ingest(db, project, [s("x", "a", "2021-05-01 00:00:00", "s1"), s("x", "b", "2021-05-01 00:01:00", "s1"),
                         s("x", "a", "2021-05-01 01:00:00", "s2"), s("y", "a", "2021-05-01 01:00:00", "s3")])
    query = fq(["a", "b"], funnelAggregateByHogQL="properties.$session_id")
    assert counts(run_funnel(db, project, query)) == [3, 1]
    assert counts(run_funnel(db, project, fq(["a", "b"]))) == [2, 1]


@pytest.mark.parametrize("window_keys, expected", [
    ({"funnel_window_interval": 5, "funnel_window_interval_unit": "minute"}, [3, 1]),
    ({"funnel_window_interval": 5, "funnel_window_interval_type": "MINUTES"}, [3, 1]),
    ({"funnel_window_interval": 1, "funnel_window_interval_type": "Hours"}, [3, 2]),
    ({"funnel_window_days": 1}, [3, 2]),
    ({}, [3, 2]),
])
def test_legacy_window_unit_spellings(db, project, window_keys, expected):
    ingest(db, project, [
        ev("p1", SIGNUP, "2020-01-02 14:00:00"), ev("p1", "$pageview", "2020-01-02 14:05:00"),
        ev("p2", SIGNUP, "2020-01-02 14:03:00"),
        ev("p3", SIGNUP, "2020-01-02 12:00:00"), ev("p3", "$pageview", "2020-01-02 12:15:00"),
    ])
    legacy = {"insight": "FUNNELS", "date_from": "2020-01-01", "date_to": "2020-01-14",
              "events": [{"id": SIGNUP, "order": 0}, {"id": "$pageview", "order": 1}], **window_keys}
    assert counts(funnel_sql(db, project, legacy)) == expected
    r = funnel_http(project, legacy, method="GET")
    assert r.status_code == 200, r.text
    assert counts(r.json()["result"]) == expected


def funnel_trends_fixture(db, project):
    ingest(db, project, [
        ev("c1", "a", "2021-05-01 10:00:00", {"$browser": "Chrome"}), ev("c1", "b", "2021-05-01 11:00:00", {"$browser": "Chrome"}),
        ev("c2", "a", "2021-05-01 10:00:00", {"$browser": "Chrome"}),
        ev("s1", "a", "2021-05-02 10:00:00", {"$browser": "Safari"}), ev("s1", "b", "2021-05-02 11:00:00", {"$browser": "Safari"}),
        ev("n1", "a", "2021-05-02 10:00:00"),
    ])
    return fq(["a", "b"], "2021-05-01", "2021-05-03", funnelVizType="trends")


def test_funnel_trends_conversion_rate_per_entry_day(db, project):
    query = funnel_trends_fixture(db, project)
    (series,) = run_funnel(db, project, query, http=True)
    assert series["days"] == ["2021-05-01", "2021-05-02", "2021-05-03"]
    assert series["labels"] == ["1-May-2021", "2-May-2021", "3-May-2021"]
    assert series["data"] == [50.0, 50.0, 0.0] and series["count"] == 3


def test_funnel_trends_with_breakdown(db, project):
    query = funnel_trends_fixture(db, project)
    query["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
    result = run_funnel(db, project, query)
    data = {tuple(s["breakdown_value"]): s["data"] for s in result}
    assert ("all",) not in data
    assert data[("Chrome",)] == [50.0, 0.0, 0.0]
    assert data[("Safari",)] == [0.0, 100.0, 0.0]


# ---------------------------------------------------------------------------------------------
# One funnel, three ways: insights.funnel, a hand-written insights.window_funnel, HTTP
# ---------------------------------------------------------------------------------------------


def test_same_counts_from_funnel_window_funnel_and_http(db, project):
    def at(did, e, minutes):
        return ev(did, e, datetime(2021, 5, 2) + timedelta(minutes=minutes))

    ingest(db, project, [
        at("p1", "a", 0), at("p1", "b", 10), at("p1", "c", 20),
        at("p2", "a", 0), at("p2", "b", 30),
        at("p3", "a", 0),
        at("p4", "b", 0), at("p4", "a", 5), at("p4", "c", 10),
        at("p5", "a", 0), at("p5", "b", 2 * 24 * 60),
        at("p6", "c", 0),
        at("p7", "a", 0), at("p7", "b", 60), at("p7", "c", 25 * 60),
        at("p8", "a", -3 * 24 * 60 * 10),  # 2021-04-02: outside the range
    ])
    query = fq(["a", "b", "c"], **window(1, "day"))
    rows = sql(db, "SELECT step, count FROM insights.funnel(%s, %s::jsonb) ORDER BY step",
               project["id"], json.dumps(query))
    by_hand = sql(db, """
        SELECT k, count(*) FILTER (WHERE level >= k)
          FROM (SELECT person_id,
                       insights.window_funnel('1 day', "timestamp", event = 'a', event = 'b', event = 'c') AS level
                  FROM insights.events
                 WHERE project_id = %s AND "timestamp" BETWEEN '2021-05-01 00:00:00+00' AND '2021-05-20 23:59:59.999999+00'
                 GROUP BY person_id) AS per_person
         CROSS JOIN generate_series(1, 3) AS k
         GROUP BY k ORDER BY k""", project["id"])
    r = funnel_http(project, query)
    assert r.status_code == 200, r.text
    assert rows == by_hand == [(1, 6), (2, 3), (3, 1)]
    assert counts(r.json()["result"]) == [6, 3, 1]


# ---------------------------------------------------------------------------------------------
# HTTP forms: legacy GET filter, POST body, /environments/ alias
# ---------------------------------------------------------------------------------------------


def test_legacy_get_filter_equals_funnels_query(db, project):
    query, paid, watched = f1_fixture(db, project)
    legacy = {
        "insight": "FUNNELS", "date_from": "2021-05-01", "date_to": "2021-05-20",
        "events": [{"id": SIGNUP, "type": "events", "order": 0}],
        "actions": [{"id": paid, "type": "actions", "order": 1}, {"id": watched, "type": "actions", "order": 2}],
        "funnel_window_interval": 14, "funnel_window_interval_unit": "day",
    }
    get = funnel_http(project, legacy, method="GET")
    assert get.status_code == 200, get.text
    post = funnel_http(project, query)
    assert strip_urls(get.json()["result"]) == strip_urls(post.json()["result"]) == strip_urls(
        funnel_sql(db, project, legacy))
    assert counts(get.json()["result"]) == [4, 2, 1]
    # The legacy form's people URL works as well.
    assert people_at(project, get.json()["result"][1]["converted_people_url"]) == {"p2", "p3"}


def test_environments_alias(db, project):
    query, _, _ = f1_fixture(db, project)
    r = funnel_http(project, query, prefix="environments")
    assert r.status_code == 200, r.text
    assert counts(r.json()["result"]) == [4, 2, 1]
    legacy = {"insight": "FUNNELS", "date_from": "2021-05-01", "date_to": "2021-05-20",
              "events": [{"id": SIGNUP, "order": 0}, {"id": SIGNUP, "order": 1}]}
    r = api("GET", f"/api/environments/{project['id']}/persons/funnel/", project["key"],
            params={**{k: v if isinstance(v, str) else json.dumps(v) for k, v in legacy.items()}, "funnel_step": "1"})
    assert r.status_code == 200, r.text
    assert {min(p["distinct_ids"]) for p in r.json()["results"][0]["people"]} == {"p1", "p2", "p3", "p5"}


# ---------------------------------------------------------------------------------------------
# Validation (docs/funnels.md#validation)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_step, to_step", [(1, 1), (1, 2), (2, 1), (0, 2)])
def test_f24_invalid_exclusion_ranges(db, project, from_step, to_step):
    ingest(db, project, seq("p1", [SIGNUP, "paid"]))
    query = fq([SIGNUP, "paid"], exclusions=[excl("x", from_step, to_step)])
    assert_invalid(db, project, query, "Exclusion event range is invalid")


def test_f24_legacy_get_exclusion_is_400(db, project):
    legacy = {"insight": "FUNNELS", "date_from": "2021-05-01", "date_to": "2021-05-20",
              "events": [{"id": SIGNUP, "order": 0}, {"id": "paid", "order": 1}],
              "exclusions": [{"id": "x", "type": "events", "funnel_from_step": 1, "funnel_to_step": 1}]}
    body = assert_error(funnel_http(project, legacy, method="GET"), 400, "validation_error", "invalid_input",
                        attr="exclusions")
    assert "Exclusion event range is invalid" in body["detail"]


@pytest.mark.parametrize("query, message", [
    (fq([SIGNUP, "paid"], exclusions=[excl(SIGNUP, 0, 1)]), "Exclusion steps cannot contain an event"),
    (fq([SIGNUP, "paid"], funnelFromStep=1), "funnelFromStep is out of bounds"),
    (fq([SIGNUP, "paid"], funnelToStep=2), "funnelToStep is out of bounds"),
    (fq([SIGNUP, "paid"], funnelToStep=0), "funnelToStep is out of bounds"),
    (fq([SIGNUP, "paid", "c"], funnelFromStep=1, funnelToStep=1), "funnelToStep should be greater than funnelFromStep"),
    (fq([SIGNUP, "paid", "c"], funnelOrderType="unordered", exclusions=[excl("x", 0, 1)]),
     "Partial Exclusions not allowed in unordered funnels"),
    (fq([SIGNUP, "paid"], funnelOrderType="unordered", breakdownAttributionType="step", breakdownAttributionValue=1,
        breakdownFilter={"breakdown": "$browser"}), "Only the first step can be used for breakdown attribution"),
    (fq([node(SIGNUP, optionalInFunnel=True), "paid"]), "The first step of a funnel cannot be optional"),
    (fq([SIGNUP, node("paid", optionalInFunnel=True), "c"], funnelOrderType="unordered"),
     "Optional funnel steps are only supported"),
    (fq([SIGNUP, node("paid", optionalInFunnel=True), "paid"]),
     "An optional step cannot be the same as the following required step"),
], ids=["excl-is-a-step", "from-step", "to-step-high", "to-step-zero", "from-ge-to", "unordered-partial-excl",
        "unordered-attribution", "first-optional", "optional-unordered", "optional-same-as-next"])
def test_validation_errors(db, project, query, message):
    assert_invalid(db, project, query, message)


def test_malformed_json_body_is_400(project):
    r = api("POST", f"/api/projects/{project['id']}/insights/funnel/", project["key"], data=b"{bad",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request", "parse_error")


def test_bad_funnel_actor_step_is_22023(db, project):
    ingest(db, project, seq("p1", [SIGNUP, "paid"]))
    for step in (0, -1):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            sql(db, "SELECT insights.funnel_actors(%s, %s::jsonb, %s)", project["id"],
                json.dumps(fq([SIGNUP, "paid"])), step)


# ---------------------------------------------------------------------------------------------
# Scopes and project boundaries
# ---------------------------------------------------------------------------------------------


def test_funnel_needs_insight_read(db, make_project):
    p = make_project(scopes=["person:read"])
    ingest(db, p, seq("p1", [SIGNUP, "paid"]))
    body = assert_error(funnel_http(p, fq([SIGNUP, "paid"])), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:read'"
    # insight:write implies insight:read.
    (key,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'w', ARRAY['insight:write'])",
                 p["user_id"])[0]
    r = funnel_http(p, fq([SIGNUP, "paid"]), key=key)
    assert r.status_code == 200, r.text
    assert counts(r.json()["result"]) == [1, 1]


def test_funnel_persons_need_person_read(db, make_project):
    p = make_project(scopes=["insight:read"])
    ingest(db, p, seq("p1", [SIGNUP, "paid"]))
    r = funnel_http(p, fq([SIGNUP, "paid"]))
    assert r.status_code == 200, r.text
    body = assert_error(api("GET", r.json()["result"][1]["converted_people_url"], p["key"]),
                        403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'person:read'"


def test_other_projects_key_and_missing_key(db, project, make_project):
    ingest(db, project, seq("p1", [SIGNUP, "paid"]))
    other = make_project()
    assert_error(funnel_http(project, fq([SIGNUP, "paid"]), key=other["key"]), 403, "authentication_error",
                 "permission_denied")
    url = funnel_sql(db, project, fq([SIGNUP, "paid"]))[1]["converted_people_url"]
    assert_error(api("GET", url, other["key"]), 403, "authentication_error", "permission_denied")
    r = api("POST", f"/api/projects/{project['id']}/insights/funnel/", json=fq([SIGNUP, "paid"]))
    assert_error(r, 401, "authentication_error", "not_authenticated")
    assert_error(api("DELETE", f"/api/projects/{project['id']}/insights/funnel/", project["key"]),
                 405, "invalid_request", "method_not_allowed")


# ---------------------------------------------------------------------------------------------
# insights.window_funnel: ClickHouse modes, errors, parallel plans
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def wf(db):
    """A small hand-made event table: (uid, ts seconds, ev). Returns a function running one call."""
    name = f"wf_{uuid.uuid4().hex[:8]}"
    sql(db, f"CREATE TEMP TABLE {name} (uid text, ts timestamptz, ev text)")

    def load(rows):
        with db.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} VALUES (%s, '2021-05-01'::timestamptz + make_interval(secs => %s), %s)",
                            rows)

    def run(window_s, mode, n=3):
        conds = ", ".join(f"ev = '{c}'" for c in "abc"[:n])
        mode_arg = "" if mode is None else f"'{mode}', "
        return dict(sql(db, f"SELECT uid, insights.window_funnel(make_interval(secs => {window_s}), {mode_arg}ts, "
                            f"{conds}) FROM {name} GROUP BY uid ORDER BY uid"))

    yield load, run, name
    sql(db, f"DROP TABLE {name}")


WF_ROWS = [
    # u1: a, b, (d), c — d is an unrelated event between b and c
    ("u1", 1, "a"), ("u1", 2, "b"), ("u1", 3, "d"), ("u1", 4, "c"),
    # u2: a, b, b, c — a repeated condition
    ("u2", 1, "a"), ("u2", 2, "b"), ("u2", 3, "b"), ("u2", 4, "c"),
    # u3: a and b at the same instant
    ("u3", 1, "a"), ("u3", 1, "b"),
    # u4: b exactly at the window's end; u5: one second later
    ("u4", 1, "a"), ("u4", 11, "b"), ("u5", 1, "a"), ("u5", 12, "b"),
    # u6: never does a; u7: a, c, b (out of order)
    ("u6", 1, "b"), ("u6", 2, "c"), ("u7", 1, "a"), ("u7", 2, "c"), ("u7", 3, "b"),
]


@pytest.mark.parametrize("mode, expected", [
    (None, {"u1": 3, "u2": 3, "u3": 2, "u4": 2, "u5": 1, "u6": 0, "u7": 2}),
    ("strict_order", {"u1": 2, "u2": 3, "u3": 2, "u4": 2, "u5": 1, "u6": 0, "u7": 1}),
    ("strict_deduplication", {"u1": 3, "u2": 2, "u3": 2, "u4": 2, "u5": 1, "u6": 0, "u7": 2}),
    ("strict_increase", {"u1": 3, "u2": 3, "u3": 1, "u4": 2, "u5": 1, "u6": 0, "u7": 2}),
    ("strict_order, strict_deduplication", {"u1": 2, "u2": 2, "u3": 2, "u4": 2, "u5": 1, "u6": 0, "u7": 1}),
])
def test_window_funnel_modes(wf, mode, expected):
    load, run, _ = wf
    load(WF_ROWS)
    assert run(10, mode) == expected


def test_window_funnel_plain_form_equals_empty_mode(wf):
    load, run, _ = wf
    load(WF_ROWS)
    assert run(10, None) == run(10, "") and run(10, None, n=2) == {
        "u1": 2, "u2": 2, "u3": 2, "u4": 2, "u5": 1, "u6": 0, "u7": 2}


@pytest.mark.parametrize("call", [
    "insights.window_funnel('1 hour', 'strict_foo', ts, ev = 'a', ev = 'b')",
    "insights.window_funnel('-1 hour', ts, ev = 'a', ev = 'b')",
])
def test_window_funnel_bad_arguments_are_22023(wf, db, call):
    load, _, table = wf
    load(WF_ROWS)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        sql(db, f"SELECT uid, {call} FROM {table} GROUP BY uid")


@pytest.fixture
def big_events(db):
    """~200k rows in a plain table (parallel workers cannot read temporary tables)."""
    name = f"public.pgi_wf_parallel_{uuid.uuid4().hex[:8]}"
    sql(db, f"CREATE UNLOGGED TABLE {name} (uid int, ts timestamptz, ev int)")
    try:
        sql(db, f"INSERT INTO {name} SELECT mod(g, 4000), '2021-05-01'::timestamptz "
                f"+ mod(abs(hashint4(g)), 86400) * interval '1 second', mod(abs(hashint4(-g)), 5) "
                f"FROM generate_series(1, 200000) AS g")
        sql(db, f"ANALYZE {name}")
        yield name
    finally:
        sql(db, f"DROP TABLE {name}")


def test_window_funnel_parallel_plan_gives_the_serial_result(big_events):
    grouped = (f"SELECT level, count(*) FROM (SELECT uid, insights.window_funnel('20 minutes', ts, ev = 1, ev = 2, "
               f"ev = 3, ev = 4) AS level FROM {big_events} GROUP BY uid) s GROUP BY level ORDER BY level")
    whole = (f"SELECT insights.window_funnel('2 seconds', 'strict_increase', ts, ev = 1, ev = 2, ev = 3, ev = 4, "
             f"ev = 0, ev = 1, ev = 2) FROM {big_events} WHERE uid < 2000")
    with psycopg.connect() as conn:  # its own transaction: SET LOCAL stays inside this test
        def run(q):
            with conn.cursor() as cur:
                cur.execute(q)
                return cur.fetchall() if cur.description else None

        run("SET LOCAL parallel_setup_cost = 0")
        run("SET LOCAL parallel_tuple_cost = 0")
        run("SET LOCAL min_parallel_table_scan_size = 0")
        run("SET LOCAL max_parallel_workers_per_gather = 2")
        parallel = {}
        for q in (grouped, whole):
            plan = "\n".join(r[0] for r in run("EXPLAIN (COSTS OFF) " + q))
            assert "Gather" in plan and "Partial" in plan, plan
            parallel[q] = run(q)
        run("SET LOCAL max_parallel_workers_per_gather = 0")
        for q in (grouped, whole):
            plan = "\n".join(r[0] for r in run("EXPLAIN (COSTS OFF) " + q))
            assert "Gather" not in plan, plan
            assert run(q) == parallel[q]
        conn.rollback()
    # The data reaches several levels, so a wrong merge of partial states would show.
    assert parallel[grouped] == [(1, 1144), (2, 2522), (3, 327), (4, 7)]
    assert parallel[whole] == [(3,)]
