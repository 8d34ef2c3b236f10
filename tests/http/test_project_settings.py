"""Project settings over HTTP: GET | PATCH | PUT /api/projects/:id/ (and /api/environments/:id/),
PostHog's team serializer shape, scopes project:read / project:write, validation errors with
`attr`, and what a settings change does to derived data: the person-days rollup is rebuilt in the
project's new timezone and cached insight results are dropped.
"""

import json

import pytest
from conftest import api, assert_error, sql

TREND = {
    "kind": "TrendsQuery",
    "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
    "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
    "interval": "day",
}


def ingest(db, project):
    events = [
        # 23:30 UTC on Jan 1 is Jan 2 in Tokyo: the local day moves with the timezone.
        {"event": "$pageview", "distinct_id": "u1", "timestamp": "2024-01-01T23:30:00Z"},
        {"event": "$pageview", "distinct_id": "u2", "timestamp": "2024-01-02T12:00:00Z"},
    ]
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))


def test_get_returns_posthog_team_shape(db, project):
    for prefix in ("projects", "environments"):
        r = api("GET", f"/api/{prefix}/{project['id']}/", project["key"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == project["id"] and body["project_id"] == project["id"]
        assert body["name"] == project["name"]
        assert body["api_token"] == project["token"]
        assert body["timezone"] == "UTC" and body["week_start_day"] == 0
        assert body["test_account_filters"] == [] and body["path_cleaning_filters"] == []
        assert body["test_account_filters_default_checked"] is False
        assert body["person_display_name_properties"] is None
        assert body["data_attributes"] == ["data-attr"]
        assert body["ingested_event"] is False and body["has_group_types"] is False
        assert body["effective_membership_level"] == 8
        (uuid,) = sql(db, "SELECT uuid::text FROM insights.projects WHERE id = %s", project["id"])[0]
        assert body["uuid"] == uuid
        assert body["created_at"].endswith("Z")


def test_patch_every_writable_field(db, project):
    change = {
        "name": "Renamed",
        "timezone": "Europe/Berlin",
        "week_start_day": 1,
        "test_account_filters": [{"key": "email", "value": "@test.com", "operator": "not_icontains", "type": "person"}],
        "test_account_filters_default_checked": True,
        "path_cleaning_filters": [{"regex": "/user/\\d+", "alias": "/user/:id"}],
        "person_display_name_properties": ["email", "name"],
        "data_attributes": ["data-attr", "data-testid"],
        # read-only and unknown fields are ignored, as DRF does
        "id": 999999,
        "api_token": "phc_nope",
        "no_such_field": 1,
    }
    r = api("PATCH", f"/api/projects/{project['id']}/", project["key"], json=change)
    assert r.status_code == 200, r.text
    body = r.json()
    for k in ("name", "timezone", "week_start_day", "test_account_filters", "test_account_filters_default_checked",
              "path_cleaning_filters", "person_display_name_properties", "data_attributes"):
        assert body[k] == change[k], k
    assert body["id"] == project["id"] and body["api_token"] == project["token"]
    row = sql(db, "SELECT name, timezone, week_start_day, test_account_filters, data_attributes "
                  "FROM insights.projects WHERE id = %s", project["id"])[0]
    assert row == ("Renamed", "Europe/Berlin", 1, change["test_account_filters"], change["data_attributes"])
    # GET shows the stored values; PUT takes a partial body like PATCH
    r = api("PUT", f"/api/environments/{project['id']}/", project["key"], json={"person_display_name_properties": None})
    assert r.status_code == 200 and r.json()["person_display_name_properties"] is None
    assert api("GET", f"/api/projects/{project['id']}/", project["key"]).json()["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("body,attr,code", [
    ({"timezone": "Mars/Olympus"}, "timezone", "invalid_choice"),
    ({"timezone": 5}, "timezone", "invalid_choice"),
    ({"week_start_day": 3}, "week_start_day", "invalid_choice"),
    ({"name": ""}, "name", "blank"),
    ({"name": None}, "name", "null"),
    ({"test_account_filters": {"key": "x"}}, "test_account_filters", "not_a_list"),
    ({"test_account_filters": ["x"]}, "test_account_filters__0", "not_a_dict"),
    ({"test_account_filters_default_checked": "maybe"}, "test_account_filters_default_checked", "invalid_input"),
    ({"path_cleaning_filters": [{"regex": "(", "alias": "x"}]}, "path_cleaning_filters__0__regex", "invalid_input"),
    ({"path_cleaning_filters": [{"regex": "a"}]}, "path_cleaning_filters__0", "invalid_input"),
    ({"data_attributes": "data-attr"}, "data_attributes", "not_a_list"),
    ({"person_display_name_properties": ["email", 3]}, "person_display_name_properties__1", "invalid_input"),
])
def test_bad_values_are_400_with_attr_and_change_nothing(db, project, body, attr, code):
    # a valid field next to the bad one must not be stored either
    r = api("PATCH", f"/api/projects/{project['id']}/", project["key"], json={"name": "kept?", **body} if attr != "name" else body)
    assert_error(r, 400, "validation_error", code, attr)
    assert sql(db, "SELECT name, timezone FROM insights.projects WHERE id = %s", project["id"])[0] == (project["name"], "UTC")


def test_scopes_and_other_projects(db, make_project):
    p = make_project(scopes=("project:read",))
    q = make_project()
    assert api("GET", f"/api/projects/{p['id']}/", p["key"]).status_code == 200
    assert_error(api("PATCH", f"/api/projects/{p['id']}/", p["key"], json={"name": "x"}),
                 403, "authentication_error", "permission_denied")
    r = make_project(scopes=("person:read",))
    assert_error(api("GET", f"/api/projects/{r['id']}/", r["key"]), 403, "authentication_error", "permission_denied")
    # another project's key neither reads nor changes this project
    assert_error(api("GET", f"/api/projects/{p['id']}/", q["key"]), 403, "authentication_error", "permission_denied")
    assert_error(api("PATCH", f"/api/projects/{p['id']}/", q["key"], json={"timezone": "Asia/Tokyo"}),
                 403, "authentication_error", "permission_denied")
    assert sql(db, "SELECT timezone FROM insights.projects WHERE id = %s", p["id"])[0][0] == "UTC"
    assert api("GET", f"/api/projects/{p['id']}/").status_code == 401
    assert api("DELETE", f"/api/projects/{p['id']}/", p["key"]).status_code == 405
    assert api("GET", "/api/projects/99999999/", p["key"]).status_code == 404


def test_timezone_change_rebuilds_rollup_and_drops_cached_results(db, project):
    ingest(db, project)
    pid = project["id"]
    r = api("POST", f"/api/projects/{pid}/query/", project["key"], json={"query": TREND})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["data"] == [1, 1, 0]
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", pid)[0][0] >= 1

    r = api("PATCH", f"/api/projects/{pid}/", project["key"], json={"timezone": "Asia/Tokyo"})
    assert r.status_code == 200, r.text
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", pid)[0][0] == 0
    # the rollup equals a from-scratch computation in the new timezone
    rollup = sql(db, "SELECT person_id, day, events FROM insights.person_days WHERE project_id = %s ORDER BY 1, 2", pid)
    fresh = sql(db, "SELECT person_id, (timestamp AT TIME ZONE 'Asia/Tokyo')::date, count(*) FROM insights.events "
                    "WHERE project_id = %s GROUP BY 1, 2 ORDER BY 1, 2", pid)
    assert rollup == fresh and [str(d) for _, d, _ in rollup] == ["2024-01-02", "2024-01-02"]
    # the same query now answers in Tokyo days (not the cached UTC answer)
    r = api("POST", f"/api/projects/{pid}/query/", project["key"], json={"query": TREND})
    body = r.json()
    assert body["is_cached"] is False and body["results"][0]["data"] == [0, 2, 0]


def test_week_start_change_drops_cached_results(db, project):
    ingest(db, project)
    pid = project["id"]
    weekly = {**TREND, "interval": "week", "dateRange": {"date_from": "2023-12-25", "date_to": "2024-01-14"}}
    before = api("POST", f"/api/projects/{pid}/query/", project["key"], json={"query": weekly}).json()
    assert api("PATCH", f"/api/projects/{pid}/", project["key"], json={"week_start_day": 1}).status_code == 200
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", pid)[0][0] == 0
    after = api("POST", f"/api/projects/{pid}/query/", project["key"], json={"query": weekly}).json()
    assert after["is_cached"] is False
    # Sunday weeks start on Sun Dec 31; Monday weeks on Mon Jan 1
    assert before["results"][0]["days"][1] == "2023-12-31" and after["results"][0]["days"][1] == "2024-01-01"
    # a PATCH that changes nothing the engines read keeps the cache
    api("POST", f"/api/projects/{pid}/query/", project["key"], json={"query": weekly})
    assert api("PATCH", f"/api/projects/{pid}/", project["key"], json={"name": "n2"}).status_code == 200
    assert sql(db, "SELECT count(*) FROM insights.query_cache WHERE project_id = %s", pid)[0][0] >= 1
