"""The last pieces of the saved insights resource (sql/api/75_insights_meta.sql):
POST insights/generate_metadata/ (deterministic name/description rules), GET insights/:id/analyze/
(facts computed from the result) and ?format=csv|json on the list and retrieve endpoints.

Events are ingested at fixed past timestamps through insights.capture_batch; every expected number
below is computed by hand from them.
"""

import csv
import io
import json

import pytest
from conftest import api, assert_error, sql

# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


def ev(distinct_id, event, ts):
    return {"event": event, "distinct_id": distinct_id, "timestamp": ts}


@pytest.fixture
def data(db, project):
    """Pageviews: 2024-01-02 u0..u3 (4), 2024-01-03 u0..u4 plus a second one of u0 (6),
    2024-01-04 u0, u1 (2). signed_up: u0..u2 on 2024-01-02 after their pageview; purchase: u0."""
    events = []
    for n in range(4):
        events.append(ev(f"u{n}", "$pageview", f"2024-01-02T0{n}:00:00Z"))
    for n in range(3):
        events.append(ev(f"u{n}", "signed_up", f"2024-01-02T0{n}:10:00Z"))
    events.append(ev("u0", "purchase", "2024-01-02T00:20:00Z"))
    for n in range(5):
        events.append(ev(f"u{n}", "$pageview", f"2024-01-03T0{n}:00:00Z"))
    events.append(ev("u0", "$pageview", "2024-01-03T09:00:00Z"))
    for n in range(2):
        events.append(ev(f"u{n}", "$pageview", f"2024-01-04T0{n}:00:00Z"))
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))
    return project


def base(p, prefix="projects"):
    return f"/api/{prefix}/{p['id']}/insights"


def create(p, body):
    r = api("POST", base(p) + "/", p["key"], json=body)
    assert r.status_code == 201, r.text
    return r.json()


def metadata(p, body, prefix="projects", key=None):
    return api("POST", base(p, prefix) + "/generate_metadata/", key or p["key"], json=body)


def analyze(p, iid, key=None, method="GET", query=""):
    return api(method, f"{base(p)}/{iid}/analyze/{query}", key or p["key"])


TRENDS = {
    "kind": "InsightVizNode",
    "source": {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": "$pageview"},
                   {"kind": "EventsNode", "event": "$pageview", "math": "dau", "custom_name": "Viewers"}],
        "interval": "day",
        "dateRange": {"date_from": "2024-01-02", "date_to": "2024-01-04"},
    },
}

FUNNEL = {
    "kind": "InsightVizNode",
    "source": {
        "kind": "FunnelsQuery",
        "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "signed_up"},
                   {"kind": "EventsNode", "event": "purchase"}],
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-10"},
    },
}

RETENTION = {
    "insight": "RETENTION",
    "target_entity": {"id": "$pageview", "type": "events"},
    "returning_entity": {"id": "$pageview", "type": "events"},
    "period": "Day",
    "total_intervals": 3,
    "date_to": "2024-01-04",
}


# ---------------------------------------------------------------------------------------------
# generate_metadata
# ---------------------------------------------------------------------------------------------

