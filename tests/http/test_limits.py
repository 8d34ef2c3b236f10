"""PostHog's rate limits and the statement timeout (issue 17 item 4; docs/api.md#rate-limits).

Per personal API key: routes that run queries (insights, query, persons) allow 240 requests a
minute and 1200 an hour, the others 480 and 4800; the next request is PostHog's 429
`throttled_error` with a Retry-After header. Capture is never throttled. A statement of an HTTP
request over the API role's statement_timeout is PostHog's 504 timeout body.
"""

import json
import time

import pytest
import requests
from conftest import BASE_URL, api, assert_error, sql


def _burst(session, path, key, n):
    codes = []
    for _ in range(n):
        r = session.get(BASE_URL + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        codes.append(r.status_code)
    return codes, r


def test_query_routes_allow_240_a_minute_then_429(make_project):
    p = make_project()
    other = make_project()
    with requests.Session() as s:
        codes, _ = _burst(s, f"/api/projects/{p['id']}/persons/", p["key"], 240)
        assert set(codes) == {200}
        resp = s.get(BASE_URL + f"/api/projects/{p['id']}/insights/trend/?events=[]",
                     headers={"Authorization": f"Bearer {p['key']}"}, timeout=30)
    body = assert_error(resp, 429, "throttled_error", "throttled")
    retry = int(resp.headers["Retry-After"])
    assert 0 < retry <= 60
    assert body["detail"] == f"Request was throttled. Expected available in {retry} second{'s' if retry != 1 else ''}."
    # The other class (actions: 480 a minute) and another key are not affected.
    assert api("GET", f"/api/projects/{p['id']}/actions/", p["key"]).status_code == 200
    assert api("GET", f"/api/projects/{other['id']}/persons/", other["key"]).status_code == 200
    # Capture is never throttled.
    resp = api("POST", "/batch/", json={"api_key": p["token"], "batch": [{"event": "e", "distinct_id": "d"}]})
    assert resp.status_code == 200


def test_throttled_requests_change_nothing(db, make_project):
    p = make_project()
    with requests.Session() as s:
        codes, _ = _burst(s, f"/api/projects/{p['id']}/insights/", p["key"], 240)
        assert set(codes) == {200}
    resp = api("POST", f"/api/projects/{p['id']}/insights/", p["key"],
               json={"name": "late", "filters": {"insight": "TRENDS", "events": [{"id": "e"}]}})
    assert_error(resp, 429, "throttled_error", "throttled")
    assert sql(db, "SELECT count(*) FROM insights.saved_insights WHERE project_id = %s", p["id"]) == [(0,)]


@pytest.fixture
def short_statement_timeout(db):
    """The API role's statement_timeout at 100 ms for one test (PostgREST reads role settings when
    it reloads its schema cache), restored afterwards whatever happens."""

    def reload(value):
        sql(db, f"ALTER ROLE pgi_api SET statement_timeout = '{value}'")
        sql(db, "NOTIFY pgrst, 'reload schema'")
        time.sleep(1.5)

    reload("100ms")
    try:
        yield
    finally:
        reload("180s")


def test_statement_timeout_is_504_and_caches_nothing(db, project, short_statement_timeout):
    # 100,000 events make a median-by-breakdown trend take several hundred milliseconds.
    sql(db, """INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, timestamp, properties)
               SELECT %s, gen_random_uuid(), 'slow', 'd' || (i %% 1000), i %% 1000,
                      now() - (i %% 600000) * interval '1 second', jsonb_build_object('x', i)
                 FROM generate_series(1, 100000) i""", project["id"])
    resp = api("POST", f"/api/projects/{project['id']}/insights/trend/", project["key"],
               json={"events": [{"id": "slow", "math": "median", "math_property": "x"}],
                     "breakdown": "x", "breakdown_type": "event", "date_from": "-14d"})
    assert resp.status_code == 504, resp.text
    body = resp.json()
    assert (body["type"], body["code"], body["attr"]) == ("server_error", "error", None)
    assert body["detail"].startswith("Query has hit the max execution time before completing.")
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", project["id"]) == [(0,)]


def test_size_guards_answer_400_on_the_field(project):
    """Series, breakdown dimensions and breakdown_limit have upper bounds (docs/api.md#limits)."""
    pid, key = project["id"], project["key"]
    many = [{"id": f"e{i}", "type": "events"} for i in range(51)]
    body = assert_error(api("POST", f"/api/projects/{pid}/insights/trend/", key, json={"events": many}),
                        400, "validation_error", "invalid_input", "events")
    assert body["detail"] == "Ensure this field has no more than 50 series."
    assert api("POST", f"/api/projects/{pid}/insights/trend/", key, json={"events": many[:50]}).status_code == 200
    query = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "e"}],
             "breakdownFilter": {"breakdown": "$browser", "breakdown_limit": 1001}}
    assert_error(api("POST", f"/api/projects/{pid}/query/", key, json={"query": query}),
                 400, "validation_error", "invalid_input", "breakdownFilter__breakdown_limit")
    query["breakdownFilter"] = {"breakdowns": [{"property": p, "type": "event"} for p in "abcd"]}
    assert_error(api("POST", f"/api/projects/{pid}/query/", key, json={"query": query}),
                 400, "validation_error", "invalid_input", "breakdownFilter__breakdowns")
    body = assert_error(api("GET", f"/api/projects/{pid}/insights/funnel/?events="
                            + json.dumps([{"id": f"e{i}"} for i in range(21)]), key),
                        400, "validation_error", "invalid_input", "events")
    assert body["detail"] == "Funnels can have at most 20 steps."


def test_a_stored_rate_and_its_reset_apply_to_pooled_connections(db, make_project):
    """ALTER DATABASE … SET / RESET of pgi.throttle_rates reaches PostgREST's open connections
    at their next request (read from the catalogue, not from the connection's copy)."""
    p = make_project()
    path = f"/api/projects/{p['id']}/persons/"
    assert api("GET", path, p["key"]).status_code == 200  # the pool is open before the change
    (dbname,) = sql(db, "SELECT current_database()")[0]
    try:
        sql(db, f"ALTER DATABASE {dbname} SET pgi.throttle_rates = 'query_burst=2/minute'")
        codes = [api("GET", path, p["key"]).status_code for _ in range(3)]
        assert codes == [200, 429, 429]  # the first request above counts too
    finally:
        sql(db, f"ALTER DATABASE {dbname} RESET pgi.throttle_rates")
    assert api("GET", path, p["key"]).status_code == 200
