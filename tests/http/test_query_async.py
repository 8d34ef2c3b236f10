"""PostHog's query endpoint (POST /query/, GET|DELETE /query/:id/) for insight query nodes: the
refresh modes over insights.query_cache, and async runs executed by the extension's background
worker (src/worker.rs) through insights.query_tasks. Everything goes through nginx + PostgREST.
"""

import json
import time

import psycopg
import pytest
from conftest import api, assert_error, sql

FUNNEL = {
    "kind": "FunnelsQuery",
    "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "signup"}],
    "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-10"},
    "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"},
}
TREND = {
    "kind": "TrendsQuery",
    "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
    "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
    "interval": "day",
}


def ingest(db, project):
    events = [
        {"event": "$pageview", "distinct_id": "u1", "timestamp": "2024-01-02T10:00:00Z"},
        {"event": "signup", "distinct_id": "u1", "timestamp": "2024-01-02T11:00:00Z"},
        {"event": "$pageview", "distinct_id": "u2", "timestamp": "2024-01-02T12:00:00Z"},
        {"event": "$pageview", "distinct_id": "u2", "timestamp": "2024-01-03T12:00:00Z"},
    ]
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))


def post_query(project, query, refresh=None, key=None):
    body = {"query": query}
    if refresh is not None:
        body["refresh"] = refresh
    return api("POST", f"/api/projects/{project['id']}/query/", key or project["key"], json=body)