CASES = [
    pytest.param(
        {"query": {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery",
                                                         "series": [{"kind": "EventsNode", "event": "$pageview"}]}}},
        "Pageview count",
        "Trends of Pageview count over the last 7 days, by day, with 0 property filters.",
        id="trends-single"),
    pytest.param(
        {"query": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
                   "interval": "week", "dateRange": {"date_from": "-30d"}}},
        "Pageview unique users",
        "Trends of Pageview unique users over the last 30 days, by week, with 0 property filters.",
        id="trends-dau"),
    pytest.param(
        {"query": {"kind": "InsightVizNode", "source": {
            "kind": "TrendsQuery",
            "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "Sign up"}],
            "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event"},
            "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-31"},
            "properties": [{"key": "$os", "value": "Mac OS X", "operator": "exact", "type": "event"}],
            "filterTestAccounts": True}}},
        "Pageview & Sign up count by $browser",
        "Trends of Pageview & Sign up count by $browser over 2024-01-01 to 2024-01-31, by day, "
        "with 1 property filter, excluding test accounts.",
        id="trends-multi-breakdown"),
    pytest.param(
        {"query": {"kind": "TrendsQuery", "series": [
            {"kind": "EventsNode", "event": "$autocapture", "math": "weekly_active",
             "properties": [{"key": "a", "value": "1", "type": "event"}, {"key": "b", "value": "2", "type": "event"}]},
            {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "revenue"},
            {"kind": "ActionsNode", "id": 7, "name": "Checkout", "math": "monthly_active"}],
            "dateRange": {"date_from": "-2w"},
            "properties": {"type": "AND", "values": [{"type": "OR", "values": [
                {"key": "$browser", "value": "Chrome", "type": "event"},
                {"key": "email", "value": "x", "type": "person"}]}]}}},
        "Autocapture weekly active users & purchase sum of revenue & Checkout monthly active users",
        "Trends of Autocapture weekly active users & purchase sum of revenue & Checkout monthly active users "
        "over the last 2 weeks, by day, with 4 property filters.",
        id="trends-mixed-math"),
    pytest.param(
        {"query": FUNNEL},
        "Pageview → signed_up → purchase funnel",
        "Funnel of 3 steps (Pageview → signed_up → purchase) over 2024-01-01 to 2024-01-10, ordered steps, "
        "conversion window 14 days, with 0 property filters.",
        id="funnel-query"),
    pytest.param(
        {"filters": {"insight": "FUNNELS", "date_from": "-7d",
                     "events": [{"id": "Purchase", "order": 2}, {"id": "$pageview", "order": 0}],
                     "actions": [{"id": 3, "name": "Sign up", "order": 1}],
                     "funnel_window_interval": 1, "funnel_window_interval_unit": "hour",
                     "funnel_order_type": "strict", "breakdown": "$browser"}},
        "Pageview → Sign up → Purchase funnel by $browser",
        "Funnel of 3 steps (Pageview → Sign up → Purchase by $browser) over the last 7 days, strict order steps, "
        "conversion window 1 hour, with 0 property filters.",
        id="funnel-legacy-filters"),
    pytest.param(
        {"query": {"kind": "RetentionQuery", "retentionFilter": {
            "targetEntity": {"id": "Sign up", "type": "events"},
            "returningEntity": {"id": "$pageview", "type": "events"},
            "period": "Week", "totalIntervals": 8, "retentionType": "retention_first_time"}}},
        "Retention of users who did Sign up, returning with Pageview",
        "Retention of users who did Sign up and came back to do Pageview over the last 8 weeks, "
        "first time retention over 8 week periods, with 0 property filters.",
        id="retention-query"),
    pytest.param(
        {"filters": RETENTION},
        "Retention of users who did Pageview, returning with Pageview",
        "Retention of users who did Pageview and came back to do Pageview over the last 3 days until 2024-01-04, "
        "recurring retention over 3 day periods, with 0 property filters.",
        id="retention-legacy"),
    pytest.param(
        {"filters": {"events": [{"id": "$screen", "math": "avg", "math_property": "duration"}],
                     "interval": "month", "date_from": "mStart",
                     "properties": [{"key": "$os", "value": "iOS", "type": "event"}]}},
        "Screen avg of duration",
        "Trends of Screen avg of duration over this month, by month, with 1 property filter.",
        id="trends-legacy-filters"),
    pytest.param(
        # `query` wins over `filters`, as for the insight's result.
        {"filters": {"events": [{"id": "ignored"}]},
         "query": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$identify"}],
                   "trendsFilter": {"formula": "A*2"}}},
        "Formula A*2 of Identify count",
        "Trends of Formula A*2 of Identify count over the last 7 days, by day, with 0 property filters.",
        id="query-wins-formula"),
]


@pytest.mark.parametrize("body,name,description", CASES)
def test_generate_metadata_rules(project, body, name, description):
    r = metadata(project, body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"name": name, "description": description}


