"""The saved insights resource over HTTP (docs/api.md): list/create, retrieve,
update and soft delete, results with PostHog's refresh modes over insights.query_cache, activity,
viewed / my_last_viewed, sharing, scopes, project boundaries and error bodies.

Each test gets fresh projects (conftest.py) and events at fixed past timestamps. Cache ageing is
simulated by moving insights.query_cache.last_refresh back through the superuser connection.
"""

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import api, assert_error, sql

FUNNEL_FILTERS = {
    "insight": "FUNNELS",
    "date_from": "2024-01-01",
    "date_to": "2024-01-10",
    "events": [{"id": "$pageview", "order": 0}, {"id": "signed_up", "order": 1}, {"id": "purchase", "order": 2}],
}

TRENDS_QUERY = {
    "kind": "InsightVizNode",
    "source": {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": "$pageview"}],
        "interval": "day",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-05"},
    },
}

RETENTION_FILTERS = {
    "insight": "RETENTION",
    "target_entity": {"id": "$pageview", "type": "events"},
    "returning_entity": {"id": "$pageview", "type": "events"},
    "period": "Day",
    "total_intervals": 4,
    "date_to": "2024-01-04",
}

USER_FIELDS = {"id", "uuid", "distinct_id", "first_name", "last_name", "email", "is_email_verified",
               "hedgehog_config", "role_at_organization"}

FULL_FIELDS = {"id", "short_id", "name", "derived_name", "filters", "query", "order", "deleted", "dashboards",
               "dashboard_tiles", "last_refresh", "cache_target_age", "next_allowed_client_refresh", "result",
               "hasMore", "columns", "created_at", "created_by", "description", "updated_at", "tags", "favorited",
               "saved", "last_modified_at", "last_modified_by", "is_sample", "effective_restriction_level",
               "effective_privilege_level", "user_access_level", "timezone", "is_cached", "query_status", "hogql",
               "types"}


def ingest(db, project, events):
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))


def ev(distinct_id, event, ts):
    return {"event": event, "distinct_id": distinct_id, "timestamp": ts}


@pytest.fixture
def with_events(db, project):
    """Five people on 2024-01-02..03: all view, three sign up, two of those purchase."""
    events = []
    for n in range(5):
        events.append(ev(f"u{n}", "$pageview", f"2024-01-02T0{n}:00:00Z"))
        if n < 3:
            events.append(ev(f"u{n}", "signed_up", f"2024-01-02T0{n}:10:00Z"))
        if n < 2:
            events.append(ev(f"u{n}", "purchase", f"2024-01-02T0{n}:20:00Z"))
        events.append(ev(f"u{n}", "$pageview", f"2024-01-03T0{n}:00:00Z"))
    ingest(db, project, events)
    return project


def base(p, prefix="projects"):
    return f"/api/{prefix}/{p['id']}/insights"


def create(p, body=None, key=None, prefix="projects"):
    r = api("POST", base(p, prefix) + "/", key or p["key"], json=body if body is not None else {"name": "x"})
    assert r.status_code == 201, r.text
    return r.json()


def get(p, iid, query="", key=None):
    return api("GET", f"{base(p)}/{iid}/{query}", key or p["key"])


def age_cache(db, project, delta):
    """Move every cached result of the project `delta` into the past."""
    sql(db, "UPDATE insights.query_cache SET last_refresh = last_refresh - %s WHERE project_id = %s",
        delta, project["id"])