def wait_complete(project, query_id, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = api("GET", f"/api/projects/{project['id']}/query/{query_id}/", project["key"])
        assert r.status_code == 200, r.text
        status = r.json()["query_status"]
        if status["complete"]:
            return status
        time.sleep(0.1)
    raise AssertionError(f"async query {query_id} did not complete in {timeout}s")


def test_blocking_computes_then_serves_cache(db, project):
    ingest(db, project)
    r = post_query(project, FUNNEL)
    assert r.status_code == 200, r.text
    first = r.json()
    assert [s["count"] for s in first["results"]] == [2, 1]
    assert first["is_cached"] is False
    assert first["cache_key"].startswith("cache_")
    assert "result" not in first
    # Same query again (keys in another order): served from the cache, same key, same refresh time.
    again = post_query(project, dict(reversed(list(FUNNEL.items())))).json()
    assert again["is_cached"] is True
    assert again["cache_key"] == first["cache_key"]
    assert again["last_refresh"] == first["last_refresh"]
    assert again["results"] == first["results"]
    # The result equals the SQL engine's.
    (expected,) = sql(db, "SELECT insights.funnel_json(%s, %s::jsonb)->'result'", project["id"], json.dumps(FUNNEL))[0]
    assert again["results"] == expected


def test_force_cache_misses_then_hits(db, project):
    ingest(db, project)
    r = post_query(project, TREND, "force_cache")
    assert r.status_code == 200, r.text
    assert r.json()["results"] is None and r.json()["is_cached"] is False
    post_query(project, TREND, "blocking")
    hit = post_query(project, TREND, "force_cache").json()
    assert hit["is_cached"] is True
    assert hit["results"][0]["data"] == [0, 2, 1]


def test_force_blocking_inside_min_gap_serves_cache(db, project):
    ingest(db, project)
    first = post_query(project, TREND, "blocking").json()
    forced = post_query(project, TREND, True).json()   # refresh=true → force_blocking
    assert forced["is_cached"] is True and forced["last_refresh"] == first["last_refresh"]
    # After the gap (simulated by ageing the cache row), force_blocking recalculates.
    sql(db, "UPDATE insights.query_cache SET last_refresh = now() - interval '1 hour' WHERE project_id = %s", project["id"])
    forced = post_query(project, TREND, "force_blocking").json()
    assert forced["is_cached"] is False and forced["results"][0]["data"] == [0, 2, 1]


def test_stale_cache_recomputed_but_past_ranges_never_stale(db, project):
    ingest(db, project)
    relative = dict(TREND, dateRange={"date_from": "-7d"})
    post_query(project, relative)
    sql(db, "UPDATE insights.query_cache SET last_refresh = now() - interval '7 hours' WHERE project_id = %s", project["id"])
    assert post_query(project, relative).json()["is_cached"] is False      # day interval: stale after 6 h
    post_query(project, TREND)
    sql(db, "UPDATE insights.query_cache SET last_refresh = now() - interval '7 hours' WHERE project_id = %s", project["id"])
    assert post_query(project, TREND).json()["is_cached"] is True          # date_to 2024-01-03 is past


def test_async_runs_in_the_background_worker(db, project):
    ingest(db, project)
    r = post_query(project, FUNNEL, "async")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"] is None and body["is_cached"] is False
    status = body["query_status"]
    assert status["query_async"] is True and status["team_id"] == project["id"]
    done = wait_complete(project, status["id"])
    assert done["error"] is False
    assert [s["count"] for s in done["results"]["result"]] == [2, 1]
    (pid,) = sql(db, "SELECT worker_pid FROM insights.query_tasks WHERE id = %s", status["id"])[0]
    (backend_type,) = sql(db, "SELECT backend_type FROM pg_stat_activity WHERE pid = %s", pid)[0]
    assert backend_type == "pg_insights query worker"
    # Now cached: async serves it without a new task.
    hit = post_query(project, FUNNEL, "async").json()
    assert hit["is_cached"] is True and "query_status" not in hit
    assert [s["count"] for s in hit["results"]] == [2, 1]


def test_async_except_on_cache_miss_blocks_on_miss(db, project):
    ingest(db, project)
    r = post_query(project, TREND, "async_except_on_cache_miss").json()
    assert r["is_cached"] is False and "query_status" not in r and r["results"][0]["data"] == [0, 2, 1]


def test_force_async_returns_stale_cache_and_a_task(db, project):
    ingest(db, project)
    post_query(project, TREND)
    r = post_query(project, TREND, "force_async").json()
    assert r["is_cached"] is True and r["results"][0]["data"] == [0, 2, 1]
    done = wait_complete(project, r["query_status"]["id"])
    assert done["error"] is False


def test_async_error_is_recorded_and_worker_survives(db, project):
    ingest(db, project)
    # An invalid regex fails only when Postgres evaluates it on a row, i.e. inside the worker.
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"],
        json.dumps([{"event": "signup", "distinct_id": "u2", "timestamp": "2024-01-02T13:00:00Z",
                     "properties": {"x": "y"}}]))
    bad = dict(FUNNEL, dateRange={"date_from": "2024-01-01", "date_to": "2024-01-10"},
               series=[{"kind": "EventsNode", "event": "$pageview"},
                       {"kind": "EventsNode", "event": "signup", "properties": [
                           {"key": "x", "value": "[", "operator": "regex", "type": "event"}]}])
    r = post_query(project, bad, "force_async")
    assert r.status_code == 200, r.text
    done = wait_complete(project, r.json()["query_status"]["id"])
    assert done["error"] is True and "regular expression" in done["error_message"], done
    assert done["results"] is None
    # The same worker goes on with the next task.
    ok = post_query(project, FUNNEL, "force_async").json()
    assert wait_complete(project, ok["query_status"]["id"])["error"] is False