@pytest.mark.parametrize("prefix", ["projects", "environments"])
@pytest.mark.parametrize("slash", ["/", ""])
def test_generate_metadata_routes(project, prefix, slash):
    r = api("POST", base(project, prefix) + "/generate_metadata" + slash, project["key"], json={"query": FUNNEL})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Pageview → signed_up → purchase funnel"


def test_generate_metadata_form_encoded_query(project):
    r = api("POST", base(project) + "/generate_metadata/", project["key"],
            data={"query": json.dumps({"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "x"}]})})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "x count"


def test_generate_metadata_writes_nothing(db, project):
    metadata(project, {"query": FUNNEL, "name": "n"})
    assert sql(db, "SELECT count(*) FROM insights.saved_insights WHERE project_id = %s", project["id"]) == [(0,)]


@pytest.mark.parametrize("body,attr,code", [
    ({}, "query", "required"),
    ({"name": "only a name"}, "query", "required"),
    ({"query": None, "filters": {}}, "query", "required"),
    ({"query": [1, 2]}, "query", "not_a_dict"),
    ({"query": "not json"}, "query", "not_a_dict"),
    ({"filters": "[1]"}, "filters", "not_a_dict"),
    ({"query": {"kind": "PathsQuery"}}, "query", "invalid_input"),
    ({"query": {"series": []}}, "query", "invalid_input"),
    ({"query": {"kind": "TrendsQuery", "series": []}}, "query", "invalid_input"),
    ({"query": {"kind": "FunnelsQuery"}}, "query", "invalid_input"),
    ({"filters": {"insight": "PATHS"}}, "filters", "invalid_input"),
    ({"filters": {"insight": "TRENDS", "events": []}}, "filters", "invalid_input"),
    ({"query": {"kind": "RetentionQuery", "retentionFilter": {"targetEntity": "x"}}}, "query", "invalid_input"),
])
def test_generate_metadata_bad_bodies(project, body, attr, code):
    assert_error(metadata(project, body), 400, "validation_error", code, attr)


def test_generate_metadata_malformed_json(project):
    r = api("POST", base(project) + "/generate_metadata/", project["key"], data="{nope",
            headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "invalid_request" and r.json()["code"] == "parse_error"


def test_generate_metadata_scope(make_project):
    reader = make_project(scopes=["insight:read"])
    body = assert_error(metadata(reader, {"query": FUNNEL}), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:write'"
    writer = make_project(scopes=["insight:write"])
    assert metadata(writer, {"query": FUNNEL}).status_code == 200
    assert_error(api("POST", base(writer) + "/generate_metadata/", None, json={"query": FUNNEL}),
                 401, "authentication_error", "not_authenticated")


def test_generate_metadata_other_project(make_project):
    a, b = make_project(), make_project()
    assert_error(metadata(a, {"query": FUNNEL}, key=b["key"]), 403, "authentication_error", "permission_denied")
    assert_error(api("POST", "/api/projects/999999999/insights/generate_metadata/", a["key"], json={"query": FUNNEL}),
                 404, "invalid_request", "not_found")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_generate_metadata_methods(project, method):
    assert_error(api(method, base(project) + "/generate_metadata/", project["key"]),
                 405, "invalid_request", "method_not_allowed")


def test_generate_metadata_csv(project):
    r = api("POST", base(project) + "/generate_metadata/?format=csv", project["key"],
            json={"query": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "a,b"}]}})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.text == ('description,name\r\n'
                      '"Trends of a,b count over the last 7 days, by day, with 0 property filters.","a,b count"\r\n')


# ---------------------------------------------------------------------------------------------
# analyze
# ---------------------------------------------------------------------------------------------


def test_analyze_trends(data):
    ins = create(data, {"name": "t", "query": TRENDS})
    r = analyze(data, ins["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["insight_id"] == ins["id"] and body["short_id"] == ins["short_id"]
    assert body["kind"] == "trends"
    assert body["is_cached"] is False and body["last_refresh"]
    # $pageview per day 02..04: [4, 6, 2]; unique viewers: [4, 5, 2].
    assert body["facts"] == [
        {"type": "trend_series", "label": "$pageview", "breakdown_value": None, "compare_label": None,
         "total": 12, "first_value": 4, "last_value": 2, "change_percent": -50.0, "peak_value": 6,
         "peak_date": "2024-01-03"},
        {"type": "trend_series", "label": "Viewers", "breakdown_value": None, "compare_label": None,
         "total": 11, "first_value": 4, "last_value": 2, "change_percent": -50.0, "peak_value": 5,
         "peak_date": "2024-01-03"},
    ]
    assert body["summary"] == (
        "$pageview: 12 in total, 4 on 2024-01-02 to 2 on 2024-01-04 (-50.0%), peak 6 on 2024-01-03. "
        "Viewers: 11 in total, 4 on 2024-01-02 to 2 on 2024-01-04 (-50.0%), peak 5 on 2024-01-03.")
    # The computed result was cached: the second call serves it, as GET insights/:id/ does.
    again = analyze(data, ins["short_id"]).json()
    assert again["is_cached"] is True and again["last_refresh"] == body["last_refresh"]
    assert again["facts"] == body["facts"]
    retrieved = api("GET", f"{base(data)}/{ins['id']}/", data["key"]).json()
    assert retrieved["is_cached"] is True and retrieved["result"][0]["data"] == [4, 6, 2]


def test_analyze_trends_change_from_zero_and_ties(data):
    ins = create(data, {"filters": {"insight": "TRENDS", "events": [{"id": "signed_up"}],
                                    "date_from": "2024-01-01", "date_to": "2024-01-03"}})
    fact = analyze(data, ins["id"]).json()["facts"][0]
    # [0, 3, 0]: the change from 0 is undefined.
    assert (fact["total"], fact["first_value"], fact["last_value"], fact["change_percent"],
            fact["peak_value"], fact["peak_date"]) == (3, 0, 0, None, 3, "2024-01-02")


def test_analyze_funnel(data):
    ins = create(data, {"query": FUNNEL})
    body = analyze(data, ins["id"]).json()
    assert body["kind"] == "funnels"
    # 5 viewed, u0..u2 signed up, u0 purchased.
    assert body["facts"] == [{
        "type": "funnel", "breakdown_value": None, "entered": 5, "completed": 1,
        "overall_conversion_percent": 20.0,
        "steps": [
            {"order": 0, "name": "$pageview", "count": 5, "conversion_from_previous_percent": None,
             "conversion_from_start_percent": 100.0},
            {"order": 1, "name": "signed_up", "count": 3, "conversion_from_previous_percent": 60.0,
             "conversion_from_start_percent": 60.0},
            {"order": 2, "name": "purchase", "count": 1, "conversion_from_previous_percent": 33.3,
             "conversion_from_start_percent": 20.0}],
        "biggest_drop_off": {"from_step": "signed_up", "to_step": "purchase", "to_order": 2, "dropped": 2,
                             "drop_off_percent": 66.7},
    }]
    assert body["summary"] == ("5 entered and 1 completed (20.0% overall conversion). "
                               "Biggest drop-off: signed_up → purchase, 2 dropped (66.7%).")


def test_analyze_empty_funnel(data):
    ins = create(data, {"filters": {"insight": "FUNNELS", "date_from": "2023-01-01", "date_to": "2023-01-10",
                                    "events": [{"id": "$pageview", "order": 0}, {"id": "purchase", "order": 1}]}})
    body = analyze(data, ins["id"]).json()
    assert body["kind"] == "funnels" and body["facts"] == [] and body["summary"] == "Nobody entered the funnel."


def test_analyze_retention(data):
    ins = create(data, {"filters": RETENTION})
    body = analyze(data, ins["id"]).json()
    assert body["kind"] == "retention"
    # Cohorts 01-02 (u0..u3), 01-03 (u0..u4), 01-04 (u0, u1). Day 1: 4/4 and 2/5 → (100 + 40) / 2;
    # Day 2: only the 01-02 cohort can be observed: 2/4.
    assert body["facts"] == [{
        "type": "retention", "breakdown_value": None, "cohorts": 3, "people": 11,
        "periods": [{"period": 1, "label": "Day 1", "cohorts": 2, "average_percent": 70.0},
                    {"period": 2, "label": "Day 2", "cohorts": 1, "average_percent": 50.0}],
    }]
    assert body["summary"] == "Day 1 retention averages 70.0% over 2 cohorts (11 people in 3 cohorts)."


def test_analyze_insight_without_engine(project):
    ins = create(project, {"query": {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query": "select 1"}}})
    body = analyze(project, ins["id"]).json()
    assert body["kind"] is None and body["facts"] == [] and body["is_cached"] is False


def test_analyze_not_found_and_other_project(data, make_project):
    other = make_project()
    ins = create(data, {"query": TRENDS})
    assert_error(analyze(other, ins["id"]), 404, "invalid_request", "not_found")
    assert_error(analyze(other, ins["short_id"]), 404, "invalid_request", "not_found")
    assert_error(analyze(data, 999999999), 404, "invalid_request", "not_found")
    assert_error(analyze(data, "nope"), 404, "invalid_request", "not_found")
    # Another project's key on this project's path: not a member.
    assert_error(analyze(data, ins["id"], key=other["key"]), 403, "authentication_error", "permission_denied")
    api("PATCH", f"{base(data)}/{ins['id']}/", data["key"], json={"deleted": True})
    assert_error(analyze(data, ins["id"]), 404, "invalid_request", "not_found")


def test_analyze_scope(data, make_project):
    ins = create(data, {"query": TRENDS})
    p = make_project(scopes=["dashboard:read"])
    assert_error(analyze(p, 1), 403, "authentication_error", "permission_denied")
    assert analyze(data, ins["id"], query="?format=json").status_code == 200
    assert_error(api("GET", f"{base(data)}/{ins['id']}/analyze/", None), 401, "authentication_error",
                 "not_authenticated")


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_analyze_methods(project, method):
    assert_error(analyze(project, 1, method=method), 405, "invalid_request", "method_not_allowed")


def test_analyze_engine_error_is_400(project):
    ins = create(project, {"query": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "x"}],
                                     "interval": "fortnight"}})
    r = analyze(project, ins["id"])
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "validation_error"


# ---------------------------------------------------------------------------------------------
# ?format=csv on list and retrieve
# ---------------------------------------------------------------------------------------------


def flatten(value, prefix=""):
    """djangorestframework-csv's flatten_item, independently of the SQL."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            for kk, vv in flatten(v).items():
                out[f"{k}.{kk}" if kk else k] = vv
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            for kk, vv in flatten(v).items():
                out[f"{i}.{kk}" if kk else str(i)] = vv
        return out
    return {"": value}


def reference_csv(rows):
    flat = [flatten(r) for r in rows]
    if not flat:
        return ""
    header = sorted({k for f in flat for k in f})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for f in flat:
        w.writerow(["" if f.get(h) is None else f[h] for h in header])
    return buf.getvalue()


def test_list_csv_exact(project):
    a = create(project, {"name": 'Sales, "Q1"\nreport', "tags": ["b", "a"], "description": "",
                         "filters": {"insight": "TRENDS", "events": [{"id": "$pageview"}]}})
    b = create(project, {"name": None, "favorited": True, "query": {"kind": "TrendsQuery", "series": []}})
    path = base(project) + "/?basic=true&order=id"
    r = api("GET", path + "&format=csv", project["key"])
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    js = api("GET", path, project["key"]).json()
    assert r.text == reference_csv(js["results"])
    # Literal check of the shape: header, quoting, booleans, nulls, lists as dotted indexes.
    u = js["results"][0]["created_by"]
    header = ("created_at,created_by.distinct_id,created_by.email,created_by.first_name,created_by.hedgehog_config,"
              "created_by.id,created_by.is_email_verified,created_by.last_name,created_by.role_at_organization,"
              "created_by.uuid,derived_name,description,favorited,filters.events.0.id,filters.insight,id,"
              "last_modified_at,last_refresh,name,query,query.kind,refreshing,saved,short_id,tags.0,tags.1,"
              "updated_at,user_access_level")
    row_a = (f"{a['created_at']},{u['distinct_id']},{u['email']},{u['first_name']},,{u['id']},,{u['last_name']},,"
             f"{u['uuid']},,,False,$pageview,TRENDS,{a['id']},{a['last_modified_at']},,"
             f'"Sales, ""Q1""\nreport",,,False,False,{a["short_id"]},b,a,{a["updated_at"]},editor')
    row_b = (f"{b['created_at']},{u['distinct_id']},{u['email']},{u['first_name']},,{u['id']},,{u['last_name']},,"
             f"{u['uuid']},,,True,,,{b['id']},{b['last_modified_at']},,,,TrendsQuery,False,False,"
             f"{b['short_id']},,,{b['updated_at']},editor")
    assert r.text == header + "\r\n" + row_a + "\r\n" + row_b + "\r\n"


def test_list_csv_empty_and_errors(project, make_project):
    r = api("GET", base(project) + "/?format=csv", project["key"])
    assert r.status_code == 200 and r.text == ""
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    # Errors stay JSON bodies.
    bad = api("GET", base(project) + "/?format=csv&limit=x", project["key"])
    assert bad.headers["Content-Type"].startswith("application/json")
    assert_error(bad, 400, "validation_error", "invalid_input", "limit")
    p = make_project(scopes=["dashboard:read"])
    assert_error(api("GET", base(p) + "/?format=csv", p["key"]), 403, "authentication_error", "permission_denied")


def test_retrieve_csv_exact(data):
    ins = create(data, {"name": "t", "query": TRENDS, "tags": ["x"]})
    assert api("GET", f"{base(data)}/{ins['id']}/?refresh=blocking", data["key"]).status_code == 200
    path = f"{base(data)}/{ins['id']}/?refresh=force_cache"
    js = api("GET", path, data["key"]).json()
    r = api("GET", path + "&format=csv", data["key"])
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.text == reference_csv([js])
    header, row, end = r.text.split("\r\n")
    assert end == ""
    cols = dict(zip(header.split(","), next(csv.reader([row]))))
    assert cols["name"] == "t" and cols["tags.0"] == "x" and cols["is_cached"] == "True"
    assert [cols[f"result.0.data.{i}"] for i in range(3)] == ["4", "6", "2"]
    assert cols["query.source.series.1.math"] == "dau"
    assert "filters" not in cols and "dashboards" not in cols  # empty objects / lists have no column


def test_format_json_and_unknown(data, make_project):
    ins = create(data, {"name": "t"})
    plain = api("GET", f"{base(data)}/{ins['id']}/", data["key"])
    as_json = api("GET", f"{base(data)}/{ins['id']}/?format=json", data["key"])
    assert as_json.status_code == 200 and as_json.headers["Content-Type"].startswith("application/json")
    assert as_json.json()["id"] == plain.json()["id"] == ins["id"]
    for path in (f"{base(data)}/{ins['id']}/", base(data) + "/", f"{base(data)}/{ins['id']}/analyze/"):
        assert_error(api("GET", path + "?format=xml", data["key"]), 404, "invalid_request", "not_found")
    # DRF negotiates the format before the view runs: nothing is created.
    r = api("POST", base(data) + "/?format=yaml", data["key"], json={"name": "no"})
    assert_error(r, 404, "invalid_request", "not_found")
    names = [i["name"] for i in api("GET", base(data) + "/?basic=true", data["key"]).json()["results"]]
    assert names == ["t"]
    # Retrieve errors stay JSON with format=csv.
    other = make_project()
    assert_error(api("GET", f"{base(other)}/{ins['id']}/?format=csv", other["key"]), 404, "invalid_request", "not_found")


def test_create_and_update_with_csv(project):
    r = api("POST", base(project) + "/?format=csv", project["key"], json={"name": "c"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    header, row, _ = r.text.split("\r\n")
    cols = dict(zip(header.split(","), next(csv.reader([row]))))
    assert cols["name"] == "c" and cols["saved"] == "False"
    r = api("PATCH", f"{base(project)}/{cols['id']}/?format=csv", project["key"], json={"name": "d"})
    assert r.status_code == 200 and ",d," in r.text


def test_analyze_breakdowns(db, project):
    """u0, u1 on Chrome view and sign up; u2 on Firefox only views (2024-01-02)."""
    events = []
    for n, browser in enumerate(["Chrome", "Chrome", "Firefox"]):
        events.append({"event": "$pageview", "distinct_id": f"u{n}", "timestamp": f"2024-01-02T0{n}:00:00Z",
                       "properties": {"$browser": browser}})
        if browser == "Chrome":
            events.append({"event": "signed_up", "distinct_id": f"u{n}", "timestamp": f"2024-01-02T0{n}:10:00Z",
                           "properties": {"$browser": browser}})
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))
    funnel = create(project, {"filters": {
        "insight": "FUNNELS", "date_from": "2024-01-01", "date_to": "2024-01-05", "breakdown": "$browser",
        "breakdown_type": "event", "events": [{"id": "$pageview", "order": 0}, {"id": "signed_up", "order": 1}]}})
    body = analyze(project, funnel["id"]).json()
    assert [(f["breakdown_value"], f["entered"], f["completed"], f["overall_conversion_percent"],
             f["biggest_drop_off"]["dropped"], f["biggest_drop_off"]["drop_off_percent"]) for f in body["facts"]] == [
        (["Chrome"], 2, 2, 100.0, 0, 0.0), (["Firefox"], 1, 0, 0.0, 1, 100.0)]
    assert body["summary"] == (
        "Chrome: 2 entered and 2 completed (100.0% overall conversion). "
        "Biggest drop-off: $pageview → signed_up, 0 dropped (0.0%). "
        "Firefox: 1 entered and 0 completed (0.0% overall conversion). "
        "Biggest drop-off: $pageview → signed_up, 1 dropped (100.0%).")
    trend = create(project, {"filters": {"insight": "TRENDS", "date_from": "2024-01-02", "date_to": "2024-01-03",
                                         "breakdown": "$browser", "events": [{"id": "$pageview"}]}})
    facts = analyze(project, trend["id"]).json()["facts"]
    assert [(f["label"], f["breakdown_value"], f["total"], f["first_value"], f["last_value"], f["change_percent"])
            for f in facts] == [("Chrome", "Chrome", 2, 2, 0, -100.0), ("Firefox", "Firefox", 1, 1, 0, -100.0)]


@pytest.mark.parametrize("value,expected", [
    ('[]', ''),
    ('{"count": 0, "results": []}', ''),
    ('[{"a": ""}, {"a": 1}, {"a": null}]', 'a\r\n""\r\n1\r\n""\r\n'),
    ('{"a": {"b": [1, {"c": true}]}, "d": "x\\"y", "e": {}, "f": [], "g": false}',
     'a.b.0,a.b.1.c,d,g\r\n1,True,"x""y",False\r\n'),
    ('[{"b": 1.50, "t": ["x", "y", "z", "w", "v", "u", "s", "r", "q", "p", "o"]}, {"a": "l1\\nl2", "c": "\\r"}]',
     'a,b,c,t.0,t.1,t.10,t.2,t.3,t.4,t.5,t.6,t.7,t.8,t.9\r\n'
     ',1.50,,x,y,o,z,w,v,u,s,r,q,p\r\n"l1\nl2",,"\r",,,,,,,,,,,\r\n'),
])
def test_json_to_csv(db, value, expected):
    (row,) = sql(db, "SELECT api._json_to_csv(%s::jsonb)", value)
    assert row[0] == expected