def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def wait_for(fetch, done, timeout=30.0):
    """Poll `fetch()` until `done(value)`: async runs finish in the background worker."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Create, retrieve, serializer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["projects", "environments"])
@pytest.mark.parametrize("slash", ["/", ""])
def test_create_returns_201_with_full_serializer(project, prefix, slash):
    p = project
    r = api("POST", base(p, prefix) + slash, p["key"],
            json={"name": "Signups", "derived_name": "Pageview count", "description": "d", "tags": ["a", "b"],
                  "filters": FUNNEL_FILTERS, "_create_in_folder": "Unfiled/Insights"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert FULL_FIELDS <= set(body), FULL_FIELDS - set(body)
    assert re.fullmatch(r"[A-Za-z0-9]{8}", body["short_id"])
    assert body["name"] == "Signups" and body["derived_name"] == "Pageview count"
    assert body["filters"] == FUNNEL_FILTERS and body["query"] is None
    assert body["tags"] == ["a", "b"] and body["description"] == "d"
    assert body["deleted"] is False and body["saved"] is False and body["favorited"] is False
    assert body["dashboards"] == [] and body["dashboard_tiles"] == [] and body["order"] is None
    assert set(body["created_by"]) == USER_FIELDS
    assert body["created_by"]["id"] == p["user_id"] and body["created_by"]["email"] == f"{p['name']}@example.com"
    assert body["last_modified_by"] == body["created_by"]
    assert body["effective_restriction_level"] == 21 and body["effective_privilege_level"] == 37
    # The insights API defaults to force_cache: nothing is computed on create.
    assert body["result"] is None and body["is_cached"] is False and body["last_refresh"] is None
    assert body["timezone"] == "UTC"
    assert body["last_viewed_at"] is not None  # PostHog records a view for the creator
    for f in ("created_at", "updated_at", "last_modified_at"):
        assert parse_ts(body[f]).tzinfo is not None

    r = api("GET", f"{base(p, prefix)}/{body['id']}{slash}", p["key"])
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["id"] == body["id"] and again["short_id"] == body["short_id"] and again["name"] == "Signups"


def test_query_insight_returns_filters_as_empty_object(project):
    body = create(project, {"query": TRENDS_QUERY})
    assert body["query"] == TRENDS_QUERY and body["filters"] == {}
    assert body["name"] is None


def test_retrieve_by_short_id_and_list_short_id_filter(project):
    p = project
    a = create(p, {"name": "a"})
    create(p, {"name": "b"})
    r = get(p, a["short_id"])
    assert r.status_code == 200 and r.json()["id"] == a["id"]
    r = api("GET", f"{base(p)}/?short_id={a['short_id']}", p["key"])
    assert r.status_code == 200
    assert [x["id"] for x in r.json()["results"]] == [a["id"]] and r.json()["count"] == 1


# ---------------------------------------------------------------------------------------------
# Results and refresh modes
# ---------------------------------------------------------------------------------------------


def test_saved_funnel_result_equals_legacy_funnel_endpoint(with_events):
    p = with_events
    ins = create(p, {"name": "f", "filters": FUNNEL_FILTERS})
    r = get(p, ins["id"], "?refresh=blocking")
    assert r.status_code == 200, r.text
    saved = r.json()
    legacy = api("POST", f"/api/projects/{p['id']}/insights/funnel/", p["key"], json=FUNNEL_FILTERS)
    assert legacy.status_code == 200, legacy.text
    assert saved["result"] == legacy.json()["result"]
    assert [s["count"] for s in saved["result"]] == [5, 3, 2]


def test_saved_trend_query_result_equals_legacy_trend_endpoint(with_events):
    p = with_events
    ins = create(p, {"query": TRENDS_QUERY})
    saved = get(p, ins["id"], "?refresh=blocking").json()
    legacy = api("POST", f"/api/projects/{p['id']}/insights/trend/", p["key"], json=TRENDS_QUERY["source"]).json()
    assert saved["result"] == legacy["result"]
    assert saved["result"][0]["data"] == [0, 5, 5, 0, 0]


def test_saved_retention_result_equals_legacy_retention_endpoint(with_events):
    p = with_events
    ins = create(p, {"filters": RETENTION_FILTERS})
    saved = get(p, ins["id"], "?refresh=blocking").json()
    legacy = api("POST", f"/api/projects/{p['id']}/insights/retention/", p["key"], json=RETENTION_FILTERS)
    assert legacy.status_code == 200, legacy.text
    assert saved["result"] == legacy.json()["result"] and saved["result"]


def test_force_cache_blocking_and_force_blocking(db, with_events):
    p = with_events
    ins = create(p, {"filters": FUNNEL_FILTERS})
    # force_cache (the default) on a cache miss: no result, nothing computed.
    for q in ("", "?refresh=force_cache", "?refresh=false", "?refresh=nonsense"):
        body = get(p, ins["id"], q).json()
        assert body["result"] is None and body["is_cached"] is False and body["last_refresh"] is None, q
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", p["id"])[0][0] == 0

    first = get(p, ins["id"], "?refresh=blocking").json()
    assert first["is_cached"] is False and first["result"] and first["query_status"] is None
    lr = parse_ts(first["last_refresh"])
    assert abs((datetime.now(timezone.utc) - lr).total_seconds()) < 60
    # Daily interval: stale after 6 h. A 9-day range: forced refreshes at most every 15 min.
    assert parse_ts(first["cache_target_age"]) - lr == timedelta(hours=6)
    assert parse_ts(first["next_allowed_client_refresh"]) - lr == timedelta(minutes=15)

    for q in ("", "?refresh=blocking", "?refresh=force_blocking", "?refresh=true"):
        body = get(p, ins["id"], q).json()
        assert body["is_cached"] is True and body["last_refresh"] == first["last_refresh"], q
        assert body["result"] == first["result"]

    age_cache(db, p, timedelta(minutes=20))
    forced = get(p, ins["id"], "?refresh=force_blocking").json()
    assert forced["is_cached"] is False and parse_ts(forced["last_refresh"]) > lr - timedelta(minutes=1)
    assert forced["result"] == first["result"]
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", p["id"])[0][0] == 1


def test_staleness_thresholds_and_lazy_async(db, with_events):
    p = with_events
    # A relative range reaches up to now, so the result can go stale.
    ins = create(p, {"filters": {**FUNNEL_FILTERS, "date_from": "-30d", "date_to": None}})
    assert get(p, ins["id"], "?refresh=blocking").json()["is_cached"] is False
    age_cache(db, p, timedelta(hours=5))
    assert get(p, ins["id"], "?refresh=blocking").json()["is_cached"] is True
    age_cache(db, p, timedelta(hours=2))  # 7 h old: stale for blocking, fresh for lazy (12 h)
    lazy = get(p, ins["id"], "?refresh=lazy_async").json()
    assert lazy["is_cached"] is True and lazy["query_status"] is None
    blocking = get(p, ins["id"], "?refresh=blocking").json()
    assert blocking["is_cached"] is False and blocking["query_status"] is None
    age_cache(db, p, timedelta(hours=13))
    stale_refresh = get(p, ins["id"]).json()["last_refresh"]
    # lazy_async on a stale result: the stale result at once, and a run for the background worker.
    lazy = get(p, ins["id"], "?refresh=lazy_async").json()
    assert lazy["is_cached"] is True and lazy["last_refresh"] == stale_refresh
    qs = lazy["query_status"]
    assert qs["query_async"] is True and qs["complete"] is False and qs["team_id"] == p["id"] and qs["id"]
    fresh = wait_for(lambda: get(p, ins["id"]).json(), lambda b: b["last_refresh"] != stale_refresh)
    assert parse_ts(fresh["last_refresh"]) > parse_ts(stale_refresh) + timedelta(hours=12)
    status = api("GET", f"/api/projects/{p['id']}/query/{qs['id']}/", p["key"]).json()["query_status"]
    assert status["complete"] is True and status["error"] is False


def test_past_date_range_is_never_stale(db, with_events):
    p = with_events
    ins = create(p, {"filters": FUNNEL_FILTERS})  # date_to 2024-01-10: the data cannot change
    get(p, ins["id"], "?refresh=blocking")
    age_cache(db, p, timedelta(days=30))
    body = get(p, ins["id"], "?refresh=blocking").json()
    assert body["is_cached"] is True and body["result"]


def test_async_modes_queue_runs_for_the_worker(db, with_events):
    p = with_events
    ins = create(p, {"filters": {**FUNNEL_FILTERS, "date_from": "-30d", "date_to": None}})
    # async_except_on_cache_miss with nothing cached: blocking, no query_status.
    body = get(p, ins["id"], "?refresh=async_except_on_cache_miss").json()
    assert body["is_cached"] is False and body["query_status"] is None and body["result"] is not None
    # async on a fresh cache: served from it, nothing queued.
    body = get(p, ins["id"], "?refresh=async").json()
    assert body["is_cached"] is True and body["query_status"] is None
    age_cache(db, p, timedelta(hours=7))
    stale = get(p, ins["id"]).json()["last_refresh"]
    body = get(p, ins["id"], "?refresh=async_except_on_cache_miss").json()
    assert body["is_cached"] is True and body["last_refresh"] == stale and body["query_status"]["complete"] is False
    wait_for(lambda: get(p, ins["id"]).json(), lambda b: b["last_refresh"] != stale)
    # force_async always queues a run; insights/cancel/ with its id cancels it unless it already ran.
    body = get(p, ins["id"], "?refresh=force_async").json()
    assert body["is_cached"] is True and body["query_status"]["complete"] is False
    r = api("POST", f"{base(p)}/cancel/", p["key"], json={"client_query_id": body["query_status"]["id"]})
    assert r.status_code == 201, r.text
    status = wait_for(lambda: api("GET", f"/api/projects/{p['id']}/query/{body['query_status']['id']}/",
                                  p["key"]).json()["query_status"], lambda s: s["complete"])
    assert status["status"] in ("cancelled", "complete")


def test_async_run_on_a_cache_miss(with_events):
    p = with_events
    ins = create(p, {"filters": FUNNEL_FILTERS})
    body = get(p, ins["id"], "?refresh=async").json()
    assert body["result"] is None and body["is_cached"] is False and body["query_status"]["complete"] is False
    done = wait_for(lambda: get(p, ins["id"]).json(), lambda b: b["result"] is not None)
    assert [s["count"] for s in done["result"]] == [5, 3, 2] and done["is_cached"] is True


def test_saved_insight_and_query_endpoint_share_the_cache(with_events):
    p = with_events
    ins = create(p, {"query": TRENDS_QUERY})
    computed = get(p, ins["id"], "?refresh=blocking").json()
    r = api("POST", f"/api/projects/{p['id']}/query/", p["key"], json={"query": TRENDS_QUERY, "refresh": "force_cache"})
    assert r.status_code == 200, r.text
    assert r.json()["is_cached"] is True and r.json()["results"] == computed["result"]
    assert r.json()["last_refresh"] == computed["last_refresh"]


def test_cache_is_keyed_by_normalized_query(db, with_events):
    p = with_events
    a = create(p, {"filters": FUNNEL_FILTERS})
    reordered = json.loads(json.dumps(dict(reversed(list(FUNNEL_FILTERS.items())))))
    b = create(p, {"filters": reordered})
    computed = get(p, a["id"], "?refresh=blocking").json()
    body = get(p, b["id"]).json()  # force_cache
    assert body["is_cached"] is True and body["result"] == computed["result"]
    # A third insight with the very same filters shares it too.
    third = create(p, {"filters": FUNNEL_FILTERS})
    assert get(p, third["id"]).json()["is_cached"] is True


def test_cache_is_per_project(with_events, make_project):
    p = with_events
    q = create(p, {"filters": FUNNEL_FILTERS})
    get(p, q["id"], "?refresh=blocking")
    other = make_project()
    o = create(other, {"filters": FUNNEL_FILTERS})
    body = get(other, o["id"]).json()
    assert body["is_cached"] is False and body["result"] is None


def test_bad_saved_query_is_a_400_not_a_500(with_events):
    p = with_events
    ins = create(p, {"filters": {"insight": "FUNNELS", "events": [{"id": "$pageview"}]}})
    assert get(p, ins["id"]).json()["result"] is None  # force_cache never calculates
    assert_error(get(p, ins["id"], "?refresh=blocking"), 400, "validation_error", "invalid_input", attr="events")


def test_uncomputable_insight_has_null_result(project):
    ins = create(project, {"query": {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query": "select 1"}}})
    body = get(project, ins["id"], "?refresh=blocking").json()
    assert body["result"] is None and body["is_cached"] is False
    # Paths have an engine now: an empty project has no edges, not a null result.
    ins = create(project, {"query": {"kind": "InsightVizNode", "source": {"kind": "PathsQuery"}}})
    body = get(project, ins["id"], "?refresh=blocking").json()
    assert body["result"] == [] and body["is_cached"] is False


# ---------------------------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------------------------


def test_list_pagination_links(project):
    p = project
    ids = [create(p, {"name": f"i{n}"})["id"] for n in range(5)]
    r = api("GET", f"{base(p)}/?limit=2", p["key"])
    body = r.json()
    assert body["count"] == 5 and len(body["results"]) == 2
    # Newest modification first (order is null for all).
    assert [x["id"] for x in body["results"]] == ids[::-1][:2]
    assert body["next"] == f"{r.url.split('/api/')[0]}/api/projects/{p['id']}/insights/?limit=2&offset=2"
    assert body["previous"] is None
    body2 = api("GET", "/api/" + body["next"].split("/api/", 1)[1], p["key"]).json()
    assert [x["id"] for x in body2["results"]] == ids[::-1][2:4]
    assert body2["previous"].endswith(f"/insights/?limit=2")  # DRF drops offset at the first page
    body3 = api("GET", f"{base(p)}/?limit=2&offset=4", p["key"]).json()
    assert [x["id"] for x in body3["results"]] == [ids[0]]
    assert body3["next"] is None and body3["previous"].endswith("/insights/?limit=2&offset=2")
    assert_error(api("GET", f"{base(p)}/?limit=zero", p["key"]), 400, "validation_error", "invalid_input", attr="limit")
    assert_error(api("GET", f"{base(p)}/?offset=-1", p["key"]), 400, "validation_error", "invalid_input", attr="offset")


def test_list_filters_and_basic(db, project, make_project):
    p = project
    a = create(p, {"name": "Revenue funnel", "filters": FUNNEL_FILTERS, "favorited": True, "saved": True})
    b = create(p, {"name": "Pageviews", "query": TRENDS_QUERY, "tags": ["marketing"]})
    c = create(p, {"derived_name": "Something revenue"})

    def ids(q):
        r = api("GET", f"{base(p)}/{q}", p["key"])
        assert r.status_code == 200, r.text
        return sorted(x["id"] for x in r.json()["results"])

    assert ids("") == sorted([a["id"], b["id"], c["id"]])
    assert ids("?saved=true") == [a["id"]]
    assert ids("?favorited=true") == [a["id"]]
    assert ids("?search=revenue") == sorted([a["id"], c["id"]])
    assert ids("?search=market") == [b["id"]]
    assert ids("?insight=FUNNELS") == [a["id"]]
    assert ids("?insight=TRENDS") == sorted([b["id"], c["id"]])
    assert ids(f"?created_by={p['user_id']}") == sorted([a["id"], b["id"], c["id"]])
    assert ids(f"?created_by={p['user_id'] + 100000}") == []
    assert ids("?user=true") == sorted([a["id"], b["id"], c["id"]])
    assert ids("?tags=marketing") == [b["id"]]
    assert ids('?tags=["marketing","nope"]') == [b["id"]]
    assert ids("?search=%25") == []  # no LIKE wildcards from the user
    assert_error(api("GET", f"{base(p)}/?created_by=me", p["key"]), 400, "validation_error", "invalid_input",
                 attr="created_by")

    basic = api("GET", f"{base(p)}/?basic=true", p["key"]).json()["results"]
    assert all("result" not in x and "is_cached" not in x for x in basic)
    assert {"id", "short_id", "name", "filters", "query", "dashboards", "saved", "tags", "created_by"} <= set(basic[0])

    # Deleted insights disappear from the list; another project's insights never appear.
    api("PATCH", f"{base(p)}/{a['id']}/", p["key"], json={"deleted": True})
    assert ids("") == sorted([b["id"], c["id"]])
    other = make_project()
    create(other, {"name": "Revenue elsewhere"})
    assert ids("?search=revenue") == [c["id"]]


def test_list_refresh_blocking_attaches_results(with_events):
    p = with_events
    ins = create(p, {"filters": FUNNEL_FILTERS})
    listed = api("GET", f"{base(p)}/", p["key"]).json()["results"][0]
    assert listed["id"] == ins["id"] and listed["result"] is None
    listed = api("GET", f"{base(p)}/?refresh=blocking", p["key"]).json()["results"][0]
    assert [s["count"] for s in listed["result"]] == [5, 3, 2] and listed["is_cached"] is False
    listed = api("GET", f"{base(p)}/", p["key"]).json()["results"][0]
    assert listed["is_cached"] is True and [s["count"] for s in listed["result"]] == [5, 3, 2]


# ---------------------------------------------------------------------------------------------
# Update, soft delete, activity
# ---------------------------------------------------------------------------------------------


def test_patch_updates_and_records_activity(project):
    p = project
    ins = create(p, {"name": "Old", "filters": FUNNEL_FILTERS})
    r = api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"name": "Signups", "tags": ["x"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Signups" and body["tags"] == ["x"] and body["saved"] is True
    assert parse_ts(body["last_modified_at"]) >= parse_ts(ins["last_modified_at"])
    assert body["short_id"] == ins["short_id"] and body["filters"] == FUNNEL_FILTERS

    # A favorite toggle is not a material change: last_modified_at stays.
    fav = api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"favorited": True}).json()
    assert fav["favorited"] is True and fav["last_modified_at"] == body["last_modified_at"]
    # An update without changes logs nothing.
    api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"name": "Signups"})

    r = api("GET", f"{base(p)}/{ins['id']}/activity/", p["key"])
    assert r.status_code == 200, r.text
    act = r.json()
    assert act["total_count"] == 3 and act["next"] is None and act["previous"] is None
    assert [e["activity"] for e in act["results"]] == ["updated", "updated", "created"]
    upd = act["results"][1]
    assert upd["scope"] == "Insight" and upd["item_id"] == str(ins["id"])
    assert upd["user"]["id"] == p["user_id"] and set(upd["user"]) == USER_FIELDS
    assert upd["unread"] is False and upd["is_system"] is False and upd["was_impersonated"] is False
    assert upd["detail"]["short_id"] == ins["short_id"] and upd["detail"]["id"] == str(ins["id"])
    assert upd["detail"]["name"] == "Signups"
    assert upd["detail"]["changes"] == [
        {"type": "Insight", "action": "changed", "field": "name", "before": "Old", "after": "Signups"},
        {"type": "Insight", "action": "changed", "field": "tags", "before": [], "after": ["x"]},
    ]
    assert act["results"][0]["detail"]["changes"] == [
        {"type": "Insight", "action": "changed", "field": "favorited", "before": False, "after": True}]
    assert act["results"][2]["detail"]["changes"] is None


def test_put_updates_like_patch(project):
    p = project
    ins = create(p, {"name": "a"})
    r = api("PUT", f"{base(p)}/{ins['id']}", p["key"], json={"name": "b", "description": "new"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "b" and r.json()["description"] == "new"


def test_soft_delete_and_restore(db, project):
    p = project
    ins = create(p, {"name": "gone"})
    r = api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"deleted": True})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert_error(get(p, ins["id"]), 404, "invalid_request", "not_found")
    assert_error(get(p, ins["short_id"]), 404, "invalid_request", "not_found")
    # Only a restore finds a deleted insight.
    assert_error(api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"name": "x"}), 404, "invalid_request", "not_found")
    assert sql(db, "SELECT deleted FROM insights.saved_insights WHERE id = %s", ins["id"])[0][0] is True
    r = api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"deleted": False})
    assert r.status_code == 200 and r.json()["deleted"] is False
    assert get(p, ins["id"]).status_code == 200

    act = api("GET", f"{base(p)}/{ins['id']}/activity/", p["key"]).json()
    assert [e["activity"] for e in act["results"]] == ["restored", "deleted", "created"]
    assert act["results"][1]["detail"]["changes"] == [
        {"type": "Insight", "action": "changed", "field": "deleted", "before": False, "after": True}]


def test_delete_is_405_after_the_scope_check(make_project):
    p = make_project(scopes=["insight:write"])
    ins = create(p, {"name": "x"})
    body = assert_error(api("DELETE", f"{base(p)}/{ins['id']}/", p["key"]), 405, "invalid_request", "method_not_allowed")
    assert body["detail"] == 'Method "DELETE" not allowed.'
    assert get(p, ins["id"]).status_code == 200
    ro = make_project(scopes=["insight:read"])
    assert_error(api("DELETE", f"{base(ro)}/1/", ro["key"]), 403, "authentication_error", "permission_denied")


def test_project_activity_and_paging(project):
    p = project
    a = create(p, {"name": "a"})
    b = create(p, {"name": "b"})
    api("PATCH", f"{base(p)}/{a['id']}/", p["key"], json={"name": "a2"})
    r = api("GET", f"{base(p)}/activity/", p["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_count"] == 3
    assert [(e["activity"], e["item_id"]) for e in body["results"]] == [
        ("updated", str(a["id"])), ("created", str(b["id"])), ("created", str(a["id"]))]
    page2 = api("GET", f"{base(p)}/activity/?limit=1&page=2", p["key"]).json()
    assert [e["item_id"] for e in page2["results"]] == [str(b["id"])]
    assert page2["next"].endswith("/insights/activity/?limit=1&page=3")
    assert page2["previous"].endswith("/insights/activity/?limit=1&page=1")
    for q, attr in (("?page=0", "page"), ("?limit=0", "limit"), ("?page=x", "page")):
        assert_error(api("GET", f"{base(p)}/activity/{q}", p["key"]), 400, "validation_error", "invalid_input",
                     attr=attr)


def test_dashboards_field_writes_tiles(db, project, make_project):
    p = project
    (d1,) = sql(db, "INSERT INTO insights.dashboards (project_id, name) VALUES (%s, 'd1') RETURNING id", p["id"])[0]
    (d2,) = sql(db, "INSERT INTO insights.dashboards (project_id, name) VALUES (%s, 'd2') RETURNING id", p["id"])[0]
    ins = create(p, {"name": "on dash", "dashboards": [d1]})
    assert ins["dashboards"] == [d1] and [t["dashboard_id"] for t in ins["dashboard_tiles"]] == [d1]
    listed = api("GET", f"{base(p)}/?dashboards=[{d1}]", p["key"]).json()["results"]
    assert [x["id"] for x in listed] == [ins["id"]]
    # saved=true also lists insights that are on a dashboard.
    assert [x["id"] for x in api("GET", f"{base(p)}/?saved=true", p["key"]).json()["results"]] == [ins["id"]]
    body = api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"dashboards": [d2]}).json()
    assert body["dashboards"] == [d2]
    assert api("GET", f"{base(p)}/?dashboards=[{d1}]", p["key"]).json()["count"] == 0
    assert_error(api("GET", f"{base(p)}/?dashboards=[\"x\"]", p["key"]), 400, "validation_error", "invalid_input",
                 attr="dashboards")
    other = make_project()
    (od,) = sql(db, "INSERT INTO insights.dashboards (project_id, name) VALUES (%s, 'o') RETURNING id", other["id"])[0]
    r = api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"dashboards": [od]})
    body = assert_error(r, 400, "validation_error", "does_not_exist", attr="dashboards")
    assert body["detail"] == f'Invalid pk "{od}" - object does not exist.'
    # Soft delete takes the insight off its dashboards.
    api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json={"deleted": True})
    assert sql(db, "SELECT bool_and(deleted) FROM insights.dashboard_tiles WHERE insight_id = %s", ins["id"])[0][0]


# ---------------------------------------------------------------------------------------------
# Viewed, my_last_viewed, sharing, cancel, timing
# ---------------------------------------------------------------------------------------------


def test_viewed_and_my_last_viewed(project, make_project):
    p = project
    ids = [create(p, {"name": f"v{n}"})["id"] for n in range(7)]
    # Creating counts as a view: the last five created come first.
    r = api("GET", f"{base(p)}/my_last_viewed/", p["key"])
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()] == ids[::-1][:5]
    assert "result" not in r.json()[0]

    r = api("POST", f"{base(p)}/{ids[0]}/viewed/", p["key"])
    assert r.status_code == 201, r.text
    r = api("POST", f"{base(p)}/viewed/", p["key"], json={"insight_ids": [ids[1]]})
    assert r.status_code == 201, r.text
    assert [x["id"] for x in api("GET", f"{base(p)}/my_last_viewed", p["key"]).json()] == \
        [ids[1], ids[0], ids[6], ids[5], ids[4]]
    assert get(p, ids[1]).json()["last_viewed_at"] is not None

    # Deleted insights drop out.
    api("PATCH", f"{base(p)}/{ids[1]}/", p["key"], json={"deleted": True})
    assert [x["id"] for x in api("GET", f"{base(p)}/my_last_viewed/", p["key"]).json()] == \
        [ids[0], ids[6], ids[5], ids[4], ids[3]]

    # Another project's insight ids are ignored (not visible), not recorded.
    other = make_project()
    oid = create(other, {"name": "o"})["id"]
    assert api("POST", f"{base(p)}/viewed/", p["key"], json={"insight_ids": [oid]}).status_code == 201
    assert oid not in [x["id"] for x in api("GET", f"{base(p)}/my_last_viewed/", p["key"]).json()]

    assert_error(api("POST", f"{base(p)}/viewed/", p["key"], json={"insight_ids": 5}), 400,
                 "validation_error", "not_a_list", attr="insight_ids")
    assert_error(api("POST", f"{base(p)}/viewed/", p["key"], json={}), 400, "validation_error", "required",
                 attr="insight_ids")
    assert_error(api("POST", f"{base(p)}/viewed/", p["key"], json={"insight_ids": ["x"]}), 400,
                 "validation_error", "incorrect_type", attr="insight_ids")
    assert_error(api("POST", f"{base(p)}/999999999/viewed/", p["key"]), 404, "invalid_request", "not_found")
    assert_error(api("GET", f"{base(p)}/viewed/", p["key"]), 405, "invalid_request", "method_not_allowed")


def test_sharing_toggle(project):
    p = project
    ins = create(p, {"name": "shared"})
    r = api("GET", f"{base(p)}/{ins['id']}/sharing/", p["key"])
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["enabled"] is False and re.fullmatch(r"[A-Za-z0-9_-]{30}", first["access_token"])
    assert parse_ts(first["created_at"]).tzinfo is not None
    assert api("GET", f"{base(p)}/{ins['id']}/sharing/", p["key"]).json() == first  # created once

    r = api("PATCH", f"{base(p)}/{ins['id']}/sharing/", p["key"], json={"enabled": True})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True and r.json()["access_token"] == first["access_token"]
    assert api("GET", f"{base(p)}/{ins['id']}/sharing", p["key"]).json()["enabled"] is True
    r = api("PATCH", f"{base(p)}/{ins['id']}/sharing/", p["key"], json={"enabled": False})
    assert r.json()["enabled"] is False

    assert_error(api("PATCH", f"{base(p)}/{ins['id']}/sharing/", p["key"], json={"enabled": "perhaps"}),
                 400, "validation_error", "invalid_input", attr="enabled")
    assert_error(api("GET", f"{base(p)}/999999999/sharing/", p["key"]), 404, "invalid_request", "not_found")
    assert_error(api("POST", f"{base(p)}/{ins['id']}/sharing/", p["key"], json={}), 405, "invalid_request",
                 "method_not_allowed")



def test_sharing_scopes(db, make_project):
    p = make_project(scopes=["insight:write"])
    ins = create(p, {"name": "s"})
    body = assert_error(api("GET", f"{base(p)}/{ins['id']}/sharing/", p["key"]), 403, "authentication_error",
                        "permission_denied")
    assert body["detail"] == "API key missing required scope 'sharing_configuration:read'"
    (read_key,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'r', ARRAY['sharing_configuration:read'], NULL)",
                      p["user_id"])[0]
    assert api("GET", f"{base(p)}/{ins['id']}/sharing/", read_key).status_code == 200
    body = assert_error(api("PATCH", f"{base(p)}/{ins['id']}/sharing/", read_key, json={"enabled": True}),
                        403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'sharing_configuration:write'"
    (write_key,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'w', ARRAY['sharing_configuration:write'], NULL)",
                       p["user_id"])[0]
    assert api("PATCH", f"{base(p)}/{ins['id']}/sharing/", write_key, json={"enabled": True}).json()["enabled"] is True


def test_cancel_and_timing(project):
    p = project
    assert api("POST", f"{base(p)}/cancel/", p["key"], json={"client_query_id": "abc"}).status_code == 201
    unknown = "00000000-0000-4000-8000-000000000000"
    assert api("POST", f"{base(p)}/cancel/", p["key"], json={"client_query_id": unknown}).status_code == 201
    assert_error(api("POST", f"{base(p)}/cancel/", p["key"], json={}), 400, "validation_error", "required",
                 attr="client_query_id")
    r = api("POST", f"{base(p)}/timing/", p["key"], json={"insight": "TRENDS", "timings": {}})
    assert r.status_code == 200 and r.json() == {}
    assert_error(api("GET", f"{base(p)}/cancel/", p["key"]), 405, "invalid_request", "method_not_allowed")


# ---------------------------------------------------------------------------------------------
# Auth, scopes, project boundaries
# ---------------------------------------------------------------------------------------------


def test_scopes(db, make_project):
    p = make_project(scopes=["insight:read"])
    (writer,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'w', ARRAY['insight:write'], NULL)",
                    p["user_id"])[0]
    (persons_only,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'p', ARRAY['person:read'], NULL)",
                          p["user_id"])[0]
    ins = create(p, {"name": "x"}, key=writer)
    # Read key: reads work, writes need insight:write.
    assert api("GET", f"{base(p)}/", p["key"]).status_code == 200
    assert get(p, ins["id"]).status_code == 200
    assert api("POST", f"{base(p)}/{ins['id']}/viewed/", p["key"]).status_code == 201
    for method, path, body in [("POST", "/", {"name": "y"}), ("PATCH", f"/{ins['id']}/", {"name": "y"}),
                               ("PUT", f"/{ins['id']}/", {"name": "y"})]:
        r = api(method, base(p) + path, p["key"], json=body)
        err = assert_error(r, 403, "authentication_error", "permission_denied")
        assert err["detail"] == "API key missing required scope 'insight:write'"
    # Write implies read.
    assert api("GET", f"{base(p)}/{ins['id']}/", writer).status_code == 200
    # No insight scope at all.
    for path in ("/", f"/{ins['id']}/", "/my_last_viewed/"):
        err = assert_error(api("GET", base(p) + path, persons_only), 403, "authentication_error", "permission_denied")
        assert err["detail"] == "API key missing required scope 'insight:read'"
    # Activity needs activity_log:read.
    err = assert_error(api("GET", f"{base(p)}/{ins['id']}/activity/", writer), 403, "authentication_error",
                       "permission_denied")
    assert err["detail"] == "API key missing required scope 'activity_log:read'"
    assert_error(api("GET", f"{base(p)}/activity/", p["key"]), 403, "authentication_error", "permission_denied")


def test_missing_and_revoked_keys(db, project):
    p = project
    ins = create(p, {"name": "x"})
    assert_error(api("GET", f"{base(p)}/"), 401, "authentication_error", "not_authenticated")
    assert_error(api("GET", f"{base(p)}/{ins['id']}/", "phx_nope"), 401, "authentication_error", "authentication_failed")
    sql(db, "SELECT insights.revoke_personal_api_key(id) FROM insights.personal_api_keys WHERE user_id = %s", p["user_id"])
    for method, path in [("GET", "/"), ("GET", f"/{ins['id']}/"), ("PATCH", f"/{ins['id']}/"), ("POST", "/")]:
        assert_error(api(method, base(p) + path, p["key"], json={"name": "z"}), 401, "authentication_error",
                     "authentication_failed")


def test_other_projects_key_and_ids(db, project, make_project):
    p = project
    ins = create(p, {"name": "mine", "filters": FUNNEL_FILTERS})
    other = make_project()
    # Another project's key on this project's path: 403 (not a member).
    assert_error(api("GET", f"{base(p)}/", other["key"]), 403, "authentication_error", "permission_denied")
    assert_error(api("GET", f"{base(p)}/{ins['id']}/", other["key"]), 403, "authentication_error", "permission_denied")
    assert_error(api("PATCH", f"{base(p)}/{ins['id']}/", other["key"], json={"name": "hacked"}), 403,
                 "authentication_error", "permission_denied")
    # Its own path with this project's insight id: not found, by id or short_id, for every action.
    ob = base(other)
    for method, path in [("GET", f"/{ins['id']}/"), ("GET", f"/{ins['short_id']}/"), ("PATCH", f"/{ins['id']}/"),
                         ("PUT", f"/{ins['id']}/"), ("GET", f"/{ins['id']}/activity/"),
                         ("GET", f"/{ins['id']}/sharing/"), ("PATCH", f"/{ins['id']}/sharing/"),
                         ("POST", f"/{ins['id']}/viewed/")]:
        assert_error(api(method, ob + path, other["key"], json={"name": "hacked", "deleted": True, "enabled": True}),
                     404, "invalid_request", "not_found")
    assert api("GET", f"{ob}/?short_id={ins['short_id']}", other["key"]).json()["count"] == 0
    assert api("GET", f"{ob}/activity/", other["key"]).json()["total_count"] == 0
    row = sql(db, "SELECT name, deleted FROM insights.saved_insights WHERE id = %s", ins["id"])[0]
    assert row == ("mine", False)
    assert sql(db, "SELECT count(*) FROM insights.sharing_configurations WHERE insight_id = %s", ins["id"])[0][0] == 0


def test_row_level_security_on_insight_tables(db, project, make_project):
    """As the API role with another project set, the insight rows are neither readable nor writable."""
    p = project
    ins = create(p, {"name": "mine"})
    api("GET", f"{base(p)}/{ins['id']}/sharing/", p["key"])
    other = make_project()
    with db.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SET LOCAL ROLE pgi_api")
        cur.execute("SELECT set_config('pgi.project_id', %s, true)", (str(other["id"]),))
        for table in ("saved_insights", "insight_views", "activity_log", "sharing_configurations"):
            cur.execute(f"SELECT count(*) FROM insights.{table} WHERE project_id = %s", (p["id"],))
            assert cur.fetchone()[0] == 0, table
        cur.execute("UPDATE insights.saved_insights SET name = 'hacked' WHERE id = %s", (ins["id"],))
        assert cur.rowcount == 0
        cur.execute("ROLLBACK")
    assert sql(db, "SELECT name FROM insights.saved_insights WHERE id = %s", ins["id"])[0][0] == "mine"


# ---------------------------------------------------------------------------------------------
# Bad bodies, ids, methods: always PostHog's 4xx body
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,code,attr", [
    ({"name": ["x"]}, "invalid_input", "name"),
    ({"name": "x" * 401}, "max_length", "name"),
    ({"description": None}, "null", "description"),
    ({"filters": [1, 2]}, "not_a_dict", "filters"),
    ({"query": "select 1"}, "not_a_dict", "query"),
    ({"favorited": "maybe"}, "invalid_input", "favorited"),
    ({"deleted": None}, "null", "deleted"),
    ({"tags": "x"}, "not_a_list", "tags"),
    ({"tags": [1]}, "invalid_input", "tags"),
    ({"order": "first"}, "invalid_input", "order"),
    ({"order": True}, "invalid_input", "order"),
    ({"dashboards": [999999999]}, "does_not_exist", "dashboards"),
    ({"dashboards": "1"}, "not_a_list", "dashboards"),
    ({"_create_in_folder": 5}, "invalid_input", "_create_in_folder"),
])
def test_bad_bodies_are_400(project, body, code, attr):
    p = project
    assert_error(api("POST", f"{base(p)}/", p["key"], json=body), 400, "validation_error", code, attr=attr)
    ins = create(p, {"name": "ok"})
    assert_error(api("PATCH", f"{base(p)}/{ins['id']}/", p["key"], json=body), 400, "validation_error", code, attr=attr)
    assert get(p, ins["id"]).json()["name"] == "ok"  # nothing written


def test_malformed_json_and_non_object_bodies(project):
    p = project
    for raw in ('{"name": ', "[1, 2]", '"x"'):
        r = api("POST", f"{base(p)}/", p["key"], data=raw, headers={"Content-Type": "application/json"})
        assert_error(r, 400, "invalid_request", "parse_error")


def test_bad_ids_and_methods(project):
    p = project
    ins = create(p, {"name": "x"})
    for bad in ("abc", "99999999999", "-1", "12345678901234567890", "zzzzzzzz", "%27%3B"):
        assert_error(api("GET", f"{base(p)}/{bad}/", p["key"]), 404, "invalid_request", "not_found")
    assert_error(get(p, ins["id"], "?from_dashboard=x"), 400, "validation_error", "invalid_input",
                 attr="from_dashboard")
    assert get(p, ins["id"], "?from_dashboard=5").status_code == 200
    assert_error(api("DELETE", f"{base(p)}/", p["key"]), 405, "invalid_request", "method_not_allowed")
    assert_error(api("PATCH", f"{base(p)}/", p["key"], json={}), 405, "invalid_request", "method_not_allowed")
    assert_error(api("POST", f"{base(p)}/{ins['id']}/", p["key"], json={}), 405, "invalid_request",
                 "method_not_allowed")
    assert_error(api("PATCH", f"{base(p)}/activity/", p["key"], json={}), 405, "invalid_request",
                 "method_not_allowed")
    assert_error(api("POST", f"{base(p)}/my_last_viewed/", p["key"], json={}), 405, "invalid_request",
                 "method_not_allowed")
    assert_error(api("GET", "/api/projects/abc/insights/", p["key"]), 404, "invalid_request", "not_found")


def test_no_server_errors_on_odd_input(project):
    """A sweep of odd bodies and parameters over every insights route: always a 2xx/4xx."""
    p = project
    ins = create(p, {"name": "x", "filters": FUNNEL_FILTERS})
    bodies = [{}, {"name": None}, {"filters": None}, {"query": None}, {"filters": "{bad"}, {"query": {"kind": 5}},
              {"tags": [None]}, {"dashboards": [None]}, {"dashboards": [1.5]}, {"insight_ids": [-1]},
              {"enabled": 1}, {"settings": 3}, {"order": 10 ** 12}, {"deleted": "true"}, {"name": "\u0000"}]
    paths = ["/", f"/{ins['id']}/", "/activity/", f"/{ins['id']}/activity/", "/viewed/", f"/{ins['id']}/viewed/",
             "/my_last_viewed/", f"/{ins['id']}/sharing/", "/cancel/", "/timing/"]
    queries = ["", "?refresh=blocking", "?limit=-5", "?offset=x", "?page=-1", "?created_by=1e9", "?basic=1",
               "?search=%25_%27", "?short_id=%00"]
    for path in paths:
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            for body in bodies:
                r = api(method, base(p) + path, p["key"], json=body)
                assert r.status_code < 500, (method, path, body, r.text)
        for q in queries:
            r = api("GET", base(p) + path + q, p["key"])
            assert r.status_code < 500, (path, q, r.text)


def test_list_order_parameter(project):
    p = project
    ids = [create(p, {"name": n})["id"] for n in ("b", "c", "a")]

    def names(q):
        return [x["name"] for x in api("GET", f"{base(p)}/{q}", p["key"]).json()["results"]]

    assert names("?order=name") == ["a", "b", "c"]
    assert names("?order=-name") == ["c", "b", "a"]
    assert names("?order=created_at") == ["b", "c", "a"]
    api("PATCH", f"{base(p)}/{ids[1]}/", p["key"], json={"order": 1})
    assert names("") == ["c", "a", "b"]  # `order` first, then newest modification
    assert_error(api("GET", f"{base(p)}/?order=secret;drop", p["key"]), 400, "validation_error", "invalid_input",
                 attr="order")


def test_sharing_access_token_opens_one_insight_read_only(db, with_events, make_project):
    p = with_events
    ins = create(p, {"name": "public", "filters": FUNNEL_FILTERS})
    private = create(p, {"name": "private"})
    token = api("GET", f"{base(p)}/{ins['id']}/sharing/", p["key"]).json()["access_token"]
    url = f"{base(p)}/{ins['id']}/?sharing_access_token={token}"
    # Disabled: the token is invalid.
    assert_error(api("GET", url), 401, "authentication_error", "authentication_failed")
    api("PATCH", f"{base(p)}/{ins['id']}/sharing/", p["key"], json={"enabled": True})
    r = api("GET", url)
    assert r.status_code == 200, r.text
    body = r.json()
    # Viewers cannot force a calculation, but a miss queues one (force_cache → lazy_async).
    assert body["name"] == "public" and body["last_viewed_at"] is None
    assert body["result"] is None and body["query_status"]["complete"] is False
    body = wait_for(lambda: api("GET", url).json(), lambda b: b["result"] is not None)
    assert [s["count"] for s in body["result"]] == [5, 3, 2]
    assert api("GET", url + "&refresh=force_blocking").json()["is_cached"] is True  # remapped to blocking
    # The token opens that insight only, in that project only, and only for reading.
    assert_error(api("GET", f"{base(p)}/{private['id']}/?sharing_access_token={token}"), 404, "invalid_request",
                 "not_found")
    other = make_project()
    assert_error(api("GET", f"{base(other)}/{ins['id']}/?sharing_access_token={token}"), 401,
                 "authentication_error", "authentication_failed")
    assert_error(api("GET", f"{base(p)}/?sharing_access_token={token}"), 401, "authentication_error",
                 "not_authenticated")
    assert_error(api("PATCH", url, json={"name": "x"}), 401, "authentication_error", "not_authenticated")
    assert_error(api("GET", f"{base(p)}/{ins['id']}/?sharing_access_token=wrong"), 401, "authentication_error",
                 "authentication_failed")
    assert sql(db, "SELECT name FROM insights.saved_insights WHERE id = %s", ins["id"])[0][0] == "public"


def test_list_date_filters(db, project):
    p = project
    old = create(p, {"name": "old"})
    new = create(p, {"name": "new"})
    sql(db, "UPDATE insights.saved_insights SET last_modified_at = '2024-01-05T12:00:00Z', "
            "created_at = '2024-01-01T00:00:00Z' WHERE id = %s", old["id"])
    sql(db, "UPDATE insights.insight_views SET last_viewed_at = now() - interval '10 days' WHERE insight_id = %s",
        old["id"])

    def ids(q):
        r = api("GET", f"{base(p)}/{q}", p["key"])
        assert r.status_code == 200, r.text
        return sorted(x["id"] for x in r.json()["results"])

    assert ids("?date_from=-7d") == [new["id"]]
    assert ids("?date_to=2024-01-06") == [old["id"]]
    assert ids("?date_from=2024-01-05&date_to=2024-01-06") == [old["id"]]
    assert ids("?created_date_to=2024-01-02") == [old["id"]]
    assert ids("?created_date_from=-1h") == [new["id"]]
    assert ids("?last_viewed_date_to=-3d") == [old["id"]]
    assert ids("?last_viewed_date_from=dStart") == [new["id"]]
    for bad in ("yesterday", "2024-13-45", "-99999999d"):
        assert_error(api("GET", f"{base(p)}/?date_from={bad}", p["key"]), 400, "validation_error", "invalid_input",
                     attr="date_from")