def test_cancel_running_and_queued_tasks(db, project):
    """Hold the cache table locked, so the worker's run stays `running` (it waits to store its
    result) and a second task stays `queued` behind it; cancel both through the API."""
    ingest(db, project)
    blocker = psycopg.connect(autocommit=False)
    try:
        blocker.execute("LOCK TABLE insights.query_cache IN EXCLUSIVE MODE")
        running = post_query(project, FUNNEL, "force_async").json()["query_status"]["id"]
        deadline = time.time() + 20
        while sql(db, "SELECT status FROM insights.query_tasks WHERE id = %s", running)[0][0] != "running":
            assert time.time() < deadline, "the worker did not pick the task up"
            time.sleep(0.05)
        queued = post_query(project, TREND, "force_async").json()["query_status"]["id"]
        assert sql(db, "SELECT status FROM insights.query_tasks WHERE id = %s", queued)[0][0] == "queued"
        for qid in (queued, running):
            d = api("DELETE", f"/api/projects/{project['id']}/query/{qid}/", project["key"])
            assert d.status_code == 204, d.text
        statuses = [wait_complete(project, qid) for qid in (queued, running)]
    finally:
        blocker.rollback()
        blocker.close()
    for status in statuses:
        assert status["error"] is True and status["error_message"] == "Query cancelled", status
        assert status["results"] is None
    assert [r[0] for r in sql(db, "SELECT status FROM insights.query_tasks WHERE id = ANY(%s::uuid[]) ORDER BY status",
                              [queued, running])] == ["cancelled", "cancelled"]
    # Cancelling a finished task changes nothing (still 204, still cancelled).
    assert api("DELETE", f"/api/projects/{project['id']}/query/{running}/", project["key"]).status_code == 204
    # The worker is alive and serves the next task.
    ok = post_query(project, TREND, "force_async").json()
    assert wait_complete(project, ok["query_status"]["id"])["error"] is False


def test_worker_restarts_and_requeues_after_being_killed(db, project):
    ingest(db, project)
    (pid,) = sql(db, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_insights query worker'")[0]
    sql(db, "SELECT pg_terminate_backend(%s)", pid)
    # The postmaster starts a new worker (restart time 5 s); a task queued meanwhile still runs.
    r = post_query(project, FUNNEL, "force_async").json()
    done = wait_complete(project, r["query_status"]["id"], timeout=40)
    assert done["error"] is False
    new = sql(db, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_insights query worker'")
    assert new and new[0][0] != pid


def test_other_project_cannot_see_or_cancel_a_task(db, project, make_project):
    ingest(db, project)
    other = make_project()
    r = post_query(project, FUNNEL, "force_async").json()
    qid = r["query_status"]["id"]
    assert_error(api("GET", f"/api/projects/{other['id']}/query/{qid}/", other["key"]), 404, "invalid_request", "not_found")
    assert api("DELETE", f"/api/projects/{other['id']}/query/{qid}/", other["key"]).status_code == 404
    # With the other key on this project's path: no access.
    assert_error(api("GET", f"/api/projects/{project['id']}/query/{qid}/", other["key"]), 403,
                 "authentication_error", "permission_denied")


@pytest.mark.parametrize(
    "body,status,code,attr",
    [
        ({}, 400, "required", "query"),
        ({"query": "FunnelsQuery"}, 400, "required", "query"),
        ({"query": {"kind": "HogQLQuery", "query": "select 1"}}, 400, "invalid_input", "query"),
        ({"query": TREND, "refresh": "sometimes"}, 400, "invalid_input", "refresh"),
        ({"query": dict(TREND, interval="fortnight")}, 400, "invalid_input", "interval"),
    ],
)
def test_bad_bodies(project, body, status, code, attr):
    r = api("POST", f"/api/projects/{project['id']}/query/", project["key"], json=body)
    assert_error(r, status, "validation_error", code, attr)


def test_scopes_methods_and_ids(project, make_project):
    no_query = make_project(scopes=("insight:read",))
    assert_error(post_query(no_query, TREND), 403, "authentication_error", "permission_denied")
    assert_error(api("GET", f"/api/projects/{project['id']}/query/", project["key"]), 405,
                 "invalid_request", "method_not_allowed")
    assert_error(api("GET", f"/api/projects/{project['id']}/query/not-a-uuid/", project["key"]), 404,
                 "invalid_request", "not_found")
    assert_error(api("GET", f"/api/projects/{project['id']}/query/00000000-0000-0000-0000-000000000000/",
                     project["key"]), 404, "invalid_request", "not_found")
    assert_error(api("PUT", f"/api/projects/{project['id']}/query/00000000-0000-0000-0000-000000000000/",
                     project["key"]), 405, "invalid_request", "method_not_allowed")
    assert post_query(project, TREND, key="phx_nope").status_code == 401
